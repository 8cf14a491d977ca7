package core

import (
	"fmt"
	"strings"
	"time"
)

// Joining: check (or record, or repair) the group record, recreate missing
// parents, and create our ephemeral sequential member node.

type joinStage uint8

const (
	joinStart  joinStage = iota // read the group record next
	joinBusy                    // a request is out
	joinEnsure                  // create parents[ensureAt] next
	joinCreate                  // create our member node next
	joinFind                    // look for our node by guid next (a create's reply was lost)
)

func (c *Core) advanceJoin() {
	switch c.own.joining {
	case joinStart:
		c.own.joining = joinBusy
		c.request(pending{p: pGroupGet}, Op{Kind: OpGet, Path: c.l.GroupNode()})
	case joinEnsure:
		c.own.joining = joinBusy
		ps := c.l.Parents()
		i := c.own.ensureAt
		var data []byte
		if ps[i] == c.l.GroupNode() {
			data = c.groupRecord()
		}
		c.request(pending{p: pEnsure}, Op{Kind: OpCreate, Path: ps[i], Data: data})
	case joinCreate:
		c.own.joining = joinBusy
		self := MemberData{MemberInfo: c.cfg.Self}
		self.SeenTerm = c.view.seenTerm
		c.request(pending{p: pCreate}, Op{Kind: OpCreate, Path: c.l.MembersDir() + "/" + memberPrefix(c.own.guid),
			Data: MustJSON(self), Ephemeral: true, Sequence: true})
	case joinFind:
		c.own.joining = joinBusy
		c.request(pending{p: pFind}, Op{Kind: OpChildren, Path: c.l.MembersDir()})
	}
}

func (c *Core) groupRecord() []byte {
	return MustJSON(groupRecord{HAID: c.cfg.Group, Role: c.cfg.Self.Role, Region: c.cfg.Self.Region,
		LeaseMS: c.cfg.Lease.Milliseconds(), Policy: c.policy(), Created: c.now.UTC()})
}

// policy is the election policy as the group record spells it.
func (c *Core) policy() string {
	if c.cfg.Policy == PolicyPriority {
		return PolicyPriority
	}
	return ""
}

func (c *Core) onJoinReply(p pending, r Result) {
	if c.role != roleOut || c.own.joining != joinBusy {
		return
	}
	if r.Err == ErrNotSent || r.Err == ErrLost && p.p != pCreate || r.Err == ErrOther {
		c.own.joining = map[purpose]joinStage{pEnsure: joinEnsure, pCreate: joinCreate, pFind: joinFind}[p.p]
		c.fail()
		return
	}
	switch p.p {
	case pGroupGet:
		c.onGroupRecord(r)
	case pGroupRepair:
		c.own.joining = joinStart
		if r.Err != ErrNone {
			c.fail() // changed meanwhile: read it again
		}
	case pEnsure:
		switch {
		case r.Err == ErrNone || r.Err == ErrNodeExists:
			c.own.ensureAt++
			if c.own.ensureAt == len(c.l.Parents()) {
				c.own.joining = joinStart
			} else {
				c.own.joining = joinEnsure
			}
		case r.Err == ErrNoNode: // a parent went away meanwhile: start over
			c.own.ensureAt, c.own.joining = 0, joinEnsure
			c.fail()
		default:
			c.own.joining = joinEnsure
			c.fail()
		}
	case pCreate:
		switch r.Err {
		case ErrNone:
			node, ok := parseMember(r.Path[strings.LastIndex(r.Path, "/")+1:])
			if !ok {
				// We asked for our own prefix: no ZooKeeper answers otherwise.
				c.bug(fmt.Sprintf("created member %q has an unexpected name", r.Path))
				c.own.joining = joinCreate
				c.fail()
				return
			}
			c.joined(node, 0, true, p.epoch)
		case ErrNoNode: // members/ (or more) is gone: recreate the parents
			c.own.ensureAt, c.own.joining = 0, joinEnsure
		case ErrLost:
			c.own.joining = joinFind
		default:
			c.own.joining = joinCreate
			c.fail()
		}
	case pFind:
		if r.Err != ErrNone {
			c.own.joining = joinCreate
			if r.Err == ErrNoNode {
				c.own.ensureAt, c.own.joining = 0, joinEnsure
			}
			return
		}
		for _, ch := range r.Children {
			if m, ok := parseMember(ch); ok && m.GUID == c.own.guid {
				c.joined(m, 0, false, 0) // its version is read by the look
				return
			}
		}
		c.own.joining = joinCreate
	}
}

// onGroupRecord checks the group's identity, or records or repairs it.
func (c *Core) onGroupRecord(r Result) {
	gn := c.l.GroupNode()
	switch r.Err {
	case ErrNone:
	case ErrNoNode:
		c.own.ensureAt, c.own.joining = 0, joinEnsure
		return
	default:
		c.own.joining = joinStart
		c.fail()
		return
	}
	var g groupRecord
	err := StrictJSON(r.Data, &g)
	if err != nil || g.Role == "" || g.LeaseMS <= 0 {
		why := "no lease_ms"
		if err != nil {
			why = err.Error()
		} else if g.Role == "" {
			why = "no role"
		}
		c.notice("group-repair", Notice{Level: "warn", Znode: gn,
			Msg: fmt.Sprintf("group record %s is not usable (%s: %s); rewriting it with this node's role, region and lease", gn, why, Quote(r.Data))})
		c.own.joining = joinBusy
		c.request(pending{p: pGroupRepair}, Op{Kind: OpSet, Path: gn, Data: c.groupRecord(), Version: r.Stat.Version})
		return
	}
	lease := time.Duration(g.LeaseMS) * time.Millisecond
	if g.Policy != c.policy() {
		c.refuse(fmt.Errorf("%w: HA_ID %q is recorded with ELECTION_POLICY=%s, this node has ELECTION_POLICY=%s (every member "+
			"of a group must use the same policy; to change it, stop all the group's members and delete %s)",
			ErrGroupMismatch, c.cfg.Group, policyName(g.Policy), policyName(c.policy()), gn))
		return
	}
	if g.Role != c.cfg.Self.Role || g.Region != c.cfg.Self.Region || lease != c.cfg.Lease {
		c.refuse(fmt.Errorf("%w: HA_ID %q is recorded with role=%s region=%s ZK_SESSION_TIMEOUT=%s, this node has "+
			"role=%s region=%s ZK_SESSION_TIMEOUT=%s (every member of a group must agree: the session timeout is the "+
			"lease every member waits out; to change the group, stop all its members and delete %s)",
			ErrGroupMismatch, c.cfg.Group, g.Role, g.Region, lease, c.cfg.Self.Role, c.cfg.Self.Region, c.cfg.Lease, gn))
		return
	}
	c.forget("group-repair")
	c.own.joining = joinCreate
}

// joined makes us a member through node.
func (c *Core) joined(node MemberNodeName, ver int32, sure bool, epoch uint64) {
	c.role, c.own.joining = roleMember, joinStart
	c.own.node, c.own.ver, c.own.sure, c.own.check = node.Node, ver, sure, true
	c.own.epoch, c.own.sent = 0, time.Time{}
	if sure && c.current(epoch) {
		c.own.epoch = epoch
	}
	c.view.position = -1
	c.succeeded()
	c.setPhase(PhaseStandby, fmt.Sprintf("joined as seq %d", node.Seq))
	c.wantLook()
}

// refuse ends the election with a refusal.
func (c *Core) refuse(err error) {
	c.done = true
	c.setPhase(PhaseStopped, err.Error())
	c.emit(ActDone{Err: err})
}
