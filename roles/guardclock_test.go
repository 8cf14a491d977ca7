package roles

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/clockwatch"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeWall makes the guards started after it read a wall clock offset by
// what the test stores: a jump of the offset is what a host paused with its
// monotonic clock stopped shows once its wall clock is corrected.
func fakeWall(t *testing.T) *atomic.Int64 {
	var off atomic.Int64
	t.Cleanup(func() { guardClockSource = nil }) // runs after the guard's own cleanup
	guardClockSource = func() clockwatch.Reading {
		r := clockwatch.Now()
		r.Wall = r.Wall.Add(time.Duration(off.Load()))
		r.Boot = 0
		return r
	}
	return &off
}

// TestGuardStopsTheDutyWhenItsClockStalls: the host was paused for 30 s with
// CLOCK_MONOTONIC stopped, so the guard's deadline would run 30 s late in
// real time; it kills the duty (no grace: the lease may be over) within its
// check period, reports the lease expired, and forgets it.
func TestGuardStopsTheDutyWhenItsClockStalls(t *testing.T) {
	off := fakeWall(t)
	g := startGuard(t, SupervisorConfig{})
	g.lease(t, time.Minute)
	g.send(t, "start 8")
	pid := g.dutyPID(t)
	assert.Equal(t, fmt.Sprintf("started 8 %d", pid), g.reply(t))
	off.Store(int64(30 * time.Second))
	began := time.Now()
	testwait.For(t, 5*time.Second, "the guard to stop the duty", func() bool { return processDead(pid) })
	assert.Less(t, time.Since(began), guardClockEvery+500*time.Millisecond+KillGrace, "the stall was not acted on within the check period")
	assert.Equal(t, "expired 8", g.reply(t), "the coordinator is told the guard stopped the duty")
	logs := g.logs.FilterMessage("monotonic clock stalled (host paused?): killing the duty")
	require.Equal(t, 1, logs.Len())
	assert.InDelta(t, 30*time.Second, logs.All()[0].ContextMap()["stall"], float64(time.Second))
	g.send(t, "start 9")
	assert.Equal(t, "refused 9 no lease left", g.reply(t), "a lease held across a stall was kept")
}

// TestGuardIgnoresAWallClockSteppedBack: a wall clock stepped back (NTP
// correcting a fast clock) is no stall; nor is a stall with no lease held.
func TestGuardIgnoresAWallClockSteppedBack(t *testing.T) {
	off := fakeWall(t)
	g := startGuard(t, SupervisorConfig{})
	off.Store(int64(time.Minute))   // no lease yet: nothing to stop
	time.Sleep(3 * guardClockEvery) // the behaviour under test: three checks pass and nothing happens (no condition to wait on)
	g.lease(t, time.Minute)
	g.send(t, "start 3")
	pid := g.dutyPID(t)
	assert.Equal(t, fmt.Sprintf("started 3 %d", pid), g.reply(t))
	off.Store(int64(-time.Hour))
	time.Sleep(5 * guardClockEvery) // the behaviour under test: five checks pass and the duty still runs
	assert.False(t, processDead(pid), "a wall clock stepped back stopped the duty")
	assert.Equal(t, 0, g.logs.FilterMessage("monotonic clock stalled (host paused?): killing the duty").Len())
}
