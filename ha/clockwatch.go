package ha

import (
	"time"

	"github.com/hanode/hanode/internal/clockwatch"
)

// clockWatch notices that the monotonic clock the core steps on stalled (the
// host was paused or suspended): the driver observes every instant it steps
// the core at and feeds EvClockStall first when the wall or boot clock ran
// ahead (internal/clockwatch). Not safe for concurrent use: the core's owner
// keeps it.
type clockWatch struct {
	w      clockwatch.Watch
	origin time.Time // the first mono observed: monotonic readings count from it
}

// newClockWatch returns a watch for a core with lease margin margin
// (clockwatch.Tolerance: M/8, at least 5 ms).
func newClockWatch(margin time.Duration) *clockWatch {
	return &clockWatch{w: clockwatch.Watch{Tolerance: clockwatch.Tolerance(margin)}}
}

// observe takes one instant: mono on the clock the core steps on (a
// time.Now reading, or the simulator's node clock), wall the wall clock then
// (time.Now().Round(0), or the simulator's real time), boot CLOCK_BOOTTIME
// then (0 when not read). It returns how much real time the monotonic clock
// missed since the last observation, 0 for none (or below the tolerance).
func (w *clockWatch) observe(mono, wall time.Time, boot time.Duration) (stall time.Duration) {
	if w.origin.IsZero() {
		w.origin = mono
	}
	return w.w.Observe(clockwatch.Reading{Mono: mono.Sub(w.origin), Wall: wall, Boot: boot})
}

// clockCheckEvery paces the driver's check of its clocks when no event
// comes: at most M/4, so a resume is noticed within a quarter of the margin,
// and at most 100 ms.
func clockCheckEvery(margin time.Duration) time.Duration {
	return max(min(margin/4, 100*time.Millisecond), time.Millisecond)
}
