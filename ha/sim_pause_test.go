package ha

// Pause in the simulator: an operator pauses the group (the group record's
// "paused", as Election.Pause writes it) for a while, then resumes it, at any
// moment, under every other fault. The invariant, checked whenever
// ZooKeeper applies a write of the leader record: while the group record
// says paused, no member takes the lease over (a record naming another
// holder than before, or a record created anew); the holder re-claiming its
// own lapsed lease (rule A) is no takeover. Liveness after the heal is the
// usual bound: every pause ends before it.

import (
	"time"

	"github.com/hanode/hanode/ha/internal/core"
	"github.com/hanode/hanode/internal/simzk"
)

// pause sets the group record's pause for length, then clears it; the
// operator resumes once more when the faults heal, in case ZooKeeper was
// rolled back to a state that held the pause (which leaves a paused group
// without a leader: the operator's to end, as README says). Member n records
// each change in the history, as Election.Pause and Resume do
// (sim_history_test.go).
func (s *sim) pause(n *simNode, length time.Duration) {
	l := core.NewLayout(s.root, s.group)
	set := func(p *core.PauseInfo) {
		data, _, ok := s.zk.Get(l.GroupNode())
		if !ok {
			return
		}
		already := (core.GroupPaused(data) != nil) == (p != nil) // Election.setPause records nothing then
		if next, ok := core.GroupRecordPaused(data, p); ok {
			s.adversary(simzk.Op{Kind: simzk.SetData, Path: l.GroupNode(), Data: next, Version: -1})
			if !already && !s.zkDown {
				s.histPause(n, p)
			}
		}
	}
	set(&core.PauseInfo{By: "operator", At: simBase.Add(s.now), Reason: "simulated"})
	s.at(s.now+length, func() { set(nil) })
	if !s.resumePlanned {
		s.resumePlanned = true
		s.at(s.healAt, func() { set(nil) })
	}
}

// switchover asks for n to lead next, as Election.Switchover writes it
// (whatever n is: down, never-lead or the leader already; the request is
// then ignored, and lapses).
func (s *sim) switchover(n *simNode) {
	l := core.NewLayout(s.root, s.group)
	data, _, ok := s.zk.Get(l.GroupNode())
	if !ok {
		return
	}
	req := &core.SwitchoverInfo{To: n.name, By: "operator", At: simBase.Add(s.now)}
	if next, ok := core.GroupRecordSwitchover(data, req); ok {
		s.adversary(simzk.Op{Kind: simzk.SetData, Path: l.GroupNode(), Data: next, Version: -1})
	}
}

// takeoverCheck is what beforeTakeover saw of a write of the leader record.
type takeoverCheck struct {
	write   bool   // op writes the leader record
	newNode string // the holder it writes
	oldNode string // the holder the record named before ("" none)
	paused  bool   // the group record said paused
}

// beforeTakeover looks at a write of the leader record about to be applied
// for session sid: a takeover is a claim, by a member (a holder's
// activation or repair of a damaged record is none), of a record that named
// another holder or none.
func (s *sim) beforeTakeover(sid int64, op core.Op) takeoverCheck {
	if op.Kind != core.OpMulti {
		return takeoverCheck{}
	}
	claimant := false
	for _, n := range s.nodes {
		if n.sid == sid && n.core != nil && n.core.Member() {
			claimant = true
		}
	}
	if !claimant {
		return takeoverCheck{}
	}
	l := core.NewLayout(s.root, s.group)
	var tc takeoverCheck
	for _, o := range op.Ops {
		if (o.Kind == core.OpSet || o.Kind == core.OpCreate) && o.Path == l.LeaderNode() {
			rec, kind, _ := core.DecodeLeader(o.Data)
			if kind != core.RecOK || rec.State == core.RecReleased {
				return takeoverCheck{}
			}
			tc.write, tc.newNode = true, rec.HolderNode
		}
	}
	if !tc.write {
		return takeoverCheck{}
	}
	if data, _, ok := s.zk.Get(l.LeaderNode()); ok {
		if rec, kind, _ := core.DecodeLeader(data); kind == core.RecOK {
			tc.oldNode = rec.HolderNode
		}
	}
	if data, _, ok := s.zk.Get(l.GroupNode()); ok {
		tc.paused = core.GroupPaused(data) != nil
	}
	return tc
}

// afterTakeover checks a write of the leader record once applied.
func (s *sim) afterTakeover(tc takeoverCheck, r core.Result) {
	if !tc.write || r.Err != core.ErrNone || !tc.paused || tc.newNode == tc.oldNode {
		return
	}
	s.violate("a takeover while the group is paused: the record now names %s (before: %q)", tc.newNode, tc.oldNode)
}
