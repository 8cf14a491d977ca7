package ping

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/hanode/hanode/ha"
)

// Identity is what a node is, fixed at start.
type Identity struct {
	Name, Role, Region, HAID, NetID, Version string
}

// Route paths, in echo's syntax.
const (
	PathPing   = "/v2/ping/net/:netid/"
	PathPingSE = "/v2/ping/net/:netid/se/"
	PathStatus = "/v2/status"
)

// Ping bodies. No trailing newline: NetSpyGlass's balancer contract is that
// the body "says ok", and some checks compare the whole body.
const (
	BodyOK      = "ok"
	BodyStandby = "standby"
)

var (
	bodyOK      = []byte(BodyOK)
	bodyStandby = []byte(BodyStandby)

	// allowed is the Allow header of every 405: all routes are GET and HEAD.
	allowed = "GET, HEAD"
	// methods are registered explicitly: echo answers HEAD on a GET-only route
	// with 405.
	methods = []string{http.MethodGet, http.MethodHead}
)

// New returns the node's HTTP handler with the ping and status routes (see the
// package comment). The two ping routes are answered by a small hand-written
// path (fast.go) that allocates nothing and takes no lock; every other
// request, including pings it cannot answer byte for byte as echo would (an
// escaped netid, for instance), goes to an echo router. Served by Serve, the
// ping routes are answered on the connection itself (wire.go), before
// net/http parses anything.
//
// No request-logging middleware is installed, a panicking StateReader or
// handler answers 500 and is logged at error level with its stack, and errors
// answer short text/plain bodies instead of echo's JSON. Use the Handler as an
// http.Handler (Serve) or call its ServeHTTP directly.
//
// src is asked for the state once per answered request and must not block. A
// nil log discards. New panics if src is nil. An empty id.NetID matches no
// request, so every ping answers 404; New logs a warning then.
//
// The Handler also serves the status page at / and its live stream
// (page.go, live.go); opts configure the stream.
func New(id Identity, src ha.StateReader, log *zap.Logger, opts ...Option) *Handler {
	if src == nil {
		panic("ping: New: nil StateReader")
	}
	if log == nil {
		log = zap.NewNop()
	}
	if id.NetID == "" {
		log.Warn("ping: empty net id, every ping will answer 404")
	}
	h := &handler{id: id, src: src, log: log, now: time.Now, streams: newStreams(maxStreams)}
	for _, o := range opts {
		o(h)
	}

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.StdLogger = zap.NewStdLog(log) // used only if someone runs e.Start
	e.HTTPErrorHandler = h.handleError
	e.Use(h.recoverer)

	e.Match(methods, PathPing, h.ping(http.StatusOK))
	e.Match(methods, PathPingSE, h.ping(http.StatusServiceUnavailable))
	e.Match(methods, PathStatus, h.status)
	e.Match(methods, PathPage, h.page)
	e.Match(methods, PathEvents, h.events)
	// echo answers OPTIONS on a known path with 204. HAProxy's
	// "option httpchk <uri>" probes with OPTIONS by default, and a 2xx there
	// would mark every node, standby included, up. Refuse it like any other
	// method.
	for _, p := range []string{PathPing, PathPingSE, PathStatus, PathPage, PathEvents} {
		e.OPTIONS(p, methodNotAllowed)
	}
	return &Handler{h: h, echo: e, route: newRoute(id.NetID)}
}

// Handler is the node's HTTP handler, made by New.
type Handler struct {
	h     *handler
	echo  *echo.Echo
	route route
}

// ServeHTTP answers the two ping routes itself and hands everything else to
// echo.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if se, ok := h.route.matchRequest(r); ok {
		h.h.servePing(w, r, se)
		return
	}
	h.echo.ServeHTTP(w, r)
}

type handler struct {
	id  Identity
	src ha.StateReader
	log *zap.Logger
	now func() time.Time
	// admin serves the admin API (admin.go; nil: not mounted); adminToken
	// is the SHA-256 of its bearer token, adminOn whether one is set.
	admin      Admin
	history    HistoryReader // the group's history (history.go); nil: not mounted
	adminToken [32]byte
	adminOn    bool
	// pageCache holds the status page's last rendering (page.go).
	pageCache pageCache

	// subscribe feeds the live stream this node's transitions (nil: none).
	subscribe func() (<-chan ha.Transition, func())
	streams   *streams
	// jobs reports the scheduled jobs for /v2/status (nil: none; jobs.go).
	jobs JobsReader

	// store is the group's state area (MountState; nil: not mounted).
	store StateStore
}

// ping answers "ok" (200) when the node is active and "standby" with
// standbyCode otherwise: in every other phase, known or not.
func (h *handler) ping(standbyCode int) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !h.ownNet(c.Param("netid")) {
			return echo.ErrNotFound
		}
		st := h.src.State()
		code, body := http.StatusOK, bodyOK
		if !st.Active() {
			code, body = standbyCode, bodyStandby
		}
		err := writeText(c, code, body)
		if ce := h.log.Check(zap.DebugLevel, "ping: answered"); ce != nil {
			r := c.Request()
			ce.Write(zap.String("method", r.Method), zap.String("path", r.URL.Path),
				zap.String("remote", r.RemoteAddr), zap.Int("status", code),
				zap.String("phase", string(st.Phase)))
		}
		return err
	}
}

// ownNet reports whether a :netid path parameter names this node's network.
// echo passes the parameter still escaped when the request path had escapes.
func (h *handler) ownNet(p string) bool {
	if strings.IndexByte(p, '%') >= 0 {
		u, err := url.PathUnescape(p)
		if err != nil {
			return false
		}
		p = u
	}
	return p != "" && p == h.id.NetID
}

func methodNotAllowed(echo.Context) error { return echo.ErrMethodNotAllowed }

// writeText answers a text/plain body, headers only for HEAD.
func writeText(c echo.Context, code int, body []byte) error {
	return write(c, code, echo.MIMETextPlainCharsetUTF8, body)
}

// write answers body with Content-Length and Cache-Control: no-store; a HEAD
// request gets the same status and headers and no body.
func write(c echo.Context, code int, contentType string, body []byte) error {
	res := c.Response()
	hdr := res.Header()
	hdr.Set(echo.HeaderContentType, contentType)
	hdr.Set(echo.HeaderContentLength, strconv.Itoa(len(body)))
	hdr.Set(echo.HeaderCacheControl, "no-store")
	res.WriteHeader(code)
	if c.Request().Method == http.MethodHead {
		return nil
	}
	_, err := res.Write(body)
	return err
}

// handleError replaces echo's JSON error answers with short text ones and logs
// server errors. Routing misses (404, 405) are logged only at debug: a
// misconfigured balancer would otherwise flood the log.
func (h *handler) handleError(err error, c echo.Context) {
	r := c.Request()
	if c.Response().Committed {
		// The client went away mid-answer; nothing to tell anyone.
		if ce := h.log.Check(zap.DebugLevel, "ping: write failed"); ce != nil {
			ce.Write(zap.String("path", r.URL.Path), zap.String("remote", r.RemoteAddr), zap.Error(err))
		}
		return
	}
	code := http.StatusInternalServerError
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code = he.Code
	}
	lvl := zap.DebugLevel
	if code >= 500 {
		lvl = zap.ErrorLevel
	}
	if ce := h.log.Check(lvl, "ping: request failed"); ce != nil {
		ce.Write(zap.String("method", r.Method), zap.String("path", r.URL.Path),
			zap.String("remote", r.RemoteAddr), zap.Int("status", code), zap.Error(err))
	}
	if code == http.StatusMethodNotAllowed {
		c.Response().Header().Set(echo.HeaderAllow, allowed)
	}
	if werr := writeText(c, code, []byte(strings.ToLower(http.StatusText(code)))); werr != nil {
		if ce := h.log.Check(zap.DebugLevel, "ping: write failed"); ce != nil {
			ce.Write(zap.String("path", r.URL.Path), zap.String("remote", r.RemoteAddr), zap.Error(werr))
		}
	}
}

// recoverer turns a handler panic (for example from a buggy StateReader) into
// a 500, which no balancer reads as "ok", and logs it with its stack.
func (h *handler) recoverer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			r := c.Request()
			h.log.Error("ping: handler panicked", zap.String("method", r.Method),
				zap.String("path", r.URL.Path), zap.Any("panic", v), zap.Stack("stack"))
			err = echo.ErrInternalServerError
		}()
		return next(c)
	}
}
