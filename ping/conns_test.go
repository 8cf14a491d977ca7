package ping

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hanode/hanode/ha"
)

// testLimits are Serve's limits with a small cap, a quick sweep and no
// memory release.
func testLimits() limits {
	l := defaultLimits()
	l.maxConns = 64
	l.sweepEvery = 10 * time.Millisecond
	l.release = nil
	return l
}

const halfPing = "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\n"

// dialHalf opens a connection and sends text, a request without its end.
func dialHalf(t *testing.T, addr, text string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	if text != "" {
		_, err = io.WriteString(c, text)
		require.NoError(t, err)
	}
	return c
}

// closedWithin reports whether the server closes c within limit, discarding
// anything it sends.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) bool {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(limit)))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return true // EOF (nil from io.Copy) or a reset
}

// probe sends a balancer's probe on a new connection and returns the answer
// and how long it took.
func probe(t *testing.T, addr string) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	got := exchange(t, addr, "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: lb\r\n\r\n")
	return got, time.Since(start)
}

func TestHealthCheckIsAnsweredWhileTheCapIsFullOfHalfOpenConnections(t *testing.T) {
	lim := testLimits()
	lim.maxConns = 16
	addr := startServe(t, New(testID, fixed(ha.PhaseActive), nil), lim, nil)
	for i := range 4 * lim.maxConns {
		text := halfPing
		if i%2 == 1 {
			text = "GET / HTTP/1.1\r\nHost: x\r\n" // slowloris, handed to net/http
		}
		dialHalf(t, addr, text)
	}
	for range 20 {
		got, took := probe(t, addr)
		assert.Regexp(t, `^HTTP/1.1 200 OK\r\n(?s:.*)\r\n\r\nok$`, got)
		assert.Less(t, took, time.Second)
	}
}

func TestANewConnectionEvictsAHalfOpenOneAtTheCap(t *testing.T) {
	lim := testLimits()
	lim.maxConns = 4
	lim.halfOpenGrace = 0
	core, logs := observer.New(zapcore.WarnLevel)
	addr := startServe(t, New(testID, fixed(ha.PhaseActive), nil), lim, zap.New(core))
	var half []net.Conn
	for range lim.maxConns {
		half = append(half, dialHalf(t, addr, halfPing))
	}
	got, _ := probe(t, addr)
	assert.Contains(t, got, "\r\n\r\nok")

	closed := 0
	for _, c := range half {
		if closedWithin(t, c, 100*time.Millisecond) {
			closed++
		}
	}
	assert.Equal(t, 1, closed, "the probe took exactly one half-open connection's place")
	require.Eventually(t, func() bool {
		return logs.FilterMessage("ping: too many connections, closed the oldest").Len() == 1
	}, 5*time.Second, 10*time.Millisecond)
}

func TestAConnectionHandedToNetHTTPCountsAgainstTheCap(t *testing.T) {
	lim := testLimits()
	lim.maxConns = 2
	addr := startServe(t, New(testID, fixed(ha.PhaseActive), nil), lim, nil)

	// An idle keep-alive connection served by net/http (status is not a
	// wire-path route) is the only connection, then a probe arrives
	// while a half-open one fills the cap.
	status := dialHalf(t, addr, "GET /v2/status HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, status.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 4096)
	n, err := status.Read(buf)
	require.NoError(t, err)
	require.Contains(t, string(buf[:n]), "HTTP/1.1 200 OK")
	dialHalf(t, addr, halfPing)

	got, _ := probe(t, addr)
	assert.Contains(t, got, "\r\n\r\nok")
	assert.True(t, closedWithin(t, status, 5*time.Second), "the idle net/http connection was evicted")
}

func TestHalfOpenConnectionsTimeOut(t *testing.T) {
	lim := testLimits()
	lim.headerTimeout = 200 * time.Millisecond
	addr := startServe(t, New(testID, fixed(ha.PhaseActive), nil), lim, nil)
	for _, tc := range []struct{ name, text string }{
		{"silent", ""},
		{"half a ping", halfPing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			c := dialHalf(t, addr, tc.text)
			assert.True(t, closedWithin(t, c, 5*time.Second), "closed by the server")
			assert.GreaterOrEqual(t, time.Since(start), lim.headerTimeout)
		})
	}
}

func TestATricklingRequestTimesOutFromItsFirstByte(t *testing.T) {
	lim := testLimits()
	lim.headerTimeout = 300 * time.Millisecond
	addr := startServe(t, New(testID, fixed(ha.PhaseActive), nil), lim, nil)
	c := dialHalf(t, addr, "GET /v2/ping/net/1/se/ HTTP/1.1\r\n")

	// A header byte every 20 ms never completes the request; the deadline
	// counts from the request's first byte, not from the latest.
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_, _ = io.Copy(io.Discard, c)
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case <-closed:
			return
		case <-deadline:
			t.Fatal("a trickling request was not closed within 5 s")
		case <-tick.C:
			_, _ = c.Write([]byte("X"))
		}
	}
}

func TestIdleKeepAliveConnectionsTimeOut(t *testing.T) {
	lim := testLimits()
	lim.idleTimeout = 200 * time.Millisecond
	addr := startServe(t, New(testID, fixed(ha.PhaseActive), nil), lim, nil)
	c := dialHalf(t, addr, "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\n\r\n")
	assert.True(t, closedWithin(t, c, 5*time.Second), "closed by the server once idle")
}

func TestShutdownClosesAHalfOpenConnectionAfterTheGrace(t *testing.T) {
	ln, err := Listen(t.Context(), "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const grace = 50 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, New(testID, fixed(ha.PhaseActive), nil), nil, grace, testLimits()) }()

	c := dialHalf(t, ln.Addr().String(), halfPing)
	got, _ := probe(t, ln.Addr().String()) // the half-open one is being served too
	require.Contains(t, got, "ok")
	cancel()
	err = waitServe(t, done, grace+2*time.Second)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.True(t, closedWithin(t, c, time.Second))
}

func TestAcceptRetriesATemporaryError(t *testing.T) {
	ln, err := Listen(t.Context(), "127.0.0.1:0")
	require.NoError(t, err)
	core, logs := observer.New(zapcore.WarnLevel)
	flaky := &flakyListener{Listener: ln}
	flaky.failures.Store(2)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, flaky, New(testID, fixed(ha.PhaseActive), nil), zap.New(core), time.Second, testLimits())
	}()
	got, _ := probe(t, ln.Addr().String())
	assert.Contains(t, got, "\r\n\r\nok")
	assert.Equal(t, 2, logs.FilterMessage("ping: accept failed, retrying").Len())
	cancel()
	require.NoError(t, waitServe(t, done, 3*time.Second))
}

// flakyListener fails its first Accepts with EMFILE.
type flakyListener struct {
	net.Listener
	failures atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

// pipeConn is one end of net.Pipe that a tracker holds; other is the
// client's end, which sees EOF once the tracker closes it.
func pipeConn(t *testing.T) (mine, other net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	return a, b
}

func TestTrackerPicksItsVictim(t *testing.T) {
	base := epoch.Add(time.Hour)
	type conn struct {
		at   time.Duration // last change, after base
		idle bool
		http bool
	}
	for _, tc := range []struct {
		name   string
		conns  []conn
		now    time.Duration
		victim int
	}{
		{"the oldest half-open one, past the grace",
			[]conn{{at: 3 * time.Second}, {at: time.Second}, {at: 2 * time.Second, idle: true}}, 4 * time.Second, 1},
		{"an idle one before a request under way for less than the grace",
			[]conn{{at: 3500 * time.Millisecond}, {at: time.Second, idle: true}, {at: 2 * time.Second, idle: true}}, 4 * time.Second, 1},
		{"the oldest request under way when none is idle",
			[]conn{{at: 3900 * time.Millisecond}, {at: 3800 * time.Millisecond}, {at: 3950 * time.Millisecond}}, 4 * time.Second, 1},
		{"net/http's connections alike",
			[]conn{{at: time.Second, idle: true}, {at: 2 * time.Second, http: true}, {at: 500 * time.Millisecond, idle: true, http: true}}, 4 * time.Second, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lim := testLimits()
			lim.maxConns = len(tc.conns)
			tr := newTracker(lim, zap.NewNop())
			var others []net.Conn
			for _, c := range tc.conns {
				mine, other := pipeConn(t)
				tk := tr.add(mine, base)
				var flags int64
				if c.idle {
					flags |= stateIdle
				}
				if c.http {
					flags |= stateHTTP
				}
				tk.state.Store(stamp(base.Add(c.at), flags))
				others = append(others, other)
			}
			newest, _ := pipeConn(t)
			tr.add(newest, base.Add(tc.now))
			assert.Equal(t, len(tc.conns), tr.open(), "still at the cap")
			for i, o := range others {
				_ = o.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				_, err := o.Read(make([]byte, 1))
				if i == tc.victim {
					assert.ErrorIs(t, err, io.EOF, "connection %d is the victim", i)
				} else {
					assert.True(t, errors.Is(err, context.DeadlineExceeded) || isTimeout(err), "connection %d kept: %v", i, err)
				}
			}
		})
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestSweepExpiresWireConnectionsOnly(t *testing.T) {
	base := epoch.Add(time.Hour)
	lim := testLimits()
	lim.headerTimeout, lim.idleTimeout = 5*time.Second, time.Minute
	tr := newTracker(lim, zap.NewNop())
	cases := []struct {
		name  string
		state int64
		keep  bool
		tk    *tracked
	}{
		{name: "request under way 4 s", state: stamp(base.Add(56*time.Second), 0), keep: true},
		{name: "request under way 6 s", state: stamp(base.Add(54*time.Second), 0)},
		{name: "idle 59 s", state: stamp(base.Add(time.Second), stateIdle), keep: true},
		{name: "idle 61 s", state: stamp(base.Add(-time.Second), stateIdle)},
		{name: "net/http's, request under way 60 s (net/http times it)", state: stamp(base, stateHTTP), keep: true},
	}
	for i := range cases {
		mine, _ := pipeConn(t)
		cases[i].tk = tr.add(mine, base)
		cases[i].tk.state.Store(cases[i].state)
	}
	tr.sweep(base.Add(time.Minute))
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, c := range cases {
		assert.Equal(t, c.keep, c.tk.i >= 0, c.name)
	}
	assert.Len(t, tr.conns, 3)
}

func TestMemoryIsReturnedOnceAfterABurst(t *testing.T) {
	base := epoch.Add(time.Hour)
	lim := testLimits()
	lim.maxConns = 1000
	lim.releaseAfter, lim.releaseEvery = 100, 10*time.Second
	var releases atomic.Int32
	lim.release = func() { releases.Add(1) }
	tr := newTracker(lim, zap.NewNop())

	var burst []*tracked
	for range 150 {
		mine, _ := pipeConn(t)
		burst = append(burst, tr.add(mine, base))
	}
	tr.sweep(base.Add(time.Second))
	assert.Zero(t, releases.Load(), "no release while the connections are open")

	for _, tk := range burst[:60] {
		tr.drop(tk)
	}
	tr.sweep(base.Add(2 * time.Second))
	assert.Zero(t, releases.Load(), "60 closed of 150 is not a burst")

	for _, tk := range burst[60:] {
		tr.drop(tk)
	}
	tr.sweep(base.Add(3 * time.Second))
	assert.Equal(t, int32(1), releases.Load(), "released after the burst")
	tr.sweep(base.Add(4 * time.Second))
	assert.Equal(t, int32(1), releases.Load(), "once")

	burst = burst[:0] // a second burst within releaseEvery waits for it
	for range 150 {
		mine, _ := pipeConn(t)
		burst = append(burst, tr.add(mine, base.Add(5*time.Second)))
	}
	for _, tk := range burst {
		tr.drop(tk)
	}
	tr.sweep(base.Add(6 * time.Second))
	assert.Equal(t, int32(1), releases.Load(), "not twice within releaseEvery")
	tr.sweep(base.Add(13 * time.Second))
	assert.Equal(t, int32(2), releases.Load(), "the second burst once releaseEvery has passed")
}

func TestCapFollowsTheOpenFileLimit(t *testing.T) {
	for _, tc := range []struct {
		files uint64
		want  int
	}{
		{1 << 20, 1024},
		{2048, 1024},
		{1024, 512},
		{20, 16},
	} {
		assert.Equal(t, tc.want, capForFiles(1024, tc.files), "%d files", tc.files)
	}
}

func TestServeWithAPlainHandlerStillCapsConnections(t *testing.T) {
	lim := testLimits()
	lim.maxConns = 4
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	addr := startServe(t, ok, lim, nil)
	for range 3 * lim.maxConns {
		dialHalf(t, addr, "GET / HTTP/1.1\r\n")
	}
	got, took := probe(t, addr)
	assert.Contains(t, got, "\r\n\r\nok")
	assert.Less(t, took, time.Second)
}
