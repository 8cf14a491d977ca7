package ha

// The simulator's faults: what an operator, another client, the network, a
// process or ZooKeeper itself does to a group (sim_test.go runs them).

import (
	"fmt"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hanode/hanode/ha/internal/core"
	"github.com/hanode/hanode/internal/simzk"
)

func (s *sim) scheduleFaults() {
	kinds := s.cfg.kinds
	if kinds == nil {
		for k := faultKind(0); k < nFaultKinds; k++ {
			if k.replicatedOnly() && !s.cfg.replicated {
				continue
			}
			kinds = append(kinds, k)
		}
	}
	s.healAt = 0
	for i := 0; i < s.cfg.faults; i++ {
		at := s.dur(2*time.Second, s.cfg.faultEnd)
		k := kinds[s.rng.Intn(len(kinds))]
		n := s.nodes[s.rng.Intn(len(s.nodes))]
		length := s.dur(s.cfg.lease/10, 3*s.cfg.lease)
		s.healAt = max(s.healAt, at+length+time.Second)
		s.at(at, func() { s.inject(k, n, length) })
	}
}

// inject starts fault k (on n, for length where it lasts).
func (s *sim) inject(k faultKind, n *simNode, length time.Duration) {
	switch k {
	case fKill, fStop, fFreeze, fHostPause:
		if n.adv.pausedUntil > s.now {
			// Its host is paused: nothing runs there to kill or stop
			// until it resumes.
			s.at(n.adv.pausedUntil, func() { s.inject(k, n, length) })
			return
		}
	}
	s.tracef("FAULT %s on %s for %.3fs", k, n.name, length.Seconds())
	s.log = append(s.log, fmt.Sprintf("%.3fs %s %s %.3fs", s.now.Seconds(), k, n.name, length.Seconds()))
	l := core.NewLayout(s.root, s.group)
	switch k {
	case fPartition:
		n.partUntil = max(n.partUntil, s.now+length)
	case fSlow:
		n.slowUntil, n.slowBy = s.now+length, s.dur(20*time.Millisecond, s.cfg.lease/2)
	case fFreeze:
		if n.running && n.frozen <= s.now {
			n.frozen = s.now + length
			if s.cfg.guardNoProof {
				s.guardOnExit(n) // broken: its silence taken for its death
			}
		}
	case fKill:
		if n.running {
			s.tracef("%s: killed", n.name)
			n.exit(false)
		}
		s.start(n, length/2)
	case fStop:
		if n.running && n.core != nil {
			n.at(s.now, func() { n.step(core.EvShutdown{}) })
		}
		var giveUp func()
		giveUp = func() {
			if n.adv.pausedUntil > s.now { // nothing runs on a paused host
				s.at(n.adv.pausedUntil, giveUp)
				return
			}
			if n.running { // still leaving: the process gives up after its bound
				n.exit(true)
			}
			s.start(n, 0)
		}
		s.at(s.now+length/2, giveUp)
	case fDeleteMember:
		if names := s.members(l); len(names) > 0 {
			s.adversary(simzk.Op{Kind: simzk.Delete, Path: l.MemberNode(names[s.rng.Intn(len(names))]), Version: -1})
		}
	case fDeleteHolder:
		if data, _, ok := s.zk.Get(l.LeaderNode()); ok {
			if r, kind, _ := core.DecodeLeader(data); kind == core.RecOK {
				s.adversary(simzk.Op{Kind: simzk.Delete, Path: l.MemberNode(r.HolderNode), Version: -1})
			}
		}
	case fGarbageMember:
		if names := s.members(l); len(names) > 0 {
			s.adversary(simzk.Op{Kind: simzk.SetData, Path: l.MemberNode(names[s.rng.Intn(len(names))]), Data: s.garbage(), Version: -1})
		}
	case fGarbageRecord:
		s.adversary(simzk.Op{Kind: simzk.SetData, Path: l.LeaderNode(), Data: s.garbage(), Version: -1})
	case fDeleteRecord:
		s.adversary(simzk.Op{Kind: simzk.Delete, Path: l.LeaderNode(), Version: -1})
	case fGarbageGroup:
		s.adversary(simzk.Op{Kind: simzk.SetData, Path: l.GroupNode(), Data: s.garbage(), Version: -1})
	case fForeignNodes:
		low := "_c_" + strings.Repeat("0", 32) + "-m-0000000000"
		s.adversary(simzk.Op{Kind: simzk.Create, Path: l.MemberNode(low),
			Data: core.MustJSON(core.MemberData{MemberInfo: core.MemberInfo{Name: "forged", Role: "primary", Host: "x"}})})
		s.adversary(simzk.Op{Kind: simzk.Create, Path: l.MemberNode("_c_" + strings.Repeat("1", 32) + "-m--000000001"), Data: []byte("x")})
		s.adversary(simzk.Op{Kind: simzk.Create, Path: l.MemberNode("junk-"), Data: s.garbage(),
			Flags: zk.FlagEphemeral | zk.FlagSequence})
		s.adversary(simzk.Op{Kind: simzk.Create, Path: l.MemberNode("_c_" + strings.Repeat("2", 32) + "-m-"),
			Data: s.garbage(), Flags: zk.FlagEphemeral | zk.FlagSequence})
		s.histForeign()
	case fDeleteTree:
		evs, _ := s.zk.DeleteAll(s.advSession(), s.root, s.now)
		s.dispatch(evs)
		s.histForgot()
	case fDeleteMembers:
		evs, _ := s.zk.DeleteAll(s.advSession(), l.MembersDir(), s.now)
		s.dispatch(evs)
	case fDataLoss:
		s.serverOutage(length/4, func() { s.zk.Wipe(); s.snaps = nil; s.adv = 0 })
	case fRollback:
		if len(s.snaps) == 0 {
			return
		}
		snap := s.snaps[s.rng.Intn(len(s.snaps))]
		s.serverOutage(length/4, func() { s.zk.Restore(snap, s.now) })
	case fServerRestart:
		snap := s.zk.Snapshot()
		s.serverOutage(s.dur(100*time.Millisecond, time.Second), func() { s.zk.Restore(snap, s.now) })
	case fServerDown:
		snap := s.zk.Snapshot()
		s.serverOutage(length, func() { s.zk.Restore(snap, s.now) })
	case fHostPause:
		s.hostPause(n, length)
	case fResign:
		// An operator hands leadership over (a switchover): the holder,
		// if it is a running process, resigns.
		if h := s.holder(); h != nil && h.running && h.core != nil && h.adv.pausedUntil <= s.now {
			h.at(s.now, func() { h.step(core.EvResign{Reason: "switchover"}) })
		}
	case fUnhealthy:
		s.unhealthy(n, length)
	case fPause:
		s.pause(n, length)
	case fSwitchover:
		s.switchover(n)
	case fDutyLost:
		// The holder's duty dies and its guard gives up restarting it.
		if h := s.holder(); h != nil && h.duty && !h.dutyStopping && h.adv.pausedUntil <= s.now {
			h.duty = false
			s.checkHolderStop(h)
			s.tracef("%s: duty of term %d lost (the guard gave up)", h.name, h.dutyTerm)
			term := h.dutyTerm
			h.at(s.now, func() { h.step(core.EvDutyLost{Term: term, Reason: "duty exited 5 times"}) })
		}
	case fForgedLowMember:
		// A member node under a name that sorts below every member, with
		// valid member data, ephemeral in another client's session: the
		// holder sees a member below it and steps down; it never extends,
		// and rule D pushes it out.
		s.adversary(simzk.Op{Kind: simzk.Create, Path: l.MemberNode("_c_" + strings.Repeat("0", 32) + "-m-0000000000"),
			Data:  core.MustJSON(core.MemberData{MemberInfo: core.MemberInfo{Name: "forged", Role: "primary", Host: "x"}}),
			Flags: zk.FlagEphemeral})
	case fSensitiveLook, fValidRecord, fCopyMember, fRollbackAtClaim, fTakeoverRollback, fReleaseRollback:
		s.injectSensitive(k, n)
	case fLaggingFollower, fEnsembleElection, fSessionMove:
		if s.ens != nil {
			s.ens.inject(k, n, length)
		}
	case fMaxTerm:
		// An operator edits the record's term to one that cannot grow, and
		// a member node's seen_term too; later deletes the record (the fix
		// the refusal names).
		s.adversary(simzk.Op{Kind: simzk.SetData, Path: l.LeaderNode(), Version: -1,
			Data: []byte(`{"term": 9223372036854775800, "holder": "x", "state": "active"}`)})
		if names := s.members(l); len(names) > 0 {
			s.adversary(simzk.Op{Kind: simzk.SetData, Path: l.MemberNode(names[s.rng.Intn(len(names))]), Version: -1,
				Data: core.MustJSON(core.MemberData{MemberInfo: core.MemberInfo{Name: "x", Role: "primary", SeenTerm: 1<<62 + 5}})})
		}
		// The fix comes once every fault has ended (a rollback could bring
		// the record back before): the operator acts on a quiet cluster.
		if !s.fixPlanned {
			s.fixPlanned = true
			var fix func()
			fix = func() {
				if s.zkDown { // the operator tries again once ZooKeeper answers
					s.at(s.now+100*time.Millisecond, fix)
					return
				}
				if data, _, ok := s.zk.Get(l.LeaderNode()); ok {
					if r, _, _ := core.DecodeLeader(data); r.Term >= MaxTerm {
						s.adversary(simzk.Op{Kind: simzk.Delete, Path: l.LeaderNode(), Version: -1})
					}
				}
			}
			s.at(s.healAt-500*time.Millisecond, fix)
		}
	}
}

// serverOutage stops the server (every connection breaks), then runs
// restart and serves again after d.
func (s *sim) serverOutage(d time.Duration, restart func()) {
	if s.zkDown {
		return
	}
	s.zkDown = true
	s.serverGen++ // every connection dies with the server, whenever its client notices
	for _, n := range s.nodes {
		if n.running && n.connected {
			n.at(s.now+n.latency(), func() { n.breakConn("server down") })
		}
	}
	s.at(s.now+d, func() {
		restart()
		s.histForgot() // it may have lost data (sim_history_test.go)
		if s.ens != nil {
			s.ens.reset()
		}
		s.zkDown = false
		s.expiryAt = 0
		s.armExpiry()
		s.tracef("zk: serving again")
		wake := s.onServing
		s.onServing = nil
		for _, f := range wake {
			f() // who waited for the server (sim_guard_test.go)
		}
	})
}

func (s *sim) takeSnapshot() {
	if !s.zkDown {
		s.snaps = append(s.snaps, s.zk.Snapshot())
		if len(s.snaps) > 4 {
			s.snaps = s.snaps[1:]
		}
	}
	if s.now < s.healAt {
		s.at(s.now+s.dur(500*time.Millisecond, 3*time.Second), s.takeSnapshot)
	}
}

func (s *sim) advSession() int64 {
	if s.adv == 0 || !s.zk.Alive(s.adv) {
		s.adv, _ = s.zk.CreateSession(time.Minute, s.now)
	}
	return s.adv
}

// adversary runs op as another client at once.
func (s *sim) adversary(op simzk.Op) {
	if s.zkDown {
		return
	}
	res, evs := s.zk.Apply(s.advSession(), op, s.now)
	s.tracef("adversary %s %s: %v", op.Kind, op.Path, res.Err)
	s.dispatch(evs)
}

func (s *sim) members(l core.Layout) []string {
	var out []string
	prefix := l.MembersDir() + "/"
	for _, p := range s.zk.Paths() {
		if name, ok := strings.CutPrefix(p, prefix); ok {
			out = append(out, name)
		}
	}
	return out
}

func (s *sim) garbage() []byte {
	switch s.rng.Intn(4) {
	case 0:
		return []byte("not json")
	case 1:
		return nil
	case 2:
		return []byte(`{"term": 7, "holder": "`)
	}
	return []byte(`{"term":-3,"holder":"x","state":"active"}`)
}
