package ha

import (
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/ha/internal/core"
	"github.com/hanode/hanode/internal/clockwatch"
	"go.uber.org/zap"
)

// TestClockWatchOnSimulatedClocks: the detector on readings without Go's
// monotonic part, as the simulator passes them: a node clock (mono) and real
// time (wall), with the tolerance from the margin (M/8).
// The lease and margin of the driver's unit tests.
const (
	ctD = 4 * time.Second
	ctM = 1200 * time.Millisecond
)

func TestClockWatchOnSimulatedClocks(t *testing.T) {
	w := newClockWatch(ctM) // tolerance 150 ms
	base := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	mono, wall := base, base.Add(time.Hour) // the two clocks need not agree, only advance alike
	for i, tc := range []struct {
		dMono, dWall time.Duration
		want         time.Duration
	}{
		{0, 0, 0}, // first
		{100 * time.Millisecond, 100 * time.Millisecond, 0},
		{100 * time.Millisecond, 240 * time.Millisecond, 0},                       // within the tolerance
		{100 * time.Millisecond, 20 * time.Second, 19900 * time.Millisecond},      // paused
		{100 * time.Millisecond, -5 * time.Second, 0},                             // wall stepped back
		{50 * time.Millisecond, 50*time.Millisecond + ctM, ctM},                   // a margin's worth
		{time.Minute, time.Minute + 500*time.Millisecond, 0},                      // 1% drift over a long gap
		{0, clockwatch.Tolerance(ctM) + time.Millisecond, 151 * time.Millisecond}, // just over
	} {
		mono, wall = mono.Add(tc.dMono), wall.Add(tc.dWall)
		if got := w.observe(mono, wall, 0); got != tc.want {
			t.Fatalf("step %d (+%v mono, +%v wall): stall %v, want %v", i, tc.dMono, tc.dWall, got, tc.want)
		}
	}
	if got := clockCheckEvery(ctM); got != 100*time.Millisecond {
		t.Fatalf("clockCheckEvery(%v) = %v", ctM, got)
	}
	if got := clockCheckEvery(200 * time.Millisecond); got != 50*time.Millisecond {
		t.Fatalf("clockCheckEvery(200ms) = %v", got)
	}
}

// TestClockElectionFeedsTheStallFirstAndStateDistrustsIt: the driver's
// observation of a stall steps the core with EvClockStall, and State's
// readers, between a resume and Run's next check, see the stall themselves.
func TestClockElectionFeedsTheStallFirstAndStateDistrustsIt(t *testing.T) {
	c, err := core.New(core.Config{Root: "/h", Group: "g", Self: core.MemberInfo{Name: "a", Role: "primary", Host: "host"},
		Lease: ctD, Margin: ctM, NewGUID: newGUID})
	if err != nil {
		t.Fatal(err)
	}
	e := &Election{core: c, log: zap.NewNop(), clock: newClockWatch(ctM)}
	now := time.Now()
	if e.noticeStall(now) || e.stalledSince() != 0 {
		t.Fatal("a stall on the first observation")
	}
	// As if the last observation was made 30 s of real time ago while the
	// monotonic clock saw none of it: prime both with a wall clock 30 s behind.
	now = time.Now()
	e.clock.observe(now, now.Round(0).Add(-30*time.Second), 0)
	last := clockwatch.At(now)
	last.Wall, last.Boot = last.Wall.Add(-30*time.Second), 0
	e.clockLast.Store(&last)
	if by := e.stalledSince(); by < 29*time.Second {
		t.Fatalf("State's check saw a stall of %v, want about 30s", by)
	}
	if !strings.Contains(stallReason(30*time.Second), "stalled by 30s") {
		t.Fatal(stallReason(30 * time.Second))
	}
	if !e.noticeStall(time.Now()) {
		t.Fatal("the driver did not notice the stall")
	}
	if e.stalledSince() != 0 {
		t.Fatal("State still sees the stall after Run observed it")
	}
	if e.noticeStall(time.Now()) {
		t.Fatal("one stall noticed twice")
	}
}
