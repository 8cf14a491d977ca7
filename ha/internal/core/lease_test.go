package core

import (
	"testing"
	"time"
)

func TestLeaseEnd(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 4, 0, 0, 0, time.UTC)
	const D, M = 10 * time.Second, 3 * time.Second
	cases := []struct {
		name     string
		lastSend time.Time
		now      time.Time
		want     time.Duration // left at now
	}{
		{"never acknowledged holds no lease", time.Time{}, t0, 0},
		{"just acknowledged holds the duration less the margin", t0, t0, 7 * time.Second},
		{"halfway", t0, t0.Add(3500 * time.Millisecond), 3500 * time.Millisecond},
		{"one nanosecond before the end", t0, t0.Add(7*time.Second - 1), 1},
		{"lease ends a margin before the bound", t0, t0.Add(7 * time.Second), 0},
		{"long past: a process resumed from a pause", t0, t0.Add(time.Hour), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			end := leaseEnd(c.lastSend, D, M)
			left := time.Duration(0)
			if !end.IsZero() && c.now.Before(end) {
				left = end.Sub(c.now)
			}
			if left != c.want {
				t.Fatalf("lease left at now = %v (end %v), want %v", left, end, c.want)
			}
		})
	}
}

// TestTakeoverWaitOutlastsTheLeaseUnderDrift checks the middle inequality of
// ha/doc.go at its edge: a holder whose clock runs slow by DriftAllowance acts
// at most D/(1-rho) of real time after its last send; a watcher whose clock
// runs fast by as much waits at least W/(1+rho) real.
func TestTakeoverWaitOutlastsTheLeaseUnderDrift(t *testing.T) {
	for _, d := range []time.Duration{MinLease, time.Second, 4 * time.Second, 10 * time.Second, time.Minute} {
		w := TakeoverWait(d)
		holderReal := float64(d) / (1 - DriftAllowance)
		watcherReal := float64(w) / (1 + DriftAllowance)
		if !(holderReal <= watcherReal) {
			t.Errorf("D=%v: W=%v waits %.0fns real, the holder may act %.0fns", d, w, watcherReal, holderReal)
		}
		if w > d+d/20 {
			t.Errorf("D=%v: W=%v is needlessly long", d, w)
		}
	}
	if w := TakeoverWait(4 * time.Second); w != 4081*time.Millisecond {
		t.Errorf("W(4s) = %v, want 4.081s", w)
	}
}

func TestExtendEveryFitsThreeExtensionsInALease(t *testing.T) {
	for _, c := range []struct{ D, M, want time.Duration }{
		{10 * time.Second, 3 * time.Second, 7 * time.Second / 3},
		{4 * time.Second, 1200 * time.Millisecond, 2800 * time.Millisecond / 3},
		{100 * time.Millisecond, 90 * time.Millisecond, 20 * time.Millisecond}, // floor
	} {
		if got := ExtendEvery(c.D, c.M); got != c.want {
			t.Errorf("extendEvery(%v, %v) = %v, want %v", c.D, c.M, got, c.want)
		}
	}
}

func TestTransitions(t *testing.T) {
	all := []Phase{PhaseStarting, PhaseStandby, PhaseWaiting, PhaseFencing, PhaseActive, PhaseDisconnected, PhaseStopped}
	ok := map[[2]Phase]bool{}
	for _, from := range all {
		for _, to := range all {
			ok[[2]Phase{from, to}] = from != PhaseStopped && to != PhaseStarting
		}
	}
	for _, from := range all {
		ok[[2]Phase{from, PhaseActive}] = from == PhaseWaiting || from == PhaseFencing
		ok[[2]Phase{from, PhaseFencing}] = from == PhaseWaiting || from == PhaseDisconnected
	}
	for _, from := range all {
		for _, to := range all {
			if got := allowed(from, to); got != ok[[2]Phase{from, to}] {
				t.Errorf("allowed(%s, %s) = %v", from, to, got)
			}
		}
	}
}
