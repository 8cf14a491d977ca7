package ping

import (
	"errors"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// The ping routes on the wire.
//
// Serve reads each new connection itself before net/http sees it. A request
// it can answer exactly as net/http and echo would (a GET or HEAD of a ping
// route in HTTP/1.1 or 1.0, with a plain Host header and nothing that asks
// for a body, an upgrade or an expectation) it answers from the answers of
// fast.go, keeping the connection alive and answering pipelined requests in
// order. At the first request it cannot answer, or the first line it does not
// fully understand, it hands the connection, with every byte not yet
// answered, to net/http, which serves it to the end, 400s included. So a
// balancer's probe costs one read, one state read and one write, and an idle
// or half-open connection costs a small goroutine and a 512-byte buffer
// instead of net/http's 8 KB of buffers and deeper stack.

const (
	// wireBuffer is a connection's first read buffer: a balancer's probe
	// is 50–300 bytes.
	wireBuffer = 512
	// maxWireOut is how much of a pipelined batch's answers is gathered
	// before writing.
	maxWireOut = 4 << 10
)

// wireServer runs the wire path of one Serve call.
type wireServer struct {
	route   route    // the zero route when the handler is not a *Handler
	h       *handler // nil with the zero route: nothing is answered here
	tr      *tracker
	handoff *handoffListener
	log     *zap.Logger
}

// serveConn answers the pings on one connection until it closes, is closed
// by the tracker, or has to be handed to net/http.
func (s *wireServer) serveConn(t *tracked) {
	c := t.c
	buf := make([]byte, wireBuffer)
	var out []byte
	r, w := 0, 0 // unread input is buf[r:w]
	for {
		n, err := c.Read(buf[w:])
		now := time.Now()
		if n > 0 {
			w += n
			t.begin(now)
		}
		answered := false
		for r < w {
			req, v := s.route.parse(buf[r:w])
			if v == verdictMore {
				break
			}
			if v == verdictHandOff {
				if s.flush(t, out) {
					s.handOff(t, buf[r:w])
				}
				return
			}
			closing := req.closing || s.tr.closing.Load()
			var ok bool
			if out, ok = s.answer(t, out, &req, closing, now); !ok {
				s.tr.drop(t)
				return
			}
			r += req.n
			answered = true
			if closing || len(out) >= maxWireOut {
				if !s.flush(t, out) {
					return
				}
				out = out[:0]
			}
			if closing {
				s.linger(t, buf)
				return
			}
		}
		if !s.flush(t, out) {
			return
		}
		out = out[:0]
		if err != nil {
			if r < w && errors.Is(err, io.EOF) {
				s.handOff(t, buf[r:w]) // net/http answers a request cut short with 400
				return
			}
			s.tr.drop(t) // the client went away, or the tracker closed the connection
			return
		}
		switch {
		case r == w: // between requests
			r, w = 0, 0
			if len(buf) > wireBuffer {
				buf = make([]byte, wireBuffer) // done with a long request
			}
			t.idle(now)
			if s.tr.closing.Load() {
				s.tr.drop(t) // shutting down: an idle connection ends here
				return
			}
		case answered: // pipelined: the next request has begun
			t.progress(now)
		}
		if w == len(buf) { // an incomplete request fills the buffer
			if r > 0 {
				w = copy(buf, buf[r:w])
				r = 0
			} else { // parse hands off before this exceeds maxWireHeader
				b := make([]byte, 2*len(buf))
				copy(b, buf)
				buf = b
			}
		}
	}
}

// answer appends the answer to req to out. It is not ok when the
// StateReader panicked with http.ErrAbortHandler: the connection is dropped
// without an answer, as net/http would.
func (s *wireServer) answer(t *tracked, out []byte, req *wireRequest, closing bool, now time.Time) ([]byte, bool) {
	h := s.h
	st, p := h.readState()
	a := pick(st, req.se)
	method := http.MethodGet
	if req.head {
		method = http.MethodHead
	}
	if p != nil {
		if p == http.ErrAbortHandler {
			return out, false
		}
		h.logPanic(method, string(req.path), p)
		a = &answerPanicked
	}
	if out == nil {
		out = make([]byte, 0, 256)
	}
	out = a.appendWire(out, req, closing, now)
	if p == nil {
		if ce := h.log.Check(zap.DebugLevel, "ping: answered"); ce != nil {
			ce.Write(zap.String("method", method), zap.String("path", string(req.path)),
				zap.String("remote", t.c.RemoteAddr().String()), zap.Int("status", a.code),
				zap.String("phase", string(st.Phase)))
		}
	}
	return out, true
}

// flush writes out; on failure it drops the connection and is not ok.
// A write stuck on a client that does not read is ended by the tracker's
// sweep, which closes the connection.
func (s *wireServer) flush(t *tracked, out []byte) bool {
	if len(out) == 0 {
		return true
	}
	if _, err := t.c.Write(out); err != nil {
		if ce := s.log.Check(zap.DebugLevel, "ping: write failed"); ce != nil {
			ce.Write(zap.String("remote", t.c.RemoteAddr().String()), zap.Error(err))
		}
		s.tr.drop(t)
		return false
	}
	return true
}

// handOff gives the connection to net/http with the bytes read but not
// answered; net/http reads them first.
func (s *wireServer) handOff(t *tracked, unread []byte) {
	hc := &httpConn{Conn: t.c, t: t, pending: unread}
	t.setHTTP()
	if !s.handoff.push(hc) {
		s.tr.drop(t) // net/http has shut down
	}
}

// rstAvoidance bounds how long a connection closed after an answer waits for
// the client to close first (net/http waits as long).
const rstAvoidance = 500 * time.Millisecond

// linger ends a connection after its last answer as net/http does: it sends
// FIN, then reads and discards until the client closes or rstAvoidance
// passes, and only then closes. Closing with unread input would send a
// reset, which can destroy the answer before the client has read it.
func (s *wireServer) linger(t *tracked, buf []byte) {
	defer s.tr.drop(t)
	cw, ok := t.c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	if t.c.SetReadDeadline(time.Now().Add(rstAvoidance)) != nil {
		return
	}
	for {
		if _, err := t.c.Read(buf); err != nil {
			return
		}
	}
}
