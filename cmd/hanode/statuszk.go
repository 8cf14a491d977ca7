package main

// hanode status's ZooKeeper session: it must fail fast, naming the address
// and what went wrong, when nothing listens there or what listens is not
// ZooKeeper. go-zookeeper itself retries every server forever and logs why
// to its logger; here every connection is watched, and the dial gives up
// once every address has failed, instead of waiting out the timeout.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hanode/hanode/ha"
)

// statusSessionTimeout is the session hanode status asks for; it only
// reads, so the value matters only to how long a stalled server can hold a
// request, and a request is bounded by --timeout anyway.
const statusSessionTimeout = 10 * time.Second

// dialStatus opens a session with one of servers, bounded by ctx. It fails
// as soon as every address has failed once, each named with why (refused,
// not ZooKeeper, closed before answering), or when ctx ends, naming the
// addresses that accepted a connection but never answered.
//
// The hook for ZooKeeper credentials (issue 18's ACLs): once conf.Client
// carries them, add them here with conn.AddAuth before the first read.
func dialStatus(ctx context.Context, servers []string, access ha.Access) (*zk.Conn, error) {
	t := &dialTracker{tried: map[string]string{}, failed: make(chan struct{}, 1)}
	hosts := &zk.DNSHostProvider{}
	dial := t.dial
	if access.TLS != nil {
		dial = func(network, address string, timeout time.Duration) (net.Conn, error) {
			c, err := t.dial(network, address, timeout)
			if err != nil {
				return nil, err
			}
			return ha.TLSClient(c, access.TLS, address, timeout)
		}
	}
	conn, events, err := zk.Connect(servers, statusSessionTimeout, zk.WithDialer(dial), zk.WithHostProvider(hosts),
		zk.WithLogger(quietZKLogger{}))
	if err != nil {
		return nil, fmt.Errorf("ZooKeeper %s: %w", strings.Join(servers, ","), err)
	}
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				if err := ha.Authenticate(conn, access); err != nil {
					t.close(conn)
					return nil, err
				}
				return conn, nil
			}
		case <-t.failed:
			if t.allFailed(hosts.Len()) {
				why := t.report() // before close, whose own breakage is not news
				t.close(conn)
				return nil, fmt.Errorf("cannot read ZooKeeper at %s: %s", strings.Join(servers, ","), why)
			}
		case <-ctx.Done():
			why := t.report()
			t.close(conn)
			return nil, fmt.Errorf("no ZooKeeper session with %s within the timeout: %s", strings.Join(servers, ","), why)
		}
	}
}

// dialTracker records what happened on each address go-zookeeper dialed.
type dialTracker struct {
	mu     sync.Mutex
	tried  map[string]string // address -> the last outcome, "" while it is being tried
	fails  map[string]bool
	failed chan struct{} // a token after each failure
	open   []net.Conn    // every connection dialed, for close
}

// close gives up: go-zookeeper's Close waits up to a second for a client
// stuck in its handshake (with a server that accepted and never answers),
// so the sockets are closed first, which ends the handshake at once, and
// Close runs on its own: go-zookeeper may have dialed the silent server
// again meanwhile, and the caller, giving up, must not wait for that.
func (t *dialTracker) close(conn *zk.Conn) {
	t.mu.Lock()
	open := t.open
	t.open = nil
	t.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
	go conn.Close()
}

func (t *dialTracker) dial(network, address string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout(network, address, timeout)
	if err != nil {
		t.fail(address, dialProblem(err))
		return nil, err
	}
	t.mu.Lock()
	t.tried[address] = "accepted the connection but has not answered as ZooKeeper"
	t.open = append(t.open, c)
	t.mu.Unlock()
	return &handshakeConn{Conn: c, t: t, addr: address}, nil
}

// fail records address's failure and wakes dialStatus.
func (t *dialTracker) fail(address, why string) {
	t.mu.Lock()
	t.tried[address] = why
	if t.fails == nil {
		t.fails = map[string]bool{}
	}
	t.fails[address] = true
	t.mu.Unlock()
	select {
	case t.failed <- struct{}{}:
	default:
	}
}

// allFailed reports whether n addresses (every one the host provider has)
// have failed at least once.
func (t *dialTracker) allFailed(n int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return n > 0 && len(t.fails) >= n
}

// report names each address tried and its outcome, sorted.
func (t *dialTracker) report() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.tried) == 0 {
		return "no address was tried"
	}
	var parts []string
	for a, why := range t.tried {
		parts = append(parts, a+" "+why)
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// dialProblem words a dial error for an operator.
func dialProblem(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused the connection (is ZooKeeper running there, on that port?)"
	case errors.As(err, &ne) && ne.Timeout():
		return "did not accept a connection in time (host down or filtered?)"
	default:
		return "cannot be reached: " + shortErr(err)
	}
}

// handshakeConn checks the server's first reply: a ZooKeeper
// ConnectResponse is a frame of a few dozen bytes. A server that speaks
// another protocol (HTTP, SSH) answers with text whose first four bytes
// read as a huge length, which go-zookeeper would try to allocate and wait
// for; here it fails at once, naming what the server said.
type handshakeConn struct {
	net.Conn
	t       *dialTracker
	addr    string
	checked bool
	head    []byte
}

// maxConnectResponse bounds a ConnectResponse frame: protocol version,
// timeout, session id, a 16-byte password with its length, and the
// read-only flag make 37 bytes.
const maxConnectResponse = 256

func (c *handshakeConn) Read(p []byte) (int, error) {
	if c.checked {
		return c.Conn.Read(p)
	}
	n, err := c.Conn.Read(p)
	c.head = append(c.head, p[:n]...)
	if len(c.head) >= 4 {
		c.checked = true
		if size := binary.BigEndian.Uint32(c.head[:4]); size < 16 || size > maxConnectResponse {
			// Read a little more of what it said, briefly, for the message.
			more := make([]byte, 20)
			_ = c.Conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			m, _ := io.ReadAtLeast(c.Conn, more, len(more))
			c.head = append(c.head, more[:m]...)
			c.t.fail(c.addr, fmt.Sprintf("is not ZooKeeper: it answered %q", printable(c.head)))
			c.Conn.Close()
			return 0, errors.New("not a ZooKeeper server")
		}
		c.t.mu.Lock()
		c.t.tried[c.addr] = "answered"
		c.t.mu.Unlock()
		return n, err
	}
	if err != nil {
		why := "closed the connection before answering (a server without quorum does that)"
		if !errors.Is(err, io.EOF) {
			why = "broke the connection before answering: " + shortErr(err)
		}
		c.t.fail(c.addr, why)
	}
	return n, err
}

// printable shows at most 24 bytes of b, as text.
func printable(b []byte) string {
	if len(b) > 24 {
		b = b[:24]
	}
	return strings.ToValidUTF8(string(b), "?")
}

// quietZKLogger drops go-zookeeper's log: dialTracker says what matters.
type quietZKLogger struct{}

func (quietZKLogger) Printf(string, ...any) {}
