package core

// Giving the lease up: releasing (so the next member claims at once),
// leaving the group, shutting down.

import (
	"time"
)

// releaseReq is a release (or a plain leave) waiting for a write of our
// node in flight.
type releaseReq struct {
	stopped          dutyStopped
	leave, onlyLeave bool
	then             afterDone
}

// afterDone is what follows a release or a leave, as data (the core holds
// no closures, so its whole state prints and compares): forget a notice,
// then rejoin or finish the shutdown.
type afterDone struct {
	do     doneStep
	reason string // doRejoin: why (the phase's reason)
	forget string // the notice key to forget first, "" none
}

// doneStep is the step after a release or a leave.
type doneStep uint8

const (
	doNothing doneStep = iota
	doRejoin           // lose the membership and join again at the back
	doFinish           // the shutdown is complete
)

// afterStop is what follows the duty's stop (stepDown), as data.
type afterStop struct {
	write stopWrite
	leave bool      // writeRelease: delete our node in the same multi
	then  afterDone // once the release or the leave is answered
}

// stopWrite is the write that follows a stop.
type stopWrite uint8

const (
	writeNothing stopWrite = iota
	writeRelease           // release (rule B), or only leave without a proof
	writeLeave             // leave without a release (the record stays: fencing)
)

// runAfter carries out a, once its release or leave is done.
func (c *Core) runAfter(a afterDone) {
	if a.forget != "" {
		c.forget(a.forget)
	}
	switch a.do {
	case doRejoin:
		c.lose(a.reason)
	case doFinish:
		c.finishShutdown()
	}
}

// runAfterStop carries out a once the duty has stopped (st proves it).
func (c *Core) runAfterStop(a afterStop, st dutyStopped) {
	switch a.write {
	case writeRelease:
		c.release(st, a.leave, a.then)
	case writeLeave:
		c.leave(a.then)
	default:
		c.runAfter(a.then)
	}
}

// release writes, after the duty has stopped (st proves it), that we hold
// no more: the next member may claim at once (rule B). It is written only
// with a proof that nobody claimed since our last write (our node
// unchanged, in this epoch), and deletes our node when leave is set.
// Without the proof it only leaves (when asked), and the next leader waits
// W.
func (c *Core) release(st dutyStopped, leave bool, then afterDone) {
	if c.own.writes > 0 || c.hold.extBusy {
		// A write of our node is in flight: the release checks the version
		// it leaves, so it waits for its reply (advance).
		c.hold.releaseDue = &releaseReq{stopped: st, leave: leave, then: then}
		return
	}
	if _, ok := c.stoppedProof(); !ok {
		// Cannot happen: a proof is made only while no duty runs, and no
		// duty starts while a release waits (advance).
		c.bug("release asked for while a duty runs or stops")
		if leave {
			c.leave(then)
		} else {
			c.runAfter(then)
		}
		return
	}
	// We must have written the record in this membership: another
	// client's record naming a member that never held gives it nothing to
	// release, and a release would let the next member claim at once (rule
	// B) while the real holder acts.
	// A stop that could not be confirmed proves nothing: leave without a
	// release, so the successor waits out our lease (ha/doc.go, rule D).
	unsure := c.hold.stopUnsure
	c.hold.stopUnsure = false
	proof := c.sess.up && c.ownProof() && (c.rec.mineOK || c.cfg.Weaken.has(WeakRuleAAnyVersion)) &&
		c.rec.kind == RecOK && c.rec.r.HolderNode == c.own.node && c.rec.r.State == RecActive && !unsure
	if !proof {
		cover("release: leave only (no proof)")
		if leave {
			c.leave(then)
		} else {
			c.runAfter(then)
		}
		return
	}
	cover("release: written")
	rec := c.rec.r
	rec.Term = max(rec.Term, c.view.seenTerm)
	rec.State, rec.Previous, rec.Since, rec.Reason = RecReleased, nil, c.now.UTC(), c.hold.stopReason
	own := Op{Kind: OpCheck, Path: c.l.MemberNode(c.own.node), Version: c.own.ver}
	if leave {
		own.Kind = OpDelete
	}
	rc := Op{Kind: OpSet, Path: c.l.LeaderNode(), Data: MustJSON(rec), Version: -1}
	if c.rec.kind == RecAbsent {
		rc = Op{Kind: OpCreate, Path: c.l.LeaderNode(), Data: MustJSON(rec)}
	}
	c.request(pending{p: pRelease, then: then, leave: leave}, Op{Kind: OpMulti, Ops: []Op{own, rc}})
}

// leave deletes our member node (at the version we know, else any).
func (c *Core) leave(then afterDone) {
	if c.own.writes > 0 || c.hold.extBusy {
		c.hold.releaseDue = &releaseReq{onlyLeave: true, then: then}
		return
	}
	if c.role == roleOut || !c.sess.up {
		c.runAfter(then)
		return
	}
	v := int32(-1)
	if c.own.sure {
		v = c.own.ver
	}
	c.request(pending{p: pLeave, then: then}, Op{Kind: OpDelete, Path: c.l.MemberNode(c.own.node), Version: v})
}

func (c *Core) onLeaveReply(p pending, r Result) {
	if c.stale(p) {
		return
	}
	switch {
	case p.p == pRelease && r.Err != ErrNone && p.leave:
		c.own.sure = false
		c.leave(p.then) // delete our node anyway
		return
	case p.p == pRelease && r.Err == ErrNone:
		c.rec.ver = r.Multi[1].Stat.Version
		c.rec.mine, c.rec.mineOK = c.rec.ver, true
		c.rec.r.State = RecReleased
	}
	c.runAfter(p.then)
}

// advanceShutdown: stop the duty, release (or just leave), then finish.
func (c *Core) advanceShutdown() {
	if c.shutting {
		return
	}
	c.shutting = true
	finish := afterDone{do: doFinish}
	switch c.role {
	case roleHolder:
		if !c.hold.activated {
			// Never acted: leave the record as it is (fencing, naming
			// whom the next leader must fence) and just go.
			cover("stop: shutdown while fencing")
			c.stepDown("shutting down", afterStop{write: writeLeave, then: finish})
			return
		}
		cover("stop: shutdown")
		cover("release asked: shutdown of a holder")
		c.stepDown("shutting down", afterStop{write: writeRelease, leave: true, then: finish})
	case roleMember:
		// Releases only if the record still names us. A member's duty has
		// stopped: advance waits while it stops.
		if st, ok := c.stoppedProof(); ok {
			cover("release asked: shutdown of a member")
			c.release(st, true, finish)
		} else {
			c.leave(finish)
		}
	default:
		c.finishShutdown()
	}
}

// finishShutdown ends the election: the duty has stopped and the member
// left (or gave up leaving).
func (c *Core) finishShutdown() {
	c.done = true
	c.own.gen++
	c.setPhase(PhaseStopped, "shut down")
	c.emit(ActDone{})
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
