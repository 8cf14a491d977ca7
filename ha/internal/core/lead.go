package core

// Holding the lease: the claim's outcome, extensions, the lease running
// out, stepping down, the duty.

import (
	"bytes"
	"fmt"
	"time"
)

// ownWritten records an acknowledged write of our node sent in request p:
// a proof (rule A, a release) only when it was sent and answered on the
// current connection. A write queued across a reconnect may have been
// applied after ZooKeeper rolled back past another member's claim: it
// proves nothing, not even by time.
func (c *Core) ownWritten(p pending) {
	c.own.epoch, c.own.sent, c.own.data = 0, time.Time{}, p.data
	if c.current(p.epoch) {
		c.own.epoch, c.own.sent = c.sess.epoch, p.sent
	}
}

// ownProof: nobody can have claimed since our last acknowledged write of our
// node, in any history of the tree: that write was sent and answered on the
// current connection, so the versions we check prove it (a server restored
// from an older state breaks every connection). There is no proof across
// epochs. Time once gave one ("acknowledged less than D ago: every other
// claim needs W after it"), but a rule-B claim needs no wait after a
// release, and a write queued across a reconnect can land after a rollback
// that erased a claim: a review found both. The cost: a holder whose lease
// lapsed while ZooKeeper was away waits W (rule C) once it is back.
func (c *Core) ownProof() bool {
	if !c.own.sure {
		return false
	}
	if c.current(c.own.epoch) {
		return true
	}
	if c.cfg.Weaken.has(WeakRuleAWindow) {
		return !c.own.sent.IsZero() && c.now.Sub(c.own.sent) < c.wait
	}
	return false
}

// holderData is our member node's data while we hold the lease.
func (c *Core) holderData(term, n int64) []byte {
	d := MemberData{MemberInfo: c.cfg.Self, LeaseTerm: term, LeaseN: n}
	d.SeenTerm = max(c.view.seenTerm, term)
	return MustJSON(d)
}

func (c *Core) onClaimReply(p pending, r Result) {
	c.hold.claimBusy = false
	c.own.writes--
	if c.hold.lookAfterClaim {
		c.hold.lookAfterClaim = false
		c.lookSoon()
	}
	if c.stale(p) || c.role != roleMember {
		c.own.changedInClaim = false
		return
	}
	if c.own.changedInClaim {
		c.own.changedInClaim = false
		if !c.claimFiredOwnWatch(p, r) {
			// Another client's write, or we cannot tell: look now,
			// reading our node, as the watch would have had us do.
			c.own.check = true
			c.wantLook()
		}
	}
	switch r.Err {
	case ErrNone:
	case ErrLost:
		c.own.sure, c.own.epoch, c.own.sent = false, 0, time.Time{} // it may have applied; the look reads our node
		c.wantLook()
		return
	case ErrNotSent, ErrOther:
		c.fail()
		return
	default:
		c.claimRefused(p, r)
		return
	}
	c.claimed(p, r)
}

// claimFiredOwnWatch: the change our own-node watch told while the claim
// was out was the claim's own write. ZooKeeper tells a watch before it
// answers the write that fired it, so this is the common case of every
// claim, and a look for it would cost every takeover a listing and three
// reads. It was ours when the claim landed, answered on the connection
// the watch was set on, and the claim's versioned write of our node
// expected the very version the watch's read found: then nothing wrote our
// node between that read and our claim (the version would have moved and
// the claim failed), so the first change after the watch was set, the one
// it tells, is the claim's. A write after the claim is not this watch's
// (it fires once); the holder learns of it from its next extension, which
// expects the version the claim left.
func (c *Core) claimFiredOwnWatch(p pending, r Result) bool {
	return r.Err == ErrNone && c.current(p.epoch) && c.own.changedAt >= 0 && c.own.changedAt == c.hold.claiming.ownVer
}

// claimRefused: a check of the claim failed; what failed says what to read
// again.
func (c *Core) claimRefused(p pending, r Result) {
	i, kind := FailedOp(r)
	last := len(r.Multi) - 1
	switch {
	case p.rule == ruleD && i == 0:
		// It changed or vanished meanwhile. Its watch tells which (a
		// deletion with no change first keeps predObs as a bound); rule
		// D waits for a new read.
		c.pred.failed = true
	case i == last || i < 0:
		// The leader record changed: read it again.
	case kind == ErrNoNode:
		c.lose("member node " + c.own.node + " is gone")
		return
	default:
		c.own.sure, c.own.epoch, c.own.sent = false, 0, time.Time{}
	}
	c.wantLook()
}

// claimed: the claim is committed. We hold the lease from its send time;
// we act once the fence, if one is needed, has succeeded.
func (c *Core) claimed(p pending, r Result) {
	ci := c.hold.claiming
	ownIdx := 0
	if p.rule == ruleD {
		ownIdx = 1
		delete(c.view.infos, c.pred.node)
		c.pred.node, c.pred.watch, c.pred.obs = "", 0, time.Time{}
	}
	c.role, c.hold.term = roleHolder, ci.rec.Term
	// A holder learns of another client's write of its node from its next
	// extension (a bad version); the standby's watch on it, which our own
	// claim just fired, would only cost a look.
	c.own.watch = 0
	c.view.seenTerm = max(c.view.seenTerm, c.hold.term)
	c.own.ver, c.own.sure = r.Multi[ownIdx].Stat.Version, true
	c.ownWritten(p)
	c.rec.r, c.rec.kind, c.rec.why = ci.rec, RecOK, ""
	c.rec.mine, c.rec.mineOK = 0, true
	if c.rec.ver >= 0 && len(r.Multi) > ownIdx+1 && r.Multi[ownIdx+1].Stat.Version > 0 {
		c.rec.mine = r.Multi[ownIdx+1].Stat.Version
	}
	c.rec.ver = c.rec.mine
	c.hold.leaseSend, c.hold.extN, c.hold.extLost = p.sent, 1, nil
	if !c.current(p.epoch) {
		c.hold.leaseSend = time.Time{} // no lease from it (ownWritten): the lease check steps down at once
	}
	c.hold.activated = !ci.fence
	c.view.position, c.view.candSince, c.view.vacated = 0, time.Time{}, time.Time{}
	c.succeeded()
	if c.pub.phase != PhaseWaiting {
		// The reply came after the phase moved on (a reconnect while the
		// claim was out): the claim holds; say so before acting on it.
		c.setPhase(PhaseWaiting, fmt.Sprintf("term %d claimed (%s)", c.hold.term, ci.rule))
	}
	if ci.fence {
		prev := FenceRequest{Term: c.hold.term, PreviousKnown: len(ci.cands) > 0, Candidates: ci.cands}
		if len(ci.cands) > 0 {
			prev.Previous = ci.cands[0]
		}
		c.hold.fence = fenceState{term: c.hold.term, req: prev}
		c.setPhase(PhaseFencing, fmt.Sprintf("term %d claimed (%s); fencing the previous leader", c.hold.term, ci.rule))
		c.startFence()
	}
}

// FailedOp finds the op of a failed multi that caused the failure.
func FailedOp(r Result) (int, ErrKind) {
	for i, m := range r.Multi {
		switch m.Err {
		case ErrNoNode, ErrBadVersion, ErrNodeExists, ErrNotEmpty:
			return i, m.Err
		}
	}
	return -1, r.Err
}

func (c *Core) advanceHolder() {
	if c.view.look.id == 0 && (c.view.lookDue || c.own.revalidate || c.lookSoonDue() || !c.now.Before(c.view.lastLook.Add(c.relistEvery()))) {
		c.startLook()
	}
	if c.own.revalidate {
		return // a look of this epoch first (newEpoch)
	}
	// One write of our node at a time (each checks the version the last
	// one left): activation, a record repair, or an extension.
	if !c.hold.extBusy && c.own.writes == 0 {
		switch {
		case !c.own.sure:
			c.extend() // resyncs our version first
		case c.hold.activateDue:
			c.activate()
		case c.hold.repair != nil:
			c.repairRecord(c.hold.repair.version)
		case !c.now.Before(c.hold.leaseSend.Add(c.every)):
			c.extend()
		}
	}
	if c.advanceHolderCandidacy() {
		return
	}
	if !c.hold.activated {
		if !c.hold.fence.busy && !c.hold.activateDue && !c.now.Before(c.hold.fence.retryAt) {
			c.startFence()
		}
		return
	}
	if c.hold.duty == dutyOff && c.now.Before(c.leaseEnd()) {
		c.hold.duty = dutyOn
		c.setPhase(PhaseActive, fmt.Sprintf("leading in term %d, claimed by %s", c.hold.term, c.hold.claiming.rule))
		t, _ := c.guardTicket()
		c.emit(ActStartDuty{Term: c.hold.term, LeaseEnd: c.leaseEnd(), Ticket: t})
	}
}

// checkLease ends acting once the lease has run out, whatever else is
// happening: nothing but a new acknowledged write extends it.
func (c *Core) checkLease() {
	if c.hold.duty == dutyStopping || c.now.Before(c.leaseEnd()) {
		return
	}
	reason := fmt.Sprintf("lease expired: no acknowledged extension for %s", c.cfg.Lease-c.cfg.Margin)
	if !c.sess.up {
		reason = "no ZooKeeper session; " + reason
	}
	cover("stop: lease expired")
	c.stepDown(reason, afterStop{})
}

// dutyStopped is the proof that this node's duty has stopped. Only
// stoppedProof makes one, and only while no duty runs or stops; release
// takes one, so a release written before the duty stopped cannot be
// expressed (ha/doc.go: a release is written after stop(X)).
type dutyStopped struct{}

// stoppedProof returns the proof that no duty of ours runs, ok false while
// one runs or is stopping.
func (c *Core) stoppedProof() (dutyStopped, bool) {
	if c.hold.duty != dutyOff && !c.cfg.Weaken.has(WeakReleaseBeforeStop) {
		return dutyStopped{}, false
	}
	return dutyStopped{}, true
}

// stepDown ends acting now (readers see it at once), asks the duty to stop,
// and turns the holder back into a member; then is carried out once the
// duty has stopped, with the proof of it. The leader record may still name
// us: rule A re-claims.
func (c *Core) stepDown(reason string, then afterStop) {
	c.hold.stopReason = reason
	c.cancelFence()
	c.hold.repair, c.hold.activateDue = nil, false
	c.hold.activated = false
	c.hold.leaseSend = time.Time{}
	if c.role == roleHolder {
		c.role = roleMember
	}
	c.setPhase(c.idlePhase(), reason)
	if c.hold.duty == dutyOn {
		c.hold.duty = dutyStopping
		c.emit(ActStopDuty{Reason: reason})
	}
	if then != (afterStop{}) {
		if st, ok := c.stoppedProof(); ok {
			c.runAfterStop(then, st)
		} else {
			c.hold.afterStop = &then
		}
	}
	c.wantLook()
}

func (c *Core) onDutyStopped(unconfirmed bool) {
	if c.hold.duty != dutyStopping {
		return
	}
	c.hold.duty = dutyOff
	if unconfirmed {
		c.hold.stopUnsure = true // the next release only leaves (release)
	}
	if a := c.hold.afterStop; a != nil {
		c.hold.afterStop = nil
		st, _ := c.stoppedProof()
		c.runAfterStop(*a, st)
	}
}

// onDutyLost: the duty died and its guard could not restart it in this
// term. Hand over: release and rejoin at the back, so another member leads.
func (c *Core) onDutyLost(reason string) {
	if c.role != roleHolder || c.hold.duty != dutyOn {
		return
	}
	c.hold.duty = dutyOff // it is gone already: its guard says so
	c.notice("duty-lost", Notice{Level: "error", Msg: "duty lost: " + reason + "; handing over"})
	cover("stop: duty lost")
	cover("release asked: duty lost")
	c.stepDown("duty lost: "+reason, afterStop{write: writeRelease, leave: true,
		then: afterDone{do: doRejoin, reason: "rejoining after handing over", forget: "duty-lost"}})
}

// onResign hands the lease over on request: the duty stops, the release
// lets the next member claim at once (rule B), and we rejoin at the back.
func (c *Core) onResign(reason string) {
	if c.role != roleHolder || c.leaving || c.hold.duty == dutyStopping {
		return
	}
	if reason == "" {
		reason = "asked to"
	}
	cover("stop: resigned")
	cover("release asked: resigned")
	c.stepDown("resigned: "+reason, afterStop{write: writeRelease, leave: true,
		then: afterDone{do: doRejoin, reason: "rejoining after resigning"}})
}

// extend writes our node at the version we know, checking that the leader
// record is as our last write of it left it: success proves that nobody
// deleted our node (rule D) and no claim happened, and extends the lease
// from the send time; a failed check tells us at once that another client
// wrote the record.
func (c *Core) extend() {
	c.hold.extBusy = true
	if !c.own.sure {
		c.request(pending{p: pResync}, Op{Kind: OpGet, Path: c.l.MemberNode(c.own.node)})
		return
	}
	c.writeOwn(pending{p: pExtend}, Op{Kind: OpCheck, Path: c.l.LeaderNode(), Version: c.rec.mine})
}

// writeOwn sends the one write of our node in flight (extBusy): our node
// at the version we last wrote, with its next extension count, and rec, an
// op on the leader record, in one multi. Extensions, activation and record
// repairs all go this way, so each proves we still hold.
func (c *Core) writeOwn(p pending, rec Op) {
	c.hold.extN++
	p.data = c.holderData(c.hold.term, c.hold.extN)
	c.own.writes++
	c.own.writeSeq++
	c.hold.extBusy = true
	c.request(p, Op{Kind: OpMulti, Ops: []Op{
		{Kind: OpSet, Path: c.l.MemberNode(c.own.node), Data: p.data, Version: c.own.ver}, rec}})
}

func (c *Core) onExtendReply(p pending, r Result) {
	if c.ownWriteDone(p, r) {
		c.own.sure = true
		c.succeeded()
	}
}

// ownWriteDone takes the reply to an extension or a repair, a multi that
// wrote our node (op 0) in the extension's place: it reports whether the
// write succeeded in the current membership, and then takes it as an
// extension.
func (c *Core) ownWriteDone(p pending, r Result) bool {
	c.hold.extBusy = false
	c.own.writes--
	if c.stale(p) {
		return false
	}
	if r.Err != ErrNone {
		c.ownWriteFailed(p, r)
		return false
	}
	c.own.ver = r.Multi[0].Stat.Version
	c.extended(p)
	return true
}

// extended takes an acknowledged write of our node, sent in p, as an
// extension of the lease (and tells the duty guard).
func (c *Core) extended(p pending) {
	c.ownWritten(p)
	if c.role == roleHolder && c.current(p.epoch) {
		c.hold.leaseSend = later(c.hold.leaseSend, p.sent)
		if c.hold.duty == dutyOn {
			t, _ := c.guardTicket()
			c.emit(ActExtendDuty{LeaseEnd: c.leaseEnd(), Ticket: t})
		}
	}
}

// ownWriteFailed handles a failed multi that wrote our node (op 0) and
// wrote or checked the leader record (op 1): lost or not sent, our node
// gone or written by another client, or the record changed under us.
func (c *Core) ownWriteFailed(p pending, r Result) {
	switch r.Err {
	case ErrLost:
		// Maybe applied: resync our node before the next write (its data
		// tells whether this one landed).
		c.own.sure, c.own.epoch, c.own.sent, c.hold.extLost = false, 0, time.Time{}, p.data
		return
	case ErrNotSent, ErrOther:
		// The lease runs out on its own clock; try again soon.
		c.pace.retryAt = c.now.Add(min(c.every/4, 250*time.Millisecond))
		return
	}
	switch i, kind := FailedOp(r); {
	case i == 0 && kind == ErrNoNode:
		c.lose("member node " + c.own.node + " deleted (by another client, or its session ended)")
	case i == 0:
		c.ownTampered()
	case c.role == roleHolder:
		// The record is not as our last write left it: read it and decide.
		c.hold.extBusy = true // nothing else until we know what it holds
		c.request(pending{p: pRecRead}, Op{Kind: OpGet, Path: c.l.LeaderNode()})
	}
}

// onResync reads our node after an extension whose outcome was lost.
func (c *Core) onResync(p pending, r Result) {
	c.hold.extBusy = false
	if c.stale(p) {
		return
	}
	switch r.Err {
	case ErrNone:
		if c.hold.extLost != nil && bytes.Equal(r.Data, c.hold.extLost) || c.hold.extLost == nil && r.Stat.Version == c.own.ver {
			c.own.ver, c.own.sure, c.hold.extLost, c.own.data = r.Stat.Version, true, nil, r.Data // our write, or none
			return
		}
		if r.Stat.Version == c.own.ver {
			c.own.sure, c.hold.extLost = true, nil // the lost write did not apply
			return
		}
		c.ownTampered()
	case ErrNoNode:
		c.lose("member node " + c.own.node + " deleted (by another client, or its session ended)")
	default:
		c.fail()
	}
}

// ownTampered: another client wrote our node. Nothing we proved holds any
// more: stop, delete the node, rejoin (the next leader waits W).
func (c *Core) ownTampered() {
	z := c.l.MemberNode(c.own.node)
	c.notice("own-changed", Notice{Level: "warn", Znode: z,
		Msg: fmt.Sprintf("member node %s was written by another client; stepping down and rejoining", z)})
	c.own.sure, c.own.epoch, c.own.sent = false, 0, time.Time{}
	if c.role == roleHolder {
		cover("stop: own node written by another client")
		c.stepDown("member node written by another client", afterStop{})
	}
	c.leave(afterDone{do: doRejoin, reason: "rejoining: member node written by another client", forget: "own-changed"})
}
