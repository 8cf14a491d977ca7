package ha

// The simulator's adversary beyond random faults (the two-active sequences a review found): each side of
// doc.go's inequality checked on its own, clock rates at the extremes of
// the drift allowance and changing during a run, duties that take their
// whole stop allowance, and faults placed at the protocol's sensitive
// points (after a listing, at an extension, at a release, at a claim)
// rather than at random times.

import (
	"path"
	"strings"
	"time"

	"github.com/hanode/hanode/ha/internal/core"
	"github.com/hanode/hanode/internal/simzk"
)

// simAdv is what the adversary knows and plans about one node.
type simAdv struct {
	// leaseSent is the real send time of the write the node's core last
	// took as its lease (a claim, an extension, an activation, a repair):
	// s_X of doc.go, for the claim side. Zero when it holds no lease:
	// never claimed, or released since.
	leaseSent time.Duration
	leaseTerm int64     // the term of that lease, for reports
	coreLease time.Time // the core's leaseSend last seen
	// ackLocal is the node's clock at the send of its last write of its
	// own node that the server acknowledged to it, for the holder side:
	// counted from the replies, not from what the core made of them.
	ackSent     time.Duration
	ackLocal    time.Time
	releaseSent time.Duration // send time of its last applied release: earlier writes are before it
	sends       map[time.Time]time.Duration

	stopAt   time.Time // local: when the duty stop under way completes
	stopDone func()

	clock       *clockWatch   // the driver's detector of a stalled clock
	kill        bool          // the next duty stop is a kill: immediate
	wallAhead   time.Duration // how far its wall clock is ahead of its monotonic one (the pauses it missed)
	serverGen   int           // the server generation its connection was made to
	pausedUntil time.Duration // host paused (process, guard and clock) until

	// Armed triggers.
	stallAfterListing  bool // stall the path when the next listing arrives
	isolateAtExtension bool // partition (and delete its node) at the next acknowledged extension
	isolateKeep        bool // the isolation leaves its node alone
}

// noteSend remembers the real time of a request sent at local time l.
func (a *simAdv) noteSend(l time.Time, real time.Duration) {
	if a.sends == nil {
		a.sends = map[time.Time]time.Duration{}
	}
	a.sends[l] = real
	if len(a.sends) > 256 {
		for k, v := range a.sends {
			if real-v > time.Minute {
				delete(a.sends, k)
			}
		}
	}
}

// noteLease follows the lease n's core holds, after every step.
func (s *sim) noteLease(n *simNode) {
	if n.core == nil {
		return
	}
	sent, term := n.core.LeaseFrom()
	if sent.IsZero() || !sent.After(n.adv.coreLease) {
		return
	}
	n.adv.coreLease = sent
	real, ok := n.adv.sends[sent]
	if !ok {
		s.violate("%s: lease from %v, a time no request was sent at", n.name, sent)
		return
	}
	if real > n.adv.releaseSent && real > n.adv.leaseSent {
		n.adv.leaseSent, n.adv.leaseTerm = real, term
	}
}

// bound is the real time before which no other node may start a duty
// after a lease whose last acknowledged write was sent at sent: s + D/(1−ρ).
func (s *sim) bound(sent time.Duration) time.Duration {
	return sent + time.Duration(float64(s.cfg.lease)/(1-core.DriftAllowance))
}

// --- each side of the inequality ---------------------------------------------

// checkClaimant is the right-hand side: a duty starting now must start
// after every other node's lease bound, unless that node released (its
// release, written after its duty stopped, cleared the lease).
func (s *sim) checkClaimant(n *simNode, term int64) {
	for _, m := range s.nodes {
		if m == n || m.adv.leaseSent == 0 {
			continue
		}
		if b := s.bound(m.adv.leaseSent); s.now < b {
			s.violate("claim side: %s starts term %d at %.3fs, before %s's lease bound %.3fs (term %d, last write sent %.3fs)",
				n.name, term, s.now.Seconds(), m.name, b.Seconds(), m.adv.leaseTerm, m.adv.leaseSent.Seconds())
		}
	}
}

// checkHolderStop is the left-hand side: a duty stops before s + D on its
// own node's clock, whatever the core's margin says.
func (s *sim) checkHolderStop(n *simNode) {
	if n.adv.ackSent == 0 {
		return
	}
	end := n.adv.ackLocal.Add(s.cfg.lease)
	if now := n.local(s.now); now.After(end) {
		s.violate("holder side: %s's duty of term %d stopped %s after s + D on its own clock", n.name, n.dutyTerm, now.Sub(end))
	}
}

// onAck sees every reply delivered to a core (before the core does): an
// acknowledged write of the node's own member node extends its lease from
// its send time; an acknowledged release ends it.
func (s *sim) onAck(n *simNode, f *flight, res core.Result) {
	if res.Err != core.ErrNone || f.op.Kind != core.OpMulti || n.core == nil {
		return
	}
	own := n.core.OwnNode()
	wroteOwn, released := false, false
	for _, o := range f.op.Ops {
		if o.Kind == core.OpSet && o.Path == own {
			wroteOwn = true
		}
		if o.Kind == core.OpSet || o.Kind == core.OpCreate {
			if rec, kind, _ := core.DecodeLeader(o.Data); kind == core.RecOK && strings.HasSuffix(o.Path, "/leader") && rec.State == core.RecReleased {
				released = true
			}
		}
	}
	switch {
	case released:
		// Its lease ended when the release was applied (afterApply).
	case wroteOwn:
		if f.sent >= n.adv.ackSent {
			n.adv.ackSent, n.adv.ackLocal = f.sent, f.sentLocal
		}
		if n.adv.isolateAtExtension && n.core.Holder() {
			n.adv.isolateAtExtension = false
			s.isolate(n, !n.adv.isolateKeep)
		}
	}
}

// onListing fires when a members listing reaches n's client.
func (s *sim) onListing(n *simNode) {
	if !n.adv.stallAfterListing {
		return
	}
	n.adv.stallAfterListing = false
	if !s.adversaryMayAct() {
		return
	}
	stall := s.dur(s.cfg.lease/20, s.cfg.lease*6/10) // the session survives (2D/3)
	s.tracef("ADVERSARY %s: path stalled for %.3fs after a listing", n.name, stall.Seconds())
	n.partUntil = max(n.partUntil, s.now+stall)
	if h := s.holder(); h != nil && h != n {
		h.adv.isolateAtExtension = true
	}
}

// adversaryMayAct: a triggered fault still ends before the faults heal.
func (s *sim) adversaryMayAct() bool { return s.now+3*s.cfg.lease+time.Second < s.healAt }

// isolate cuts the holder n off and has another client delete its node a
// little later: the holder's last extension is the one just acknowledged.
func (s *sim) isolate(n *simNode, deleteNode bool) {
	if !s.adversaryMayAct() {
		return
	}
	cut := s.dur(s.cfg.lease, 3*s.cfg.lease)
	s.tracef("ADVERSARY %s: isolated for %.3fs right after an extension", n.name, cut.Seconds())
	n.partUntil = max(n.partUntil, s.now+cut)
	if !deleteNode {
		return
	}
	name := path.Base(n.core.OwnNode())
	l := core.NewLayout(s.root, s.group)
	s.at(s.now+s.dur(0, s.cfg.lease/2), func() {
		s.adversary(simzk.Op{Kind: simzk.Delete, Path: l.MemberNode(name), Version: -1})
	})
}

// advPlan is what the adversary armed for the protocol's next steps.
type advPlan struct {
	deleteAfterRelease bool // delete the node of whoever releases next
	// rollbackAtClaim: take a snapshot just before the next claim (by a
	// node other than heal) is applied, unless one is armed already, and
	// restore it right after: the claim and all after it are forgotten;
	// heal's partition ends at the rollback.
	rollbackAtClaim bool
	heal            *simNode
	snap            *simzk.Snapshot
	// releaseTrap: at the next release, snapshot, cut the releaser off,
	// delete its node, and roll back right after the next claim.
	releaseTrap bool
}

// isClaim: op, sent by n's core as a member, writes the leader record.
func isClaim(n *simNode, op core.Op) bool {
	if n.core == nil || !n.core.Member() || op.Kind != core.OpMulti {
		return false
	}
	for _, o := range op.Ops {
		if (o.Kind == core.OpSet || o.Kind == core.OpCreate) && strings.HasSuffix(o.Path, "/leader") {
			rec, kind, _ := core.DecodeLeader(o.Data)
			return kind == core.RecOK && rec.State != core.RecReleased
		}
	}
	return false
}

// beforeApply sees every request of a node's client just before the
// server applies it.
func (s *sim) beforeApply(n *simNode, f *flight) {
	p := &s.plan
	if p.rollbackAtClaim && p.snap == nil && n != p.heal && isClaim(n, f.op) {
		p.snap = s.zk.Snapshot()
	}
}

// afterApply sees every request of a node's client the server applied.
func (s *sim) afterApply(n *simNode, f *flight, res core.Result) {
	op := f.op
	if res.Err != core.ErrNone || op.Kind != core.OpMulti {
		return
	}
	s.histLanded(n, f)
	p := &s.plan
	if p.rollbackAtClaim && p.snap != nil && n != p.heal && isClaim(n, op) {
		snap, heal := p.snap, p.heal
		s.plan = advPlan{}
		if s.adversaryMayAct() {
			at := s.now + s.dur(time.Millisecond, 20*time.Millisecond)
			s.tracef("ADVERSARY: %s's claim applied; ZooKeeper rolls back to just before it at %.3fs", n.name, at.Seconds())
			if heal != nil {
				heal.partUntil = at
			}
			collide := s.rng.Intn(2) == 0
			s.at(at, func() {
				s.serverOutage(s.dur(5*time.Millisecond, 40*time.Millisecond), func() {
					s.zk.Restore(snap, s.now)
					if collide {
						s.collide(n)
					}
				})
			})
		}
		return
	}
	l := core.NewLayout(s.root, s.group)
	for _, o := range op.Ops {
		if o.Kind != core.OpSet || !strings.HasSuffix(o.Path, "/leader") {
			continue
		}
		rec, kind, _ := core.DecodeLeader(o.Data)
		if kind != core.RecOK || rec.State != core.RecReleased {
			continue
		}
		// doc.go: a release is written after the duty stopped; it ends the
		// lease (the next member may claim at once).
		if n.duty {
			s.violate("%s: release of term %d applied while its duty still runs", n.name, n.dutyTerm)
		}
		n.adv.leaseSent, n.adv.releaseSent = 0, f.sent
		switch {
		case p.releaseTrap && s.adversaryMayAct():
			// The releaser is cut off before it hears of anything else;
			// its node goes, the next member claims on the release, and
			// ZooKeeper rolls back to the release.
			s.plan = advPlan{rollbackAtClaim: true, heal: n, snap: s.zk.Snapshot()}
			n.partUntil = max(n.partUntil, s.now+3*s.cfg.lease)
			s.tracef("ADVERSARY %s: cut off at its release; its node is deleted", n.name)
			s.adversary(simzk.Op{Kind: simzk.Delete, Path: l.MemberNode(rec.HolderNode), Version: -1})
		case p.deleteAfterRelease:
			// A release that left the node in place (a hand-over to
			// ourselves): another client deletes it at once, so the next
			// member may take the release (rule B).
			p.deleteAfterRelease = false
			s.adversary(simzk.Op{Kind: simzk.Delete, Path: l.MemberNode(rec.HolderNode), Version: -1})
		}
	}
}

// --- clocks --------------------------------------------------------------------

// setRate changes n's clock rate from now on, keeping its reading
// continuous, and re-arms what waits on its clock (timers follow the
// monotonic clock, not real time).
func (n *simNode) setRate(rate float64) {
	t := n.s.now
	n.offset += time.Duration(float64(t)*n.rate) - time.Duration(float64(t)*rate)
	n.rate = rate
	if n.core != nil {
		n.armTick()
	}
	if n.duty {
		n.armGuard()
		if n.dutyStopping {
			n.armStop(n.dutyGen)
		}
	}
}

// adversarialClocks gives every node a rate at one extreme of the drift
// allowance and flips some of them during the run.
func (s *sim) adversarialClocks() {
	extreme := func() float64 {
		if s.rng.Intn(2) == 0 {
			return 1 - DriftAllowance
		}
		return 1 + DriftAllowance
	}
	for _, n := range s.nodes {
		n.setRate(extreme())
		n := n
		var flip func()
		flip = func() {
			n.setRate(2 - n.rate) // the other extreme
			if s.now < s.cfg.faultEnd {
				s.at(s.now+s.dur(s.cfg.lease/2, 4*s.cfg.lease), flip)
			}
		}
		s.at(s.dur(s.cfg.lease, 4*s.cfg.lease), flip)
	}
}

// --- faults at sensitive points ------------------------------------------------

// injectSensitive starts one of the sensitive-point faults.
func (s *sim) injectSensitive(k faultKind, n *simNode) {
	l := core.NewLayout(s.root, s.group)
	switch k {
	case fSensitiveLook:
		// The first hole the review found: a member's listing, then its path
		// stalls while the holder extends (onListing), is cut off and its
		// node deleted (onAck).
		if h := s.holder(); h == n {
			n = s.nodes[(n.idx+1)%len(s.nodes)]
		}
		n.adv.stallAfterListing = true
	case fValidRecord:
		// Another client writes a valid record: a higher term (the holder
		// hands over to itself) or a lower one; half the time it also
		// deletes the node of whoever releases next (the second hole).
		s.rewriteRecord(func(rec *core.LeaderRecord) {
			if s.rng.Intn(3) == 0 {
				rec.Term = max(rec.Term-1-s.rng.Int63n(1000), 1)
			} else {
				rec.Term += 1 + s.rng.Int63n(1000)
			}
			if order := core.SortMembers(s.members(l)); len(order) > 1 && s.rng.Intn(2) == 0 {
				// Name the member next in line, and delete the holder's
				// node a little later: that member becomes the lowest with
				// a record naming it, while the holder's lease runs.
				old := rec.HolderNode
				rec.HolderNode = order[1].Node
				s.at(s.now+s.dur(0, s.cfg.lease/4), func() {
					s.adversary(simzk.Op{Kind: simzk.Delete, Path: l.MemberNode(old), Version: -1})
				})
			}
			s.plan.deleteAfterRelease = s.rng.Intn(2) == 0
		})
	case fCopyMember:
		// A member node's valid data copied over another member's node.
		names := s.members(l)
		if len(names) < 2 {
			return
		}
		from, to := names[s.rng.Intn(len(names))], names[s.rng.Intn(len(names))]
		if data, _, ok := s.zk.Get(l.MemberNode(from)); ok && from != to {
			s.adversary(simzk.Op{Kind: simzk.SetData, Path: l.MemberNode(to), Data: data, Version: -1})
		}
	case fRollbackAtClaim:
		// ZooKeeper forgets the next claim right after it was applied.
		s.plan.rollbackAtClaim = true
	case fTakeoverRollback:
		// The holder is cut off right after an extension (its node left
		// alone); the next member takes over (rule D), ZooKeeper forgets
		// that claim at once, and the old holder is back: it must not
		// re-claim by rule A (its lease is not provably its own any more).
		h := s.holder()
		if h == nil {
			return
		}
		h.adv.isolateAtExtension, h.adv.isolateKeep = true, true
		s.plan.rollbackAtClaim, s.plan.heal = true, h
	case fReleaseRollback:
		// A valid record with a higher term: the holder hands over to
		// itself (a release that keeps its node); at that release the
		// trap closes (afterApply).
		s.rewriteRecord(func(rec *core.LeaderRecord) {
			rec.Term += 1 + s.rng.Int63n(1000)
			s.plan.releaseTrap = true
		})
	}
}

// hostPause pauses n's whole host for length: coordinator, guard and duty
// stop, and its monotonic clock stops too (a VM paused by its hypervisor).
// At the resume the clock reads what it read at the pause; the wall clock
// has moved on. The guard notices the stall at once (it checks every 50 ms
// in hanode) and stops the duty; the coordinator notices at its next step.
func (s *sim) hostPause(n *simNode, length time.Duration) {
	if !n.running || n.frozen > s.now || n.adv.pausedUntil > s.now {
		return
	}
	n.frozen, n.adv.pausedUntil = s.now+length, s.now+length
	inc, stopped := n.inc, n.local(s.now)
	s.at(s.now+length, func() {
		if n.inc != inc || !n.running {
			return
		}
		missed := n.local(s.now).Sub(stopped) // what it would have counted (its rate may have flipped)
		n.offset -= missed                    // the clock reads what it read at the pause
		n.adv.wallAhead += missed             // NTP corrects the wall clock
		s.tracef("%s: host resumed after %.3fs; its clock missed it", n.name, length.Seconds())
		if n.duty {
			// The guard kills it at once (roles: Supervisor.Kill): its
			// lease may have ended in real time during the pause.
			s.tracef("%s: duty guard: clock stalled; killing the duty", n.name)
			n.adv.kill = true
			if n.dutyStopping {
				n.adv.stopAt = n.local(s.now)
			} else {
				s.dutyStop(n, false)
			}
		}
		n.setRate(n.rate) // re-arm what waits on its clock
		n.step(core.EvTick{})
	})
}

// collide has another client write, after a rollback, n's member node and
// the leader record (their restored data again) until their versions are
// the ones n's core expects: versions alone then say nothing was lost. A
// real ZooKeeper restored from a snapshot starts a new zxid epoch, so only
// versions (not zxids) can collide like this.
func (s *sim) collide(n *simNode) {
	c := n.core
	if c == nil {
		return
	}
	ownVer, recVer := c.Written()
	for _, w := range []struct {
		path string
		ver  int32
	}{{c.OwnNode(), ownVer}, {core.NewLayout(s.root, s.group).LeaderNode(), recVer}} {
		for i := 0; i < 8; i++ {
			data, st, ok := s.zk.Get(w.path)
			if !ok || st.Version >= w.ver {
				break
			}
			res, _ := s.zk.Apply(s.advSession(), simzk.Op{Kind: simzk.SetData, Path: w.path, Data: data, Version: -1}, s.now)
			if res.Err != nil {
				break
			}
		}
	}
	s.tracef("ADVERSARY: versions of %s's node and the record brought back to what it expects", n.name)
}

// rewriteRecord has another client rewrite a valid leader record with edit
// applied (nothing when there is no valid record, or its term is near the
// maximum). The record it writes says active: a record saying a member
// released that the member did not write is a forged release, which rule B
// cannot tell from a real one (doc.go, "What is assumed").
func (s *sim) rewriteRecord(edit func(*core.LeaderRecord)) {
	l := core.NewLayout(s.root, s.group)
	data, _, ok := s.zk.Get(l.LeaderNode())
	if !ok {
		return
	}
	rec, kind, _ := core.DecodeLeader(data)
	if kind != core.RecOK || rec.Term >= MaxTerm-2000 {
		return
	}
	edit(&rec)
	rec.State, rec.Previous, rec.Candidates = core.RecActive, nil, nil
	s.adversary(simzk.Op{Kind: simzk.SetData, Path: l.LeaderNode(), Data: core.MustJSON(rec), Version: -1})
}

// holder is the node whose core holds the lease, if any.
func (s *sim) holder() *simNode {
	for _, n := range s.nodes {
		if n.core != nil && n.core.Holder() {
			return n
		}
	}
	return nil
}
