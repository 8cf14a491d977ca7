package zktest

// Readiness probes (the srvr four-letter word) and go-zookeeper clients
// for tests.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hanode/hanode/internal/testwait"
)

// Mode sends the four-letter word srvr to addr and returns the server's mode
// ("standalone", "leader", "follower", "observer"). A server that answers but
// does not serve gives ErrNotServing; a server that does not answer within
// timeout gives a network error.
func Mode(addr string, timeout time.Duration) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(conn, "srvr"); err != nil {
		return "", err
	}
	reply, err := io.ReadAll(conn) // the server closes after its answer
	if err != nil && len(reply) == 0 {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(reply))
	for sc.Scan() {
		if mode, ok := strings.CutPrefix(sc.Text(), "Mode:"); ok {
			return strings.TrimSpace(mode), nil
		}
	}
	text := strings.TrimSpace(string(reply))
	switch {
	case strings.Contains(text, "not currently serving"):
		return "", ErrNotServing
	case text == "":
		return "", errors.New("empty srvr reply (server starting or port not yet forwarded)")
	default:
		return "", fmt.Errorf("unexpected srvr reply %q", text)
	}
}

// WaitServing waits until the server at addr answers srvr with a Mode line (any
// mode), failing the test after timeout.
func WaitServing(t testing.TB, addr string, timeout time.Duration) string {
	t.Helper()
	return WaitMode(t, addr, timeout)
}

// WaitMode waits until the server at addr reports one of modes (any mode if
// none is given) and returns it, failing the test after timeout.
func WaitMode(t testing.TB, addr string, timeout time.Duration, modes ...string) string {
	t.Helper()
	accept := anyMode
	if len(modes) > 0 {
		accept = func(m string) bool { return slices.Contains(modes, m) }
	}
	mode, err := waitMode(context.Background(), addr, timeout, accept, nil)
	if err != nil {
		t.Fatalf("zktest: %s: %v", addr, err)
	}
	return mode
}

// WaitNotServing waits until the server at addr no longer reports leader,
// follower or standalone (it answers "not serving" or not at all), failing the
// test after timeout.
func WaitNotServing(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	var mode string
	err := testwait.Poll(timeout, pollInterval, func() bool {
		var err error
		mode, err = Mode(addr, probeTimeout)
		return err != nil
	})
	if err != nil {
		t.Fatalf("zktest: %s still serves as %s after %v", addr, mode, timeout)
	}
}

func anyMode(string) bool { return true }

func quorumMode(m string) bool { return m == "leader" || m == "follower" }

func observation(mode string, err error) string {
	if err != nil {
		return err.Error()
	}
	return "mode " + mode
}

// waitMode polls srvr on addr until accept(mode), for at most timeout. alive,
// if not nil, is consulted about once a second and ends the wait early with
// its error (a container that exited).
func waitMode(ctx context.Context, addr string, timeout time.Duration, accept func(string) bool, alive func(context.Context) error) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	start := time.Now()
	last := "no answer yet"
	for n := 0; ; n++ {
		mode, err := Mode(addr, probeTimeout)
		if err == nil && accept(mode) {
			return mode, nil
		}
		last = observation(mode, err)
		if alive != nil && n%10 == 9 {
			if err := alive(ctx); err != nil {
				return "", fmt.Errorf("%w (last srvr: %s)", err, last)
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("not ready after %v (last srvr: %s)", time.Since(start).Round(time.Millisecond), last)
		case <-tick.C:
		}
	}
}

// Connect opens a go-zookeeper client to servers ("host:port,host:port"),
// logging through t.Logf, waits (at most 30 s) until it has a session, and
// closes it in t.Cleanup.
func Connect(t testing.TB, servers string, sessionTimeout time.Duration) *zk.Conn {
	t.Helper()
	var addrs []string
	for a := range strings.SplitSeq(servers, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	logger := &testLogger{t: t}
	conn, _, err := zk.Connect(addrs, sessionTimeout, zk.WithLogger(logger))
	if err != nil {
		t.Fatalf("zktest: connect %s: %v", servers, err)
	}
	t.Cleanup(func() {
		conn.Close()
		logger.stop()
	})
	if err := WaitSession(conn, 30*time.Second); err != nil {
		t.Fatalf("zktest: connect %s: %v", servers, err)
	}
	return conn
}

// WaitSession waits until conn is in StateHasSession, for at most timeout.
func WaitSession(conn *zk.Conn, timeout time.Duration) error {
	if testwait.Poll(timeout, 20*time.Millisecond, func() bool { return conn.State() == zk.StateHasSession }) != nil {
		return fmt.Errorf("no session after %v (state %v)", timeout, conn.State())
	}
	return nil
}

// testLogger forwards go-zookeeper's log to t.Logf until the test cleans up
// (t.Logf after the test ends panics).
type testLogger struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (l *testLogger) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.t.Helper()
		l.t.Logf("zk: "+format, args...)
	}
}

func (l *testLogger) stop() {
	l.mu.Lock()
	l.done = true
	l.mu.Unlock()
}
