package roles

import (
	"fmt"
	"time"

	"github.com/hanode/hanode/internal/clockwatch"
)

// The guard holds the lease deadline on CLOCK_MONOTONIC, which a paused or
// suspended host may resume without having counted the pause: the deadline
// would then end that much later in real time than the coordinator's lease
// bound. So the guard watches its clocks as the elector does (ha's doc.go,
// "Clocks and host pauses"; internal/clockwatch) and, on a stall while it
// holds a lease, stops the duty at once, forgets the lease and answers
// "expired <term>" as when the lease runs out.

// guardClockEvery is how often the guard checks its clocks: a resumed host
// (its wall clock corrected) is noticed within this, whatever the lease.
const guardClockEvery = 50 * time.Millisecond

// guardStallTolerance is the least stall the guard acts on. The guard does
// not know the lease margin M; the elector tolerates M/8 (at least 5 ms), so
// for any margin of 160 ms or more the guard stops the duty on every stall
// the elector sees, and on some smaller ones (which cost a restart of the
// duty, not safety). 20 ms is far above the wall clock's slewing over one
// check period (500 ppm of 50 ms) and the skew between the readings.
const guardStallTolerance = 20 * time.Millisecond

// guardClock is the guard's detector; its readings come from now, which
// tests replace.
type guardClock struct {
	w   clockwatch.Watch
	now func() clockwatch.Reading
}

func newGuardClock(now func() clockwatch.Reading) *guardClock {
	if now == nil {
		now = clockwatch.Now
	}
	g := &guardClock{w: clockwatch.Watch{Tolerance: guardStallTolerance}, now: now}
	g.w.Observe(g.now())
	return g
}

// check reads the clocks and returns the stall since the last check, 0 for
// none.
func (g *guardClock) check() time.Duration { return g.w.Observe(g.now()) }

// stallReason is why the guard stopped the duty after a stall of by.
func stallReason(by time.Duration) string {
	return fmt.Sprintf("monotonic clock stalled by %s (host paused?): lease treated as lost (guard)", by.Round(time.Millisecond))
}

// guardClockSource, when set (tests), replaces clockwatch.Now for the
// guards started after.
var guardClockSource func() clockwatch.Reading
