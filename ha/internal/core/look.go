package core

import (
	"bytes"
	"fmt"
	"time"
)

// Looking at the group: list the members, read what is not known yet and
// the leader record, then settle our position and the predecessor watch.

// lookState is a look in flight.
type lookState struct {
	id      uint64    // the listing request; 0: none in flight
	at      time.Time // when the listing arrived: the observation time
	names   []string
	waiting int // reads outstanding
	rec     Result
	recDone bool
	again   bool // another look was asked for meanwhile
	// ownSeq and ownBusy: our writes of our node when the look began. A
	// read of our node is compared with what we wrote only if none was in
	// flight then and none was sent since: replies may come in any order.
	ownSeq  uint64
	ownBusy bool
	ownRead bool // the look reads our node (ownCheck)
	// outdated: our lowest predecessor was seen to vanish while this look
	// was in flight. Its listing may predate the deletion (replies and
	// watch events reach the core in any order), and applying it would
	// drop the bound the deletion left (vacated): another look follows.
	outdated bool
}

// wantLook asks for a look as soon as possible.
func (c *Core) wantLook() {
	if c.view.look.id != 0 {
		c.view.look.again = true
		return
	}
	c.view.lookDue = true
}

// lookWanted is wantLook for states that may not be members.
func (c *Core) lookWanted() {
	if c.role != roleOut {
		c.wantLook()
	}
}

// lookSoon asks for a look one extension period from now (unless one is
// asked sooner): for a change that leaves the view stale but decides
// nothing now. Every member of a group that changed leader would otherwise
// list the group at once, the moment ZooKeeper is busiest with the
// handovers themselves. A member's looks only enable claims, so a later one
// can only delay a claim, never allow one; a new holder's look only
// refreshes its view (its safety rests on its own writes, and a new epoch's
// revalidation look is never deferred), so a later one only delays noticing
// a node another client forged below it.
func (c *Core) lookSoon() {
	if at := c.now.Add(c.every); c.view.lookAt.IsZero() || at.Before(c.view.lookAt) {
		c.view.lookAt = at
	}
}

// lookSoonDue reports whether the look lookSoon asked for is due.
func (c *Core) lookSoonDue() bool {
	return !c.view.lookAt.IsZero() && !c.now.Before(c.view.lookAt)
}

func (c *Core) startLook() {
	c.view.lookDue = false
	c.view.lookAt = time.Time{}
	id := c.request(pending{p: pLookChildren}, Op{Kind: OpChildren, Path: c.l.MembersDir()})
	c.view.look = lookState{id: id, ownSeq: c.own.writeSeq, ownBusy: c.own.writes > 0}
	p := c.req.pend[id]
	p.look = id
	c.req.pend[id] = p
}

func (c *Core) onLookReply(id uint64, p pending, r Result) {
	if c.stale(p) || p.look != c.view.look.id || c.view.look.id == 0 {
		return
	}
	if !c.current(p.epoch) {
		c.view.look = lookState{}
		c.wantLook()
		return
	}
	failed := func() {
		c.view.look = lookState{}
		c.view.lookDue = true
		c.fail()
	}
	switch p.p {
	case pLookChildren:
		switch r.Err {
		case ErrNone:
		case ErrNoNode:
			c.lose(fmt.Sprintf("%s was deleted", c.l.MembersDir()))
			return
		default:
			failed()
			return
		}
		c.view.look.at, c.view.look.names = c.now, r.Children
		present := make(map[string]bool, len(r.Children))
		for _, name := range r.Children {
			present[name] = true
			if _, ok := parseMember(name); !ok {
				continue // ignored without reading it
			}
			if name == c.own.node {
				if !c.own.check && c.own.sure && !c.own.revalidate {
					continue // we know our node: only a look for a reason reads it (a holder's revalidation is one)
				}
				c.view.look.ownRead = true
			} else if _, known := c.view.infos[name]; known && !c.view.reread[name] {
				continue // member data is written once; the holder's changes do not matter here
			}
			delete(c.view.reread, name)
			c.view.look.waiting++
			c.request(pending{p: pLookGet, node: name, look: c.view.look.id}, Op{Kind: OpGet, Path: c.l.MemberNode(name)})
		}
		for name := range c.view.infos {
			if !present[name] {
				delete(c.view.infos, name)
			}
		}
		c.view.look.waiting++
		c.request(pending{p: pLookRec, look: c.view.look.id}, Op{Kind: OpGet, Path: c.l.LeaderNode()})
		c.lookGroup()
	case pLookGet:
		c.view.look.waiting--
		switch r.Err {
		case ErrNone:
			c.view.infos[p.node] = c.inspect(p.node, r)
		case ErrNoNode:
			delete(c.view.infos, p.node)
			c.view.look.names = without(c.view.look.names, p.node)
		default:
			failed()
			return
		}
	case pLookGroup:
		c.view.look.waiting--
		if !c.onLookGroup(id, r) {
			failed()
			return
		}
	case pLookRec:
		c.view.look.waiting--
		if r.Err != ErrNone && r.Err != ErrNoNode {
			failed()
			return
		}
		c.view.look.rec, c.view.look.recDone = r, true
	}
	if c.view.look.waiting == 0 && c.view.look.at != (time.Time{}) {
		c.finishLook()
	}
}

// inspect reads what a node under members/ is. Only persistent nodes are
// left out of the order: an ephemeral node with a member's name may belong
// to a live member (its data overwritten by another client), and a member
// that may still claim must never be skipped. Its data is not trusted.
func (c *Core) inspect(name string, r Result) nodeInfo {
	info := nodeInfo{version: r.Stat.Version, owner: r.Stat.EphemeralOwner}
	if name == c.own.node {
		info.raw = r.Data
	}
	if r.Stat.EphemeralOwner == 0 {
		info.why = "persistent node, not a member's ephemeral node: ignored"
		return info
	}
	info.inOrder = true
	d, why, ok := DecodeMember(r.Data)
	if !ok {
		info.why = "data is not a member record (" + why + "): " + Quote(r.Data) +
			"; it keeps its place in the order until it goes, since a live member may own it"
		return info
	}
	info.data, info.ok = d, true
	return info
}

// finishLook settles what a complete look found: the record (for a
// member), our own node, the order of the members, what may be swept, our
// position and predecessor, and what the holder must do about them.
func (c *Core) finishLook() {
	lk := c.view.look
	c.view.look = lookState{}
	if lk.outdated {
		c.view.lookDue = true
		return
	}
	c.view.lastLook = lk.at
	// What the look proves is dated by the last reply it rests on, not by
	// its listing: a node below us in the listing is known to be gone (or
	// not a member's) only from its read, which comes later, and its
	// holder may have extended in between (ha/doc.go, rule C).
	obs := c.now
	if c.cfg.Weaken.has(WeakRuleCFromListing) {
		obs = lk.at
	}
	if c.role != roleHolder {
		// A holder knows the record better than a look (it wrote it; its
		// watch catches anyone else's write), and a look's read may predate
		// its latest write.
		c.setRecord(lk.rec)
	}
	if !c.lookFoundOwn(lk) {
		return
	}
	o, ok := c.orderMembers(lk, obs)
	if !ok {
		return
	}
	c.view.members, c.view.names, c.view.position = o.members, o.names, o.idx // fresh slices: snapshots keep the old ones
	c.planSweep(o)
	c.settlePosition(o.idx, obs)
	if c.role == roleHolder && o.idx == 0 && lk.ownRead {
		c.own.revalidate = false // still lowest, our node as we left it, in this epoch
	}
	if c.role == roleMember {
		c.setPhase(c.idlePhase(), c.standbyReason())
	} else if c.role == roleHolder && o.idx != 0 {
		// Nothing can appear below the lowest member, unless ZooKeeper was
		// restored from an older state (or someone forged a node). Our
		// proofs rest on that order: stop acting and start over from it.
		c.notice("below-holder", Notice{Level: "warn", Znode: c.l.MemberNode(o.names[0]), Msg: fmt.Sprintf(
			"member %s appeared below this leader (ZooKeeper restored from an older state?); stepping down", o.names[0])})
		cover("stop: member below the holder")
		c.stepDown("a member appeared below this leader", afterStop{})
		c.forget("below-holder")
	}
	if lk.again {
		c.view.lookDue = true
	}
}

// lookFoundOwn checks our own node first: it must be there, ours, and
// unchanged. False when the membership is lost.
func (c *Core) lookFoundOwn(lk lookState) bool {
	own, ok := c.view.infos[c.own.node]
	if !containsName(lk.names, c.own.node) || lk.ownRead && !ok {
		c.lose("member node " + c.own.node + " is gone")
		return false
	}
	if lk.ownRead {
		c.own.check = false
		c.checkOwn(own, lk.ownBusy || lk.ownSeq != c.own.writeSeq)
		if c.role == roleOut {
			return false
		}
	}
	return true
}

// order is the members a look found, in order.
type order struct {
	members       []Member
	names         []string // their node names
	idx           int      // our index, -1 none
	readableBelow int      // readable members below us
	unreadable    []unread // nodes below us whose data is not a member record
}

// orderMembers orders what the look listed, ignoring (and telling the
// operator about) what takes no part, and notes what the members below us
// said they were. ok is false when a node is not known: look again.
func (c *Core) orderMembers(lk lookState, obs time.Time) (o order, ok bool) {
	c.view.ignored = nil
	o.idx = -1
	for _, m := range SortMembers(lk.names) {
		info, known := c.view.infos[m.Node]
		if !known && m.Node != c.own.node {
			// Neither read by this look nor known any more (forgotten while
			// the look was out: a claim of ours deleted it). Never decide on
			// a node we know nothing of (it would drop out of the order):
			// look again.
			c.view.lookDue = true
			return o, false
		}
		if m.Node != c.own.node && info.owner == c.sess.id && c.sess.id != 0 {
			// Ours, but not our member node: left by a create whose reply
			// was lost, or by an earlier membership. It cannot be acting
			// (our duty stopped before we rejoined): remove it.
			c.request(pending{p: pCleanup}, Op{Kind: OpDelete, Path: c.l.MemberNode(m.Node), Version: -1})
			continue
		}
		if m.Node != c.own.node && !info.ok {
			c.ignore(m.Node, info.why)
			if !info.inOrder {
				continue
			}
			info.data.MemberInfo = MemberInfo{Name: "(unreadable)"}
			if o.idx < 0 {
				u := unread{name: m.Node, ver: info.version, at: obs}
				for _, old := range c.view.unreadable {
					if old.name == u.name && old.ver == u.ver {
						u.at = old.at
					}
				}
				o.unreadable = append(o.unreadable, u)
			}
		} else if o.idx < 0 && m.Node != c.own.node {
			o.readableBelow++
		}
		if m.Node == c.own.node {
			o.idx = len(o.members)
			info.data.MemberInfo = c.cfg.Self
		} else {
			c.view.seenTerm = max(c.view.seenTerm, plausibleTerm(info.data.SeenTerm), plausibleTerm(info.data.LeaseTerm))
		}
		o.members = append(o.members, Member{MemberInfo: info.data.MemberInfo, Seq: m.Seq}) // Leader: markLeader
		o.names = append(o.names, m.Node)
		if o.idx < 0 {
			c.view.seenBelow[m.Node] = true
			if info.ok {
				c.noteBelow(m.Node, info.data)
			}
		}
	}
	for _, name := range lk.names {
		if _, ok := parseMember(name); !ok {
			c.ignore(name, "not a member node name (hanode creates _c_<32 hex>-m-<10 digits>)")
		}
	}
	c.forgetBelow(lk.names)
	return o, true
}

// planSweep decides which unreadable nodes below us we may delete (sweep).
func (c *Core) planSweep(o order) {
	c.view.unreadable, c.view.sweepable = o.unreadable, nil
	switch {
	case o.readableBelow == 0:
		c.view.sweepable = append([]unread(nil), o.unreadable...)
	case o.idx > 0 && len(o.unreadable) > 0 && o.unreadable[len(o.unreadable)-1].name == o.names[o.idx-1]:
		// Our direct predecessor: only we watch it, so only we sweep it.
		c.view.sweepable = []unread{o.unreadable[len(o.unreadable)-1]}
	case o.readableBelow == 1 && len(o.unreadable) > 0:
		// Our predecessor is the lowest readable member: it should sweep
		// these. If it has not a lease later (a client whose node only
		// looks like a member's never will, and the group would wait on it
		// while that client lives), we do. Each delete is at the version
		// seen, so a second sweeper costs a failed delete, never a wrong one.
		for _, u := range o.unreadable {
			u.late = true
			c.view.sweepable = append(c.view.sweepable, u)
		}
	}
}

// settlePosition starts rule C's wait when we are lowest, or follows our
// new predecessor.
func (c *Core) settlePosition(idx int, obs time.Time) {
	if idx == 0 {
		if c.view.candSince.IsZero() {
			c.view.candSince = obs
			if !c.view.vacated.IsZero() {
				c.view.candSince = c.view.vacated
				if c.cfg.UnsafeTrustVanish {
					c.view.candSince = obs.Add(-c.wait)
				}
			}
		}
		c.view.vacated = time.Time{}
		if !(c.pred.lowest && !c.pred.obs.IsZero() && c.pred.watch != 0) {
			c.pred.node, c.pred.watch = "", 0
		} // else its watch has yet to tell how it went (onPredWatch)
		return
	}
	name, lowest := c.view.names[idx-1], idx-1 == 0
	if name != c.pred.node || lowest != c.pred.lowest {
		c.pred.node, c.pred.watch, c.pred.obs, c.pred.lowest = name, 0, time.Time{}, lowest
	}
	c.view.candSince, c.view.vacated = time.Time{}, time.Time{}
}

// checkOwn compares what a look read of our node with what we wrote.
func (c *Core) checkOwn(own nodeInfo, raced bool) {
	switch {
	case own.owner != c.sess.id:
		c.lose(fmt.Sprintf("member node %s is owned by session %s, not ours", c.own.node, SessionHex(own.owner)))
	case c.own.writes > 0 || raced:
		// A write of ours was in flight or sent during the look: the
		// version read may be before or after it. Its reply settles it.
	case !c.own.sure:
		c.own.ver, c.own.sure, c.own.epoch, c.own.sent, c.own.data = own.version, true, 0, time.Time{}, own.raw
	case own.version != c.own.ver || c.own.data != nil && !bytes.Equal(own.raw, c.own.data):
		// Another client wrote our node: nothing we proved with it holds,
		// and others cannot read what we are. Rejoin with a clean node.
		c.ownTampered()
	}
}

// ignore records a node that takes no part, telling the operator once.
func (c *Core) ignore(name, why string) {
	z := c.l.MemberNode(name)
	c.view.ignored = append(c.view.ignored, Ignored{Znode: z, Reason: why})
	c.notice("ignored:"+name, Notice{Level: "warn", Znode: z,
		Msg: fmt.Sprintf("ignoring %s: %s", z, why), Fix: "delete it if no hanode member owns it"})
}

// setRecord takes what a read of the leader record found.
func (c *Core) setRecord(r Result) {
	c.rec.ver = r.Stat.Version
	if !c.rec.firstOK {
		c.rec.first, c.rec.firstOK = r.Stat.Version, true
		if r.Err == ErrNoNode {
			c.rec.first = -1
		}
	}
	c.rec.maxed = false
	if r.Err == ErrNoNode {
		c.rec.r, c.rec.kind, c.rec.why = LeaderRecord{}, RecAbsent, ""
		c.forget("rec-max")
		return
	}
	c.rec.r, c.rec.kind, c.rec.why = DecodeLeader(r.Data)
	z := c.l.LeaderNode()
	switch {
	case c.rec.r.Term >= MaxTerm:
		// Whatever else it holds: overwriting it would make the recorded
		// term go down, following it would overflow. Refuse, and say how
		// to repair it.
		c.rec.maxed = true
		c.notice("rec-max", Notice{Level: "error", Znode: z,
			Msg: fmt.Sprintf("leader record %s holds term %d, which cannot grow (terms stay below %d): refusing to lead",
				z, c.rec.r.Term, int64(MaxTerm)),
			Fix: "stop every member of the group, check which terms downstream systems accepted, then delete " + z})
	case c.rec.kind == RecBad:
		c.notice("rec-bad", Notice{Level: "warn", Znode: z,
			Msg: fmt.Sprintf("leader record %s is not usable (%s): %s; the next leader overwrites it after the safe wait",
				z, c.rec.why, Quote(r.Data))})
	default:
		c.forget("rec-bad")
		c.forget("rec-max")
		c.view.seenTerm = max(c.view.seenTerm, c.rec.r.Term)
	}
}

// onPredWatch: the predecessor changed or vanished.
func (c *Core) onPredWatch(kind WatchKind) {
	if c.role != roleMember || c.pred.node == "" {
		return
	}
	switch kind {
	case WatchChanged:
		// The version we read is gone: what we observed no longer bounds
		// anything (it may have been extended since), and what a look knows
		// of it may be stale (its data rewritten): read it again.
		c.pred.obs = time.Time{}
		c.view.reread[c.pred.node] = true
		if c.pred.lowest {
			// Still lowest (nothing can appear below it): just read it again.
			c.watchPred()
			return
		}
		// Not the lowest: a standby's node changes by its claim (or by
		// another client), so the lowest has probably left. Follow it again
		// at once (its release or departure wakes us), and list the group
		// a period later: only rule D rests on knowing that it is now the
		// lowest, and rule D waits W anyway.
		c.watchPred()
		c.lookSoon()
		return
	case WatchDeleted:
		if c.pred.lowest && !c.pred.obs.IsZero() {
			// It vanished with no change since we read it at predObs: its
			// last extension was sent before predObs (ha/doc.go, rule C).
			c.view.vacated = c.pred.obs
			if c.view.look.id != 0 {
				c.view.look.outdated = true
			}
			if c.view.position == 0 && !c.view.candSince.IsZero() && c.pred.obs.Before(c.view.candSince) {
				c.view.candSince, c.view.vacated = c.pred.obs, time.Time{} // a look saw it gone first
			}
		}
		if c.pred.lowest && c.view.position == 1 && c.view.look.id == 0 && c.own.sure {
			// The lowest member left and we are next: nothing can be below
			// us now. If it released, claim at once from one read of the
			// record rather than a whole look (a graceful handover is then
			// the release, this read and the claim).
			c.pred.fastNode = c.pred.node
			c.pred.fastRead = c.request(pending{p: pFastRec}, Op{Kind: OpGet, Path: c.l.LeaderNode()})
			c.pred.node, c.pred.obs = "", time.Time{}
			return
		}
	}
	c.pred.node, c.pred.obs = "", time.Time{}
	c.wantLook()
}

// onFastRec: the record read after our lowest predecessor left.
func (c *Core) onFastRec(id uint64, p pending, r Result) {
	if id != c.pred.fastRead {
		return
	}
	c.pred.fastRead = 0
	if c.stale(p) || c.role != roleMember {
		return
	}
	gone := c.pred.fastNode
	c.pred.fastNode = ""
	if r.Err == ErrNone && c.current(p.epoch) {
		rec, kind, _ := DecodeLeader(r.Data)
		if kind == RecOK && rec.State == RecReleased && rec.HolderNode == gone && rec.Term < MaxTerm {
			// The leaver released: nothing can be below us now, and the
			// claim rules decide, as after any look.
			c.setRecord(r)
			c.view.position, c.pred.node, c.pred.watch = 0, "", 0
			if rule, at, ok := c.pickRule(); ok && rule == ruleB && !c.now.Before(at) {
				cover(claimPoint(rule, "fast path"))
				c.claim(rule)
				// Refresh the view (the leaver is still in it) once the claim
				// is answered, not beside it: in a mass handover every
				// request counts, and the claim is what the group waits for.
				c.hold.lookAfterClaim = true
				return
			}
		}
	}
	c.wantLook()
}

// watchPred reads the predecessor and sets a watch on it.
func (c *Core) watchPred() {
	c.pred.watch = c.request(pending{p: pPredWatch, node: c.pred.node}, Op{Kind: OpGet, Path: c.l.MemberNode(c.pred.node), Watch: true})
}

func (c *Core) onPredRead(id uint64, p pending, r Result) {
	if c.stale(p) || id != c.pred.watch || p.node != c.pred.node {
		return
	}
	switch {
	case r.Err == ErrNoNode:
		c.pred.watch = 0
		c.onPredWatch(WatchDeleted)
	case r.Err != ErrNone:
		c.pred.watch = 0
		c.fail()
	case !c.current(p.epoch):
		c.pred.watch = 0 // read on an older connection: read again
	default:
		c.pred.ver, c.pred.failed = r.Stat.Version, false
		if c.pred.lowest {
			c.pred.obs = c.now
		}
		d, _, ok := DecodeMember(r.Data)
		c.pred.holds, c.pred.name, c.pred.data = ok && d.LeaseTerm > 0, d.Name, d
		if ok {
			c.view.seenTerm = max(c.view.seenTerm, plausibleTerm(d.LeaseTerm))
			c.noteBelow(p.node, d)
		}
	}
}

// plausibleTerm is a term a member published, or 0 when it cannot be one
// (at or near MaxTerm: a damaged or foreign node must not stop the group
// from ever leading again).
func plausibleTerm(t int64) int64 {
	if t <= 0 || t >= MaxTerm-1 {
		return 0
	}
	return t
}

func without(names []string, name string) []string {
	out := names[:0:0]
	for _, n := range names {
		if n != name {
			out = append(out, n)
		}
	}
	return out
}

func containsName(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}
