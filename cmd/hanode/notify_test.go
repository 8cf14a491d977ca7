package main

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/internal/testwait"
)

// sent records what a notifier sends, one entry per datagram.
type sent struct {
	mu   sync.Mutex
	msgs []string
}

func (s *sent) send(state string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, state)
	return true, nil
}

func (s *sent) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs...)
}

func (s *sent) count(line string) int {
	n := 0
	for _, m := range s.all() {
		for _, l := range strings.Split(m, "\n") {
			if l == line {
				n++
			}
		}
	}
	return n
}

func fakeNotifier(log *zap.Logger) (*notifier, *sent) {
	s := &sent{}
	if log == nil {
		log = zap.NewNop()
	}
	return &notifier{log: log, send: s.send}, s
}

// TestNotifierReadyOnceJoined: STATUS on every call, READY=1 only with the
// first status of a joined node, once; nothing but STATUS once stopping.
func TestNotifierReadyOnceJoined(t *testing.T) {
	n, s := fakeNotifier(nil)
	n.Status("starting: connecting to ZooKeeper", false)
	n.Status("disconnected: no session", false)
	n.Status("standby behind a (term 3)", true)
	n.Status("active in term 4", true)
	n.Stopping()
	n.Stopping()
	n.Status("stopped: shutdown", false)
	assert.Equal(t, []string{
		"STATUS=starting: connecting to ZooKeeper",
		"STATUS=disconnected: no session",
		"READY=1\nSTATUS=standby behind a (term 3)",
		"STATUS=active in term 4",
		"STOPPING=1\nSTATUS=stopping: stopping the duty and leaving the group",
		"STATUS=stopped: shutdown",
	}, s.all())
}

// TestNotifierNoReadyAfterStopping: a node that starts to stop before it
// joined never says READY=1.
func TestNotifierNoReadyAfterStopping(t *testing.T) {
	n, s := fakeNotifier(nil)
	n.Stopping()
	n.Status("standby behind a (term 3)", true)
	assert.Zero(t, s.count("READY=1"))
}

// TestNotifierReloadBrackets: a reload of a ready node is RELOADING=1 with
// MONOTONIC_USEC, then READY=1 with the status from before; a node not yet
// ready sends neither.
func TestNotifierReloadBrackets(t *testing.T) {
	n, s := fakeNotifier(nil)
	n.Reloading()()
	assert.Empty(t, s.all(), "a reload before READY notified")

	n.Status("active in term 9", true)
	done := n.Reloading()
	msgs := s.all()
	require.Len(t, msgs, 2)
	lines := strings.Split(msgs[1], "\n")
	require.Len(t, lines, 3, "%q", msgs[1])
	assert.Equal(t, "RELOADING=1", lines[0])
	assert.Regexp(t, `^MONOTONIC_USEC=[0-9]+$`, lines[1])
	assert.Equal(t, "STATUS=reloading the configuration", lines[2])
	done()
	assert.Equal(t, "READY=1\nSTATUS=active in term 9", s.all()[2])
}

// TestNotifierLogsOneSendFailure: a socket that refuses is logged once.
func TestNotifierLogsOneSendFailure(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	n := &notifier{log: zap.New(core), send: func(string) (bool, error) { return false, errors.New("refused") }}
	n.Status("a", false)
	n.Status("b", true)
	n.Stopping()
	assert.Equal(t, 1, logs.FilterMessage("cannot notify systemd (NOTIFY_SOCKET); later failures are not logged").Len())
}

// TestWatchdogPingsOnlyWhileAlive: WATCHDOG=1 at half the interval while
// alive holds; none once it fails (logged once), again when it recovers.
func TestWatchdogPingsOnlyWhileAlive(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	n, s := fakeNotifier(zap.New(core))
	var alive atomic.Bool
	alive.Store(true)
	var deadAsks atomic.Int32
	var pingsAtDeath atomic.Int32
	pingsAtDeath.Store(-1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Watchdog(ctx, 20*time.Millisecond, func() (bool, string) {
			if alive.Load() {
				return true, "turning"
			}
			if deadAsks.Add(1) == 1 {
				pingsAtDeath.Store(int32(s.count("WATCHDOG=1")))
			}
			return false, "stuck"
		})
	}()
	defer func() { cancel(); <-done }()

	testwait.For(t, 5*time.Second, "three pings", func() bool { return s.count("WATCHDOG=1") >= 3 })
	alive.Store(false)
	testwait.For(t, 5*time.Second, "three questions while stuck", func() bool { return deadAsks.Load() >= 3 })
	assert.Equal(t, int(pingsAtDeath.Load()), s.count("WATCHDOG=1"), "pings went on while the loop was stuck")
	assert.Equal(t, 1, logs.FilterMessage("watchdog pings withheld: systemd restarts hanode if this lasts").Len())

	before := s.count("WATCHDOG=1")
	alive.Store(true)
	testwait.For(t, 5*time.Second, "pings to resume", func() bool { return s.count("WATCHDOG=1") > before })
	assert.Equal(t, 1, logs.FilterMessage("watchdog pings resume").Len())
}

// TestWatchdogOffWithoutInterval: no WATCHDOG_USEC, no pings.
func TestWatchdogOffWithoutInterval(t *testing.T) {
	n, s := fakeNotifier(nil)
	n.Watchdog(context.Background(), 0, func() (bool, string) { return true, "" })
	assert.Empty(t, s.all())
}

// TestNotifierSendsToTheSocket: the production notifier writes datagrams to
// NOTIFY_SOCKET (go-systemd's daemon package).
func TestNotifierSendsToTheSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "sd") // short: a socket path has at most 107 bytes
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	require.NoError(t, err)
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)

	newNotifier(zap.NewNop()).Status("active in term 1", true)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 4096)
	k, err := conn.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "READY=1\nSTATUS=active in term 1", string(buf[:k]))
}

// TestChildEnvDropsNotifyVars: a child of hanode gets neither NOTIFY_SOCKET
// nor the watchdog's variables nor the shared secret, and everything else.
func TestChildEnvDropsNotifyVars(t *testing.T) {
	got := withoutNotifyVars([]string{"PATH=/bin", "NOTIFY_SOCKET=/run/x", "WATCHDOG_USEC=1", "WATCHDOG_PID=2",
		"NOTIFY_SOCKETS=kept", "HANODE_CLUSTER_SHARED_SECRET=s3cret", "HANODE_CLUSTER_SHARED_SECRET_OLD=old", "HOME=/root"})
	assert.Equal(t, []string{"PATH=/bin", "NOTIFY_SOCKETS=kept", "HOME=/root"}, got)
}

// TestStatusLines: what systemctl status shows after each transition, and
// which phases count as joined.
func TestStatusLines(t *testing.T) {
	for _, tc := range []struct {
		to     ha.Phase
		leader string
		want   string
		joined bool
	}{
		{ha.PhaseActive, "a", "active in term 7", true},
		{ha.PhaseStandby, "a", "standby behind a (term 7)", true},
		{ha.PhaseStandby, "", "standby, no leader known: why", true},
		{ha.PhaseWaiting, "a", "waiting: next in line, proving the previous lease ended (why)", true},
		{ha.PhaseFencing, "", "fencing the previous leader before term 7", true},
		{ha.PhaseDisconnected, "a", "disconnected: why", false},
		{ha.PhaseStarting, "", "starting: why", false},
		{ha.PhaseStopped, "", "stopped: why", false},
	} {
		t.Run(string(tc.to), func(t *testing.T) {
			assert.Equal(t, tc.want, statusLine(tc.to, 7, tc.leader, "why"))
			assert.Equal(t, tc.joined, joined(tc.to))
		})
	}
}

// TestFollowReportsTransitionsAndWhatTheyMiss: every transition is
// reported (READY=1 with the first joined one); between transitions a
// change of leader or term shows at the next refresh, and an unchanged
// line is not sent again.
func TestFollowReportsTransitionsAndWhatTheyMiss(t *testing.T) {
	n, s := fakeNotifier(nil)
	var mu sync.Mutex
	cur := ha.State{Phase: ha.PhaseStarting, Reason: "connecting to ZooKeeper"}
	var asks atomic.Int32
	state := func() ha.State {
		asks.Add(1)
		mu.Lock()
		defer mu.Unlock()
		return cur
	}
	set := func(st ha.State) {
		mu.Lock()
		defer mu.Unlock()
		cur = st
	}
	feed := make(chan ha.Transition)
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.follow(feed, state, 10*time.Millisecond)
	}()
	set(ha.State{Phase: ha.PhaseStandby, Reason: "joined as seq 1"})
	feed <- ha.Transition{From: ha.PhaseStarting, To: ha.PhaseStandby, Reason: "joined as seq 1"}
	testwait.For(t, 5*time.Second, "READY=1", func() bool { return s.count("READY=1") == 1 })
	set(ha.State{Phase: ha.PhaseStandby, Term: 3, Leader: "a", Reason: "joined as seq 1"})
	testwait.For(t, 5*time.Second, "the leader to show", func() bool { return s.count("STATUS=standby behind a (term 3)") == 1 })
	before, seen := len(s.all()), asks.Load()
	testwait.For(t, 5*time.Second, "three more refreshes", func() bool { return asks.Load() >= seen+6 })
	assert.Len(t, s.all(), before, "an unchanged status was sent again: %q", s.all())
	close(feed)
	<-done
	assert.Equal(t, []string{"READY=1\nSTATUS=standby, no leader known: joined as seq 1", "STATUS=standby behind a (term 3)"}, s.all())
}
