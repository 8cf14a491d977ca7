package ha

import (
	"fmt"
	"time"

	"github.com/hanode/hanode/ha/internal/core"
	"github.com/hanode/hanode/internal/clockwatch"
)

// The real driver's side of "Clocks and host pauses" (doc.go): Election
// observes its clocks at every step and every clockCheckEvery, and feeds
// EvClockStall before anything else when the monotonic clock stalled.

// noticeStall observes now, the time.Now reading the core is about to be
// stepped at, and, when the monotonic clock stalled since the last
// observation, steps the core with EvClockStall at now and carries out its
// actions (the holder stops its duty). It reports whether it did; the
// caller publishes the snapshot.
func (e *Election) noticeStall(now time.Time) bool {
	r := clockwatch.At(now)
	by := e.clock.observe(now, r.Wall, r.Boot)
	e.clockLast.Store(&r)
	if by == 0 {
		return false
	}
	for _, a := range e.core.Step(now, core.EvClockStall{By: by}) {
		e.execute(a)
	}
	return true
}

// checkClock is the periodic check, between events: a resumed host is
// noticed within clockCheckEvery even if nothing else happens.
func (e *Election) checkClock() {
	if e.noticeStall(time.Now()) {
		e.publish()
	}
}

// stalledSince is how much the monotonic clock missed since Run last
// observed it, for readers on other goroutines (State): between a resume
// and Run's next check, an active snapshot is not believed. 0 when nothing
// was observed yet or no stall.
func (e *Election) stalledSince() time.Duration {
	last := e.clockLast.Load()
	if last == nil {
		return 0
	}
	return clockwatch.Stall(*last, clockwatch.Now(), e.clock.w.Tolerance)
}

// stallReason is what State says of an active node whose clock stalled.
func stallReason(by time.Duration) string {
	return fmt.Sprintf("monotonic clock stalled by %s (host paused?): lease treated as lost", by.Round(time.Millisecond))
}
