package ha

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/go-zookeeper/zk"
)

// The ZooKeeper work of the election. Each op runs on its own goroutine,
// started by the owner with copies of what it needs, and reports back a
// result; none touches the owner's state. A request can hang while the
// connection is down, so the owner never waits on one: the lease runs out on
// its own clock whatever an op is doing.

// joinResult is the outcome of joining: our member node in session sid.
type joinResult struct {
	node    memberNode
	sid     int64
	ackSend time.Time // send time of the request that proved the node ours
}

// join records or checks the group, reserves the server name, and creates
// (or finds again, by guid) our member node.
func (e *Elector) join(s store, sid int64, guid string, self MemberInfo) (joinResult, error) {
	l := e.layout
	if err := s.ensurePath(l.groupsDir()); err != nil {
		return joinResult{}, err
	}
	if err := e.checkGroup(s); err != nil {
		return joinResult{}, err
	}
	if err := s.ensurePath(l.membersDir()); err != nil {
		return joinResult{}, err
	}
	if err := e.reserveName(s, sid); err != nil {
		return joinResult{}, err
	}
	children, _, err := s.conn.Children(l.membersDir())
	if err != nil {
		return joinResult{}, fmt.Errorf("ha: list members: %w", err)
	}
	node, found := findGUID(sortMembers(children), guid)
	if !found {
		name, err := s.createMember(l.membersDir(), memberPrefix(guid), mustJSON(self))
		if err != nil {
			return joinResult{}, fmt.Errorf("ha: create member: %w", err)
		}
		var ok bool
		if node, ok = parseMember(name); !ok {
			return joinResult{}, fmt.Errorf("ha: created member %q has an unexpected name", name)
		}
	}
	// A create retried across an expiry would belong to another session.
	send := e.now()
	ok, st, err := s.conn.Exists(l.member(node.Name))
	if err != nil {
		return joinResult{}, fmt.Errorf("ha: check member: %w", err)
	}
	if !ok || st.EphemeralOwner != sid {
		return joinResult{}, fmt.Errorf("ha: member %s not owned by session %s", node.Name, sessionHex(sid))
	}
	return joinResult{node: node, sid: sid, ackSend: send}, nil
}

// checkGroup records the group's role and region, or refuses a node whose
// role or region differs from the record.
func (e *Elector) checkGroup(s store) error {
	want := groupRecord{HAID: e.layout.group, Role: e.cfg.Self.Role, Region: e.cfg.Self.Region, Created: time.Now().UTC()}
	err := s.createOnce(e.layout.groupNode(), mustJSON(want))
	if err == nil {
		return nil
	}
	if !errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("ha: create group: %w", err)
	}
	var got groupRecord
	if _, err := s.getJSON(e.layout.groupNode(), &got); err != nil {
		return fmt.Errorf("ha: read group: %w", err)
	}
	if got.Role == "" && got.Region == "" {
		// An empty node (made by hand, or recreated bare): claim it.
		_, err := s.conn.Set(e.layout.groupNode(), mustJSON(want), -1)
		return err
	}
	if got.Role != want.Role || got.Region != want.Region {
		return fmt.Errorf("%w: HA_ID %q is recorded with role=%s region=%s, this node has role=%s region=%s "+
			"(each role needs its own HA_ID; to reuse this one, stop its members and delete %s)",
			ErrGroupMismatch, e.layout.group, got.Role, got.Region, want.Role, want.Region, e.layout.groupNode())
	}
	return nil
}

// reserveName creates names/<NAME> for session sid. A name held by another
// live process is refused. A name still held by a dead process on this host
// (we were restarted after a crash), or by an earlier session of this process,
// is waited for: its session will expire.
func (e *Elector) reserveName(s store, sid int64) error {
	p := e.layout.name(e.cfg.Self.Name)
	if err := s.ensurePath(e.layout.namesDir()); err != nil {
		return err
	}
	rec := nameRecord{Name: e.cfg.Self.Name, HAID: e.layout.group, Host: e.cfg.Self.Host, PID: e.cfg.Self.PID,
		Started: e.cfg.Self.Started, Session: sessionHex(sid)}
	deadline := time.Now().Add(e.cfg.SessionTimeout + 5*time.Second)
	for {
		err := s.createEphemeral(p, mustJSON(rec))
		if err == nil {
			return nil
		}
		if !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("ha: reserve name: %w", err)
		}
		var holder nameRecord
		st, err := s.getJSON(p, &holder)
		if errors.Is(err, zk.ErrNoNode) {
			continue // released meanwhile
		}
		if err != nil {
			return fmt.Errorf("ha: read name holder: %w", err)
		}
		if st.EphemeralOwner == sid {
			return nil // ours: an earlier create's reply was lost
		}
		// Wait for a holder that cannot act any more: a dead process on this
		// host (we were restarted after a crash), or this very process in an
		// earlier session (our client was replaced, or the server restored
		// an old session from its snapshot). Refuse anyone else.
		self := e.cfg.Self
		earlierSelf := holder.Host == self.Host && holder.PID == self.PID && holder.Started.Equal(self.Started)
		deadHere := holder.Host == self.Host && !pidAlive(holder.PID)
		if !(earlierSelf || deadHere) || time.Now().After(deadline) {
			return fmt.Errorf("%w: %q is held by host %s pid %d (HA_ID %q, since %s, session %s)",
				ErrNameInUse, e.cfg.Self.Name, holder.Host, holder.PID, holder.HAID,
				holder.Started.Format(time.RFC3339), holder.Session)
		}
		msg := "name held by a dead process on this host; waiting for its session to expire"
		if earlierSelf {
			msg = "name held by an earlier session of this process; waiting for it to expire"
		}
		e.log.Info(msg,
			zapPID(holder.PID), zapSession(holder.Session))
		ok, _, ch, err := s.conn.ExistsW(p)
		if err != nil {
			return fmt.Errorf("ha: watch name: %w", err)
		}
		if ok {
			select {
			case <-ch:
			case <-time.After(time.Until(deadline)):
			}
		}
	}
}

// pidAlive reports whether a process with this pid exists on this host.
func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// view is what a member knows of its group after listing it.
type view struct {
	members []Member // ordered by sequence; the first leads
	leader  leaderRecord
	infos   map[string]MemberInfo // node name -> info, to cache
}

// electResult is the outcome of one election round.
type electResult struct {
	lost    bool // our node is gone: rejoin
	leader  bool
	term    int64
	ackSend time.Time       // send time of the request that proved our node (leader, activated)
	pred    memberNode      // standby: the node we watch
	watch   <-chan zk.Event // standby: fires when pred changes
	again   bool            // standby: pred vanished before the watch was set
	hold    bool            // lowest, but must not lead yet (see Elector.mustHold)
	view    view
	// leader: the committed record and its version; fence is the leader to
	// fence before activating (nil: activated already).
	record  leaderRecord
	version int32
	fence   *leaderRecord
}

// elect lists the group; the lowest member commits a new term and proves
// its node is still owned by its session before it may lead; the others
// watch their predecessor.
func (e *Elector) elect(s store, own memberNode, sid int64, known map[string]MemberInfo, seenTerm int64, fencing, hold bool) (electResult, error) {
	l := e.layout
	v, sorted, err := readView(s, l, known)
	if err != nil {
		return electResult{}, err
	}
	idx, pred, found := position(sorted, own.Name)
	if !found {
		return electResult{lost: true, view: v}, nil
	}
	if idx == 0 && hold {
		return electResult{hold: true, view: v}, nil
	}
	if idx > 0 {
		ok, _, ch, err := s.conn.ExistsW(l.member(pred.Name))
		if err != nil {
			return electResult{}, fmt.Errorf("ha: watch predecessor: %w", err)
		}
		return electResult{pred: pred, watch: ch, again: !ok, view: v}, nil
	}

	// Lowest: take a term larger than any recorded or seen, with a
	// versioned write so two writers cannot both succeed. Without fencing
	// to do, the same write marks us active.
	term := seenTerm
	for _, m := range v.members {
		term = max(term, m.SeenTerm)
	}
	var (
		rec, next leaderRecord
		version   int32
		target    *leaderRecord
	)
	for attempt := 0; ; attempt++ {
		rec = leaderRecord{}
		st, err := s.getJSON(l.leaderNode(), &rec)
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			return electResult{}, fmt.Errorf("ha: read leader record: %w", err)
		}
		target = rec.fenceTarget()
		if target != nil && target.Name == e.cfg.Self.Name && target.Session == sessionHex(sid) {
			target = nil // ourselves, in this session: our own lease covered it
		}
		next = leaderRecord{Term: max(term, rec.Term) + 1, Name: e.cfg.Self.Name, Host: e.cfg.Self.Host,
			HTTP: e.cfg.Self.HTTP, Since: time.Now().UTC(), Session: sessionHex(sid),
			Active: target == nil || !fencing, Previous: target}
		if st == nil {
			err = s.createOnce(l.leaderNode(), mustJSON(next))
			version = 0
		} else {
			var nst *zk.Stat
			nst, err = s.conn.Set(l.leaderNode(), mustJSON(next), st.Version)
			if nst != nil {
				version = nst.Version
			}
		}
		if err == nil {
			break
		}
		if !(errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNodeExists)) || attempt >= 3 {
			return electResult{}, fmt.Errorf("ha: commit term: %w", err)
		}
	}
	v.leader = next
	res := electResult{leader: true, term: next.Term, view: v, record: next, version: version}
	if !next.Active {
		res.fence = target // the owner fences, then activates
		return res, nil
	}
	if res.ackSend, res.lost, err = e.prove(s, own, sid); err != nil {
		return electResult{}, err
	}
	return res, nil
}

// prove checks that our member node exists and belongs to session sid, and
// returns the send time of the request that showed it.
func (e *Elector) prove(s store, own memberNode, sid int64) (time.Time, bool, error) {
	send := e.now()
	ok, st, err := s.conn.Exists(e.layout.member(own.Name))
	if err != nil {
		return time.Time{}, false, fmt.Errorf("ha: verify member: %w", err)
	}
	if !ok || st.EphemeralOwner != sid || s.conn.SessionID() != sid {
		return time.Time{}, true, nil
	}
	return send, false, nil
}

// activate marks our committed record active (after fencing) and proves our
// node, so the duty may start.
func (e *Elector) activate(s store, own memberNode, sid int64, rec leaderRecord, version int32) (time.Time, bool, error) {
	rec.Active = true
	if _, err := s.conn.Set(e.layout.leaderNode(), mustJSON(rec), version); err != nil {
		if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNoNode) {
			return time.Time{}, true, nil // someone rewrote the record: stand again
		}
		return time.Time{}, false, fmt.Errorf("ha: mark leader active: %w", err)
	}
	return e.prove(s, own, sid)
}

// readView lists the members in sequence order with their data (reusing
// known data; member data is written once at create) and reads the leader
// record.
func readView(s store, l layout, known map[string]MemberInfo) (view, []memberNode, error) {
	children, _, err := s.conn.Children(l.membersDir())
	if err != nil {
		return view{}, nil, fmt.Errorf("ha: list members: %w", err)
	}
	sorted := sortMembers(children)
	v := view{infos: make(map[string]MemberInfo, len(sorted))}
	for i, m := range sorted {
		info, ok := known[m.Name]
		if !ok {
			if _, err := s.getJSON(l.member(m.Name), &info); err != nil && !errors.Is(err, zk.ErrNoNode) {
				return view{}, nil, fmt.Errorf("ha: read member: %w", err)
			}
		}
		v.infos[m.Name] = info
		v.members = append(v.members, Member{MemberInfo: info, Seq: m.Seq, Leader: i == 0})
	}
	if _, err := s.getJSON(l.leaderNode(), &v.leader); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return view{}, nil, fmt.Errorf("ha: read leader record: %w", err)
	}
	return v, sorted, nil
}

// renewResult is the outcome of one proof that our node still exists.
type renewResult struct {
	ackSend time.Time
	lost    bool  // the node is gone or belongs to another session
	view    *view // refreshed group view, when asked
}

// renew proves our member node exists and is owned by session sid. The send
// time is taken before the request, so the lease it grants is conservative.
func (e *Elector) renew(s store, own memberNode, sid int64, refresh bool, known map[string]MemberInfo) (renewResult, error) {
	send, lost, err := e.prove(s, own, sid)
	if err != nil {
		return renewResult{}, fmt.Errorf("ha: renew: %w", err)
	}
	if lost {
		return renewResult{lost: true}, nil
	}
	res := renewResult{ackSend: send}
	if refresh {
		if v, _, err := readView(s, e.layout, known); err == nil {
			res.view = &v
		}
	}
	return res, nil
}
