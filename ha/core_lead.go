package ha

import (
	"bytes"
	"fmt"
	"time"
)

// Holding the lease: the claim's outcome, extensions, fencing, the duty,
// stepping down, releasing and leaving.

// LeaderInfo identifies one leadership of a group.
type LeaderInfo struct {
	Name  string    `json:"name"`
	Host  string    `json:"host"`
	HTTP  string    `json:"http,omitempty"`
	Term  int64     `json:"term"`
	Since time.Time `json:"since"`
}

// FenceRequest asks to fence the previous leader before this node's term
// starts.
type FenceRequest struct {
	// Term is the term this node will lead in.
	Term int64
	// Previous is the last leader that may have run its duty, when known.
	Previous LeaderInfo
	// PreviousKnown is false when the leader record was missing or
	// unreadable: a previous leader may have acted, but nobody knows which.
	PreviousKnown bool
}

type fenceState struct {
	busy    bool
	term    int64
	req     FenceRequest
	retryAt time.Time
	backoff time.Duration
}

// ownWritten records an acknowledged write of our node sent in request p.
func (c *Core) ownWritten(p pending) {
	c.ownEpoch, c.ownSent = 0, p.sent
	if p.epoch == c.epoch {
		c.ownEpoch = c.epoch
	}
}

// ownProof: nobody can have claimed since our last acknowledged write of our
// node, in any history of the tree. Within the epoch of that write the
// versions we check prove it (a server restored from an older state breaks
// every connection). Across epochs, time does: every claim by another
// member needs W of silence after our last write (rule D) or our node gone
// after it (rules B and C wait W more), so less than D on our clock since
// that write (less than W of real time, doc.go) leaves no room for one.
func (c *Core) ownProof() bool {
	if !c.ownSure {
		return false
	}
	if c.ownEpoch != 0 && c.ownEpoch == c.epoch {
		return true
	}
	return !c.ownSent.IsZero() && c.now.Sub(c.ownSent) < c.cfg.Lease
}

// holderData is our member node's data while we hold the lease.
func (c *Core) holderData(term, n int64) []byte {
	d := memberData{MemberInfo: c.cfg.Self, LeaseTerm: term, LeaseN: n}
	d.SeenTerm = max(c.seenTerm, term)
	return mustJSON(d)
}

func (c *Core) onClaimReply(p pending, r Result) {
	c.claimBusy = false
	c.ownWrites--
	if c.stale(p) || c.role != roleMember {
		return
	}
	switch r.Err {
	case ErrNone:
	case ErrLost:
		c.ownSure, c.ownEpoch, c.ownSent = false, 0, time.Time{} // it may have applied; the look reads our node
		c.wantLook()
		return
	case ErrNotSent, ErrOther:
		c.fail()
		return
	default:
		i, kind := failedOp(r)
		last := len(r.Multi) - 1
		switch {
		case p.rule == ruleSilent && i == 0:
			// It changed or vanished meanwhile. Its watch tells which (a
			// deletion with no change first keeps predObs as a bound); rule
			// D waits for a new read.
			c.predFailed = true
		case i == last || i < 0:
			// The leader record changed: read it again.
		case kind == ErrNoNode:
			c.lose("member node " + c.own.Name + " is gone")
			return
		default:
			c.ownSure, c.ownEpoch, c.ownSent = false, 0, time.Time{}
		}
		c.wantLook()
		return
	}
	ci := c.claiming
	ownIdx := 0
	if p.rule == ruleSilent {
		ownIdx = 1
		delete(c.infos, c.pred)
		c.pred, c.predWatch, c.predObs = "", 0, time.Time{}
	}
	c.role, c.term = roleHolder, ci.rec.Term
	c.seenTerm = max(c.seenTerm, c.term)
	c.ownVer, c.ownSure = r.Multi[ownIdx].Stat.Version, true
	c.ownWritten(p)
	c.rec, c.recKind, c.recWhy = ci.rec, recOK, ""
	c.recMine = 0
	if c.recVer >= 0 && len(r.Multi) > ownIdx+1 && r.Multi[ownIdx+1].Stat.Version > 0 {
		c.recMine = r.Multi[ownIdx+1].Stat.Version
	}
	c.recVer = c.recMine
	c.leaseSend, c.extN, c.extLost = p.sent, 1, nil
	c.activated = !ci.fence
	c.position, c.candSince, c.vacated = 0, time.Time{}, time.Time{}
	c.succeeded()
	if c.phase != PhaseWaiting {
		// The reply came after the phase moved on (a reconnect while the
		// claim was out): the claim holds; say so before acting on it.
		c.setPhase(PhaseWaiting, fmt.Sprintf("term %d claimed (%s)", c.term, ci.rule))
	}
	if ci.fence {
		prev := FenceRequest{Term: c.term, PreviousKnown: ci.prevKnown}
		if ci.rec.Previous != nil {
			prev.Previous = *ci.rec.Previous
		}
		c.fence = fenceState{term: c.term, req: prev}
		c.setPhase(PhaseFencing, fmt.Sprintf("term %d claimed (%s); fencing the previous leader", c.term, ci.rule))
		c.startFence()
	}
}

// failedOp finds the op of a failed multi that caused the failure.
func failedOp(r Result) (int, ErrKind) {
	for i, m := range r.Multi {
		switch m.Err {
		case ErrNoNode, ErrBadVersion, ErrNodeExists, ErrNotEmpty:
			return i, m.Err
		}
	}
	return -1, r.Err
}

func (c *Core) advanceHolder() {
	if c.look.id == 0 && (c.lookDue || !c.now.Before(c.lastLook.Add(c.relistEvery()))) {
		c.startLook()
	}
	// One write of our node at a time (each checks the version the last
	// one left): activation, a record repair, or an extension.
	if !c.extBusy && c.ownWrites == 0 {
		switch {
		case !c.ownSure:
			c.extend() // resyncs our version first
		case c.activateDue:
			c.activate()
		case c.repair != nil:
			c.repairRecord(c.repair.version)
		case !c.now.Before(c.leaseSend.Add(c.every)):
			c.extend()
		}
	}
	if !c.activated {
		if !c.fence.busy && !c.activateDue && !c.now.Before(c.fence.retryAt) {
			c.startFence()
		}
		return
	}
	if c.duty == dutyOff && c.now.Before(c.leaseEnd()) {
		c.duty = dutyOn
		c.setPhase(PhaseActive, fmt.Sprintf("leading in term %d (claimed: %s)", c.term, c.claiming.rule))
		c.emit(ActStartDuty{Term: c.term, LeaseEnd: c.leaseEnd()})
	}
}

// checkLease ends acting once the lease has run out, whatever else is
// happening: nothing but a new acknowledged write extends it.
func (c *Core) checkLease() {
	if c.duty == dutyStopping || c.now.Before(c.leaseEnd()) {
		return
	}
	reason := fmt.Sprintf("lease expired: no acknowledged extension for %s", c.cfg.Lease-c.cfg.Margin)
	if !c.up {
		reason = "no ZooKeeper session; " + reason
	}
	c.stepDown(reason, nil)
}

// stepDown ends acting now (readers see it at once), asks the duty to stop,
// and turns the holder back into a member; then runs once the duty has
// stopped. The leader record may still name us: rule A re-claims.
func (c *Core) stepDown(reason string, then func()) {
	c.cancelFence()
	c.repair, c.activateDue = nil, false
	c.activated = false
	c.leaseSend = time.Time{}
	if c.role == roleHolder {
		c.role = roleMember
	}
	c.setPhase(c.idlePhase(), reason)
	c.afterStop = then
	if c.duty == dutyOn {
		c.duty = dutyStopping
		c.emit(ActStopDuty{Reason: reason})
	} else if then != nil {
		c.afterStop = nil
		then()
	}
	c.wantLook()
}

func (c *Core) onDutyStopped() {
	if c.duty != dutyStopping {
		return
	}
	c.duty = dutyOff
	if f := c.afterStop; f != nil {
		c.afterStop = nil
		f()
	}
}

// onDutyLost: the duty died and its guard could not restart it in this
// term. Hand over: release and rejoin at the back, so another member leads.
func (c *Core) onDutyLost(reason string) {
	if c.role != roleHolder || c.duty != dutyOn {
		return
	}
	c.duty = dutyOff // it is gone already
	c.notice("duty-lost", Notice{Level: "error", Msg: "duty lost: " + reason + "; handing over"})
	c.stepDown("duty lost: "+reason, nil)
	c.release(true, func() {
		c.forget("duty-lost")
		c.lose("rejoining after handing over")
	})
}

// extend writes our node at the version we know, checking that the leader
// record is as our last write of it left it: success proves that nobody
// deleted our node (rule D) and no claim happened, and extends the lease
// from the send time; a failed check tells us at once that another client
// wrote the record.
func (c *Core) extend() {
	c.extBusy = true
	if !c.ownSure {
		c.request(pending{p: pResync}, Op{Kind: OpGet, Path: c.l.member(c.own.Name)})
		return
	}
	c.extN++
	data := c.holderData(c.term, c.extN)
	c.ownWrites++
	c.ownWriteSeq++
	c.request(pending{p: pExtend, data: data}, Op{Kind: OpMulti, Ops: []Op{
		{Kind: OpSet, Path: c.l.member(c.own.Name), Data: data, Version: c.ownVer},
		{Kind: OpCheck, Path: c.l.leaderNode(), Version: c.recMine}}})
}

func (c *Core) onExtendReply(p pending, r Result) {
	c.extBusy = false
	c.ownWrites--
	if c.stale(p) {
		return
	}
	switch r.Err {
	case ErrNone:
		c.ownVer, c.ownSure = r.Multi[0].Stat.Version, true
		c.ownWritten(p)
		if c.role == roleHolder {
			c.leaseSend = later(c.leaseSend, p.sent)
			if c.duty == dutyOn {
				c.emit(ActExtendDuty{LeaseEnd: c.leaseEnd()})
			}
		}
		c.succeeded()
		return
	case ErrLost:
		c.ownSure, c.ownEpoch, c.ownSent, c.extLost = false, 0, time.Time{}, p.data
		return
	case ErrNotSent, ErrOther:
		// The lease runs out on its own clock; try again soon.
		c.retryAt = c.now.Add(min(c.every/4, 250*time.Millisecond))
		return
	}
	switch i, kind := failedOp(r); {
	case i == 0 && kind == ErrNoNode:
		c.lose("member node " + c.own.Name + " deleted (by another client, or its session ended)")
	case i == 0:
		c.ownTampered()
	case c.role == roleHolder && kind == ErrNoNode:
		z := c.l.leaderNode()
		c.notice("rec-gone", Notice{Level: "warn", Znode: z, Msg: fmt.Sprintf("leader record %s was deleted; rewriting it", z)})
		c.repair = &repairReq{version: -1}
	case c.role == roleHolder:
		c.extBusy = true // nothing else until we know what the record holds
		c.request(pending{p: pRecRead}, Op{Kind: OpGet, Path: c.l.leaderNode()})
	}
}

// onResync reads our node after an extension whose outcome was lost.
func (c *Core) onResync(p pending, r Result) {
	c.extBusy = false
	if c.stale(p) {
		return
	}
	switch r.Err {
	case ErrNone:
		if c.extLost != nil && bytes.Equal(r.Data, c.extLost) || c.extLost == nil && r.Stat.Version == c.ownVer {
			c.ownVer, c.ownSure, c.extLost = r.Stat.Version, true, nil // our write, or none
			return
		}
		if r.Stat.Version == c.ownVer {
			c.ownSure, c.extLost = true, nil // the lost write did not apply
			return
		}
		c.ownTampered()
	case ErrNoNode:
		c.lose("member node " + c.own.Name + " deleted (by another client, or its session ended)")
	default:
		c.fail()
	}
}

// ownTampered: another client wrote our node. Nothing we proved holds any
// more: stop, delete the node, rejoin (the next leader waits W).
func (c *Core) ownTampered() {
	z := c.l.member(c.own.Name)
	c.notice("own-changed", Notice{Level: "warn", Znode: z,
		Msg: fmt.Sprintf("member node %s was written by another client; stepping down and rejoining", z)})
	c.ownSure, c.ownEpoch, c.ownSent = false, 0, time.Time{}
	if c.role == roleHolder {
		c.stepDown("member node written by another client", nil)
	}
	c.leave(func() {
		c.forget("own-changed")
		c.lose("rejoining: member node written by another client")
	})
}

// onRecRead decides what to do with a leader record another client wrote
// (an extension's check of it failed).
func (c *Core) onRecRead(p pending, r Result) {
	c.extBusy = false
	if c.stale(p) || c.role != roleHolder {
		return
	}
	z := c.l.leaderNode()
	switch r.Err {
	case ErrNone:
	case ErrNoNode:
		c.notice("rec-gone", Notice{Level: "warn", Znode: z, Msg: fmt.Sprintf("leader record %s was deleted; rewriting it", z)})
		c.repair = &repairReq{version: -1}
		return
	default:
		c.fail()
		return
	}
	rec, kind, why := decodeLeader(r.Data)
	if kind == recOK && rec.Holder == c.own.Name && rec.Term == c.term {
		// Ours after all: a write of ours whose reply we lost applied.
		c.recMine, c.rec = r.Stat.Version, rec
		if rec.State == recActive && !c.activated && c.activateDue {
			c.activated, c.activateDue = true, false
			c.fence = fenceState{}
		}
		return
	}
	if rec.Term >= MaxTerm {
		// A term that cannot grow: neither follow nor overwrite it. Stop,
		// and leave the record for the operator (setRecord says how).
		c.setRecord(r)
		c.stepDown("leader record overwritten with a term that cannot grow", nil)
		return
	}
	if kind == recOK && rec.Term > c.term {
		// Someone recorded a higher term: ours must not look older than it.
		// Hand over to ourselves: stop, release above that term, re-claim.
		c.notice("rec-foreign", Notice{Level: "warn", Znode: z, Msg: fmt.Sprintf(
			"leader record %s was overwritten by another client with term %d (ours %d); stepping down to lead above it", z, rec.Term, c.term)})
		c.seenTerm = max(c.seenTerm, rec.Term)
		c.recVer = r.Stat.Version
		c.stepDown("leader record overwritten with a higher term", nil)
		c.release(false, func() { c.forget("rec-foreign") })
		return
	}
	if kind != recOK {
		why = "not a leader record: " + why
	} else {
		why = fmt.Sprintf("names %s in term %d", rec.Name, rec.Term)
	}
	c.notice("rec-foreign", Notice{Level: "warn", Znode: z, Msg: fmt.Sprintf(
		"leader record %s was overwritten by another client (%s); rewriting it", z, why)})
	c.repair = &repairReq{version: r.Stat.Version}
}

// releaseReq is a release (or a plain leave) waiting for a write of our
// node in flight.
type releaseReq struct {
	leave, onlyLeave bool
	then             func()
}

// repairReq is a rewrite of the leader record the holder owes: it goes out
// as the next extension (one write of our node at a time).
type repairReq struct{ version int32 } // -1: create it

// repairRecord rewrites the leader record with our claim (version -1:
// create it), together with an extension, which proves we still hold. It
// takes the extension's place: never two writes of our node at once.
func (c *Core) repairRecord(version int32) {
	c.repair = nil
	c.extN++
	data := c.holderData(c.term, c.extN)
	rec := c.rec
	if rec.Holder != c.own.Name {
		rec = leaderRecord{Term: c.term, Holder: c.own.Name, Name: c.cfg.Self.Name, Host: c.cfg.Self.Host,
			HTTP: c.cfg.Self.HTTP, Session: sessionHex(c.sid), Since: c.now.UTC(), State: recActive}
	}
	if !c.activated {
		rec.State = recFencing
	}
	rc := Op{Kind: OpSet, Path: c.l.leaderNode(), Data: mustJSON(rec), Version: version}
	if version < 0 {
		rc = Op{Kind: OpCreate, Path: c.l.leaderNode(), Data: mustJSON(rec)}
	}
	c.ownWrites++
	c.ownWriteSeq++
	c.extBusy = true
	c.request(pending{p: pRepair, data: data}, Op{Kind: OpMulti, Ops: []Op{
		{Kind: OpSet, Path: c.l.member(c.own.Name), Data: data, Version: c.ownVer}, rc}})
}

func (c *Core) onRepairReply(p pending, r Result) {
	c.ownWrites--
	c.extBusy = false // the repair held the extension's place
	if c.stale(p) {
		return
	}
	switch r.Err {
	case ErrNone:
		c.ownVer = r.Multi[0].Stat.Version
		c.ownWritten(p)
		c.recMine = r.Multi[1].Stat.Version
		if c.role == roleHolder {
			c.leaseSend = later(c.leaseSend, p.sent)
			if c.duty == dutyOn {
				c.emit(ActExtendDuty{LeaseEnd: c.leaseEnd()})
			}
		}
		c.forget("rec-gone")
		c.forget("rec-foreign")
	case ErrLost:
		c.ownSure, c.ownEpoch, c.extLost = false, 0, p.data
	case ErrNotSent, ErrOther:
		c.fail()
	default:
		if i, kind := failedOp(r); i == 0 && kind == ErrNoNode {
			c.lose("member node " + c.own.Name + " is gone")
		} else if i == 0 {
			c.ownTampered()
		}
		// else the record changed again: the re-armed watch reads it
	}
}

func (c *Core) startFence() {
	c.fence.busy = true
	c.emit(ActFence{Req: c.fence.req})
}

func (c *Core) cancelFence() {
	if c.fence.busy {
		c.emit(ActCancelFence{})
	}
	c.fence = fenceState{}
}

func (c *Core) onFenced(ev EvFenced) {
	if !c.fence.busy || ev.Term != c.fence.term || c.role != roleHolder || c.activated {
		return
	}
	c.fence.busy = false
	if ev.Err != nil {
		c.fence.backoff = min(max(2*c.fence.backoff, 500*time.Millisecond), 10*time.Second)
		c.fence.retryAt = c.now.Add(c.fence.backoff)
		c.setPhase(c.idlePhase(), fmt.Sprintf("fencing failed (%v); retrying in %s", ev.Err, c.fence.backoff))
		return
	}
	// Mark the record active before acting, so a later leader fences us:
	// as the next write of our node (advanceHolder).
	c.activateDue = true
}

// activate writes the record active (and extends, proving we still hold).
func (c *Core) activate() {
	c.extN++
	data := c.holderData(c.term, c.extN)
	rec := c.rec
	rec.State, rec.Previous = recActive, nil
	c.ownWrites++
	c.ownWriteSeq++
	c.extBusy = true
	c.request(pending{p: pActivate, data: data, term: c.term}, Op{Kind: OpMulti, Ops: []Op{
		{Kind: OpSet, Path: c.l.member(c.own.Name), Data: data, Version: c.ownVer},
		{Kind: OpSet, Path: c.l.leaderNode(), Data: mustJSON(rec), Version: c.recMine}}})
}

func (c *Core) onActivateReply(p pending, r Result) {
	c.ownWrites--
	c.extBusy = false
	if c.stale(p) || c.role != roleHolder || p.term != c.term || c.activated {
		return
	}
	switch r.Err {
	case ErrNone:
		c.ownVer, c.recMine = r.Multi[0].Stat.Version, r.Multi[1].Stat.Version
		c.ownWritten(p)
		c.leaseSend = later(c.leaseSend, p.sent)
		c.rec.State, c.rec.Previous = recActive, nil
		c.activated, c.activateDue = true, false
		c.fence = fenceState{}
		return
	case ErrLost:
		// Maybe applied: resync our node, then read the record (its
		// check fails if it did) before writing it again.
		c.ownSure, c.ownEpoch, c.ownSent, c.extLost = false, 0, time.Time{}, p.data
		return
	case ErrNotSent, ErrOther:
		c.retryAt = c.now.Add(min(c.every/4, 250*time.Millisecond))
		return
	}
	switch i, kind := failedOp(r); {
	case i == 0 && kind == ErrNoNode:
		c.lose("member node " + c.own.Name + " is gone")
	case i == 0:
		c.ownTampered()
	default:
		c.extBusy = true
		c.request(pending{p: pRecRead}, Op{Kind: OpGet, Path: c.l.leaderNode()})
	}
}

// release writes, after the duty has stopped, that we hold no more: the
// next member may claim at once (rule B). It is written only with a proof
// that nobody claimed since our last write (our node unchanged, in this
// epoch), and deletes our node when leave is set. Without the proof it only
// leaves (when asked), and the next leader waits W.
func (c *Core) release(leave bool, then func()) {
	if c.ownWrites > 0 || c.extBusy {
		// A write of our node is in flight: the release checks the version
		// it leaves, so it waits for its reply (advance).
		c.releaseDue = &releaseReq{leave: leave, then: then}
		return
	}
	proof := c.up && c.ownProof() && c.recKind == recOK && c.rec.Holder == c.own.Name && c.rec.State == recActive
	if !proof {
		if leave {
			c.leave(then)
		} else if then != nil {
			then()
		}
		return
	}
	rec := c.rec
	rec.Term = max(rec.Term, c.seenTerm)
	rec.State, rec.Previous, rec.Since = recReleased, nil, c.now.UTC()
	own := Op{Kind: OpCheck, Path: c.l.member(c.own.Name), Version: c.ownVer}
	if leave {
		own.Kind = OpDelete
	}
	rc := Op{Kind: OpSet, Path: c.l.leaderNode(), Data: mustJSON(rec), Version: -1}
	if c.recKind == recAbsent {
		rc = Op{Kind: OpCreate, Path: c.l.leaderNode(), Data: mustJSON(rec)}
	}
	c.request(pending{p: pRelease, then: then, leave: leave}, Op{Kind: OpMulti, Ops: []Op{own, rc}})
}

// leave deletes our member node (at the version we know, else any).
func (c *Core) leave(then func()) {
	if c.ownWrites > 0 || c.extBusy {
		c.releaseDue = &releaseReq{onlyLeave: true, then: then}
		return
	}
	if c.role == roleOut || !c.up {
		if then != nil {
			then()
		}
		return
	}
	v := int32(-1)
	if c.ownSure {
		v = c.ownVer
	}
	c.request(pending{p: pLeave, then: then}, Op{Kind: OpDelete, Path: c.l.member(c.own.Name), Version: v})
}

func (c *Core) onLeaveReply(p pending, r Result) {
	if p.p == pRelease {
	}
	if c.stale(p) {
		return
	}
	switch {
	case p.p == pRelease && r.Err != ErrNone && p.leave:
		c.ownSure = false
		c.leave(p.then) // delete our node anyway
		return
	case p.p == pRelease && r.Err == ErrNone:
		c.recVer = r.Multi[1].Stat.Version
		c.rec.State = recReleased
	}
	if p.then != nil {
		p.then()
	}
}

// advanceShutdown: stop the duty, release (or just leave), then finish.
func (c *Core) advanceShutdown() {
	if c.shutting {
		return
	}
	c.shutting = true
	finish := func() {
		c.done = true
		c.gen++
		c.setPhase(PhaseStopped, "shut down")
		c.emit(ActDone{})
	}
	switch c.role {
	case roleHolder:
		if !c.activated {
			// Never acted: leave the record as it is (fencing, naming
			// whom the next leader must fence) and just go.
			c.stepDown("shutting down", func() { c.leave(finish) })
			return
		}
		c.stepDown("shutting down", func() { c.release(true, finish) })
	case roleMember:
		c.release(true, finish) // releases only if the record still names us
	default:
		finish()
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
