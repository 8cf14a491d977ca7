// Package faultproxy puts a real network fault on one client's TCP path.
//
// A Proxy listens on 127.0.0.1 and forwards every accepted connection to one
// target address. Tests give each process under test its own proxy in front of
// each server it talks to, so a fault affects that process's path only, like a
// cut cable or a firewall rule on one host. Nothing is mocked: the client's
// TCP connection stays open while the proxy stops moving bytes, and the
// kernel's flow control holds the sender exactly as on a dead path.
//
// A proxy is in one of three modes:
//
//   - forward: bytes flow both ways; half-closes (FIN) and resets (RST) seen on
//     one side are passed on to the other.
//   - stall: no byte is forwarded in either direction and the proxy stops
//     reading, so nothing is buffered beyond what the kernel already holds
//     (plus at most one read that was already complete when the stall began,
//     which is held, not forwarded). Connections stay open; no FIN or RST is
//     sent. New connections are accepted (their connect succeeds) but are not
//     dialled through to the target until the path heals.
//   - reset: every connection is closed with RST on both sides, and new
//     connections are accepted and immediately reset.
//
// Heal returns to forward: stalled connections resume and the bytes that the
// kernel held flow on, as they would on a healed path (a peer that gave up in
// the meantime then sees the other side's late bytes, FIN or RST).
//
// Approximations, compared with a real blackholed or rejecting path:
//
//   - In stall mode the SYN is answered by the local kernel, so a client's
//     connect succeeds at once, whereas on a blackholed path it would time
//     out. A ZooKeeper client therefore reports StateConnected while stalled
//     (its handshake then waits), instead of cycling through StateConnecting.
//   - In reset mode a new connection is accepted and then reset, so the
//     client's connect succeeds and its first read or write fails with
//     ECONNRESET (or EOF), instead of the connect itself being refused.
//     The listener stays open, so Addr never changes.
//   - A reset sends RST to both the client and the target, as a rejecting
//     firewall between them would; the target never learns of a stall.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// Mode names returned by Proxy.Mode.
const (
	ModeForward = "forward"
	ModeStall   = "stall"
	ModeReset   = "reset"
)

const (
	bufSize     = 32 << 10
	dialTimeout = 10 * time.Second
	acceptRetry = 10 * time.Millisecond
)

// past is a deadline that has already expired; setting it interrupts a
// blocked Read or Write at once.
var past = time.Unix(1, 0)

// Proxy forwards TCP connections from a 127.0.0.1 listener to a target.
// Its methods are safe for concurrent use.
type Proxy struct {
	target string
	ln     *net.TCPListener
	addr   string
	ctx    context.Context // cancelled by Close; bounds upstream dials
	cancel context.CancelFunc
	wg     sync.WaitGroup // accept loop and every connection goroutine

	mu      sync.Mutex
	mode    string
	changed chan struct{} // closed and replaced on every mode change
	links   map[*link]struct{}
	closed  bool
}

// link is one proxied connection: the accepted client socket and, once the
// path forwards, the socket dialled to the target.
type link struct {
	client   *net.TCPConn
	upstream *net.TCPConn  // nil until dialled; set under Proxy.mu
	done     chan struct{} // closed when the link is torn down
	dead     bool          // under Proxy.mu
	eofs     int           // directions finished by EOF, under Proxy.mu
}

// New starts a proxy listening on 127.0.0.1 at a free port, forwarding to
// target. Call Close when done.
func New(target string) (*Proxy, error) {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target:  target,
		ln:      ln,
		addr:    ln.Addr().String(),
		ctx:     ctx,
		cancel:  cancel,
		mode:    ModeForward,
		changed: make(chan struct{}),
		links:   make(map[*link]struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Start starts a proxy to target for a test; it is closed in t.Cleanup, which
// closes every connection and waits for the proxy's goroutines to end.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// Addr is the proxy's listening address, "127.0.0.1:PORT", stable for the
// proxy's life.
func (p *Proxy) Addr() string { return p.addr }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Mode reports "forward", "stall" or "reset".
func (p *Proxy) Mode() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Conns reports the number of open client connections, including those
// accepted while stalled and not yet dialled through. A connection its client
// closed while the path was stalled counts until Heal: the proxy has not read
// the FIN yet.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Stall holds the path: from its return no byte is forwarded in either
// direction, existing connections stay open, and new ones are accepted but
// held. Reads and writes in progress are interrupted; what they had not yet
// moved stays where it was.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.mode == ModeStall {
		return
	}
	p.setModeLocked(ModeStall)
	for l := range p.links {
		l.setDeadlineLocked(past)
	}
}

// Reset refuses the path: every connection, stalled or not, is closed with
// RST on both sides, and new connections are reset as soon as they are
// accepted, until Heal.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.setModeLocked(ModeReset)
	for l := range p.links {
		p.killLocked(l, true)
	}
}

// Heal forwards again: stalled connections resume with the bytes the kernel
// held, and new connections are dialled through to the target.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.mode == ModeForward {
		return
	}
	p.setModeLocked(ModeForward)
	for l := range p.links {
		l.setDeadlineLocked(time.Time{})
	}
}

// Close stops the listener, closes every connection (stalled ones too) and
// waits for the proxy's goroutines to end. Closing twice returns nil.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for l := range p.links {
		p.killLocked(l, false)
	}
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()

	p.cancel()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) setModeLocked(mode string) {
	p.mode = mode
	close(p.changed)
	p.changed = make(chan struct{})
}

// setDeadlineLocked sets the read and write deadline of both sockets; the
// zero time clears it. Errors (a socket already closed) do not matter.
func (l *link) setDeadlineLocked(d time.Time) {
	_ = l.client.SetDeadline(d)
	if l.upstream != nil {
		_ = l.upstream.SetDeadline(d)
	}
}

// killLocked tears a link down: both sockets are closed, with RST when rst is
// set, and goroutines waiting on the link wake up. It is idempotent.
func (p *Proxy) killLocked(l *link, rst bool) {
	if l.dead {
		return
	}
	l.dead = true
	close(l.done)
	delete(p.links, l)
	closeConn(l.client, rst)
	if l.upstream != nil {
		closeConn(l.upstream, rst)
	}
}

func (p *Proxy) kill(l *link, rst bool) {
	p.mu.Lock()
	p.killLocked(l, rst)
	p.mu.Unlock()
}

func closeConn(c *net.TCPConn, rst bool) {
	if rst {
		_ = c.SetLinger(0) // close sends RST instead of FIN
	}
	_ = c.Close()
}

// awaitForward blocks while the path is stalled. It reports false once the
// link is torn down (reset, peer error or Close).
func (p *Proxy) awaitForward(l *link) bool {
	for {
		p.mu.Lock()
		if l.dead {
			p.mu.Unlock()
			return false
		}
		if p.mode == ModeForward {
			p.mu.Unlock()
			return true
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-l.done:
		}
	}
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || p.ctx.Err() != nil {
				return
			}
			// A transient failure (for example too many open files):
			// back off briefly rather than spin.
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(acceptRetry):
			}
			continue
		}
		p.mu.Lock()
		switch {
		case p.closed:
			closeConn(c, false)
		case p.mode == ModeReset:
			closeConn(c, true)
		default:
			l := &link{client: c, done: make(chan struct{})}
			if p.mode == ModeStall {
				l.setDeadlineLocked(past)
			}
			p.links[l] = struct{}{}
			p.wg.Add(1)
			go p.serve(l)
		}
		p.mu.Unlock()
	}
}

// serve dials the target once the path forwards, then copies client to
// target itself while a second goroutine copies target to client.
func (p *Proxy) serve(l *link) {
	defer p.wg.Done()
	if !p.awaitForward(l) {
		return
	}
	var d net.Dialer
	ctx, cancel := context.WithTimeout(p.ctx, dialTimeout)
	nc, err := d.DialContext(ctx, "tcp", p.target)
	cancel()
	if err != nil {
		// The target refused or is unreachable: refuse the client too.
		p.kill(l, true)
		return
	}
	up := nc.(*net.TCPConn)

	p.mu.Lock()
	if l.dead {
		p.mu.Unlock()
		closeConn(up, true)
		return
	}
	l.upstream = up
	if p.mode == ModeStall {
		_ = up.SetDeadline(past)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.pipe(l, up, l.client)
	}()
	p.mu.Unlock()

	p.pipe(l, l.client, up)
}

// pipe copies src to dst while the path forwards. It waits before every read
// and every write, so a stalled path neither reads (the kernel's buffers fill
// and flow control holds the sender) nor delivers what it has read.
func (p *Proxy) pipe(l *link, src, dst *net.TCPConn) {
	buf := make([]byte, bufSize)
	for {
		if !p.awaitForward(l) {
			return
		}
		n, rerr := src.Read(buf)
		data := buf[:n]
		for len(data) > 0 {
			if !p.awaitForward(l) {
				return
			}
			m, werr := dst.Write(data)
			data = data[m:]
			if werr != nil && !isStallInterrupt(werr) {
				// The receiver is gone: reset the sender too.
				p.kill(l, true)
				return
			}
		}
		switch {
		case rerr == nil || isStallInterrupt(rerr):
			continue
		case errors.Is(rerr, io.EOF):
			// Pass the half-close on once the path forwards.
			if !p.awaitForward(l) {
				return
			}
			if err := dst.CloseWrite(); err != nil {
				p.kill(l, true)
				return
			}
			p.mu.Lock()
			l.eofs++
			if l.eofs == 2 {
				p.killLocked(l, false)
			}
			p.mu.Unlock()
			return
		default:
			// ECONNRESET from the peer, or our own close: reset both.
			p.kill(l, true)
			return
		}
	}
}

// isStallInterrupt reports whether err came from the expired deadline that
// Stall sets to interrupt a blocked read or write.
func isStallInterrupt(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}
