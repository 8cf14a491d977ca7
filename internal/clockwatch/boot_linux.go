package clockwatch

import (
	"time"

	"golang.org/x/sys/unix"
)

// bootAround reads CLOCK_BOOTTIME at the instant of t, which must be a
// time.Now reading taken just before: the boot clock is read around a fresh
// monotonic reading (the two differ by the time suspended, a constant
// between suspends) and shifted to t, so a preemption between the calls does
// not look like a stall.
func bootAround(t time.Time) time.Duration {
	var best time.Duration
	bestGap := time.Duration(1<<63 - 1)
	for range 3 {
		b1, ok1 := boottime()
		m := time.Now()
		b2, ok2 := boottime()
		if !ok1 || !ok2 {
			return 0
		}
		if gap := b2 - b1; gap < bestGap {
			bestGap = gap
			best = b1 + gap/2 - m.Sub(t)
		}
		if bestGap < 100*time.Microsecond {
			break
		}
	}
	if best == 0 {
		best = 1 // 0 means not read
	}
	return best
}

func boottime() (time.Duration, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
