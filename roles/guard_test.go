package roles

import (
	"bufio"
	"context"
	"fmt"
	"io"
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

// pidDuty writes its shell's pid to $DIR/pid and runs until stopped.
const pidDuty = `echo $$ > "$DIR/pid.tmp" && mv "$DIR/pid.tmp" "$DIR/pid"; while :; do sleep 0.05; done`

// guardUnderTest runs ServeGuard on pipes, as the coordinator would.
type guardUnderTest struct {
	dir     string
	logs    *observer.ObservedLogs
	in      *io.PipeWriter
	replies chan string
	done    chan error
	signal  context.CancelFunc // a SIGTERM to the guard (notifySignals cancels its context)
}

func startGuard(t *testing.T, cfg SupervisorConfig) *guardUnderTest {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	g := &guardUnderTest{dir: t.TempDir(), logs: logs, replies: make(chan string, 64), done: make(chan error, 1)}
	if cfg.Command == "" {
		cfg.Command = pidDuty
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 500 * time.Millisecond
	}
	cfg.Env = append(os.Environ(), "DIR="+g.dir)
	cfg.Stdout, cfg.Stderr = &syncBuffer{}, &syncBuffer{}
	cfg.Logger = zap.New(core)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	g.in = inW
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			g.replies <- sc.Text()
		}
		close(g.replies)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	g.signal = cancel
	go func() {
		err := ServeGuard(ctx, inR, outW, cfg)
		_ = outW.Close()
		g.done <- err
	}()
	t.Cleanup(func() {
		_ = inW.Close()
		select {
		case <-g.done:
		case <-time.After(5 * time.Second):
			t.Error("ServeGuard did not return after its input closed")
		}
		requireNoDutyGoroutines(t)
	})
	return g
}

func (g *guardUnderTest) send(t *testing.T, line string) {
	t.Helper()
	_, err := io.WriteString(g.in, line+"\n")
	require.NoError(t, err)
}

// lease sends a lease deadline d from now.
func (g *guardUnderTest) lease(t *testing.T, d time.Duration) {
	t.Helper()
	g.send(t, fmt.Sprintf("until %d", monoNow()+int64(d)))
}

// reply waits for the guard's next line.
func (g *guardUnderTest) reply(t *testing.T) string {
	t.Helper()
	select {
	case r, ok := <-g.replies:
		require.True(t, ok, "the guard closed its replies")
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no reply from the guard within 5s")
		return ""
	}
}

func (g *guardUnderTest) dutyPID(t *testing.T) int {
	t.Helper()
	testwait.For(t, 5*time.Second, "the duty to start", exists(filepath.Join(g.dir, "pid")))
	return readPID(t, filepath.Join(g.dir, "pid"))
}

// TestGuardStopsTheDutyWhenExtensionsStop: a coordinator that froze sends
// no more extensions; the guard stops the duty on its own clock.
func TestGuardStopsTheDutyWhenExtensionsStop(t *testing.T) {
	g := startGuard(t, SupervisorConfig{})
	g.lease(t, 600*time.Millisecond)
	g.send(t, "start 7")
	pid := g.dutyPID(t)
	began := time.Now()
	testwait.For(t, 5*time.Second, "the guard to stop the duty", func() bool { return processDead(pid) })
	took := time.Since(began)
	assert.Less(t, took, 600*time.Millisecond+500*time.Millisecond+KillGrace, "duty outlived the lease by more than its stop time")
	testwait.For(t, 5*time.Second, "the stop to be logged", func() bool { return g.logs.FilterMessage("duty stopped").Len() > 0 })
	assert.Equal(t, fmt.Sprintf("started 7 %d", pid), g.reply(t))
	assert.Equal(t, "expired 7", g.reply(t), "the coordinator is told the guard stopped the duty")
}

// TestGuardLeaseIsAnAbsoluteDeadline: the lease ends at the CLOCK_MONOTONIC
// instant the coordinator sent, not a duration after the line arrived. Here
// the line arrives 400 ms after the deadline was fixed (as if the pipe or
// the scheduler had held it); the duty stops at the deadline, not 400 ms
// later.
func TestGuardLeaseIsAnAbsoluteDeadline(t *testing.T) {
	g := startGuard(t, SupervisorConfig{})
	deadline := monoNow() + int64(900*time.Millisecond)
	testwait.For(t, 5*time.Second, "the line to be 400 ms late", func() bool { return monoUntil(deadline) <= 500*time.Millisecond })
	g.send(t, fmt.Sprintf("until %d", deadline))
	g.send(t, "start 2")
	pid := g.dutyPID(t)
	testwait.For(t, 5*time.Second, "the guard to stop the duty", func() bool { return processDead(pid) })
	late := -monoUntil(deadline)
	assert.Less(t, late, 250*time.Millisecond, "the duty outlived the absolute deadline")
	assert.Greater(t, late, time.Duration(0), "the duty stopped before its lease ended")
}

// TestGuardKeepsTheDutyWhileExtended: extensions keep the duty running past
// the first deadline.
func TestGuardKeepsTheDutyWhileExtended(t *testing.T) {
	g := startGuard(t, SupervisorConfig{})
	g.lease(t, 300*time.Millisecond)
	g.send(t, "start 1")
	pid := g.dutyPID(t)
	end := time.Now().Add(900 * time.Millisecond)
	tk := time.NewTicker(100 * time.Millisecond)
	defer tk.Stop()
	for time.Now().Before(end) {
		<-tk.C
		g.lease(t, 300*time.Millisecond)
		require.False(t, processDead(pid), "the duty stopped while its lease was being extended")
	}
}

// TestGuardRefusesToStartWithoutALease: start before any lease, or after the
// lease ran out, runs nothing and is answered "refused".
func TestGuardRefusesToStartWithoutALease(t *testing.T) {
	g := startGuard(t, SupervisorConfig{})
	g.send(t, "start 1")
	assert.Equal(t, "refused 1 no lease left", g.reply(t))
	g.send(t, fmt.Sprintf("until %d", monoNow()-1))
	g.send(t, "start 2")
	assert.Equal(t, "refused 2 no lease left", g.reply(t))
	g.send(t, "extend 60000000000") // the old relative form is not a lease
	g.send(t, "start 3")
	assert.Equal(t, "refused 3 no lease left", g.reply(t))
	_, err := os.Stat(filepath.Join(g.dir, "pid"))
	assert.True(t, os.IsNotExist(err), "a duty started with no lease")
}

// TestGuardReportsEveryDutyStart: each duty process the guard starts,
// restarts included, is reported with its term and process group, and each
// end of one with how it ended.
func TestGuardReportsEveryDutyStart(t *testing.T) {
	g := startGuard(t, SupervisorConfig{
		Command:    `echo $$ >> "$DIR/pids"; sleep 0.1`,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond,
	})
	g.lease(t, time.Minute)
	g.send(t, "start 4")
	first, exit := g.reply(t), g.reply(t)
	assert.Equal(t, "exited 4 exit status 0", exit)
	second := g.reply(t)
	testwait.For(t, 5*time.Second, "the second run to note its pid", func() bool { return len(lines(t, filepath.Join(g.dir, "pids"))) >= 2 })
	g.send(t, "stop done")
	for r := g.reply(t); r != "stopped"; r = g.reply(t) {
		require.True(t, strings.HasPrefix(r, "started 4 ") || r == "exited 4 exit status 0" || r == "stopping", "unexpected reply %q", r)
	}
	pids := lines(t, filepath.Join(g.dir, "pids"))
	require.GreaterOrEqual(t, len(pids), 2)
	assert.Equal(t, "started 4 "+pids[0], first)
	assert.Equal(t, "started 4 "+pids[1], second)
	_, err := strconv.Atoi(pids[0])
	assert.NoError(t, err)
}

// TestGuardStopsTheDutyWhenTheCoordinatorGoes: its input closing (the
// coordinator died) stops the duty and ends the guard.
func TestGuardStopsTheDutyWhenTheCoordinatorGoes(t *testing.T) {
	g := startGuard(t, SupervisorConfig{})
	g.lease(t, time.Minute)
	g.send(t, "start 3")
	pid := g.dutyPID(t)
	require.NoError(t, g.in.Close())
	select {
	case <-g.done:
	case <-time.After(5 * time.Second):
		t.Fatal("guard did not end when its coordinator went away")
	}
	g.done <- nil // for cleanup
	assert.True(t, processDead(pid), "duty survived its coordinator")
}

// TestGuardConfirmsStops: each stop is acknowledged at once ("stopping":
// the coordinator takes a guard that does not for frozen) and answered once
// the duty is gone.
func TestGuardConfirmsStops(t *testing.T) {
	g := startGuard(t, SupervisorConfig{})
	g.lease(t, time.Minute)
	g.send(t, "start 5")
	pid := g.dutyPID(t)
	assert.Equal(t, fmt.Sprintf("started 5 %d", pid), g.reply(t))
	g.send(t, "stop leadership ended")
	assert.Equal(t, "stopping", g.reply(t))
	assert.Equal(t, "stopped", g.reply(t))
	assert.True(t, processDead(pid), "stop was confirmed before the duty was gone")
	assert.True(t, strings.Contains(g.logs.FilterMessage("duty stopped").All()[0].ContextMap()["reason"].(string), "leadership ended"))

	// A stop makes the guard forget its lease: the next start needs a new one.
	g.send(t, "start 6")
	assert.Equal(t, "refused 6 no lease left", g.reply(t))
}
