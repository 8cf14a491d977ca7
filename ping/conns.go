package ping

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Connections under abuse.
//
// A node must keep answering its balancers while some client holds many
// connections open without finishing a request (slowloris), or while a
// broken balancer leaks keep-alive connections, and its memory must not grow
// with the number of such connections. A cap alone would do the second and
// lock the balancers out; four measures together do both:
//
//   - Cheap waiting. A connection that has not sent a complete request is
//     read by the wire path (wire.go): a small goroutine and a 512-byte
//     buffer, not net/http's 4 KB reader, 4 KB writer and deeper stack.
//   - A cap that evicts. At most maxConns connections are open (1,024 cost
//     about 7 MB on the wire path, about 20 MB held by net/http; see
//     BENCHMARKS.md). When one more arrives, the tracker closes the
//     connection whose request has been under way longest if that is longer
//     than halfOpenGrace, else the one idle longest, else the one whose
//     request has been under way longest; never the new one. A balancer's
//     probe sends its request as soon as it connects, so it is always let in
//     and answered before it could become the oldest. The price: under such
//     a flood an idle keep-alive connection of a balancer may be closed, and
//     the balancer reconnects. The cap is lowered to half the open-file
//     limit when that is smaller, so a flood cannot make accept fail with
//     EMFILE either.
//   - Deadlines. A request must have been read and answered within
//     readHeaderTimeout of its first byte (of the accept, for the first
//     request): answers come from memory, so a request under way longer is
//     stuck on a client that sends or reads too slowly. An idle keep-alive
//     connection lasts idleTimeout. The tracker's sweep enforces both on the
//     wire path, which costs an atomic store per request where socket
//     deadlines would re-arm timers; net/http enforces its own deadlines on
//     the connections handed to it.
//   - Memory back to the OS. After a burst (the open connections fell by
//     releaseAfter from their peak) the sweep runs the collector and
//     debug.FreeOSMemory, at most once per releaseEvery, so RSS is back to
//     its idle size within a sweep instead of when the runtime's scavenger
//     gets to it, minutes later. A GOMEMLIMIT would steer the collector of
//     the whole process, ZooKeeper client included, toward a number picked
//     in advance; a release tied to the burst that caused the growth costs
//     one collection per burst and nothing otherwise.
const (
	maxConns      = 1024
	halfOpenGrace = time.Second
	sweepEvery    = time.Second
	releaseAfter  = 256
	releaseEvery  = 10 * time.Second
	// logEvery spaces the warnings about evicted connections.
	logEvery = 10 * time.Second
)

// Bits of tracked.state below the time stamp.
const (
	stateIdle int64 = 1 << iota // between requests; else a request is under way or awaited
	stateHTTP                   // served by net/http
	stateBits = 2
)

// epoch is the zero of tracked time stamps: monotonic milliseconds since
// the process started.
var epoch = time.Now()

func stamp(now time.Time, flags int64) int64 {
	return int64(now.Sub(epoch)/time.Millisecond)<<stateBits | flags
}

// tracked is one open connection.
type tracked struct {
	c net.Conn
	// state is the time stamp of the last change, shifted by stateBits,
	// with the state bits. Written by the connection's goroutine, read by
	// the tracker.
	state atomic.Int64
	i     int // index in tracker.conns, -1 once dropped; guarded by tracker.mu
}

// begin records that a request began at now, unless one was already under
// way (its deadline counts from its first byte).
func (t *tracked) begin(now time.Time) {
	if t.state.Load()&stateIdle != 0 {
		t.state.Store(stamp(now, 0))
	}
}

// progress records that a request was answered and another is under way.
func (t *tracked) progress(now time.Time) { t.state.Store(stamp(now, 0)) }

// idle records that the connection awaits its next request since now.
func (t *tracked) idle(now time.Time) { t.state.Store(stamp(now, stateIdle)) }

// setHTTP records that net/http serves the connection from now on.
func (t *tracked) setHTTP() { t.state.Store(stamp(time.Now(), stateHTTP)) }

// limits are the tracker's settings (Serve's are the constants above; tests
// shrink them).
type limits struct {
	maxConns      int
	halfOpenGrace time.Duration
	sweepEvery    time.Duration
	headerTimeout time.Duration
	idleTimeout   time.Duration
	releaseAfter  int
	releaseEvery  time.Duration
	release       func()
	// pace spaces the starts of requests other than pings (pace.go); 0:
	// none.
	pace time.Duration
}

// tracker knows every open connection of one Serve call.
type tracker struct {
	limits
	log *zap.Logger

	// closing is set when Serve shuts down.
	closing atomic.Bool

	mu          sync.Mutex
	conns       []*tracked
	peak        int // most connections open since the last release
	lastRelease time.Time
	evicted     int // since the last warning
	expired     int // since the last warning
	lastLog     time.Time
}

func newTracker(l limits, log *zap.Logger) *tracker {
	return &tracker{limits: l, log: log}
}

// add tracks a newly accepted connection, first evicting one if the cap is
// reached.
func (tr *tracker) add(c net.Conn, now time.Time) *tracked {
	t := &tracked{c: c}
	t.state.Store(stamp(now, 0))
	var victim *tracked
	tr.mu.Lock()
	if len(tr.conns) >= tr.maxConns && len(tr.conns) > 0 {
		victim = tr.victimLocked(now)
		tr.removeLocked(victim)
		tr.evicted++
	}
	t.i = len(tr.conns)
	tr.conns = append(tr.conns, t)
	tr.peak = max(tr.peak, len(tr.conns))
	tr.mu.Unlock()
	if victim != nil {
		_ = victim.c.Close()
	}
	return t
}

// victimLocked picks the connection to evict: the one whose request has
// been under way longest if that is longer than halfOpenGrace, else the one
// idle longest, else the one whose request has been under way longest.
func (tr *tracker) victimLocked(now time.Time) *tracked {
	var half, idle *tracked
	var halfAt, idleAt int64
	for _, t := range tr.conns {
		s := t.state.Load()
		at := s >> stateBits
		if s&stateIdle == 0 {
			if half == nil || at < halfAt {
				half, halfAt = t, at
			}
		} else if idle == nil || at < idleAt {
			idle, idleAt = t, at
		}
	}
	if half != nil && (idle == nil || stamp(now, 0)>>stateBits-halfAt >= tr.halfOpenGrace.Milliseconds()) {
		return half
	}
	return idle
}

func (tr *tracker) removeLocked(t *tracked) {
	if t.i < 0 {
		return
	}
	last := len(tr.conns) - 1
	tr.conns[t.i] = tr.conns[last]
	tr.conns[t.i].i = t.i
	tr.conns[last] = nil
	tr.conns = tr.conns[:last]
	t.i = -1
}

// forget stops tracking t.
func (tr *tracker) forget(t *tracked) {
	tr.mu.Lock()
	tr.removeLocked(t)
	tr.mu.Unlock()
}

// drop stops tracking t and closes its connection.
func (tr *tracker) drop(t *tracked) {
	tr.forget(t)
	_ = t.c.Close()
}

// open is the number of tracked connections.
func (tr *tracker) open() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.conns)
}

// closeWhere closes the wire-path connections whose state match selects.
func (tr *tracker) closeWhere(match func(state int64) bool) {
	var closed []*tracked
	tr.mu.Lock()
	for i := 0; i < len(tr.conns); {
		t := tr.conns[i]
		if s := t.state.Load(); s&stateHTTP == 0 && match(s) {
			tr.removeLocked(t) // moves the last one to i
			closed = append(closed, t)
			continue
		}
		i++
	}
	tr.mu.Unlock()
	for _, t := range closed {
		_ = t.c.Close()
	}
}

// connState follows the connections net/http serves (http.Server.ConnState).
func (tr *tracker) connState(c net.Conn, s http.ConnState) {
	hc, ok := c.(*httpConn)
	if !ok {
		return
	}
	switch s {
	case http.StateNew, http.StateActive:
		hc.t.state.Store(stamp(time.Now(), stateHTTP))
	case http.StateIdle:
		hc.t.state.Store(stamp(time.Now(), stateHTTP|stateIdle))
	case http.StateHijacked, http.StateClosed:
		tr.forget(hc.t)
	}
}

// run sweeps every period until stop closes.
func (tr *tracker) run(every time.Duration, stop <-chan struct{}) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			tr.sweep(now)
		}
	}
}

// sweep closes the wire connections past their deadlines, gives memory
// back after a burst and warns about evictions.
func (tr *tracker) sweep(now time.Time) {
	nowMs := stamp(now, 0) >> stateBits
	header, idle := tr.headerTimeout.Milliseconds(), tr.idleTimeout.Milliseconds()
	expired := 0
	tr.closeWhere(func(s int64) bool {
		limit := header
		if s&stateIdle != 0 {
			limit = idle
		}
		if nowMs-s>>stateBits > limit {
			expired++
			return true
		}
		return false
	})

	tr.mu.Lock()
	n := len(tr.conns)
	tr.expired += expired
	release := tr.release != nil && tr.peak-n >= tr.releaseAfter && now.Sub(tr.lastRelease) >= tr.releaseEvery
	if release {
		tr.peak, tr.lastRelease = n, now
	}
	evicted, expiredSum := tr.evicted, tr.expired
	warn := evicted > 0 && now.Sub(tr.lastLog) >= logEvery
	if warn {
		tr.evicted, tr.expired, tr.lastLog = 0, 0, now
	}
	tr.mu.Unlock()

	if warn {
		tr.log.Warn("ping: too many connections, closed the oldest", zap.Int("evicted", evicted),
			zap.Int("timed_out", expiredSum), zap.Int("open", n), zap.Int("max", tr.maxConns))
	}
	if release {
		tr.release()
		tr.log.Debug("ping: returned memory to the OS after a burst of connections", zap.Int("open", n))
	}
}

// handoffListener is the listener net/http serves: it accepts the
// connections the wire path hands over.
type handoffListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case <-l.done:
		return nil, net.ErrClosed
	default:
	}
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// push hands c to net/http; false once net/http has shut down.
func (l *handoffListener) push(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

// httpConn is a connection handed to net/http, which reads first the bytes
// the wire path read but did not answer.
type httpConn struct {
	net.Conn
	t       *tracked
	pending []byte
}

func (c *httpConn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		return c.Conn.Read(p)
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	if len(c.pending) == 0 {
		c.pending = nil
	}
	return n, nil
}

// CloseWrite lets net/http send FIN before closing, as on a *net.TCPConn.
func (c *httpConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
