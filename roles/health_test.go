package roles

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hanode/hanode/internal/testwait"
)

// TestHealthCountFlipsOnlyAtTheThresholds: the verdict flips to unhealthy
// at the Failures-th failure in a row and back at the Recoveries-th pass in
// a row, each run of the other kind starting the count over; nothing else
// flips it.
func TestHealthCountFlipsOnlyAtTheThresholds(t *testing.T) {
	now := time.Unix(1000, 0)
	c := healthCount{failures: 3, recoveries: 2}
	steps := []struct {
		ok        bool
		flip      bool
		unhealthy bool
		failN     int
		okN       int
	}{
		{ok: false, failN: 1},
		{ok: false, failN: 2},
		{ok: true, okN: 1}, // a pass breaks the streak
		{ok: false, failN: 1},
		{ok: false, failN: 2},
		{ok: false, flip: true, unhealthy: true, failN: 3},
		{ok: false, unhealthy: true, failN: 4}, // no second flip
		{ok: true, unhealthy: true, okN: 1},
		{ok: false, unhealthy: true, failN: 1}, // recovery starts over
		{ok: true, unhealthy: true, okN: 1},
		{ok: true, flip: true, okN: 2},
		{ok: true, okN: 3},
	}
	for i, s := range steps {
		var flip bool
		if s.ok {
			flip = c.pass(c.gen, "exit status 0", now)
		} else {
			flip = c.fail("exit status 1", now)
		}
		assert.Equal(t, s.flip, flip, "step %d: flip", i)
		assert.Equal(t, s.unhealthy, c.unhealthy, "step %d: unhealthy", i)
		assert.Equal(t, s.failN, c.failN, "step %d: failures", i)
		assert.Equal(t, s.okN, c.okN, "step %d: successes", i)
	}
}

// TestHealthCountReasonNamesTheCountAndTheLastResult: the reason a node
// gives for leaving says how many checks failed and how the last one
// ended.
func TestHealthCountReasonNamesTheCountAndTheLastResult(t *testing.T) {
	c := healthCount{failures: 1, recoveries: 1}
	require.True(t, c.fail("timed out after 2s", time.Now()))
	assert.Equal(t, "HEALTH_CMD failed 1 time: timed out after 2s", c.reason)
	c = healthCount{failures: 3, recoveries: 1}
	c.fail("exit status 1", time.Now())
	c.fail("exit status 1", time.Now())
	require.True(t, c.fail("exit status 2", time.Now()))
	assert.Equal(t, "HEALTH_CMD failed 3 times: exit status 2", c.reason)
}

// TestHealthCountLostDutyTripsAtOnceAndOnlyLaterPassesRecover: a lost duty
// makes a healthy node unhealthy at once; a check begun before the loss
// does not count towards recovery, later ones do.
func TestHealthCountLostDutyTripsAtOnceAndOnlyLaterPassesRecover(t *testing.T) {
	now := time.Unix(1000, 0)
	c := healthCount{failures: 3, recoveries: 2}
	begun := c.gen
	require.True(t, c.trip("exited 6 times in 1m0s", now))
	assert.Equal(t, "duty lost: exited 6 times in 1m0s", c.reason)
	assert.False(t, c.trip("again", now), "already unhealthy: no second flip")
	assert.False(t, c.pass(begun, "exit status 0", now), "begun before the loss")
	assert.Zero(t, c.okN)
	assert.False(t, c.pass(c.gen, "exit status 0", now))
	assert.True(t, c.pass(c.gen, "exit status 0", now))
	assert.False(t, c.unhealthy)
}

// flips records OnChange calls.
type flips struct {
	mu  sync.Mutex
	got []string
}

func (f *flips) add(ok bool, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ok {
		f.got = append(f.got, "healthy")
	} else {
		f.got = append(f.got, "unhealthy: "+reason)
	}
}

func (f *flips) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

// newTestHealth runs a health check whose command exits with the number in
// DIR/code (0 when the file is missing) and appends a line to DIR/runs
// for each run.
func newTestHealth(t *testing.T, cfg HealthConfig) (*Health, string, *flips, *observer.ObservedLogs) {
	t.Helper()
	dir := t.TempDir()
	core, logs := observer.New(zapcore.DebugLevel)
	f := &flips{}
	cfg.Env = []string{"PATH=/usr/bin:/bin", "DIR=" + dir}
	cfg.Output, cfg.Logger, cfg.OnChange = &syncBuffer{}, zap.New(core), f.add
	cfg.Name, cfg.Role, cfg.HAID = "n1", "primary", "g"
	h := NewHealth(cfg)
	t.Cleanup(h.Close)
	return h, dir, f, logs
}

const healthTestCmd = `echo "$HANODE_NAME" >> "$DIR/runs"; [ -e "$DIR/code" ] && exit "$(cat "$DIR/code")"; exit 0`

func setCode(t *testing.T, dir, code string) {
	t.Helper()
	if code == "" {
		require.NoError(t, os.Remove(filepath.Join(dir, "code")))
		return
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "code"), []byte(code), 0o644))
}

func runCount(t *testing.T, dir string) int {
	t.Helper()
	return len(readLines(t, filepath.Join(dir, "runs")))
}

// TestHealthRealCommandFlipsAtTheThresholdsWithTheReason: a real
// HEALTH_CMD that starts failing makes the node unhealthy after exactly
// Failures checks, with the exit status in the reason, and healthy again
// after Recoveries passing ones; OnChange hears each flip once.
func TestHealthRealCommandFlipsAtTheThresholdsWithTheReason(t *testing.T) {
	h, dir, f, _ := newTestHealth(t, HealthConfig{Command: healthTestCmd, Interval: 30 * time.Millisecond,
		Failures: 3, Recoveries: 2})
	require.NoError(t, testwait.Poll(5*time.Second, 5*time.Millisecond, func() bool { return h.Status().State == HealthHealthy }))
	assert.Empty(t, f.list(), "a passing check flips nothing: the node starts healthy")

	setCode(t, dir, "7")
	require.NoError(t, testwait.Poll(5*time.Second, 5*time.Millisecond, func() bool { return len(f.list()) == 1 }))
	st := h.Status()
	assert.Equal(t, HealthUnhealthy, st.State)
	assert.Equal(t, "HEALTH_CMD failed 3 times: exit status 7", st.Reason)
	assert.GreaterOrEqual(t, st.Failures, 3)
	assert.Equal(t, []string{"unhealthy: HEALTH_CMD failed 3 times: exit status 7"}, f.list())

	setCode(t, dir, "")
	require.NoError(t, testwait.Poll(5*time.Second, 5*time.Millisecond, func() bool { return len(f.list()) == 2 }))
	st = h.Status()
	assert.Equal(t, HealthHealthy, st.State)
	assert.Equal(t, 2, st.Successes, "healthy again at the second pass, not later")
	assert.Empty(t, st.Reason)
	assert.Equal(t, "exit status 0", st.LastResult)
	assert.Equal(t, []string{"unhealthy: HEALTH_CMD failed 3 times: exit status 7", "healthy"}, f.list())
}

// TestHealthTimeoutIsAFailure: a check that runs past its timeout is
// killed and counts as failed, and says so.
func TestHealthTimeoutIsAFailure(t *testing.T) {
	h, dir, f, logs := newTestHealth(t, HealthConfig{Command: `echo x >> "$DIR/runs"; exec sleep 30`,
		Interval: 100 * time.Millisecond, Timeout: 50 * time.Millisecond, Failures: 2, Recoveries: 1})
	require.NoError(t, testwait.Poll(5*time.Second, 5*time.Millisecond, func() bool { return len(f.list()) == 1 }))
	assert.Equal(t, []string{"unhealthy: HEALTH_CMD failed 2 times: timed out after 50ms"}, f.list())
	assert.Equal(t, "timed out after 50ms", h.Status().LastResult)
	assert.GreaterOrEqual(t, runCount(t, dir), 2)
	assert.NotZero(t, logs.FilterMessage("health check failed").Len())
}

// TestHealthUnknownUntilTheFirstCheckEnds: status says unknown while the
// first check runs, and a failing first check leaves the node in the line
// (healthy) until the threshold.
func TestHealthUnknownUntilTheFirstCheckEnds(t *testing.T) {
	h, dir, f, _ := newTestHealth(t, HealthConfig{
		Command:  `[ -e "$DIR/go" ] || sleep 0.3; echo x >> "$DIR/runs"; exit 1`,
		Interval: 400 * time.Millisecond, Failures: 3, Recoveries: 1})
	assert.Equal(t, HealthUnknown, h.Status().State)
	require.NoError(t, testwait.Poll(5*time.Second, 5*time.Millisecond, func() bool { return runCount(t, dir) >= 1 }))
	require.NoError(t, testwait.Poll(time.Second, 5*time.Millisecond, func() bool { return h.Status().Failures == 1 }))
	st := h.Status()
	assert.Equal(t, HealthHealthy, st.State, "one failure of three: still in the line")
	assert.Equal(t, "exit status 1", st.LastResult)
	assert.Empty(t, f.list())
}

// TestHealthLostDutyWithoutCommandRecoversAfterQuietIntervals: with no
// HEALTH_CMD, a lost duty makes the node unhealthy at once and it is
// healthy again after Recoveries intervals with no further loss; a loss
// meanwhile starts the quiet over.
func TestHealthLostDutyWithoutCommandRecoversAfterQuietIntervals(t *testing.T) {
	const interval = 100 * time.Millisecond
	h, _, f, _ := newTestHealth(t, HealthConfig{Interval: interval, Failures: 3, Recoveries: 3})
	assert.Equal(t, HealthHealthy, h.Status().State, "no command: healthy from the start")
	began := time.Now()
	h.Fail("exited 6 times within 1m0s")
	assert.Equal(t, []string{"unhealthy: duty lost: exited 6 times within 1m0s"}, f.list(), "at once")
	assert.Equal(t, HealthUnhealthy, h.Status().State)
	require.NoError(t, testwait.Poll(5*time.Second, 5*time.Millisecond, func() bool { return h.Status().Successes == 1 }))
	h.Fail("again")
	again := time.Now()
	assert.Len(t, f.list(), 1, "no flip while unhealthy")
	require.NoError(t, testwait.Poll(5*time.Second, 5*time.Millisecond, func() bool { return len(f.list()) == 2 }))
	took := time.Since(again)
	assert.Equal(t, "healthy", f.list()[1])
	assert.GreaterOrEqual(t, took, 3*interval-10*time.Millisecond, "three quiet intervals after the last loss")
	assert.Greater(t, time.Since(began), 4*interval)
}

// TestHealthLostDutyWithCommandNeedsPassesBegunAfterIt: with HEALTH_CMD,
// a lost duty makes the node unhealthy at once although its checks pass,
// and passing checks bring it back.
func TestHealthLostDutyWithCommandNeedsPassesBegunAfterIt(t *testing.T) {
	h, _, f, _ := newTestHealth(t, HealthConfig{Command: healthTestCmd, Interval: 40 * time.Millisecond,
		Failures: 3, Recoveries: 2})
	require.NoError(t, testwait.Poll(5*time.Second, 5*time.Millisecond, func() bool { return h.Status().State == HealthHealthy }))
	h.Fail("the duty guard died before it reported the duty started")
	st := h.Status()
	assert.Equal(t, HealthUnhealthy, st.State)
	assert.True(t, strings.HasPrefix(st.Reason, "duty lost: the duty guard died"), st.Reason)
	require.NoError(t, testwait.Poll(5*time.Second, 5*time.Millisecond, func() bool { return len(f.list()) == 2 }))
	assert.Equal(t, []string{"unhealthy: duty lost: the duty guard died before it reported the duty started", "healthy"}, f.list())
}

// TestHealthCloseKillsARunningCheckAndFlipsNothing: Close returns promptly
// with a check running, and reports nothing for it.
func TestHealthCloseKillsARunningCheckAndFlipsNothing(t *testing.T) {
	h, dir, f, _ := newTestHealth(t, HealthConfig{Command: `echo x >> "$DIR/runs"; exec sleep 30`,
		Interval: 10 * time.Second, Failures: 1, Recoveries: 1})
	require.NoError(t, testwait.Poll(5*time.Second, 5*time.Millisecond, func() bool { return runCount(t, dir) == 1 }))
	began := time.Now()
	h.Close()
	assert.Less(t, time.Since(began), 3*time.Second)
	assert.Empty(t, f.list())
	assert.Equal(t, HealthUnknown, h.Status().State)
}
