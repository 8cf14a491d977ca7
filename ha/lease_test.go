package ha

import (
	"testing"
	"time"
)

func TestLeaseLeft(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 4, 0, 0, 0, time.UTC)
	const T, M = 10 * time.Second, 3 * time.Second
	cases := []struct {
		name    string
		lastAck time.Time
		now     time.Time
		want    time.Duration
	}{
		{"never acknowledged holds no lease", time.Time{}, t0, 0},
		{"just acknowledged holds the session timeout less the margin", t0, t0, 7 * time.Second},
		{"halfway", t0, t0.Add(3500 * time.Millisecond), 3500 * time.Millisecond},
		{"one nanosecond before the end", t0, t0.Add(7*time.Second - 1), 1},
		{"lease ends a margin before the session timeout", t0, t0.Add(7 * time.Second), 0},
		{"long past: a process resumed from a pause", t0, t0.Add(time.Hour), 0},
		{"clock reading before the send (cannot extend)", t0, t0.Add(-time.Second), 8 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := leaseLeft(c.lastAck, T, M, c.now); got != c.want {
				t.Fatalf("leaseLeft = %v, want %v", got, c.want)
			}
		})
	}
}

func TestEffectiveTimeoutNeverExceedsWhatTheServerGranted(t *testing.T) {
	cases := []struct{ req, neg, want time.Duration }{
		{10 * time.Second, 0, 10 * time.Second},                // not negotiated yet
		{10 * time.Second, 10 * time.Second, 10 * time.Second}, // granted as asked
		{60 * time.Second, 40 * time.Second, 40 * time.Second}, // server lowered it (maxSessionTimeout)
		{2 * time.Second, 4 * time.Second, 2 * time.Second},    // server raised it: keep ours, it is safer
	}
	for _, c := range cases {
		if got := effectiveTimeout(c.req, c.neg); got != c.want {
			t.Errorf("effectiveTimeout(%v, %v) = %v, want %v", c.req, c.neg, got, c.want)
		}
	}
}

func TestRenewIntervalFitsFourRenewalsInALease(t *testing.T) {
	for _, c := range []struct{ T, M, want time.Duration }{
		{10 * time.Second, 3 * time.Second, 1750 * time.Millisecond},
		{4 * time.Second, 1200 * time.Millisecond, 700 * time.Millisecond},
		{100 * time.Millisecond, 90 * time.Millisecond, 50 * time.Millisecond}, // floor
	} {
		if got := renewInterval(c.T, c.M); got != c.want {
			t.Errorf("renewInterval(%v, %v) = %v, want %v", c.T, c.M, got, c.want)
		}
	}
}

func TestTransitions(t *testing.T) {
	ok := map[[2]Phase]bool{
		{PhaseStarting, PhaseStandby}:          true,
		{PhaseStarting, PhaseDisconnected}:     true,
		{PhaseStandby, PhaseActive}:            true,
		{PhaseStandby, PhaseStandby}:           true,
		{PhaseStandby, PhaseDisconnected}:      true,
		{PhaseActive, PhaseDisconnected}:       true,
		{PhaseDisconnected, PhaseStandby}:      true,
		{PhaseDisconnected, PhaseActive}:       true,
		{PhaseDisconnected, PhaseDisconnected}: true,
	}
	all := []Phase{PhaseStarting, PhaseStandby, PhaseActive, PhaseDisconnected}
	for _, from := range all {
		for _, to := range all {
			if got := allowed(from, to); got != ok[[2]Phase{from, to}] {
				t.Errorf("allowed(%s, %s) = %v", from, to, got)
			}
		}
	}
}

func TestStateReportsDisconnectedOnceTheLeaseRunsOut(t *testing.T) {
	t0 := time.Now()
	now := t0
	e, err := NewElector(Config{Servers: []string{"127.0.0.1:1"}, Root: "/hanode", Group: "g",
		Self: MemberInfo{Name: "n", Role: "primary", Host: "h"}, SessionTimeout: 4 * time.Second, Margin: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.now = func() time.Time { return now }
	e.snap.Store(&snapshot{state: State{Phase: PhaseActive, Term: 3}, ackSend: t0})
	if st := e.State(); !st.Active() || st.LeaseLeft != 3*time.Second {
		t.Fatalf("fresh lease: got %s with %v left", st.Phase, st.LeaseLeft)
	}
	now = t0.Add(3 * time.Second) // no event arrives; the clock alone decides
	if st := e.State(); st.Active() || st.Phase != PhaseDisconnected || st.LeaseLeft != 0 {
		t.Fatalf("lapsed lease: got %s with %v left (%s)", st.Phase, st.LeaseLeft, st.Reason)
	}
}
