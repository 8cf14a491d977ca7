// Package clockwatch detects a stalled monotonic clock: a host paused by its
// hypervisor (live migration, snapshot, overload) or suspended may resume
// with CLOCK_MONOTONIC not having counted the pause, so a lease held on that
// clock looks longer than it is in real time. The wall clock (corrected after
// a resume by the hypervisor's clock source, a guest agent or NTP) and
// CLOCK_BOOTTIME (which counts suspend) do count it; a Watch compares their
// advance between two readings with the monotonic clock's.
//
// Both the elector (ha) and the duty guard (roles) use it; the detector is
// pure (Watch.Observe takes readings), so the simulator can drive it too.
package clockwatch

import "time"

// Drift is the rate by which the wall clock may run ahead of the monotonic
// one without a stall (NTP slews CLOCK_REALTIME by at most 500 ppm; the
// elector's clocks are assumed within ha.DriftAllowance, 1%, of real time).
const Drift = 0.01

// MinTolerance is the least tolerance: above the skew between the readings
// of one Reading (clock_gettime calls a few microseconds apart, a
// preemption between them) and the wall clock's slewing over one check
// period.
const MinTolerance = 5 * time.Millisecond

// Tolerance is the stall a holder with lease margin M lets pass unnoticed:
// M/8, at least MinTolerance. An unnoticed stall of up to this much makes the
// holder act that much longer in real time than its lease says; the margin
// must absorb it on top of the time the duty takes to stop (hanode's default
// ACTIVE_STOP_TIMEOUT, 2/3 of M, leaves M/3). Smaller would report the
// wall clock's ordinary slewing and scheduling noise as stalls, and each
// report costs a step-down.
func Tolerance(margin time.Duration) time.Duration {
	return max(margin/8, MinTolerance)
}

// Reading is one reading of the host's clocks, taken together.
type Reading struct {
	// Mono is the monotonic clock (Go's, which is CLOCK_MONOTONIC on
	// Linux), from any fixed origin.
	Mono time.Duration
	// Wall is the wall clock (CLOCK_REALTIME); zero when not read.
	Wall time.Time
	// Boot is CLOCK_BOOTTIME, which counts time suspended; 0 when not read
	// (not Linux).
	Boot time.Duration
}

// Stall is how much more than the monotonic clock the wall clock or the
// boot clock advanced from prev to cur, when that is more than tol plus
// Drift of the monotonic advance; 0 otherwise. Only forward jumps count: a
// wall clock stepped back (NTP correcting a fast clock) stalls nothing. A
// wall clock stepped forward is indistinguishable from a stall and counts as
// one: the cost is one needless step-down, the alternative two actives.
func Stall(prev, cur Reading, tol time.Duration) time.Duration {
	dm := cur.Mono - prev.Mono
	if dm < 0 {
		// The monotonic clock went back: impossible on a sound host, and the
		// holder's lease would look longer by that much; count it.
		return max(-dm, tol+1)
	}
	limit := tol + time.Duration(float64(dm)*Drift)
	var by time.Duration
	if !prev.Wall.IsZero() && !cur.Wall.IsZero() {
		by = max(by, sub(cur.Wall.Sub(prev.Wall), dm))
	}
	if prev.Boot != 0 && cur.Boot != 0 {
		by = max(by, sub(sub(cur.Boot, prev.Boot), dm))
	}
	if by <= limit {
		return 0
	}
	return by
}

// sub is a − b, saturating (time.Time.Sub saturates at ±292 years).
func sub(a, b time.Duration) time.Duration {
	d := a - b
	if (d < a) != (b > 0) { // overflow
		if b > 0 {
			return -1 << 63
		}
		return 1<<63 - 1
	}
	return d
}

// Watch remembers the last reading and reports stalls between consecutive
// ones. The zero Watch uses MinTolerance. Not safe for concurrent use.
type Watch struct {
	// Tolerance is the least stall reported (Tolerance(M)); 0 means
	// MinTolerance.
	Tolerance time.Duration

	last   Reading
	primed bool
}

// Observe takes a reading, later than the last one, and returns the stall
// since the last (Stall), 0 for the first.
func (w *Watch) Observe(r Reading) time.Duration {
	prev, primed := w.last, w.primed
	w.last, w.primed = r, true
	if !primed {
		return 0
	}
	return Stall(prev, r, w.tol())
}

// Last is the last reading observed, ok false before the first.
func (w *Watch) Last() (Reading, bool) { return w.last, w.primed }

func (w *Watch) tol() time.Duration {
	if w.Tolerance <= 0 {
		return MinTolerance
	}
	return w.Tolerance
}

// origin anchors Mono: Go's monotonic readings are only comparable as
// differences.
var origin = time.Now()

// At is the reading of t, a time.Now reading (it carries the monotonic
// clock), with CLOCK_BOOTTIME read now.
func At(t time.Time) Reading {
	return Reading{Mono: t.Sub(origin), Wall: t.Round(0), Boot: bootAround(t)}
}

// Now reads the clocks.
func Now() Reading { return At(time.Now()) }
