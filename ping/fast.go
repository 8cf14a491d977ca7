package ping

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/hanode/hanode/ha"
)

// The ping routes without echo.
//
// A balancer asks constantly, so a ping is answered without routing, without
// allocating and without a lock: the path is compared with one precomputed
// prefix, the state is read once (ha.StateReader is lock-free), and the
// answer is one of four prebuilt ones. The answers are byte for byte those of
// the echo handlers below them (ping_test.go and fast_test.go compare the
// two), which still serve every request this path does not take.

// route recognises the two ping routes of one net id. It accepts a request
// only where echo would route it to a ping handler that finds its own netid;
// anything else is left to echo, whose answer is authoritative.
type route struct {
	// prefix is "/v2/ping/net/<netid>/"; "" disables the fast path.
	prefix string
}

func newRoute(netID string) route {
	if !literalSegment(netID) {
		return route{}
	}
	return route{prefix: "/v2/ping/net/" + netID + "/"}
}

// literalSegment reports whether s is non-empty and made only of bytes that
// stand for themselves in a path segment (RFC 3986 pchar, '%' excluded). Such
// a net id appears in a request exactly as configured, and echo, which
// unescapes a netid only when it holds a '%', compares the same bytes. Any
// other net id is served by echo alone.
func literalSegment(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isPathByte(s[i]) {
			return false
		}
	}
	return true
}

func isPathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@':
		return true
	}
	return false
}

// matchPath reports whether path (without query) is one of the ping routes,
// and which.
func (r route) matchPath(path string) (se, ok bool) {
	if r.prefix == "" || len(path) < len(r.prefix) || path[:len(r.prefix)] != r.prefix {
		return false, false
	}
	switch path[len(r.prefix):] {
	case "":
		return false, true
	case "se/":
		return true, true
	}
	return false, false
}

// matchRequest is matchPath for a parsed request: GET or HEAD, and a path
// without escapes (echo routes on the raw path when there is one).
func (r route) matchRequest(req *http.Request) (se, ok bool) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return false, false
	}
	if req.URL == nil || req.URL.RawPath != "" {
		return false, false
	}
	return r.matchPath(req.URL.Path)
}

// answer is one prebuilt ping answer.
type answer struct {
	code int
	body []byte
	// length is the Content-Length header value. Header value slices are
	// shared by every answer: net/http only reads them.
	length []string
	// wire is the answer from after the protocol version up to the Date
	// header's value, as net/http writes it for the echo handler.
	wire []byte
}

var (
	hdrTextPlain = []string{echo.MIMETextPlainCharsetUTF8}
	hdrNoStore   = []string{"no-store"}

	answerOK        = newAnswer(http.StatusOK, BodyOK)
	answerStandby   = newAnswer(http.StatusOK, BodyStandby)
	answerStandbySE = newAnswer(http.StatusServiceUnavailable, BodyStandby)
	answerPanicked  = newAnswer(http.StatusInternalServerError, "internal server error")
)

func newAnswer(code int, body string) answer {
	n := strconv.Itoa(len(body))
	return answer{
		code:   code,
		body:   []byte(body),
		length: []string{n},
		wire: []byte(" " + strconv.Itoa(code) + " " + http.StatusText(code) + "\r\n" +
			"Cache-Control: no-store\r\n" +
			"Content-Length: " + n + "\r\n" +
			"Content-Type: " + echo.MIMETextPlainCharsetUTF8 + "\r\n" +
			"Date: "),
	}
}

// pick is the answer for state st on the plain (se false) or the se route.
func pick(st ha.State, se bool) *answer {
	switch {
	case st.Active():
		return &answerOK
	case se:
		return &answerStandbySE
	}
	return &answerStandby
}

// readState calls src.State once, returning instead of propagating a panic.
func (h *handler) readState() (st ha.State, panicked any) {
	defer func() {
		if v := recover(); v != nil {
			panicked = v
		}
	}()
	return h.src.State(), nil
}

// logPanic logs a StateReader panic the way the echo recoverer does.
func (h *handler) logPanic(method, path string, v any) {
	h.log.Error("ping: handler panicked", zap.String("method", method),
		zap.String("path", path), zap.Any("panic", v), zap.Stack("stack"))
}

// servePing answers a ping that matchRequest accepted.
func (h *handler) servePing(w http.ResponseWriter, r *http.Request, se bool) {
	st, p := h.readState()
	a := pick(st, se)
	if p != nil {
		if p == http.ErrAbortHandler {
			panic(p) // net/http's own signal to abort the connection
		}
		h.logPanic(r.Method, r.URL.Path, p)
		a = &answerPanicked
	}
	hdr := w.Header()
	hdr["Content-Type"] = hdrTextPlain
	hdr["Content-Length"] = a.length
	hdr["Cache-Control"] = hdrNoStore
	w.WriteHeader(a.code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(a.body) // a failed write is the client's loss; net/http closes
	}
	if p == nil {
		if ce := h.log.Check(zap.DebugLevel, "ping: answered"); ce != nil {
			ce.Write(zap.String("method", r.Method), zap.String("path", r.URL.Path),
				zap.String("remote", r.RemoteAddr), zap.Int("status", a.code),
				zap.String("phase", string(st.Phase)))
		}
	}
}

// httpDate is a Date header value and the second it stands for.
type httpDate struct {
	sec int64
	b   [len(http.TimeFormat)]byte
}

// date is the latest formatted Date, shared by all connections and replaced
// once a second by whichever answer first needs the new one.
var date atomic.Pointer[httpDate]

// appendDate appends now as an HTTP date (http.TimeFormat).
func appendDate(out []byte, now time.Time) []byte {
	sec := now.Unix()
	d := date.Load()
	if d == nil || d.sec != sec {
		d = &httpDate{sec: sec}
		now.UTC().AppendFormat(d.b[:0], http.TimeFormat)
		date.Store(d)
	}
	return append(out, d.b[:]...)
}

// appendWire appends the answer to req as net/http would write it: without
// the body for HEAD, with a Connection header where net/http writes one
// (HTTP/1.1 closing, HTTP/1.0 kept alive).
func (a *answer) appendWire(out []byte, req *wireRequest, closing bool, now time.Time) []byte {
	end := "\r\n\r\n"
	if req.http10 {
		out = append(out, "HTTP/1.0"...)
		if !closing {
			end = "\r\nConnection: keep-alive\r\n\r\n"
		}
	} else {
		out = append(out, "HTTP/1.1"...)
		if closing {
			end = "\r\nConnection: close\r\n\r\n"
		}
	}
	out = append(out, a.wire...)
	out = appendDate(out, now)
	out = append(out, end...)
	if !req.head {
		out = append(out, a.body...)
	}
	return out
}
