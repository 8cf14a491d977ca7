package roles

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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

// syncBuffer is a bytes.Buffer safe for the duty's output copier and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// dutyGoroutines lists goroutines that belong to a supervisor or a command.
func dutyGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "roles.(*activation)") || strings.Contains(g, "roles.(*proc)") || strings.Contains(g, "os/exec.") {
			out = append(out, g)
		}
	}
	return out
}

// requireNoDutyGoroutines checks that everything a supervisor started returned.
func requireNoDutyGoroutines(t *testing.T) {
	t.Helper()
	testwait.For(t, 2*time.Second, "supervisor goroutines to return", func() bool { return len(dutyGoroutines()) == 0 })
}

// liveInGroup lists the processes of group pgid that are neither gone nor zombies.
func liveInGroup(t *testing.T, pgid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var live []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if f[2] == strconv.Itoa(pgid) && f[0] != "Z" && f[0] != "X" {
			live = append(live, pid)
		}
	}
	return live
}

// processDead reports whether pid is gone or a zombie.
func processDead(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return f[0] == "Z" || f[0] == "X"
}

// processStopped reports whether every thread of pid is stopped (SIGSTOP
// takes each thread at its next return to user mode, not at the kill).
func processStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return false
		}
		if st, ok := parseStat(b); !ok || st.state != 'T' && st.state != 't' {
			return false
		}
	}
	return true
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	return pid
}

func exists(path string) func() bool {
	return func() bool { _, err := os.Stat(path); return err == nil }
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	return strings.Fields(string(b))
}

type harness struct {
	s    *Supervisor
	logs *observer.ObservedLogs
	dir  string
	out  *syncBuffer
	err  *syncBuffer
}

// newHarness builds a supervisor whose duty sees $DIR, a fresh directory. The
// supervisor is stopped at cleanup, and its goroutines must have returned.
func newHarness(t *testing.T, cfg SupervisorConfig) *harness {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	h := &harness{logs: logs, dir: t.TempDir(), out: &syncBuffer{}, err: &syncBuffer{}}
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	cfg.Env = append(cfg.Env, "DIR="+h.dir)
	cfg.Stdout, cfg.Stderr = h.out, h.err
	cfg.Logger = zap.New(core)
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 2 * time.Second
	}
	h.s = NewSupervisor(cfg)
	t.Cleanup(func() {
		assert.NoError(t, h.s.Stop("test cleanup"))
		requireNoDutyGoroutines(t)
	})
	return h
}

func (h *harness) path(name string) string { return filepath.Join(h.dir, name) }

func (h *harness) waitRunning(t *testing.T, term int64) DutyStatus {
	t.Helper()
	var st DutyStatus
	testwait.For(t, 5*time.Second, fmt.Sprintf("duty running for term %d", term), func() bool {
		st = h.s.Status()
		return st.Running && st.Term == term
	})
	return st
}

func (h *harness) field(msg, key string) []any {
	var out []any
	for _, e := range h.logs.FilterMessage(msg).All() {
		out = append(out, e.ContextMap()[key])
	}
	return out
}

// A ready file tells the test that the duty's traps are installed.
const trapTerm = `trap 'echo trapped > "$DIR/trapped"; exit 0' TERM; touch "$DIR/ready"; sleep 1000 & wait`

func TestDutySeesHanodeEnvironment(t *testing.T) {
	h := newHarness(t, SupervisorConfig{
		Command: `env > "$DIR/env.tmp" && mv "$DIR/env.tmp" "$DIR/env"; exec sleep 1000`,
		Name:    "n1", Role: "primary,monitor", HAID: "g1",
		Env: []string{"PATH=" + os.Getenv("PATH"), "KEEP=kept", "HANODE_TERM=stale", "HANODE_ROLE=stale"},
	})
	h.s.Start(42)
	testwait.For(t, 5*time.Second, "env file", exists(h.path("env")))

	count := map[string]int{}
	value := map[string]string{}
	for _, kv := range lines(t, h.path("env")) {
		k, v, _ := strings.Cut(kv, "=")
		count[k]++
		value[k] = v
	}
	assert.Equal(t, "n1", value["HANODE_NAME"])
	assert.Equal(t, "primary,monitor", value["HANODE_ROLE"])
	assert.Equal(t, "g1", value["HANODE_HA_ID"])
	assert.Equal(t, "42", value["HANODE_TERM"])
	assert.Equal(t, "kept", value["KEEP"])
	for _, k := range []string{"HANODE_NAME", "HANODE_ROLE", "HANODE_HA_ID", "HANODE_TERM"} {
		assert.Equal(t, 1, count[k], "%s set once", k)
	}
}

func TestDutyOutputReachesWriters(t *testing.T) {
	h := newHarness(t, SupervisorConfig{Command: `echo to-stdout; echo to-stderr >&2`, MinBackoff: time.Hour})
	h.s.Start(1)
	testwait.For(t, 5*time.Second, "output", func() bool {
		return h.out.String() == "to-stdout\n" && h.err.String() == "to-stderr\n"
	})
}

func TestStopSendsSIGTERMAndTheTrapRuns(t *testing.T) {
	h := newHarness(t, SupervisorConfig{Command: trapTerm, StopTimeout: 5 * time.Second})
	h.s.Start(3)
	st := h.waitRunning(t, 3)
	testwait.For(t, 5*time.Second, "trap installed", exists(h.path("ready")))

	begin := time.Now()
	require.NoError(t, h.s.Stop("lost leadership"))
	assert.Less(t, time.Since(begin), 2*time.Second, "a duty that exits on SIGTERM is not waited out")
	assert.Equal(t, []string{"trapped"}, lines(t, h.path("trapped")))
	assert.Equal(t, DutyStatus{State: DutyStopped, LastExit: "exit status 0"}, h.s.Status())
	assert.Empty(t, liveInGroup(t, st.PID))

	stopped := h.logs.FilterMessage("duty stopped").All()
	require.Len(t, stopped, 1)
	assert.Equal(t, "lost leadership", stopped[0].ContextMap()["reason"])
	assert.Equal(t, int64(st.PID), stopped[0].ContextMap()["pid"])
	assert.Equal(t, int64(3), stopped[0].ContextMap()["term"])
}

func TestStopKillsDutyThatIgnoresSIGTERM(t *testing.T) {
	const stopTimeout = 300 * time.Millisecond
	h := newHarness(t, SupervisorConfig{
		Command:     `trap '' TERM; touch "$DIR/ready"; while :; do sleep 1; done`,
		StopTimeout: stopTimeout,
	})
	h.s.Start(1)
	st := h.waitRunning(t, 1)
	testwait.For(t, 5*time.Second, "trap installed", exists(h.path("ready")))

	begin := time.Now()
	require.NoError(t, h.s.Stop("lease ended"))
	took := time.Since(begin)
	assert.GreaterOrEqual(t, took, stopTimeout, "SIGKILL comes only after StopTimeout")
	assert.Less(t, took, stopTimeout+time.Second)
	assert.Equal(t, "signal: killed", h.s.Status().LastExit)
	assert.Empty(t, liveInGroup(t, st.PID))
}

// TestKillSendsSIGKILLAtOnce: after a stalled clock the lease may have
// ended already; Kill does not wait out a trap or StopTimeout.
func TestKillSendsSIGKILLAtOnce(t *testing.T) {
	h := newHarness(t, SupervisorConfig{Command: trapTerm, StopTimeout: 5 * time.Second})
	h.s.Start(2)
	st := h.waitRunning(t, 2)
	testwait.For(t, 5*time.Second, "trap installed", exists(h.path("ready")))

	begin := time.Now()
	require.NoError(t, h.s.Kill("clock stalled"))
	assert.Less(t, time.Since(begin), 2*time.Second, "Kill waits for no grace")
	assert.NoFileExists(t, h.path("trapped"), "no SIGTERM: the trap never ran")
	assert.Equal(t, "signal: killed", h.s.Status().LastExit)
	assert.Empty(t, liveInGroup(t, st.PID))
}

func TestStopKillsGrandchildren(t *testing.T) {
	// The shell dies of SIGTERM at once; one grandchild ignores SIGTERM and
	// must still be gone when Stop returns, long before StopTimeout.
	h := newHarness(t, SupervisorConfig{
		Command: `(trap '' TERM; exec sleep 1000) & echo $! > "$DIR/stubborn"
sleep 1000 & echo $! > "$DIR/plain"
touch "$DIR/ready"; wait`,
		StopTimeout: 5 * time.Second,
	})
	h.s.Start(1)
	st := h.waitRunning(t, 1)
	testwait.For(t, 5*time.Second, "grandchildren started", exists(h.path("ready")))
	stubborn, plain := readPID(t, h.path("stubborn")), readPID(t, h.path("plain"))
	require.False(t, processDead(stubborn))

	begin := time.Now()
	require.NoError(t, h.s.Stop("shutdown"))
	assert.Less(t, time.Since(begin), 2*time.Second)
	assert.True(t, processDead(stubborn), "grandchild ignoring SIGTERM is killed")
	assert.True(t, processDead(plain))
	assert.Empty(t, liveInGroup(t, st.PID))
}

func TestDutyThatExitsIsRestartedWithTheSameTerm(t *testing.T) {
	h := newHarness(t, SupervisorConfig{
		Command:    `echo "$HANODE_TERM" >> "$DIR/runs"; exit 3`,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	})
	h.s.Start(7)
	testwait.For(t, 5*time.Second, "three exits and two restarts", func() bool {
		return h.logs.FilterMessage("duty exited").Len() >= 3 && h.s.Status().Restarts >= 2
	})

	st := h.s.Status()
	assert.Equal(t, int64(7), st.Term)
	assert.Equal(t, "exit status 3", st.LastExit)
	require.NoError(t, h.s.Stop("done"))
	for _, term := range lines(t, h.path("runs")) {
		assert.Equal(t, "7", term)
	}
	exits := h.field("duty exited", "exit")
	require.GreaterOrEqual(t, len(exits), 3)
	assert.Equal(t, "exit status 3", exits[0])
}

func TestRestartBackoffGrowsAndResetsAfterALongRun(t *testing.T) {
	const minB, maxB = 5 * time.Millisecond, 100 * time.Millisecond
	// The seventh run lasts longer than MaxBackoff; the others end at once.
	h := newHarness(t, SupervisorConfig{
		Command: `n=$(wc -l < "$DIR/runs"); echo x >> "$DIR/runs"
if [ "$n" -eq 6 ]; then sleep 0.3; fi; exit 1`,
		MinBackoff: minB, MaxBackoff: maxB,
	})
	require.NoError(t, os.WriteFile(h.path("runs"), nil, 0o600))
	h.s.Start(1)
	testwait.For(t, 10*time.Second, "nine restarts scheduled", func() bool {
		return h.logs.FilterMessage("duty restart scheduled").Len() >= 9
	})
	require.NoError(t, h.s.Stop("done"))

	ran := h.field("duty exited", "ran")
	in := h.field("duty restart scheduled", "in")
	require.Equal(t, len(ran), len(in))
	// Replay the rule: double each time, cap at max, reset after a long run.
	backoff, grew, reset := minB, false, false
	for i := range in {
		if ran[i].(time.Duration) >= maxB {
			backoff = minB
			reset = reset || i > 0
		}
		require.Equal(t, backoff, in[i], "restart %d (ran %v)", i, ran[i])
		grew = grew || backoff > minB
		backoff = min(2*backoff, maxB)
	}
	assert.True(t, grew, "backoff grew: %v", in)
	assert.True(t, reset, "backoff reset after the long run: %v", in)
}

func TestStopCancelsPendingRestart(t *testing.T) {
	h := newHarness(t, SupervisorConfig{Command: `echo x >> "$DIR/runs"; exit 1`, MinBackoff: time.Hour})
	h.s.Start(1)
	testwait.For(t, 5*time.Second, "restart scheduled", func() bool {
		st := h.s.Status()
		return st.State == DutyRestarting && st.Term == 1 && st.LastExit == "exit status 1" && !st.LastExitAt.IsZero()
	})
	require.Equal(t, 1, h.logs.FilterMessage("duty restart scheduled").Len())

	begin := time.Now()
	require.NoError(t, h.s.Stop("lost leadership"))
	assert.Less(t, time.Since(begin), time.Second)
	assert.Equal(t, 1, h.logs.FilterMessage("duty restart cancelled").Len())
	st := h.s.Status()
	assert.Equal(t, DutyStopped, st.State)
	assert.Equal(t, "exit status 1", st.LastExit)
	requireNoDutyGoroutines(t) // nothing is left that could restart it
	assert.Len(t, lines(t, h.path("runs")), 1)
}

func TestStartWithANewTermRestartsTheDuty(t *testing.T) {
	h := newHarness(t, SupervisorConfig{
		Command: `trap 'exit 0' TERM; echo "$HANODE_TERM" > "$DIR/tmp.$$"; mv "$DIR/tmp.$$" "$DIR/term.$$"
sleep 1000 & wait`,
	})
	h.s.Start(1)
	first := h.waitRunning(t, 1)
	testwait.For(t, 5*time.Second, "first term file", exists(h.path(fmt.Sprintf("term.%d", first.PID))))

	h.s.Start(1)
	assert.Equal(t, first, h.s.Status(), "same term is a no-op")

	h.s.Start(2)
	second := h.waitRunning(t, 2)
	assert.NotEqual(t, first.PID, second.PID)
	assert.Equal(t, 0, second.Restarts)
	testwait.For(t, 5*time.Second, "new term file", exists(h.path(fmt.Sprintf("term.%d", second.PID))))
	assert.Equal(t, []string{"2"}, lines(t, h.path(fmt.Sprintf("term.%d", second.PID))))
	assert.Equal(t, []string{"1"}, lines(t, h.path(fmt.Sprintf("term.%d", first.PID))))
	assert.Empty(t, liveInGroup(t, first.PID))
	assert.Equal(t, []any{"new term 2"}, h.field("duty stopping", "reason"))
}

func TestEmptyCommandIsANoOp(t *testing.T) {
	h := newHarness(t, SupervisorConfig{})
	h.s.Start(1)
	assert.Equal(t, DutyStatus{State: DutyStopped}, h.s.Status())
	require.NoError(t, h.s.Stop("shutdown"))
	assert.Empty(t, dutyGoroutines())
	entries := h.logs.FilterMessage("duty not configured").All()
	require.Len(t, entries, 2)
	for _, e := range entries {
		assert.Equal(t, zapcore.DebugLevel, e.Level)
	}
}

func TestStopWithoutStartIsANoOp(t *testing.T) {
	h := newHarness(t, SupervisorConfig{Command: "exit 0"})
	require.NoError(t, h.s.Stop("shutdown"))
	require.NoError(t, h.s.Stop("again"))
	assert.Equal(t, DutyStatus{State: DutyStopped}, h.s.Status())
}

func TestConcurrentStartAndStopLeaveNothingBehind(t *testing.T) {
	h := newHarness(t, SupervisorConfig{Command: `trap 'exit 0' TERM; sleep 1000 & wait`})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 15 {
				if (g+i)%3 == 0 {
					assert.NoError(t, h.s.Stop("flap"))
				} else {
					h.s.Start(int64(1 + (g+i)%2))
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, h.s.Stop("shutdown"))
	requireNoDutyGoroutines(t)
	st := h.s.Status()
	assert.False(t, st.Running)
	assert.Zero(t, st.PID)
	assert.Zero(t, st.Term)
	for _, pid := range h.field("duty started", "pid") {
		assert.Empty(t, liveInGroup(t, int(pid.(int64))), "group %v", pid)
	}
}

// TestDutyDiesWithHanode kills a process that runs a supervisor and expects
// Pdeathsig to take the duty with it.
func TestDutyDiesWithHanode(t *testing.T) {
	dir := t.TempDir()
	helper := exec.Command(os.Args[0])
	helper.Env = append(os.Environ(), "HANODE_ROLES_HELPER_DIR="+dir)
	require.NoError(t, helper.Start())
	testwait.For(t, 10*time.Second, "duty pid", exists(filepath.Join(dir, "pid")))
	duty := readPID(t, filepath.Join(dir, "pid"))
	require.False(t, processDead(duty))

	require.NoError(t, helper.Process.Kill())
	_ = helper.Wait()
	testwait.For(t, 5*time.Second, "duty to die with its supervisor", func() bool { return processDead(duty) })
}

// TestMain doubles as the supervising process for TestDutyDiesWithHanode:
// started with HANODE_ROLES_HELPER_DIR set, the test binary supervises a
// duty until the test kills it. Started with guardHelperArg, it is a duty
// guard (guardHelper).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == guardHelperArg {
		os.Exit(guardHelper(os.Args[2:]))
	}
	if dir := os.Getenv("HANODE_ROLES_HELPER_DIR"); dir != "" {
		s := NewSupervisor(SupervisorConfig{
			Command: `echo $$ > "$DIR/pid.tmp" && mv "$DIR/pid.tmp" "$DIR/pid"; exec sleep 1000`,
			Env:     append(os.Environ(), "DIR="+dir),
		})
		s.Start(1)
		<-time.After(time.Minute) // the parent kills this process long before
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		state   byte
		pgrp    int
		session int
		ok      bool
	}{
		{"plain", "123 (sleep) S 1 77 76 0", 'S', 77, 76, true},
		{"name with spaces and parens", "9 (a) b) (c) Z 1 5 4 0", 'Z', 5, 4, true},
		{"truncated", "9 (x) R 1 5", 0, 0, 0, false},
		{"no name", "garbage", 0, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, ok := parseStat([]byte(tc.in))
			assert.Equal(t, tc.ok, ok)
			if tc.ok {
				assert.Equal(t, tc.state, st.state)
				assert.Equal(t, tc.pgrp, st.pgrp)
				assert.Equal(t, tc.session, st.session)
			}
		})
	}
}
