package core

import "time"

// The lease arithmetic (ha/doc.go has the argument). Every time here is read
// from one clock: a node's own monotonic clock.

// DriftAllowance bounds how far any member's clock may run fast or slow
// against real time, as a fraction (1%: NTP slews CLOCK_MONOTONIC by at most
// 0.05%, and crystal error is about 0.01%).
const DriftAllowance = 0.01

// leaseEnd is when a lease acknowledged by a write sent at lastSend ends
// for its holder: lastSend + D − M on the holder's clock. A zero lastSend
// (never acknowledged) holds no lease: zero.
func leaseEnd(lastSend time.Time, duration, margin time.Duration) time.Time {
	if lastSend.IsZero() {
		return time.Time{}
	}
	return lastSend.Add(duration - margin)
}

// TakeoverWait is W: how long a node must watch, on its own clock, a lease
// of this duration go without an extension before it may claim. With every
// clock's rate within DriftAllowance (rho) of real time, a holder's duration
// D on its clock is at most D/(1-rho) real, and the watcher's W is at least
// W/(1+rho) real, so W = D(1+rho)/(1-rho) outlasts it. Rounded up to the
// millisecond.
func TakeoverWait(duration time.Duration) time.Duration {
	w := time.Duration(float64(duration) * (1 + DriftAllowance) / (1 - DriftAllowance))
	return (w + time.Millisecond - 1).Truncate(time.Millisecond)
}

// ExtendEvery is R, the holder's extension period: three per lease, so one
// lost or slow write never costs the lease.
func ExtendEvery(duration, margin time.Duration) time.Duration {
	return max((duration-margin)/3, 20*time.Millisecond)
}

// MinLease is the shortest lease duration the core accepts.
const MinLease = 200 * time.Millisecond
