package ha

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"
)

// negotiatedDialer wraps connections to read the session timeout the server
// granted from the first reply frame (ConnectResponse: length, protocol
// version, timeout in ms, session id, password). go-zookeeper keeps that value
// private, and the lease must not assume more time than the server gives.
type negotiatedDialer struct {
	// tls, when set, makes every connection TLS (Access.TLS); a failed
	// handshake is logged to log, once until another error or a success
	// (go-zookeeper only logs it at debug level, and retries every second).
	tls        *tls.Config
	log        *zap.Logger
	tlsLastErr atomic.Pointer[string]

	timeoutMs atomic.Int32
	// closed is true when the server closed the last connection in order
	// (EOF) before its first reply: what a server without quorum does. A
	// reset, a read timeout (a stalled path) or our own close is a broken
	// path instead.
	closed atomic.Bool

	// dials counts the connections dialed: a connection's number is its
	// identity, and the epoch of the session it carries (Session.epoch).
	dials atomic.Uint64

	mu    sync.Mutex
	conns map[*sniffConn]struct{} // open connections, closed by closeAll
}

// closeAll closes every connection dialed so far. A replaced client may
// sit in its handshake with a server that accepted the connection and never
// answers (go-zookeeper waits 10 receive timeouts there, and Close does not
// interrupt it): closing the socket ends it, and frees its buffers, now.
func (d *negotiatedDialer) closeAll() {
	d.mu.Lock()
	conns := d.conns
	d.conns = nil
	d.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close()
	}
}

// lastClosedByServer reports whether the server closed the last connection
// before any reply.
func (d *negotiatedDialer) lastClosedByServer() bool { return d.closed.Load() }

func (d *negotiatedDialer) dial(network, address string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout(network, address, timeout)
	if err != nil {
		return nil, err
	}
	if d.tls != nil {
		if c, err = tlsHandshake(c, d.tls, address, timeout); err != nil {
			msg := err.Error()
			if old := d.tlsLastErr.Swap(&msg); d.log != nil && (old == nil || *old != msg) {
				d.log.Warn("TLS handshake with ZooKeeper failed", zap.String("server", address), zap.Error(err))
			}
			return nil, err
		}
		d.tlsLastErr.Store(nil)
	}
	d.closed.Store(false)
	d.dials.Add(1)
	sc := &sniffConn{Conn: c, d: d}
	d.mu.Lock()
	if d.conns == nil {
		d.conns = map[*sniffConn]struct{}{}
	}
	d.conns[sc] = struct{}{}
	d.mu.Unlock()
	return sc, nil
}

// Close forgets the connection and closes it.
func (c *sniffConn) Close() error {
	c.d.mu.Lock()
	delete(c.d.conns, c)
	c.d.mu.Unlock()
	return c.Conn.Close()
}

// negotiated returns the last granted session timeout, 0 if none seen yet.
func (d *negotiatedDialer) negotiated() time.Duration {
	return time.Duration(d.timeoutMs.Load()) * time.Millisecond
}

var _ zk.Dialer = (&negotiatedDialer{}).dial

type sniffConn struct {
	net.Conn
	d    *negotiatedDialer
	mu   sync.Mutex
	head []byte // first bytes read, until the timeout field is complete
	done bool
}

func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && n == 0 {
		c.mu.Lock()
		if !c.done && len(c.head) == 0 && errors.Is(err, io.EOF) {
			c.d.closed.Store(true)
		}
		c.mu.Unlock()
	}
	if n > 0 {
		c.mu.Lock()
		if !c.done {
			need := 12 - len(c.head) // length(4) + protocolVersion(4) + timeOut(4)
			if need > n {
				need = n
			}
			c.head = append(c.head, p[:need]...)
			if len(c.head) >= 12 {
				ms := int32(binary.BigEndian.Uint32(c.head[8:12]))
				if ms > 0 {
					c.d.timeoutMs.Store(ms)
				}
				c.done, c.head = true, nil
			}
		}
		c.mu.Unlock()
	}
	return n, err
}
