package roles

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hanode/hanode/internal/testwait"
)

// hookLine is what the test hooks append to their file for each run.
const hookLine = `echo "$HANODE_SEQ $HANODE_FROM $HANODE_TO $HANODE_TERM $HANODE_LEADER $HANODE_DROPPED" >> "$OUT"`

func newTestHooks(t *testing.T, command string, timeout time.Duration, queue int) (*Hooks, string, *observer.ObservedLogs) {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "hooks.log")
	core, logs := observer.New(zapcore.DebugLevel)
	h := NewHooks(HookConfig{Command: command, Timeout: timeout, Queue: queue, Name: "n1", Role: "primary", HAID: "g",
		Env: []string{"PATH=/usr/bin:/bin", "OUT=" + out, "DIR=" + dir}, Output: &syncBuffer{}, Logger: zap.New(core)})
	t.Cleanup(func() { h.Close(5 * time.Second) })
	return h, out, logs
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	text := string(b)
	if i := strings.LastIndexByte(text, '\n'); i >= 0 {
		text = text[:i] // whole lines only: a writer may be half way
	} else {
		return nil
	}
	return strings.Split(text, "\n")
}

// flap is n transitions standby→active→standby→..., terms growing.
func flap(n int) []HookEvent {
	var evs []HookEvent
	from, to := "standby", "active"
	for i := range n {
		evs = append(evs, HookEvent{From: from, To: to, Term: int64(10 + i), Leader: "n" + strconv.Itoa(i%2)})
		from, to = to, from
	}
	return evs
}

// TestHooksRunForEveryTransitionInOrder: every transition given to Notify
// runs the hook once, in order, with HANODE_FROM, _TO, _TERM, _LEADER and
// _SEQ set; Close waits for the queue to drain.
func TestHooksRunForEveryTransitionInOrder(t *testing.T) {
	h, out, logs := newTestHooks(t, hookLine, 10*time.Second, 0)
	evs := flap(20)
	for _, ev := range evs {
		h.Notify(ev)
	}
	h.Close(20 * time.Second)
	got := readLines(t, out)
	require.Len(t, got, len(evs))
	for i, ev := range evs {
		assert.Equal(t, fmt.Sprintf("%d %s %s %d %s 0", i+1, ev.From, ev.To, ev.Term, ev.Leader), got[i], "run %d", i+1)
	}
	assert.Equal(t, len(evs), logs.FilterMessage("hook run").Len(), "every run is logged")
	last := h.Status().Last
	assert.True(t, last.OK)
	assert.Equal(t, "exit status 0", last.Exit)
	assert.Equal(t, int64(len(evs)), last.Event.Seq)
}

// TestHooksQueueOverflowDropsTheOldestNeverTheLatest: with the hook stuck
// on its first run and more transitions than the queue holds, the oldest
// queued ones are dropped; the next run is told how many (HANODE_DROPPED),
// and the last run is for the latest transition: after a flap the hook
// always learns the final state (keepalived #1884).
func TestHooksQueueOverflowDropsTheOldestNeverTheLatest(t *testing.T) {
	const queue = 4
	gate := `if [ "$HANODE_SEQ" = 1 ]; then : > "$DIR/running"; while [ ! -e "$DIR/go" ]; do sleep 0.01; done; fi; ` + hookLine
	h, out, logs := newTestHooks(t, gate, 10*time.Second, queue)
	dir := filepath.Dir(out)
	evs := flap(11)
	h.Notify(evs[0])
	testwait.For(t, 5*time.Second, "the first hook to run", func() bool {
		_, err := os.Stat(filepath.Join(dir, "running"))
		return err == nil
	})
	for _, ev := range evs[1:] { // 10 more into a queue of 4: 6 dropped, never blocking
		begin := time.Now()
		h.Notify(ev)
		assert.Less(t, time.Since(begin), 50*time.Millisecond, "Notify must not block")
	}
	assert.Equal(t, HookStatus{Queued: queue, Dropped: 6}, h.Status())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go"), nil, 0o644))
	h.Close(20 * time.Second)

	got := readLines(t, out)
	want := []string{fmt.Sprintf("1 %s %s %d %s 0", evs[0].From, evs[0].To, evs[0].Term, evs[0].Leader)}
	for i := 7; i < len(evs); i++ {
		dropped := 0
		if i == 7 {
			dropped = 6
		}
		ev := evs[i]
		want = append(want, fmt.Sprintf("%d %s %s %d %s %d", i+1, ev.From, ev.To, ev.Term, ev.Leader, dropped))
	}
	assert.Equal(t, want, got)
	assert.Equal(t, evs[len(evs)-1].To, strings.Fields(got[len(got)-1])[2], "the last run is for the latest state")
	assert.Equal(t, 6, logs.FilterMessage("hook queue full: dropped the oldest transition").Len())
}

// TestHookTimeoutKillsItsWholeGroup: a hook running past NOTIFY_TIMEOUT is
// killed with everything it started, the run is logged with how it ended
// and how long it took, and the next hook still runs.
func TestHookTimeoutKillsItsWholeGroup(t *testing.T) {
	cmd := `if [ "$HANODE_SEQ" = 1 ]; then sleep 60 & echo $! > "$DIR/child"; wait; fi; ` + hookLine
	h, out, logs := newTestHooks(t, cmd, 300*time.Millisecond, 0)
	dir := filepath.Dir(out)
	evs := flap(2)
	begin := time.Now()
	h.Notify(evs[0])
	h.Notify(evs[1])
	testwait.For(t, 5*time.Second, "the second hook to run", func() bool { return len(readLines(t, out)) == 1 })
	took := time.Since(begin)

	b, err := os.ReadFile(filepath.Join(dir, "child"))
	require.NoError(t, err)
	child, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	assert.False(t, liveProcess(child), "the hook's background child %d must be killed with it", child)
	assert.Less(t, took, 300*time.Millisecond+KillGrace+2*time.Second)

	failed := logs.FilterMessage("hook failed").All()
	require.Len(t, failed, 1)
	f := failed[0].ContextMap()
	assert.Equal(t, "timed out after 300ms", f["exit"])
	assert.Equal(t, "standby", f["from"])
	assert.Equal(t, "active", f["to"])
	assert.GreaterOrEqual(t, f["took"], 300*time.Millisecond)
	assert.Equal(t, []string{fmt.Sprintf("2 active standby %d n1 0", evs[1].Term)}, readLines(t, out))
}

// TestFailingHookIsLoggedAndTheNextRuns: a hook that exits non-zero is
// logged with its exit status; the next transition's hook runs anyway.
func TestFailingHookIsLoggedAndTheNextRuns(t *testing.T) {
	h, out, logs := newTestHooks(t, `[ "$HANODE_SEQ" = 1 ] && exit 3; `+hookLine, 10*time.Second, 0)
	evs := flap(2)
	h.Notify(evs[0])
	h.Notify(evs[1])
	h.Close(10 * time.Second)
	failed := logs.FilterMessage("hook failed").All()
	require.Len(t, failed, 1)
	assert.Equal(t, "exit status 3", failed[0].ContextMap()["exit"])
	assert.Equal(t, int64(1), failed[0].ContextMap()["seq"])
	assert.Equal(t, 1, logs.FilterMessage("hook run").Len())
	assert.Len(t, readLines(t, out), 1)
	assert.True(t, h.Status().Last.OK)
}

// TestHooksCloseKillsAHangingHook: Close waits for the queue at most its
// bound, then kills the running hook and drops the rest, each logged.
func TestHooksCloseKillsAHangingHook(t *testing.T) {
	h, out, logs := newTestHooks(t, `: > "$DIR/running"; sleep 60`, time.Minute, 0)
	dir := filepath.Dir(out)
	evs := flap(3)
	for _, ev := range evs {
		h.Notify(ev)
	}
	testwait.For(t, 5*time.Second, "the first hook to run", func() bool {
		_, err := os.Stat(filepath.Join(dir, "running"))
		return err == nil
	})
	begin := time.Now()
	h.Close(200 * time.Millisecond)
	assert.Less(t, time.Since(begin), 200*time.Millisecond+KillGrace+time.Second)
	assert.Equal(t, "killed: shutting down", h.Status().Last.Exit)
	assert.Equal(t, 2, logs.FilterMessage("hook not run: shutting down").Len())
}

// liveProcess reports whether pid runs (a zombie does not).
func liveProcess(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	st, ok := parseStat(b)
	return ok && st.state != 'Z' && st.state != 'X'
}
