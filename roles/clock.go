package roles

import (
	"time"

	"golang.org/x/sys/unix"
)

// The lease deadline crosses from the coordinator to its duty guard as an
// absolute reading of CLOCK_MONOTONIC, which every process on the host shares
// and which neither the wall clock nor NTP moves. Go's own monotonic clock
// (the reading time.Now carries) is CLOCK_MONOTONIC on Linux, so both run at
// one rate; like it, CLOCK_MONOTONIC does not count time the host spends
// suspended, and the elector's lease does not either.

// monoNow reads CLOCK_MONOTONIC in nanoseconds.
func monoNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic("roles: clock_gettime(CLOCK_MONOTONIC): " + err.Error()) // cannot fail on Linux
	}
	return ts.Nano()
}

// monoOf converts t, which must come from time.Now (it carries Go's
// monotonic reading), to CLOCK_MONOTONIC nanoseconds. The clock is read
// before time.Now, so the result is never later than the exact one: a lease
// deadline converted this way ends early, never late.
func monoOf(t time.Time) int64 {
	m := monoNow()
	now := time.Now()
	return m + int64(t.Sub(now))
}

// monoUntil is how long until CLOCK_MONOTONIC reaches deadline (negative when
// it has passed).
func monoUntil(deadline int64) time.Duration {
	return time.Duration(deadline - monoNow())
}
