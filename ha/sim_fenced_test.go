package ha

// Term-fenced writes in the simulator: every running process, whenever its
// core says it leads, writes what a leader writes beyond the election (the
// cluster's polling cycle, a job's period record, a published state value)
// the way Election.Fenced does: the core's Fence checks first, then the
// write, in one multi through its own client, so it meets every fault the
// election meets. A writer may be frozen (or its host paused) between
// taking the checks and sending the write, and its write may sit in a slow
// or partitioned path: the adversary's favourite moment.
//
// Invariants, checked when ZooKeeper applies a write:
//   - a fenced write of term t by member node m lands only while the leader
//     record names m in term t: no write of a term after a later claim
//     (except a write fenced before ZooKeeper forgot and carried to a later
//     connection: another client may have brought both checked versions
//     back, doc.go's "Fenced writes" case not covered; counted, as the
//     history's, not checked);
//   - the cycle never repeats a number and never skips one while ZooKeeper
//     keeps its data (after a wipe or a rollback the writer's own memory
//     carries it on);
//   - a job's period is never recorded twice.

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hanode/hanode/ha/internal/core"
)

// fencedIDBase numbers the writers' requests apart from the cores'.
const fencedIDBase = uint64(1) << 62

// simWrite is what a fenced write stores.
type simWrite struct {
	Term int64  `json:"term"`
	Node string `json:"node"` // the writer's member node (name)
	N    int64  `json:"n"`    // cycle number or job period
	Mem  int64  `json:"mem"`  // the highest cycle the writer had seen
}

// simFenced is the simulator's record of the fenced writes applied.
type simFenced struct {
	next uint64
	// A history is a stretch in which ZooKeeper kept what it applied:
	// a write that finds less than the history's highest starts a new one.
	periods, cycles     map[int64]bool // applied in this history
	periodMax, cycleMax int64
	applied, refused    int
	notSent             int // their connection was replaced before the send
	carried             int // fenced before ZooKeeper forgot, landed after (not covered)
	// gen is the history of ZooKeeper's data each write was fenced in
	// (s.hist.gen, which grows each time ZooKeeper forgets).
	gen map[*core.Op]int
}

// writerState is one process's memory of what it wrote and saw.
type writerState struct {
	seenCycle int64
}

func (s *sim) cyclePath() string { return s.root + "/cycle" }
func (s *sim) jobPath() string   { return s.root + "/groups/" + s.group + "/jobs/report" }
func (s *sim) statePath() string { return s.root + "/groups/" + s.group + "/state/k" }

// armWriter schedules n's next attempt at a fenced write.
func (s *sim) armWriter(n *simNode) {
	inc := n.inc
	n.at(s.now+s.dur(s.cfg.lease/8, s.cfg.lease), func() {
		if n.inc != inc {
			return
		}
		s.fencedWrite(n)
		s.armWriter(n)
	})
}

// fencedWrite takes the core's checks and sends one fenced write, at once
// or after a pause of the process.
func (s *sim) fencedWrite(n *simNode) {
	if n.core == nil {
		return
	}
	fb := n.core.Fence(n.local(s.now))
	if fb.Checks == nil || fb.Wait {
		return
	}
	term, checks := fb.Term, fb.Checks
	own := n.core.OwnNode()
	own = own[strings.LastIndex(own, "/")+1:] // our member node's name
	var ops []core.Op
	switch s.rng.Intn(3) {
	case 0: // the cycle: compare-and-set from the value read
		data, st, ok := s.zk.Get(s.cyclePath())
		var stored simWrite
		if ok {
			_ = json.Unmarshal(data, &stored)
		}
		next := max(stored.N, n.writer.seenCycle) + 1
		w := core.MustJSON(simWrite{Term: term, Node: own, N: next, Mem: n.writer.seenCycle})
		n.writer.seenCycle = max(n.writer.seenCycle, stored.N) // what it read
		if ok {
			ops = append(ops, core.Op{Kind: core.OpSet, Path: s.cyclePath(), Data: w, Version: st.Version})
		} else {
			ops = append(ops, core.Op{Kind: core.OpCreate, Path: s.cyclePath(), Data: w})
		}
	case 1: // a job's next period, recorded before it runs
		data, st, ok := s.zk.Get(s.jobPath())
		var stored simWrite
		if ok {
			_ = json.Unmarshal(data, &stored)
		}
		w := core.MustJSON(simWrite{Term: term, Node: own, N: stored.N + 1})
		if ok {
			ops = append(ops, core.Op{Kind: core.OpSet, Path: s.jobPath(), Data: w, Version: st.Version})
		} else {
			ops = append(ops, s.parents(s.jobPath())...)
			ops = append(ops, core.Op{Kind: core.OpCreate, Path: s.jobPath(), Data: w})
		}
	default: // a state value
		w := core.MustJSON(simWrite{Term: term, Node: own})
		if _, _, ok := s.zk.Get(s.statePath()); ok {
			ops = append(ops, core.Op{Kind: core.OpSet, Path: s.statePath(), Data: w, Version: -1})
		} else {
			ops = append(ops, s.parents(s.statePath())...)
			ops = append(ops, core.Op{Kind: core.OpCreate, Path: s.statePath(), Data: w})
		}
	}
	op := core.Op{Kind: core.OpMulti, Ops: append(checks, ops...)}
	if s.fenced.gen == nil {
		s.fenced.gen = map[*core.Op]int{}
	}
	s.fenced.gen[&op.Ops[0]] = s.hist.gen
	s.fenced.next++
	id := fencedIDBase + s.fenced.next
	send := func() {
		// As Session.doIn: never on a later connection than the checks'.
		if n.epoch != fb.Epoch {
			s.fenced.notSent++
			return
		}
		n.send(id, op)
	}
	if s.rng.Intn(8) == 0 {
		// Frozen between the checks and the send.
		n.at(s.now+s.dur(0, 2*s.cfg.lease), send)
		return
	}
	send()
}

// parents creates the missing parents of path under the group.
func (s *sim) parents(path string) []core.Op {
	dir := path[:strings.LastIndex(path, "/")]
	if _, _, ok := s.zk.Get(dir); ok {
		return nil
	}
	return []core.Op{{Kind: core.OpCreate, Path: dir}}
}

// isFenced: op is a writer's fenced write.
func (s *sim) isFenced(op core.Op) bool {
	if op.Kind != core.OpMulti || len(op.Ops) == 0 {
		return false
	}
	last := op.Ops[len(op.Ops)-1].Path
	return last == s.cyclePath() || last == s.jobPath() || last == s.statePath()
}

// beforeFenced reads what a fenced write is about to replace.
func (s *sim) beforeFenced(op core.Op) (before []byte, existed bool) {
	if !s.isFenced(op) {
		return nil, false
	}
	b, _, ok := s.zk.Get(op.Ops[len(op.Ops)-1].Path)
	return b, ok
}

// afterFenced checks a fenced write once ZooKeeper answered it.
func (s *sim) afterFenced(op core.Op, before []byte, existed bool, res core.Result) {
	if !s.isFenced(op) {
		return
	}
	if res.Err != core.ErrNone {
		s.fenced.refused++
		return
	}
	s.fenced.applied++
	gen, known := s.fenced.gen[&op.Ops[0]]
	delete(s.fenced.gen, &op.Ops[0])
	last := op.Ops[len(op.Ops)-1]
	var w simWrite
	_ = json.Unmarshal(last.Data, &w)
	// The record as it stands when the write lands: the write's term and
	// member node, or a later claim was let through.
	l := core.NewLayout(s.root, s.group)
	data, _, ok := s.zk.Get(l.LeaderNode())
	rec, kind, _ := core.DecodeLeader(data)
	if (!ok || kind != core.RecOK || rec.Term != w.Term || rec.HolderNode != w.Node) && known && gen != s.hist.gen {
		s.fenced.carried++
		return
	}
	if !ok || kind != core.RecOK || rec.Term != w.Term || rec.HolderNode != w.Node {
		s.violate("a fenced write of term %d by %s landed (%s) while the leader record says term %d holder %s (%v)",
			w.Term, w.Node, last.Path, rec.Term, rec.HolderNode, ok)
		return
	}
	var prev simWrite
	if existed {
		_ = json.Unmarshal(before, &prev)
	}
	switch last.Path {
	case s.cyclePath():
		if prev.N < s.fenced.cycleMax || s.fenced.cycles == nil {
			s.fenced.cycles, s.fenced.cycleMax = map[int64]bool{}, 0 // ZooKeeper forgot: a new history
		}
		if s.fenced.cycles[w.N] {
			s.violate("cycle %d written twice (term %d, %s)", w.N, w.Term, w.Node)
		}
		if w.Mem <= prev.N && w.N != prev.N+1 {
			s.violate("cycle skipped: %d after %d", w.N, prev.N)
		}
		s.fenced.cycles[w.N], s.fenced.cycleMax = true, max(s.fenced.cycleMax, w.N)
	case s.jobPath():
		if !existed || prev.N < s.fenced.periodMax || s.fenced.periods == nil {
			s.fenced.periods, s.fenced.periodMax = map[int64]bool{}, 0
		}
		if s.fenced.periods[w.N] {
			s.violate("job period %d recorded twice (term %d, %s)", w.N, w.Term, w.Node)
		}
		s.fenced.periods[w.N], s.fenced.periodMax = true, max(s.fenced.periodMax, w.N)
	}
}

// summary is for the run's statistics.
func (f simFenced) summary() string {
	return fmt.Sprintf("fenced writes applied %d, refused %d, not sent (connection replaced) %d, fenced before ZooKeeper forgot and landed after it (not covered) %d",
		f.applied, f.refused, f.notSent, f.carried)
}
