package roles

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hanode/hanode/internal/testwait"
)

// guardHelperArg makes the test binary a duty guard: TestMain hands the
// arguments after it (directory, stop timeout, command) to guardHelper.
const guardHelperArg = "-roles.guard-helper"

// guardHelper serves the guard protocol on stdin and stdout with the duty's
// output and its own log in the directory; an optional fourth argument is
// the containment (resolved as `hanode duty-guard` does), a fifth
// "forking" makes the duty a forking one. A file "exit-at-start" there
// makes it exit at once (a guard that dies before it reports anything); a
// file "slow-start" makes it wait a second before it serves.
func guardHelper(args []string) int {
	dir, command := args[0], args[2]
	stop, err := time.ParseDuration(args[1])
	if err != nil {
		return 2
	}
	if _, err := os.Stat(filepath.Join(dir, "exit-at-start")); err == nil {
		return 3
	}
	if _, err := os.Stat(filepath.Join(dir, "slow-start")); err == nil {
		time.Sleep(time.Second) // the behaviour under test, not a synchronization
	}
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("guard-%d.log", os.Getpid())), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 2
	}
	defer f.Close()
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(f), zapcore.DebugLevel))
	cfg := SupervisorConfig{
		Command: command, StopTimeout: stop, Env: append(os.Environ(), "DIR="+dir),
		Stdout: f, Stderr: f, Logger: log,
	}
	if len(args) > 3 {
		cfg.MinBackoff, cfg.MaxBackoff, cfg.MaxRestarts, cfg.RestartWindow = 10*time.Millisecond, 10*time.Millisecond, 3, time.Minute
		j, _, err := NewJailer(Containment(args[3]), "duty-")
		if err != nil {
			log.Error("no jail", zap.Error(err))
			return 2
		}
		cfg.Jailer = j
		cfg.Forking = len(args) > 4 && args[4] == "forking"
	}
	err = ServeGuard(context.Background(), os.Stdin, os.Stdout, cfg)
	if err != nil {
		return 1
	}
	return 0
}

// The duties write "<shell pid> <HANODE_TERM>" to $DIR/pid once started.
const (
	execDuty = `echo "$$ $HANODE_TERM" > "$DIR/pid.tmp" && mv "$DIR/pid.tmp" "$DIR/pid"; exec sleep 1000`
	// loopDuty is not an exec: its shell waits for a loop in a subshell,
	// which outlives the shell unless its whole group is killed.
	loopDuty = `(while :; do sleep 0.05; done) & echo $! > "$DIR/loop"
echo "$$ $HANODE_TERM" > "$DIR/pid.tmp" && mv "$DIR/pid.tmp" "$DIR/pid"; wait`
	// stubbornDuty notes SIGTERM in $DIR/termed and keeps running.
	stubbornDuty = `trap 'touch "$DIR/termed"' TERM
echo "$$ $HANODE_TERM" > "$DIR/pid.tmp" && mv "$DIR/pid.tmp" "$DIR/pid"; while :; do sleep 0.05; done`
)

type dutyLoss struct {
	term   int64
	reason string
}

// guardClientUnderTest is a Guard running the test binary as its guard.
type guardClientUnderTest struct {
	g    *Guard
	dir  string
	logs *observer.ObservedLogs
	lost chan dutyLoss
}

func newGuardClient(t *testing.T, command string, guardStop time.Duration, edit func(*GuardConfig)) *guardClientUnderTest {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	c := &guardClientUnderTest{dir: t.TempDir(), logs: logs, lost: make(chan dutyLoss, 8)}
	cfg := GuardConfig{
		Path:         os.Args[0],
		Args:         []string{guardHelperArg, c.dir, guardStop.String(), command},
		StopTimeout:  guardStop + KillGrace + time.Second,
		StartTimeout: 5 * time.Second, // generous: the helper is a race-enabled test binary
		OnDutyLost:   func(term int64, reason string) { c.lost <- dutyLoss{term, reason} },
		Logger:       zap.New(core),
	}
	if edit != nil {
		edit(&cfg)
	}
	c.g = NewGuard(cfg)
	t.Cleanup(func() {
		assert.NoError(t, c.g.Close())
		requireNoDutyGoroutines(t)
		if t.Failed() {
			for _, e := range logs.All() {
				t.Logf("coordinator: %s %v", e.Message, e.ContextMap())
			}
			logsOf, _ := filepath.Glob(filepath.Join(c.dir, "guard-*.log"))
			for _, f := range logsOf {
				b, _ := os.ReadFile(f)
				t.Logf("%s:\n%s", filepath.Base(f), b)
			}
		}
	})
	return c
}

type dutyRun struct {
	pid  int
	term int64
}

// waitDuty waits until $DIR/pid names a duty other than not.
func (c *guardClientUnderTest) waitDuty(t *testing.T, not int) dutyRun {
	t.Helper()
	var d dutyRun
	testwait.For(t, 10*time.Second, "a duty to start", func() bool {
		b, err := os.ReadFile(filepath.Join(c.dir, "pid"))
		if err != nil {
			return false
		}
		f := strings.Fields(string(b))
		if len(f) != 2 {
			return false
		}
		d.pid, _ = strconv.Atoi(f[0])
		d.term, _ = strconv.ParseInt(f[1], 10, 64)
		return d.pid != not
	})
	return d
}

func (c *guardClientUnderTest) waitLost(t *testing.T) dutyLoss {
	t.Helper()
	select {
	case l := <-c.lost:
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("the duty was not reported lost within 10s")
		return dutyLoss{}
	}
}

// waitReported waits until the coordinator heard that the duty with this
// process group started (the guard reports it after forking the duty, so a
// duty can write its pid file before the report is out).
func (c *guardClientUnderTest) waitReported(t *testing.T, pgid int) {
	t.Helper()
	testwait.For(t, 5*time.Second, "the guard to report the duty", func() bool {
		return c.logs.FilterMessage("duty guard reported the duty started").FilterField(zap.Int("pgid", pgid)).Len() > 0
	})
}

func (c *guardClientUnderTest) requireNotLost(t *testing.T) {
	t.Helper()
	select {
	case l := <-c.lost:
		t.Fatalf("duty reported lost: term %d: %s", l.term, l.reason)
	default:
	}
}

// parentOf reads a process's parent from /proc.
func parentOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ppid, err := strconv.Atoi(f[1])
	require.NoError(t, err)
	return ppid
}

// liveInSession lists the live processes of session sid.
func liveInSession(sid int) []procStat {
	var out []procStat
	scanLive(func(st procStat) bool {
		if st.session == sid {
			out = append(out, st)
		}
		return true
	})
	return out
}

// idleGuard finds the guard process the Guard started for dir.
func idleGuard(t *testing.T, dir string) int {
	t.Helper()
	var pid int
	testwait.For(t, 5*time.Second, "the guard process", func() bool {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			p, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err == nil && bytes.Contains(b, []byte(guardHelperArg+"\x00"+dir+"\x00")) && !processDead(p) {
				pid = p
				return true
			}
		}
		return false
	})
	return pid
}

// TestGuardKilledTakesItsDutyWithItAndComesBackInTheSameTerm: SIGKILL to
// the guard process while the node is active. Every process of the old
// duty is gone before a new one starts, a non-exec duty's loop included
// (it survives its shell's parent-death signal); then a new guard runs the
// duty again with the same term, and nothing is reported lost.
func TestGuardKilledTakesItsDutyWithItAndComesBackInTheSameTerm(t *testing.T) {
	for _, tc := range []struct {
		name, command string
		loop          bool
	}{
		{"exec", execDuty, false},
		{"loop in a subshell", loopDuty, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newGuardClient(t, tc.command, 2*time.Second, nil)
			c.g.Extend(time.Minute)
			c.g.Start(7)
			old := c.waitDuty(t, 0)
			require.Equal(t, int64(7), old.term)
			oldProcs := []int{old.pid}
			if tc.loop {
				testwait.For(t, 5*time.Second, "the loop's pid", exists(filepath.Join(c.dir, "loop")))
				oldProcs = append(oldProcs, readPID(t, filepath.Join(c.dir, "loop")))
			}
			guard := parentOf(t, old.pid)
			c.waitReported(t, old.pid)
			require.NoError(t, syscall.Kill(guard, syscall.SIGKILL))

			nu := c.waitDuty(t, old.pid)
			for _, pid := range oldProcs {
				assert.True(t, processDead(pid), "old duty process %d still ran when the new duty started", pid)
			}
			assert.Equal(t, int64(7), nu.term, "the new duty runs in another term")
			newGuard := parentOf(t, nu.pid)
			assert.NotEqual(t, guard, newGuard)
			assert.Empty(t, liveInSession(guard), "processes left in the dead guard's session")
			for _, st := range liveInSession(newGuard) {
				if st.pid != newGuard {
					assert.Equal(t, nu.pid, st.pgrp, "process %d runs outside the duty's group", st.pid)
				}
			}
			c.requireNotLost(t)
			require.NoError(t, c.g.Stop("test over"))
			assert.Empty(t, liveInGroup(t, nu.pid))
		})
	}
}

// TestGuardKilledAfterTheLeaseEndedReportsTheDutyLost: the guard stopped
// the duty when the lease ran out and is then killed; no new duty can be
// started without a lease, so the duty of that term is reported lost.
func TestGuardKilledAfterTheLeaseEndedReportsTheDutyLost(t *testing.T) {
	c := newGuardClient(t, execDuty, 2*time.Second, nil)
	require.NoError(t, c.g.Ready()) // the lease need not cover the guard's start
	c.g.Extend(time.Second)
	c.g.Start(3)
	d := c.waitDuty(t, 0)
	guard := parentOf(t, d.pid)
	testwait.For(t, 5*time.Second, "the guard to stop the duty at the lease's end", func() bool { return processDead(d.pid) })
	require.NoError(t, syscall.Kill(guard, syscall.SIGKILL))

	l := c.waitLost(t)
	assert.Equal(t, int64(3), l.term)
	assert.Contains(t, l.reason, "lease has run out")
	require.NoError(t, c.g.Stop("stepped down"))
	assert.Equal(t, d, c.waitDuty(t, -1), "a duty started without a lease")
}

// TestGuardStartsTheDutyAgainWhenTheLeaseIsExtendedLate: the guard stopped
// the duty when its copy of the lease ran out; an extension that comes
// after all (an acknowledgement that crossed the deadline) runs the duty
// again in the same term instead of leaving the node active without it.
func TestGuardStartsTheDutyAgainWhenTheLeaseIsExtendedLate(t *testing.T) {
	c := newGuardClient(t, execDuty, 2*time.Second, nil)
	require.NoError(t, c.g.Ready()) // the lease need not cover the guard's start
	c.g.Extend(time.Second)
	c.g.Start(4)
	d := c.waitDuty(t, 0)
	testwait.For(t, 5*time.Second, "the guard to stop the duty at the lease's end", func() bool { return processDead(d.pid) })
	testwait.For(t, 5*time.Second, "the coordinator to hear of it", func() bool {
		return c.logs.FilterMessage("the duty guard stopped the duty when the lease ran out").Len() == 1
	})
	c.g.Extend(time.Minute)
	nu := c.waitDuty(t, d.pid)
	assert.Equal(t, int64(4), nu.term)
	c.requireNotLost(t)
}

// TestGuardThatDiesBeforeReportingTheDutyIsNotReplacedAgain: the
// replacement of a killed guard dies at once; the Guard reports the duty
// lost instead of starting guards in a loop, and nothing is left running.
func TestGuardThatDiesBeforeReportingTheDutyIsNotReplacedAgain(t *testing.T) {
	c := newGuardClient(t, loopDuty, 2*time.Second, nil)
	c.g.Extend(time.Minute)
	c.g.Start(5)
	d := c.waitDuty(t, 0)
	testwait.For(t, 5*time.Second, "the loop's pid", exists(filepath.Join(c.dir, "loop")))
	loop := readPID(t, filepath.Join(c.dir, "loop"))
	c.waitReported(t, d.pid)
	require.NoError(t, os.WriteFile(filepath.Join(c.dir, "exit-at-start"), nil, 0o644))
	require.NoError(t, syscall.Kill(parentOf(t, d.pid), syscall.SIGKILL))

	l := c.waitLost(t)
	assert.Equal(t, int64(5), l.term)
	assert.Contains(t, l.reason, "before it reported the duty started")
	assert.True(t, processDead(d.pid))
	assert.True(t, processDead(loop))
	assert.Equal(t, 1, c.logs.FilterMessage("restarting the duty guard with the duty of the same term").Len())
}

// TestGuardStartWithoutALeaseIsReportedLost: a start with no lease is
// refused by the guard, and the Guard reports the duty lost.
func TestGuardStartWithoutALeaseIsReportedLost(t *testing.T) {
	c := newGuardClient(t, execDuty, 2*time.Second, nil)
	c.g.Start(1)
	l := c.waitLost(t)
	assert.Equal(t, int64(1), l.term)
	assert.Contains(t, l.reason, "refused")
	_, err := os.Stat(filepath.Join(c.dir, "pid"))
	assert.True(t, os.IsNotExist(err), "a duty started with no lease")

	// A later start with a lease runs the duty.
	c.g.Extend(time.Minute)
	c.g.Start(2)
	assert.Equal(t, int64(2), c.waitDuty(t, 0).term)
}

// TestGuardStartNotConfirmedInTimeIsReportedLost: a guard that does not
// report the duty started within StartTimeout counts as a lost duty.
func TestGuardStartNotConfirmedInTimeIsReportedLost(t *testing.T) {
	c := newGuardClient(t, execDuty, 2*time.Second, func(cfg *GuardConfig) { cfg.StartTimeout = 200 * time.Millisecond })
	require.NoError(t, os.WriteFile(filepath.Join(c.dir, "slow-start"), nil, 0o644))
	c.g.Extend(time.Minute)
	c.g.Start(9)
	l := c.waitLost(t)
	assert.Equal(t, int64(9), l.term)
	assert.Contains(t, l.reason, "did not report the duty started within 200ms")
}

// TestGuardDyingDuringAStopStillStopsTheDuty: the guard is killed while it
// waits for a duty that ignores SIGTERM; Stop kills the guard's session and
// returns at once, with the duty gone.
func TestGuardDyingDuringAStopStillStopsTheDuty(t *testing.T) {
	c := newGuardClient(t, stubbornDuty, 5*time.Second, nil)
	c.g.Extend(time.Minute)
	c.g.Start(2)
	d := c.waitDuty(t, 0)
	guard := parentOf(t, d.pid)
	stopped := make(chan error, 1)
	go func() { stopped <- c.g.Stop("leadership ended") }()
	testwait.For(t, 5*time.Second, "the duty to get SIGTERM", exists(filepath.Join(c.dir, "termed")))
	require.False(t, processDead(d.pid))
	killed := time.Now()
	require.NoError(t, syscall.Kill(guard, syscall.SIGKILL))
	select {
	case err := <-stopped:
		assert.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return after the guard died")
	}
	assert.Less(t, time.Since(killed), time.Second+KillGrace)
	assert.True(t, processDead(d.pid), "the duty outlived its guard's stop")
	assert.Empty(t, liveInSession(guard))
	c.requireNotLost(t)
}

// TestGuardNotConfirmingAStopIsKilledWithItsSession: a stop the guard does
// not confirm within StopTimeout kills the guard and its whole session.
func TestGuardNotConfirmingAStopIsKilledWithItsSession(t *testing.T) {
	c := newGuardClient(t, stubbornDuty, 5*time.Second, func(cfg *GuardConfig) { cfg.StopTimeout = 300 * time.Millisecond })
	c.g.Extend(time.Minute)
	c.g.Start(2)
	d := c.waitDuty(t, 0)
	guard := parentOf(t, d.pid)
	began := time.Now()
	require.NoError(t, c.g.Stop("leadership ended"))
	assert.Less(t, time.Since(began), 300*time.Millisecond+KillGrace+200*time.Millisecond)
	assert.True(t, processDead(d.pid))
	assert.True(t, processDead(guard))
	assert.Equal(t, 1, c.logs.FilterMessage("duty guard did not confirm the stop; killing it and its duty's every process").Len())

	// The next term gets a new guard.
	c.g.Extend(time.Minute)
	c.g.Start(3)
	assert.Equal(t, int64(3), c.waitDuty(t, d.pid).term)
}

// TestGuardKilledWhileIdleIsNoFault: an idle guard that dies is replaced
// when the next term starts; nothing is reported lost.
func TestGuardKilledWhileIdleIsNoFault(t *testing.T) {
	c := newGuardClient(t, execDuty, 2*time.Second, nil)
	require.NoError(t, c.g.Ready())
	guard := idleGuard(t, c.dir)
	require.NoError(t, syscall.Kill(guard, syscall.SIGKILL))
	testwait.For(t, 5*time.Second, "the guard's death to be handled", func() bool {
		return c.logs.FilterMessage("duty guard gone, with every process of its session").Len() == 1
	})
	c.g.Extend(time.Minute)
	c.g.Start(4)
	assert.Equal(t, int64(4), c.waitDuty(t, 0).term)
	c.requireNotLost(t)
}
