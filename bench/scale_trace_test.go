package bench

// A tracing TCP proxy between one ZooKeeper client and the server: it
// forwards each frame of ZooKeeper's protocol as soon as it has read it and
// records when it passed, which request it was (operation and xid), which
// reply answered it, and each watch notification (type and path). It lets
// the handover benchmark time a member's requests from outside hanode.
//
// Frames are a 4-byte length and a body. After the connect request and
// response, a request body starts with xid and opcode, a reply with xid,
// zxid and error code; xid -1 is a watch notification (type, state, path),
// -2 a ping. The proxy adds a hop through user space to every frame; the
// untraced runs give the totals without it.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// ZooKeeper opcodes (zookeeper.jute / go-zookeeper constants).
var zkOpNames = map[int32]string{
	0: "notification", 1: "create", 2: "delete", 3: "exists", 4: "getData", 5: "setData", 8: "getChildren",
	9: "sync", 11: "ping", 12: "getChildren2", 13: "check", 14: "multi", 15: "create2", 19: "createContainer",
	21: "createTTL", 100: "setAuth", 101: "setWatches", -11: "closeSession",
}

var zkEventNames = map[int32]string{1: "created", 2: "deleted", 3: "dataChanged", 4: "childrenChanged"}

func zkOpName(op int32) string {
	if s, ok := zkOpNames[op]; ok {
		return s
	}
	return fmt.Sprintf("op%d", op)
}

// wireEvent is one frame seen by the tracer.
type wireEvent struct {
	at   time.Time
	kind string // "req" (client to server), "rep" (server to client), "notify", "ping", "pong"
	op   int32  // the request's opcode (for a reply: the request it answers)
	xid  int32
	err  int32     // reply error code
	sent time.Time // for a reply: when its request passed
	path string    // a notification's; a request's (a multi's first operation's), and its reply's
	ev   int32     // notification type
	// subOps are a multi request's operations ("check member node", ...)
	// or its reply's results ("ok", "error -103": a multi fails whole; its
	// reply header says 0 either way).
	subOps []string
}

func (e wireEvent) String() string {
	switch e.kind {
	case "notify":
		return fmt.Sprintf("notify %s %s", zkEventNames[e.ev], e.path)
	case "req":
		if len(e.subOps) > 0 {
			return fmt.Sprintf("request multi [%s] %s", strings.Join(e.subOps, ", "), e.path)
		}
		if e.path != "" {
			return fmt.Sprintf("request %s %s", zkOpName(e.op), e.path)
		}
		return "request " + zkOpName(e.op)
	case "rep":
		if len(e.subOps) > 0 {
			return fmt.Sprintf("reply multi [%s] %s", strings.Join(e.subOps, ", "), e.path)
		}
		return fmt.Sprintf("reply %s %s (err %d)", zkOpName(e.op), e.path, e.err)
	case "ping", "pong":
		return e.kind
	default:
		return "request " + zkOpName(e.op)
	}
}

// tracer is a proxy for one client.
type tracer struct {
	target string
	ln     net.Listener

	mu      sync.Mutex
	events  []wireEvent
	conns   []net.Conn
	waiters []reqWaiter
	closed  bool
	wg      sync.WaitGroup
}

func startTracer(t testing.TB, target string) *tracer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &tracer{target: target, ln: ln}
	tr.wg.Add(1)
	go tr.accept()
	t.Cleanup(tr.close)
	return tr
}

func (tr *tracer) Addr() string { return tr.ln.Addr().String() }

func (tr *tracer) close() {
	_ = tr.ln.Close()
	tr.mu.Lock()
	tr.closed = true
	for _, c := range tr.conns {
		_ = c.Close()
	}
	tr.mu.Unlock()
	tr.wg.Wait()
}

func (tr *tracer) accept() {
	defer tr.wg.Done()
	for {
		c, err := tr.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.DialTimeout("tcp", tr.target, 5*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		for _, x := range []net.Conn{c, s} {
			if tc, ok := x.(*net.TCPConn); ok {
				_ = tc.SetNoDelay(true)
			}
		}
		tr.mu.Lock()
		if tr.closed {
			tr.mu.Unlock()
			_ = c.Close()
			_ = s.Close()
			return
		}
		tr.conns = append(tr.conns, c, s)
		tr.mu.Unlock()
		pending := &pendingReqs{m: map[int32]pendingReq{}}
		tr.wg.Add(2)
		go tr.pipe(c, s, true, pending)
		go tr.pipe(s, c, false, pending)
	}
}

type pendingReq struct {
	op   int32
	sent time.Time
	path string
}

type pendingReqs struct {
	mu sync.Mutex
	m  map[int32]pendingReq
}

// pipe copies frames from src to dst, recording each.
func (tr *tracer) pipe(src, dst net.Conn, fromClient bool, pending *pendingReqs) {
	defer tr.wg.Done()
	defer func() { _ = src.Close(); _ = dst.Close() }()
	var hdr [4]byte
	buf := make([]byte, 0, 4096)
	first := true // the connect request or response
	for {
		if _, err := io.ReadFull(src, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[:]))
		if n < 0 || n > 16<<20 {
			return
		}
		if cap(buf) < 4+n {
			buf = make([]byte, 0, 4+n)
		}
		buf = append(buf[:0], hdr[:]...)
		buf = buf[:4+n]
		if _, err := io.ReadFull(src, buf[4:]); err != nil {
			return
		}
		at := time.Now()
		if first {
			first = false
			if _, err := dst.Write(buf); err != nil {
				return
			}
			continue
		}
		// Record before forwarding: once the client has a reply, the test
		// may read the trace, and the reply must be in it.
		ev, ok := decodeFrame(buf[4:], fromClient, at, pending)
		if ok {
			tr.mu.Lock()
			tr.events = append(tr.events, ev)
			if ev.kind == "req" {
				kept := tr.waiters[:0]
				for _, w := range tr.waiters {
					if w.op == ev.op {
						w.ch <- ev // buffered, one use
					} else {
						kept = append(kept, w)
					}
				}
				tr.waiters = kept
			}
			tr.mu.Unlock()
		}
		if _, err := dst.Write(buf); err != nil {
			return
		}
	}
}

func decodeFrame(b []byte, fromClient bool, at time.Time, pending *pendingReqs) (wireEvent, bool) {
	if fromClient {
		if len(b) < 8 {
			return wireEvent{}, false
		}
		xid, op := int32(binary.BigEndian.Uint32(b)), int32(binary.BigEndian.Uint32(b[4:]))
		if op == 11 { // ping
			return wireEvent{at: at, kind: "ping", op: op, xid: xid}, true
		}
		path := ""
		var subOps []string
		switch op {
		case 1, 2, 3, 4, 5, 8, 12, 13, 15: // requests that start with a path
			if len(b) >= 12 {
				if n := int(int32(binary.BigEndian.Uint32(b[8:]))); n > 0 && 12+n <= len(b) {
					path = string(b[12 : 12+n])
				}
			}
		case 14: // a multi: the path of its first operation
			if len(b) >= 21 {
				if n := int(int32(binary.BigEndian.Uint32(b[17:]))); n > 0 && 21+n <= len(b) {
					path = string(b[21 : 21+n])
				}
			}
			subOps = multiOps(b[8:])
		}
		pending.mu.Lock()
		pending.m[xid] = pendingReq{op: op, sent: at, path: path}
		pending.mu.Unlock()
		return wireEvent{at: at, kind: "req", op: op, xid: xid, path: path, subOps: subOps}, true
	}
	if len(b) < 16 {
		return wireEvent{}, false
	}
	xid := int32(binary.BigEndian.Uint32(b))
	errc := int32(binary.BigEndian.Uint32(b[12:]))
	switch xid {
	case -2: // ping
		return wireEvent{at: at, kind: "pong", xid: xid}, true
	case -1:
		body := b[16:]
		if len(body) < 12 {
			return wireEvent{}, false
		}
		typ := int32(binary.BigEndian.Uint32(body))
		plen := int(int32(binary.BigEndian.Uint32(body[8:])))
		path := ""
		if plen > 0 && 12+plen <= len(body) {
			path = string(body[12 : 12+plen])
		}
		return wireEvent{at: at, kind: "notify", ev: typ, path: path, xid: xid}, true
	}
	pending.mu.Lock()
	p, ok := pending.m[xid]
	delete(pending.m, xid)
	pending.mu.Unlock()
	if !ok {
		return wireEvent{}, false
	}
	var subOps []string
	if p.op == 14 {
		subOps = multiResults(b[16:])
	}
	return wireEvent{at: at, kind: "rep", op: p.op, xid: xid, err: errc, sent: p.sent, path: p.path, subOps: subOps}, true
}

// what names the kind of znode an event concerns (" record", " member
// node", ...), "" without a path.
func (e wireEvent) what() string {
	switch p := e.path; {
	case p == "":
		return ""
	case strings.HasSuffix(p, "/leader"):
		return " record"
	case strings.Contains(p, "/members/"):
		return " member node"
	case strings.HasSuffix(p, "/members"):
		return " members/"
	case strings.Contains(p, "/names/"):
		return " name node"
	case strings.Contains(p, "/groups/"):
		return " group node"
	default:
		return " " + p[strings.LastIndexByte(p, '/')+1:] + "/ (a parent)"
	}
}

// label names an event by its kind and the kind of znode it concerns, not
// the znode itself.
func (e wireEvent) label() string {
	what := e.what()
	switch e.kind {
	case "notify":
		return "notify " + zkEventNames[e.ev] + what
	case "req":
		if len(e.subOps) > 6 {
			return "batched multi" // several groups' writes (ha/batch.go)
		}
		if len(e.subOps) > 0 {
			return "multi [" + strings.Join(e.subOps, ", ") + "]"
		}
		return zkOpName(e.op) + what
	case "rep":
		switch {
		case e.err != 0:
			return fmt.Sprintf("reply %s error %d", zkOpName(e.op), e.err)
		case e.failed():
			return fmt.Sprintf("reply multi failed [%s]", strings.Join(e.subOps, ", "))
		}
		return "reply " + zkOpName(e.op)
	}
	return e.kind
}

// failed reports whether a reply carries an error, a multi's in its results.
func (e wireEvent) failed() bool {
	if e.err != 0 {
		return true
	}
	for _, r := range e.subOps {
		if e.kind == "rep" && strings.HasPrefix(r, "error") {
			return true
		}
	}
	return false
}

// multiOps lists a multi request's operations, each as its opcode name
// and the kind of znode (label), from the body after xid and opcode: per
// operation a header (type, done, err) and the operation's record.
func multiOps(b []byte) []string {
	var out []string
	str := func() (string, bool) {
		if len(b) < 4 {
			return "", false
		}
		n := int(int32(binary.BigEndian.Uint32(b)))
		b = b[4:]
		if n < 0 {
			return "", true
		}
		if n > len(b) {
			return "", false
		}
		v := string(b[:n])
		b = b[n:]
		return v, true
	}
	skip := func(n int) bool {
		if n > len(b) {
			return false
		}
		b = b[n:]
		return true
	}
	for len(b) >= 9 {
		typ := int32(binary.BigEndian.Uint32(b))
		done := b[4] != 0
		b = b[9:]
		if done || typ == -1 {
			break
		}
		path, ok := str()
		if !ok {
			break
		}
		switch typ {
		case 2, 13: // delete, check: version
			ok = skip(4)
		case 5: // setData: data, version
			_, ok = str()
			ok = ok && skip(4)
		case 1, 15, 19, 21: // create*: data, acl, flags (createTTL: ttl)
			_, ok = str()
			if ok && len(b) >= 4 {
				n := int(int32(binary.BigEndian.Uint32(b)))
				b = b[4:]
				for i := 0; ok && i < n; i++ {
					ok = skip(4)
					_, ok2 := str()
					_, ok3 := str()
					ok = ok && ok2 && ok3
				}
				ok = ok && skip(4)
				if typ == 21 {
					ok = ok && skip(8)
				}
			}
		default:
			ok = false
		}
		out = append(out, strings.TrimSpace(zkOpName(typ)+wireEvent{kind: "x", path: path}.what()))
		if !ok {
			break
		}
	}
	return out
}

// multiResults lists a multi reply's results: "ok" or "error CODE" each.
func multiResults(b []byte) []string {
	var out []string
	for len(b) >= 9 {
		typ := int32(binary.BigEndian.Uint32(b))
		done := b[4] != 0
		b = b[9:]
		if done {
			break
		}
		switch typ {
		case -1: // error result: its code
			if len(b) < 4 {
				return out
			}
			out = append(out, fmt.Sprintf("error %d", int32(binary.BigEndian.Uint32(b))))
			b = b[4:]
		case 2, 13: // delete, check: nothing
			out = append(out, "ok")
		case 5: // setData: a stat
			out = append(out, "ok")
			if len(b) < zkStatLen {
				return out
			}
			b = b[zkStatLen:]
		default: // creates carry a path (and a stat): stop here
			out = append(out, "ok "+zkOpName(typ))
			return out
		}
	}
	return out
}

// zkStatLen is the size of a znode Stat on the wire.
const zkStatLen = 8 + 8 + 8 + 8 + 4 + 4 + 4 + 8 + 4 + 4 + 8

// nextRequest returns a channel that receives the next request of op the
// tracer forwards (at the moment it passed); one use.
func (tr *tracer) nextRequest(op int32) <-chan wireEvent {
	ch := make(chan wireEvent, 1)
	tr.mu.Lock()
	tr.waiters = append(tr.waiters, reqWaiter{op: op, ch: ch})
	tr.mu.Unlock()
	return ch
}

type reqWaiter struct {
	op int32
	ch chan wireEvent
}

// since returns the events at or after t, in order.
func (tr *tracer) since(t time.Time) []wireEvent {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []wireEvent
	for _, e := range tr.events {
		if !e.at.Before(t) {
			out = append(out, e)
		}
	}
	return out
}

// reset drops the events recorded so far.
func (tr *tracer) reset() {
	tr.mu.Lock()
	tr.events = nil
	tr.mu.Unlock()
}

var errNoEvent = errors.New("no such event")

// firstAfter returns the first event at or after t that matches.
func firstAfter(evs []wireEvent, t time.Time, match func(wireEvent) bool) (wireEvent, error) {
	for _, e := range evs {
		if !e.at.Before(t) && match(e) {
			return e, nil
		}
	}
	return wireEvent{}, errNoEvent
}
