package faultproxy

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/internal/testwait"
)

const (
	quiet  = 300 * time.Millisecond // a stalled path must stay silent this long
	prompt = 2 * time.Second        // bound on anything that should be immediate
)

// server is a real TCP server on 127.0.0.1 for the proxy's target: it echoes
// (or, as a sink, discards) what it reads and counts connections and bytes.
type server struct {
	ln       net.Listener
	echo     bool
	accepted atomic.Int64
	received atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

func startServer(t testing.TB, echo bool) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &server{ln: ln, echo: echo, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

func (s *server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.accepted.Add(1)
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				_ = c.Close()
			}()
			buf := make([]byte, 32<<10)
			for {
				n, err := c.Read(buf)
				s.received.Add(int64(n))
				if n > 0 && s.echo {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

func dial(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, prompt)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c.(*net.TCPConn)
}

// roundTrip writes msg and reads the same bytes back within prompt.
func roundTrip(t testing.TB, c net.Conn, msg string) {
	t.Helper()
	_, err := c.Write([]byte(msg))
	require.NoError(t, err)
	got := readN(t, c, len(msg), prompt)
	require.Equal(t, msg, string(got))
}

func readN(t testing.TB, c net.Conn, n int, timeout time.Duration) []byte {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(timeout)))
	buf := make([]byte, n)
	_, err := io.ReadFull(c, buf)
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Time{}))
	return buf
}

// requireSilent asserts that nothing arrives on c for d, and that the
// connection is still open: the read ends by its deadline, not by EOF or RST.
func requireSilent(t testing.TB, c net.Conn, d time.Duration) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(d)))
	var b [1]byte
	n, err := c.Read(b[:])
	require.Zero(t, n, "bytes crossed a stalled path")
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "connection not open while stalled")
	require.NoError(t, c.SetReadDeadline(time.Time{}))
}

// requireReset asserts that a read on c fails promptly with RST or EOF, and
// returns how long it took.
func requireReset(t testing.TB, c net.Conn) time.Duration {
	t.Helper()
	start := time.Now()
	require.NoError(t, c.SetReadDeadline(start.Add(prompt)))
	var b [1]byte
	_, err := c.Read(b[:])
	took := time.Since(start)
	require.Error(t, err)
	require.Truef(t, isResetOrEOF(err), "want ECONNRESET or EOF, got %v", err)
	return took
}

func isResetOrEOF(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED)
}

func TestForward(t *testing.T) {
	srv := startServer(t, true)
	p := Start(t, srv.addr())
	require.True(t, strings.HasPrefix(p.Addr(), "127.0.0.1:"), p.Addr())
	require.Equal(t, ModeForward, p.Mode())
	require.Equal(t, srv.addr(), p.Target())

	a, b := dial(t, p.Addr()), dial(t, p.Addr())
	for i := range 20 {
		roundTrip(t, a, strings.Repeat("a", i+1))
		roundTrip(t, b, strings.Repeat("b", 1000*(i+1)))
	}
	require.Equal(t, 2, p.Conns())
	require.EqualValues(t, 2, srv.accepted.Load())

	// A half-close is passed on: the echo server sees EOF, answers and closes.
	_, err := a.Write([]byte("last words"))
	require.NoError(t, err)
	require.NoError(t, a.CloseWrite())
	require.NoError(t, a.SetReadDeadline(time.Now().Add(prompt)))
	rest, err := io.ReadAll(a)
	require.NoError(t, err)
	require.Equal(t, "last words", string(rest))
	testwait.For(t, prompt, "one connection", func() bool { return p.Conns() == 1 })

	require.NoError(t, b.Close())
	testwait.For(t, prompt, "no connection", func() bool { return p.Conns() == 0 })
}

func TestTargetResetIsPassedOn(t *testing.T) {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.AcceptTCP()
		if err != nil {
			return
		}
		var b [1]byte
		_, _ = c.Read(b[:])
		_ = c.SetLinger(0)
		_ = c.Close()
	}()
	p := Start(t, ln.Addr().String())
	c := dial(t, p.Addr())
	_, err = c.Write([]byte("x"))
	require.NoError(t, err)
	took := requireReset(t, c)
	t.Logf("target RST reached client in %v", took)
	<-done
	testwait.For(t, prompt, "no connection", func() bool { return p.Conns() == 0 })
}

func TestTargetDownResetsClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	target := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now
	p := Start(t, target)
	// The proxy resets the client as soon as its dial fails; that can be so
	// fast that the client's own connect reports the reset.
	nc, err := net.DialTimeout("tcp", p.Addr(), prompt)
	if err != nil {
		require.Truef(t, isResetOrEOF(err), "dial: %v", err)
		return
	}
	defer nc.Close()
	requireReset(t, nc)
}

func TestStallHoldsExistingConnection(t *testing.T) {
	srv := startServer(t, true)
	p := Start(t, srv.addr())
	c := dial(t, p.Addr())
	roundTrip(t, c, "before")
	before := srv.received.Load()

	// The proxy is now blocked reading both sockets; Stall must interrupt that.
	p.Stall()
	require.Equal(t, ModeStall, p.Mode())
	_, err := c.Write([]byte("held bytes"))
	require.NoError(t, err)
	requireSilent(t, c, quiet)
	require.Equal(t, before, srv.received.Load(), "bytes reached the target through a stalled path")
	require.Equal(t, 1, p.Conns())

	p.Heal()
	require.Equal(t, ModeForward, p.Mode())
	require.Equal(t, "held bytes", string(readN(t, c, len("held bytes"), prompt)))
	roundTrip(t, c, "after")
	require.EqualValues(t, 1, srv.accepted.Load())
}

func TestStallHoldsServerToClient(t *testing.T) {
	// The target talks first: a stalled path must hold that direction too.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	p := Start(t, ln.Addr().String())
	c := dial(t, p.Addr())
	_, err = c.Write([]byte("hi"))
	require.NoError(t, err)
	sc, err := ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { _ = sc.Close() })
	require.Equal(t, "hi", string(readN(t, sc, 2, prompt)))

	p.Stall()
	_, err = sc.Write([]byte("from server"))
	require.NoError(t, err)
	requireSilent(t, c, quiet)
	requireSilent(t, sc, 10*time.Millisecond)
	p.Heal()
	require.Equal(t, "from server", string(readN(t, c, len("from server"), prompt)))
}

func TestStallNewConnection(t *testing.T) {
	srv := startServer(t, true)
	p := Start(t, srv.addr())
	p.Stall()

	// Accepted by the proxy, but not dialled through while stalled.
	c := dial(t, p.Addr())
	_, err := c.Write([]byte("early"))
	require.NoError(t, err)
	requireSilent(t, c, quiet)
	require.Zero(t, srv.accepted.Load(), "a stalled proxy dialled the target")
	require.Equal(t, 1, p.Conns())

	p.Heal()
	require.Equal(t, "early", string(readN(t, c, len("early"), prompt)))
	require.EqualValues(t, 1, srv.accepted.Load())
}

func TestStallAppliesFlowControl(t *testing.T) {
	sink := startServer(t, false)
	p := Start(t, sink.addr())
	c := dial(t, p.Addr())
	_, err := c.Write([]byte("x"))
	require.NoError(t, err)
	testwait.For(t, prompt, "the sink to get one byte", func() bool { return sink.received.Load() == 1 })

	p.Stall()
	// Far more than the kernel buffers of both hops can hold: the writer
	// must block (TCP flow control), because the proxy stopped reading.
	big := make([]byte, 64<<20)
	require.NoError(t, c.SetWriteDeadline(time.Now().Add(500*time.Millisecond)))
	n, err := c.Write(big)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "a stalled path accepted %d bytes", n)
	require.Less(t, n, len(big))
	t.Logf("kernel buffers held %d KiB before the sender blocked", n>>10)
	require.EqualValues(t, 1, sink.received.Load(), "bytes reached the target through a stalled path")
	require.NoError(t, c.SetWriteDeadline(time.Time{}))

	p.Heal()
	want := int64(1 + n)
	testwait.For(t, 5*time.Second, fmt.Sprintf("the sink to get %d bytes", want), func() bool { return sink.received.Load() == want })
}

func TestReset(t *testing.T) {
	srv := startServer(t, true)
	p := Start(t, srv.addr())
	c := dial(t, p.Addr())
	roundTrip(t, c, "hello")

	p.Reset()
	require.Equal(t, ModeReset, p.Mode())
	took := requireReset(t, c)
	t.Logf("existing connection reset after %v", took)
	require.Zero(t, p.Conns())

	// New connections are refused while reset: the dial fails, or the
	// connection is reset before any byte is answered.
	for range 3 {
		nc, err := net.DialTimeout("tcp", p.Addr(), prompt)
		if err != nil {
			require.Truef(t, isResetOrEOF(err), "dial: %v", err)
			continue
		}
		_, _ = nc.Write([]byte("anyone?"))
		requireReset(t, nc)
		_ = nc.Close()
	}
	require.EqualValues(t, 1, srv.accepted.Load(), "a reset proxy dialled the target")

	addr := p.Addr()
	p.Heal()
	require.Equal(t, addr, p.Addr())
	roundTrip(t, dial(t, p.Addr()), "healed")
}

func TestStallThenReset(t *testing.T) {
	srv := startServer(t, true)
	p := Start(t, srv.addr())
	c := dial(t, p.Addr())
	roundTrip(t, c, "hello")
	pending := dial(t, p.Addr()) // accepted and dialled through
	roundTrip(t, pending, "too")

	p.Stall()
	late := dial(t, p.Addr()) // accepted while stalled, not dialled through
	testwait.For(t, prompt, "three connections", func() bool { return p.Conns() == 3 })
	_, err := c.Write([]byte("never"))
	require.NoError(t, err)
	requireSilent(t, c, quiet)

	p.Reset()
	for _, conn := range []net.Conn{c, pending, late} {
		requireReset(t, conn)
	}
	require.Zero(t, p.Conns())
	require.EqualValues(t, 2, srv.accepted.Load())

	p.Heal()
	roundTrip(t, dial(t, p.Addr()), "healed")
}

// TestFlappingKeepsStreamIntact flips the path between forward and stall while
// a stream crosses it, and checks every byte arrives once and in order. Under
// -race this also checks that mode changes race with nothing.
func TestFlappingKeepsStreamIntact(t *testing.T) {
	srv := startServer(t, true)
	p := Start(t, srv.addr())
	c := dial(t, p.Addr())

	data := make([]byte, 4<<20)
	_, _ = rand.Read(data)
	got := make(chan []byte, 1)
	go func() {
		var buf bytes.Buffer
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, _ = io.CopyN(&buf, c, int64(len(data)))
		got <- buf.Bytes()
	}()
	writeErr := make(chan error, 1)
	go func() {
		_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		for off := 0; off < len(data); off += 8 << 10 {
			if _, err := c.Write(data[off:min(off+8<<10, len(data))]); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	}()

	stop := make(chan struct{})
	flips := make(chan int, 1)
	go func() {
		tick := time.NewTicker(3 * time.Millisecond)
		defer tick.Stop()
		n := 0
		for {
			select {
			case <-stop:
				p.Heal()
				flips <- n
				return
			case <-tick.C:
			}
			if n%2 == 0 {
				p.Stall()
			} else {
				p.Heal()
			}
			_, _ = p.Mode(), p.Conns()
			n++
		}
	}()

	var echoed []byte
	select {
	case echoed = <-got:
	case <-time.After(60 * time.Second):
		t.Fatal("stream did not finish")
	}
	close(stop)
	t.Logf("%d mode changes during the stream", <-flips)
	require.NoError(t, <-writeErr)
	require.Equal(t, len(data), len(echoed))
	require.True(t, bytes.Equal(data, echoed), "stream corrupted by stall/heal")
	require.Equal(t, ModeForward, p.Mode())
}

// proxyGoroutines counts goroutines running this package's proxy code.
func proxyGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "faultproxy.(*Proxy)") {
			count++
		}
	}
	return count
}

func TestCloseWithStalledConnections(t *testing.T) {
	srv := startServer(t, true)
	baseline := runtime.NumGoroutine()

	p, err := New(srv.addr())
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() }) // only if the test fails before Close
	var conns []net.Conn
	for i := range 5 {
		c := dial(t, p.Addr())
		if i == 0 {
			roundTrip(t, c, "hello")
			p.Stall()
		}
		conns = append(conns, c)
	}
	// conns[1:] were accepted while stalled; conns[0] was stalled mid-life.
	for _, c := range conns {
		_, err := c.Write([]byte("stuck"))
		require.NoError(t, err)
	}
	testwait.For(t, prompt, "five connections", func() bool { return p.Conns() == 5 })
	require.Positive(t, proxyGoroutines())

	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(prompt):
		t.Fatal("Close hangs on stalled connections")
	}
	t.Logf("Close with 5 stalled connections took %v", time.Since(start))
	require.NoError(t, p.Close(), "second Close")
	require.Zero(t, p.Conns())
	// Close waited for every goroutine's wg.Done; the goroutines themselves
	// may still be returning.
	testwait.For(t, prompt, "no proxy goroutine left after Close", func() bool { return proxyGoroutines() == 0 })

	for _, c := range conns {
		requireReset(t, c)
		_ = c.Close()
	}
	_, err = net.DialTimeout("tcp", p.Addr(), prompt)
	require.Error(t, err, "a closed proxy still accepts")

	testwait.For(t, 5*time.Second, fmt.Sprintf("goroutines back to the baseline of %d", baseline), func() bool { return runtime.NumGoroutine() <= baseline })
}

func TestStartClosesInCleanup(t *testing.T) {
	srv := startServer(t, true)
	var p *Proxy
	var c net.Conn
	t.Run("inner", func(t *testing.T) {
		p = Start(t, srv.addr())
		ln, err := net.Dial("tcp", p.Addr())
		require.NoError(t, err)
		c = ln
		roundTrip(t, c, "x")
		p.Stall()
	})
	t.Cleanup(func() { _ = c.Close() })
	require.Zero(t, p.Conns())
	testwait.For(t, prompt, "no proxy goroutine left after cleanup", func() bool { return proxyGoroutines() == 0 })
	requireReset(t, c)
	// Mode changes after Close do nothing and do not panic.
	p.Stall()
	p.Reset()
	p.Heal()
}
