package roles

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pidDuty writes its shell's pid to $DIR/pid and runs until stopped.
const pidDuty = `echo $$ > "$DIR/pid.tmp" && mv "$DIR/pid.tmp" "$DIR/pid"; while :; do sleep 0.05; done`

// guardUnderTest runs ServeGuard on pipes, as the coordinator would.
type guardUnderTest struct {
	h       *harness
	in      *io.PipeWriter
	replies *bufio.Scanner
	done    chan error
}

func startGuard(t *testing.T) *guardUnderTest {
	t.Helper()
	h := newHarness(t, SupervisorConfig{Command: pidDuty, StopTimeout: 500 * time.Millisecond})
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	g := &guardUnderTest{h: h, in: inW, replies: bufio.NewScanner(outR), done: make(chan error, 1)}
	go func() { g.done <- ServeGuard(context.Background(), inR, outW, h.s, nil) }()
	t.Cleanup(func() {
		_ = inW.Close()
		select {
		case <-g.done:
		case <-time.After(5 * time.Second):
			t.Error("ServeGuard did not return after its input closed")
		}
	})
	return g
}

func (g *guardUnderTest) send(t *testing.T, line string) {
	t.Helper()
	_, err := io.WriteString(g.in, line+"\n")
	require.NoError(t, err)
}

func (g *guardUnderTest) dutyPID(t *testing.T) int {
	t.Helper()
	waitFor(t, 5*time.Second, "the duty to start", exists(filepath.Join(g.h.dir, "pid")))
	return readPID(t, filepath.Join(g.h.dir, "pid"))
}

// TestGuardStopsTheDutyWhenExtensionsStop: a coordinator that froze sends
// no more extensions; the guard stops the duty on its own clock.
func TestGuardStopsTheDutyWhenExtensionsStop(t *testing.T) {
	g := startGuard(t)
	g.send(t, "extend 600000000") // 600 ms
	g.send(t, "start 7")
	pid := g.dutyPID(t)
	began := time.Now()
	waitFor(t, 5*time.Second, "the guard to stop the duty", func() bool { return processDead(pid) })
	took := time.Since(began)
	assert.Less(t, took, 600*time.Millisecond+500*time.Millisecond+KillGrace, "duty outlived the lease by more than its stop time")
	waitFor(t, 5*time.Second, "the stop to be logged", func() bool { return g.h.logs.FilterMessage("duty stopped").Len() > 0 })
}

// TestGuardKeepsTheDutyWhileExtended: extensions keep the duty running past
// the first deadline.
func TestGuardKeepsTheDutyWhileExtended(t *testing.T) {
	g := startGuard(t)
	g.send(t, "extend 300000000")
	g.send(t, "start 1")
	pid := g.dutyPID(t)
	end := time.Now().Add(900 * time.Millisecond)
	tk := time.NewTicker(100 * time.Millisecond)
	defer tk.Stop()
	for time.Now().Before(end) {
		<-tk.C
		g.send(t, "extend 300000000")
		require.False(t, processDead(pid), "the duty stopped while its lease was being extended")
	}
}

// TestGuardRefusesToStartWithoutALease: start before any extension, or after
// the lease ran out, runs nothing.
func TestGuardRefusesToStartWithoutALease(t *testing.T) {
	g := startGuard(t)
	g.send(t, "start 1")
	g.send(t, "stop check") // a round trip: start has been handled
	require.True(t, g.replies.Scan())
	assert.Equal(t, "stopped", g.replies.Text())
	_, err := os.Stat(filepath.Join(g.h.dir, "pid"))
	assert.True(t, os.IsNotExist(err), "a duty started with no lease")
}

// TestGuardStopsTheDutyWhenTheCoordinatorGoes: its input closing (the
// coordinator died) stops the duty and ends the guard.
func TestGuardStopsTheDutyWhenTheCoordinatorGoes(t *testing.T) {
	g := startGuard(t)
	g.send(t, "extend 60000000000")
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

// TestGuardConfirmsStops: each stop gets one answer after the duty is gone.
func TestGuardConfirmsStops(t *testing.T) {
	g := startGuard(t)
	g.send(t, "extend 60000000000")
	g.send(t, "start 5")
	pid := g.dutyPID(t)
	g.send(t, "stop leadership ended")
	require.True(t, g.replies.Scan())
	assert.Equal(t, "stopped", g.replies.Text())
	assert.True(t, processDead(pid), "stop was confirmed before the duty was gone")
	assert.True(t, strings.Contains(g.h.logs.FilterMessage("duty stopped").All()[0].ContextMap()["reason"].(string), "leadership ended"))
}
