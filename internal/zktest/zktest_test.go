package zktest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/internal/testwait"
)

const session = 4 * time.Second

func TestImage(t *testing.T) {
	t.Setenv(ImageEnv, "")
	assert.Equal(t, DefaultImage, Image())
	t.Setenv(ImageEnv, "zookeeper:3.9")
	assert.Equal(t, "zookeeper:3.9", Image())

	for img, local := range map[string]bool{
		"hanode-zookeeper:3.8-2":                 true,
		"registry.local:5000/hanode-zookeeper:x": true,
		"hanode-zookeeper@sha256:abc":            true,
		"zookeeper:3.9":                          false,
		"library/zookeeper":                      false,
		"hanode-zookeeper-old:1":                 false,
	} {
		assert.Equal(t, local, isLocalImage(img), img)
	}
}

func TestMissingImage(t *testing.T) {
	RequireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := requireImage(ctx, "hanode-zookeeper:no-such-tag")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "make zk-image")
	err = requireImage(ctx, "zookeeper:no-such-tag")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "docker pull")
}

func TestStandalone(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	s := Start(t)
	t.Logf("timing: Start %v (%s)", time.Since(t0).Round(time.Millisecond), s.Addr)
	addr := s.Addr
	require.True(t, strings.HasPrefix(addr, "127.0.0.1:"), addr)
	mode, err := Mode(addr, time.Second)
	require.NoError(t, err)
	assert.Equal(t, "standalone", mode)
	assertPublishedOnLoopbackOnly(t, s)

	conn := Connect(t, addr, session)
	_, err = conn.Create("/zktest", []byte("hello"), 0, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	data, _, err := conn.Get("/zktest")
	require.NoError(t, err)
	assert.Equal(t, "hello", string(data))

	t0 = time.Now()
	s.Stop(t)
	t.Logf("timing: Stop %v", time.Since(t0).Round(time.Millisecond))
	assert.False(t, s.Running())
	_, err = Mode(addr, time.Second)
	require.Error(t, err, "a stopped server must not answer srvr")

	t0 = time.Now()
	s.Restart(t)
	t.Logf("timing: Restart %v", time.Since(t0).Round(time.Millisecond))
	assert.Equal(t, addr, s.Addr, "Restart keeps the host port")
	// The old client reconnects on its own, to the same connect string.
	require.NoError(t, WaitSession(conn, 30*time.Second))
	data, _, err = conn.Get("/zktest")
	require.NoError(t, err, "data survives Stop/Restart")
	assert.Equal(t, "hello", string(data))

	t0 = time.Now()
	s.RestartWiped(t)
	t.Logf("timing: RestartWiped %v", time.Since(t0).Round(time.Millisecond))
	assert.Equal(t, addr, s.Addr, "RestartWiped keeps the host port")
	fresh := Connect(t, addr, session)
	ok, _, err := fresh.Exists("/zktest")
	require.NoError(t, err)
	assert.False(t, ok, "RestartWiped starts with an empty data dir")
}

// A 4 s session is granted as asked (tickTime 500 ms: 2 to 20 ticks, 1 s to 10 s).
func TestSessionTimeoutHonoured(t *testing.T) {
	t.Parallel()
	s := Start(t)
	logs := &captureLogger{}
	conn, _, err := zk.Connect([]string{s.Addr}, session, zk.WithLogger(logs))
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, WaitSession(conn, 30*time.Second))
	assert.Contains(t, logs.String(), "timeout=4000")
}

func TestEnsemble(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	e := StartEnsemble(t, 3)
	t.Logf("timing: StartEnsemble(3) %v (%s)", time.Since(t0).Round(time.Millisecond), e.ConnectString())

	require.Len(t, e.Servers, 3)
	parts := strings.Split(e.ConnectString(), ",")
	require.Len(t, parts, 3)
	for i, s := range e.Servers {
		assert.Equal(t, i+1, s.ID)
		assert.Equal(t, s.Addr, parts[i])
		assert.True(t, strings.HasPrefix(s.Addr, "127.0.0.1:"), s.Addr)
		assertPublishedOnLoopbackOnly(t, s)
	}

	// Written through one member, read through another.
	c1 := Connect(t, e.Servers[0].Addr, session)
	_, err := c1.Create("/ens", []byte("v1"), 0, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	c2 := Connect(t, e.Servers[1].Addr, session)
	assertRead(t, c2, "/ens", "v1")

	// One of three down (the leader): the other two still serve.
	leader := e.Leader(t, 10*time.Second)
	t0 = time.Now()
	leader.Stop(t)
	t.Logf("timing: stop leader zk%d %v", leader.ID, time.Since(t0).Round(time.Millisecond))
	var rest []*Server
	for _, s := range e.Servers {
		if s != leader {
			rest = append(rest, s)
		}
	}
	t0 = time.Now()
	for _, s := range rest {
		WaitMode(t, s.Addr, 30*time.Second, "leader", "follower")
	}
	t.Logf("timing: new quorum after leader stop %v", time.Since(t0).Round(time.Millisecond))
	all := Connect(t, e.ConnectString(), session)
	_, err = all.Create("/ens2", []byte("v2"), 0, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)

	// Two of three down: the survivor stops serving, its client loses the session.
	rest[0].Stop(t)
	survivor := rest[1]
	t0 = time.Now()
	WaitNotServing(t, survivor.Addr, 30*time.Second)
	t.Logf("timing: survivor stopped serving after %v", time.Since(t0).Round(time.Millisecond))
	require.NoError(t, waitState(all, func(s zk.State) bool { return s != zk.StateHasSession }, 30*time.Second),
		"a client of a minority must lose its connection")

	// Restore: one member through Server.Restart (it forms a quorum with the
	// survivor), the other through Ensemble.Restart.
	t0 = time.Now()
	rest[0].Restart(t)
	t.Logf("timing: member Restart with quorum regained %v", time.Since(t0).Round(time.Millisecond))
	WaitMode(t, survivor.Addr, 30*time.Second, "leader", "follower")
	t0 = time.Now()
	e.Restart(t)
	t.Logf("timing: Ensemble.Restart of the last member %v", time.Since(t0).Round(time.Millisecond))
	for _, s := range e.Servers {
		require.True(t, s.Running())
		WaitMode(t, s.Addr, 30*time.Second, "leader", "follower")
	}
	require.NoError(t, WaitSession(all, 30*time.Second))
	assertRead(t, all, "/ens2", "v2")
	c3 := Connect(t, leader.Addr, session)
	assertRead(t, c3, "/ens", "v1")
	assertRead(t, c3, "/ens2", "v2")

	// A wiped member rejoins and gets the data back from the others.
	t0 = time.Now()
	e.Servers[2].RestartWiped(t)
	t.Logf("timing: member RestartWiped %v", time.Since(t0).Round(time.Millisecond))
	c4 := Connect(t, e.Servers[2].Addr, session)
	assertRead(t, c4, "/ens2", "v2")
}

// Only 2181 is published, and only on 127.0.0.1 at the server's port.
func assertPublishedOnLoopbackOnly(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := s.ctr.Inspect(ctx)
	require.NoError(t, err)
	var got []string
	for port, bindings := range info.HostConfig.PortBindings {
		for _, b := range bindings {
			got = append(got, fmt.Sprintf("%s->%s:%s", port, b.HostIP, b.HostPort))
		}
	}
	_, hostPort, _ := strings.Cut(s.Addr, ":")
	assert.Equal(t, []string{"2181/tcp->127.0.0.1:" + hostPort}, got)
	assert.Equal(t, map[bool]string{true: "member", false: "standalone"}[s.ens != nil], info.Config.Labels[LabelKey])
	assert.Equal(t, "true", info.Config.Labels["org.testcontainers"])
}

func assertRead(t *testing.T, conn *zk.Conn, path, want string) {
	t.Helper()
	// A member may lag the leader: sync first.
	_, err := conn.Sync(path)
	require.NoError(t, err)
	data, _, err := conn.Get(path)
	require.NoError(t, err)
	assert.Equal(t, want, string(data))
}

func waitState(conn *zk.Conn, ok func(zk.State) bool, timeout time.Duration) error {
	if testwait.Poll(timeout, 20*time.Millisecond, func() bool { return ok(conn.State()) }) != nil {
		return fmt.Errorf("state still %v after %v", conn.State(), timeout)
	}
	return nil
}

func TestModeNoServer(t *testing.T) {
	port, err := freePort()
	require.NoError(t, err)
	_, err = Mode(fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	require.Error(t, err)
	assert.False(t, errors.Is(err, ErrNotServing))
}

type captureLogger struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *captureLogger) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.b, format+"\n", args...)
}

func (l *captureLogger) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
