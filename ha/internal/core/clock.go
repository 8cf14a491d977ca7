package core

// A stalled monotonic clock (ha/doc.go, "Clocks and host pauses").

import (
	"fmt"
	"time"
)

// onClockStall: our monotonic clock missed by of real time (EvClockStall).
// Everything the core proves from time rests on that clock, in two kinds:
//
//   - Lower bounds ("W has passed since o": rules C and D, the sweeps, the
//     standby's waits). A clock that counted less than real time only makes
//     them wait longer in real time; they stand.
//   - Upper bounds ("less than D has passed since s": the holder's lease).
//     A clock that missed a pause makes them claim more than holds: they
//     are dropped.
//
// So a holder steps down at once, as if its lease had run out; the send
// times of every request still out (an extension or claim sent before the
// pause and acknowledged after it would date a lease from before the
// pause) are forgotten: those requests are given up as lost now, as on a
// timeout. By is taken as a lower bound only (the wall clock may be
// corrected in steps after a resume, each seen as a stall of its own), so
// nothing is shifted by it: what rests on an upper bound is dropped
// whatever its size. Rule A (our last write acknowledged on this connection)
// rests on versions, not time, and stands.
func (c *Core) onClockStall(by time.Duration) {
	if c.cfg.Weaken.has(WeakIgnoreClockStall) {
		return
	}
	what := fmt.Sprintf("monotonic clock stalled by %s (host paused?)", by.Round(time.Millisecond))
	c.own.sent = time.Time{}
	for id, p := range c.req.pend {
		p.sent = time.Time{} // expireRequests gives it up as lost in this step
		c.req.pend[id] = p
	}
	if c.role == roleHolder {
		cover("stop: clock stalled")
		c.emit(ActNotice{N: Notice{Level: "warn", Msg: what + "; stepping down: the lease may have ended in real time"}})
		c.stepDown(what+": lease treated as lost", afterStop{})
		return
	}
	c.emit(ActNotice{N: Notice{Level: "warn", Msg: what + "; proofs resting on elapsed time dropped"}})
}
