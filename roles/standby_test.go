package roles

import (
	"path/filepath"
	"strconv"
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

// markCmd is a long-running command that appends "<ns> <what> start" to
// $MARKS when it starts and, on SIGTERM, "<ns> <what> stop" after a pause
// (a slow stop), then exits. The times come from one clock, the realtime
// clock, for every command of a test.
func markCmd(what string, pause string) string {
	return `echo "$(date +%s%N) ` + what + ` start $HANODE_TERM" >> "$MARKS"
trap 'sleep ` + pause + `; echo "$(date +%s%N) ` + what + ` stop" >> "$MARKS"; exit 0' TERM
while :; do sleep 0.02; done`
}

type mark struct {
	at   int64
	what string // "standby start", "active stop", ...
}

func readMarks(t *testing.T, path string) []mark {
	t.Helper()
	var out []mark
	for _, line := range readLines(t, path) {
		f := strings.Fields(line)
		require.GreaterOrEqual(t, len(f), 3, "mark %q", line)
		at, err := strconv.ParseInt(f[0], 10, 64)
		require.NoError(t, err)
		out = append(out, mark{at: at, what: f[1] + " " + f[2]})
	}
	return out
}

func countMarks(t *testing.T, path, what string) int {
	n := 0
	for _, m := range readMarks(t, path) {
		if m.what == what {
			n++
		}
	}
	return n
}

// assertNeverTogether checks from the marks that no standby run overlapped
// an active run: every start of one comes after the stop of the other.
func assertNeverTogether(t *testing.T, marks []mark) {
	t.Helper()
	running := map[string]bool{}
	for _, m := range marks {
		who, ev, _ := strings.Cut(m.what, " ")
		other := "standby"
		if who == "standby" {
			other = "active"
		}
		if ev == "start" {
			assert.False(t, running[other], "%s started at %d while %s ran: %v", who, m.at, other, marks)
		}
		running[who] = ev == "start"
	}
}

// newTestStandby runs command (default markCmd("standby", "0.3")) as
// STANDBY_CMD with $MARKS set to marks (default a new file).
func newTestStandby(t *testing.T, command, marks string, duty Duty, onLost func(int64, string), jailer *Jailer) (*Standby, string, *observer.ObservedLogs) {
	t.Helper()
	if command == "" {
		command = markCmd("standby", "0.3")
	}
	if marks == "" {
		marks = filepath.Join(t.TempDir(), "marks")
	}
	core, logs := observer.New(zapcore.DebugLevel)
	s := NewStandby(StandbyConfig{
		Command: SupervisorConfig{Command: command, StopTimeout: 2 * time.Second, Name: "n1",
			Env: []string{"PATH=/usr/bin:/bin", "MARKS=" + marks}, Stdout: &syncBuffer{}, Stderr: &syncBuffer{},
			Jailer: jailer, MinBackoff: 50 * time.Millisecond},
		Duty: duty, OnDutyLost: onLost, RetryEvery: 50 * time.Millisecond, Logger: zap.New(core),
	})
	t.Cleanup(s.Close)
	return s, marks, logs
}

// TestStandbyCommandIsConfirmedStoppedBeforeTheDutyStarts: with real
// processes, Start returns at once while STANDBY_CMD (slow to stop) is
// stopped; the duty starts only after STANDBY_CMD wrote its last line, and
// STANDBY_CMD starts again only after the duty stopped. The node may
// answer ok (Held) only once STANDBY_CMD is gone.
func TestStandbyCommandIsConfirmedStoppedBeforeTheDutyStarts(t *testing.T) {
	dir := t.TempDir()
	marks := filepath.Join(dir, "marks")
	duty := NewSupervisor(SupervisorConfig{Command: markCmd("active", "0.1"), StopTimeout: 2 * time.Second,
		Env: []string{"PATH=/usr/bin:/bin", "MARKS=" + marks}, Stdout: &syncBuffer{}, Stderr: &syncBuffer{}})
	t.Cleanup(func() { _ = duty.Stop("test over") })
	s, _, _ := newTestStandby(t, "", marks, duty, nil, nil)

	for round := 1; round <= 3; round++ {
		s.SetStandby(true, int64(round))
		testwait.For(t, 5*time.Second, "STANDBY_CMD to start", func() bool { return countMarks(t, marks, "standby start") == round })
		assert.False(t, s.Status().Held)

		begin := time.Now()
		s.SetStandby(false, 0) // the feed: standby → waiting → active, after StartDuty or before
		s.Start(int64(100 + round))
		assert.Less(t, time.Since(begin), 100*time.Millisecond, "Start must not wait for STANDBY_CMD to stop")
		assert.False(t, s.Status().Held, "no ok while STANDBY_CMD may run")
		testwait.For(t, 5*time.Second, "the duty to start", func() bool { return countMarks(t, marks, "active start") == round })
		testwait.For(t, time.Second, "the gate to hold", func() bool { return s.Status().Held })

		require.NoError(t, s.Stop("lease handed over"))
		assert.False(t, s.Status().Held)
		assertNeverTogether(t, readMarks(t, marks))
	}
	s.SetStandby(true, 9)
	testwait.For(t, 5*time.Second, "STANDBY_CMD to start again", func() bool { return countMarks(t, marks, "standby start") == 4 })
	assertNeverTogether(t, readMarks(t, marks))
}

// fakeDuty records the gate's calls.
type fakeDuty struct {
	mu     sync.Mutex
	starts []int64
	stops  int
}

func (d *fakeDuty) Start(term int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.starts = append(d.starts, term)
}

func (d *fakeDuty) Stop(string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stops++
	return nil
}

func (d *fakeDuty) started() []int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]int64(nil), d.starts...)
}

// TestStandbyCommandDoesNotStartOnALaggingFeed: a "standby" that reaches
// the gate after Start (the feed lags the election) starts nothing while
// the duty is wanted; after Stop it does.
func TestStandbyCommandDoesNotStartOnALaggingFeed(t *testing.T) {
	duty := &fakeDuty{}
	s, marks, _ := newTestStandby(t, "", "", duty, nil, nil)
	s.Start(7)
	testwait.For(t, 5*time.Second, "the duty to start", func() bool { return len(duty.started()) == 1 })
	s.SetStandby(true, 6) // stale
	for range 3 {         // rounds of the owner: each would start it if it were going to
		s.poke()
	}
	testwait.For(t, time.Second, "the gate to settle", func() bool { return s.Status().Held })
	assert.Equal(t, DutyStopped, s.Status().State)
	assert.Zero(t, countMarks(t, marks, "standby start"))

	require.NoError(t, s.Stop("resigned"))
	testwait.For(t, 5*time.Second, "STANDBY_CMD to start", func() bool { return countMarks(t, marks, "standby start") == 1 })
	assert.Equal(t, []int64{7}, duty.started())
}

// TestStandbyCommandIsRestartedWhenItExits: a STANDBY_CMD that exits while
// the node is standby is restarted with backoff.
func TestStandbyCommandIsRestartedWhenItExits(t *testing.T) {
	s, marks, _ := newTestStandby(t, `echo "$(date +%s%N) standby start" >> "$MARKS"; exit 1`, "", nil, nil, nil)
	s.SetStandby(true, 1)
	testwait.For(t, 5*time.Second, "three runs", func() bool { return countMarks(t, marks, "standby start") >= 3 })
	assert.GreaterOrEqual(t, s.Status().Restarts, 2)
}

// TestStandbyCommandNotConfirmedStoppedHandsTheDutyOver: when STANDBY_CMD
// cannot be confirmed stopped (a process stuck in the kernel, made here by
// failing the jail's kill), the duty never starts and is reported lost, so
// that another member leads; once the leftover is gone STANDBY_CMD runs
// again.
func TestStandbyCommandNotConfirmedStoppedHandsTheDutyOver(t *testing.T) {
	jailer := &Jailer{mode: ContainNone}
	duty := &fakeDuty{}
	lost := make(chan int64, 4)
	s, marks, logs := newTestStandby(t, "", "", duty, func(term int64, _ string) { lost <- term }, jailer)
	s.SetStandby(true, 1)
	testwait.For(t, 5*time.Second, "STANDBY_CMD to start", func() bool { return countMarks(t, marks, "standby start") == 1 })

	jailer.testKillFails.Store(1 << 20)
	s.SetStandby(false, 0)
	s.Start(8)
	select {
	case term := <-lost:
		assert.Equal(t, int64(8), term)
	case <-time.After(10 * time.Second):
		t.Fatal("the duty was not reported lost")
	}
	assert.Empty(t, duty.started(), "no duty while STANDBY_CMD may run")
	assert.False(t, s.Status().Held)
	assert.Contains(t, s.Status().Problem, "STANDBY_CMD not confirmed stopped")
	assert.Equal(t, 1, logs.FilterMessage("duty not started").Len())

	jailer.testKillFails.Store(0)
	testwait.For(t, 5*time.Second, "the leftover to be cleared", func() bool { return s.Status().Problem == "" })
	s.SetStandby(true, 9)
	testwait.For(t, 5*time.Second, "STANDBY_CMD to start again", func() bool { return countMarks(t, marks, "standby start") == 2 })
}

// TestStandbyWaitsForALostDutyToStop: a duty its runner reported lost is
// confirmed stopped by the gate before STANDBY_CMD starts.
func TestStandbyWaitsForALostDutyToStop(t *testing.T) {
	duty := &fakeDuty{}
	s, marks, _ := newTestStandby(t, "", "", duty, nil, nil)
	s.Start(4)
	testwait.For(t, 5*time.Second, "the duty to start", func() bool { return len(duty.started()) == 1 })
	s.DutyLost(4)
	s.SetStandby(true, 5)
	testwait.For(t, 5*time.Second, "STANDBY_CMD to start", func() bool { return countMarks(t, marks, "standby start") == 1 })
	duty.mu.Lock()
	assert.Equal(t, 1, duty.stops, "the lost duty is stopped before STANDBY_CMD starts")
	duty.mu.Unlock()
}
