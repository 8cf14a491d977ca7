package ping

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/hanode/hanode/ha"
)

// The status page's live stream.
//
// GET /v2/status/events is a text/event-stream (server-sent events). Each
// event is named "status" and carries, as its data, the HTML of the page's
// live part rendered like the page itself, so the page's script only swaps
// it in and one template draws both. An event goes out:
//
//   - at once when the stream opens;
//   - at once on each of this node's transitions, when New was given a feed
//     of them (WithTransitions);
//   - within streamPoll of any other change of what the page shows (a new
//     leader seen by a standby, a member joining, the duty), found by
//     reading the StateReader, which costs an atomic load, every streamPoll;
//   - every leaseRefresh while the node is active, with its lease left;
//   - every streamHeartbeat otherwise: the page takes a stream silent for
//     three heartbeats for dead and opens a new one, and a write to a client
//     that went away fails and frees its place.
//
// At most maxStreams streams are open at once; more answer 503 and the page
// stays a snapshot, trying again later. A stream lasts at most streamMaxAge
// (a client that vanished without closing its connection holds its place no
// longer); the browser then reconnects by itself. Streams end when Serve
// shuts down, so an open page never delays a node's exit.

// PathEvents is the live stream's route.
const PathEvents = "/v2/status/events"

const (
	maxStreams      = 16
	streamPoll      = 200 * time.Millisecond
	leaseRefresh    = time.Second
	streamHeartbeat = 5 * time.Second
	streamMaxAge    = 10 * time.Minute
	// streamRetry is the reconnection delay the stream asks of browsers.
	streamRetry = 1 * time.Second
)

// Option configures New.
type Option func(*handler)

// WithTransitions gives the live stream a feed of this node's transitions
// (ha.Election.Subscribe): each reaches open status pages as it happens
// instead of at the next poll. subscribe returns the feed and a function
// that ends it.
func WithTransitions(subscribe func() (<-chan ha.Transition, func())) Option {
	return func(h *handler) { h.subscribe = subscribe }
}

// streams bounds and ends the live streams of one Handler.
type streams struct {
	slots chan struct{}
	quit  chan struct{}
	once  sync.Once
}

func newStreams(n int) *streams {
	return &streams{slots: make(chan struct{}, n), quit: make(chan struct{})}
}

// acquire takes a place for a stream, false when none is free.
func (s *streams) acquire() bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s *streams) release() { <-s.slots }

// open is the number of streams open now.
func (s *streams) open() int { return len(s.slots) }

// close ends every stream, now and later (http.Server.RegisterOnShutdown).
func (s *streams) close() { s.once.Do(func() { close(s.quit) }) }

// events serves the live stream.
func (h *handler) events(c echo.Context) error {
	res := c.Response()
	hdr := res.Header()
	if !h.streams.acquire() {
		hdr.Set("Retry-After", "10")
		return writeText(c, http.StatusServiceUnavailable, []byte("too many live pages open on this node"))
	}
	defer h.streams.release()
	hdr.Set(echo.HeaderContentType, "text/event-stream; charset=utf-8")
	hdr.Set(echo.HeaderCacheControl, "no-store")
	hdr.Set("X-Accel-Buffering", "no") // a reverse proxy must not hold events back
	if c.Request().Method == http.MethodHead {
		res.WriteHeader(http.StatusOK)
		return nil
	}
	// The server's write deadline covers one answer, and the stream is
	// one long answer: each event moves it (send). net/http already lifts
	// the read deadline while a handler runs, and a client that goes away
	// ends the request's context.
	rc := http.NewResponseController(res)
	res.WriteHeader(http.StatusOK)

	var feed <-chan ha.Transition
	if h.subscribe != nil {
		var stop func()
		feed, stop = h.subscribe()
		defer stop()
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), streamMaxAge)
	defer cancel()
	s := stream{w: res, rc: rc, id: h.id}
	err := s.run(ctx, h.src, feed, h.streams.quit, h.now)
	if err != nil {
		if ce := h.log.Check(zap.DebugLevel, "ping: live stream ended"); ce != nil {
			ce.Write(zap.String("remote", c.Request().RemoteAddr), zap.Error(err))
		}
	}
	return nil // the answer is under way: nothing to add
}

// stream is one client's live stream.
type stream struct {
	w  io.Writer
	rc *http.ResponseController
	id Identity
	// frag is the rendered fragment, buf the event around it.
	frag, buf bytes.Buffer
	// sent is the state of the last event, lease left zeroed; at when it
	// went out.
	sent ha.State
	at   time.Time
}

// run sends events until ctx ends, quit closes or a write fails. It
// returns nil when ctx ended or quit closed, else the write's error.
func (s *stream) run(ctx context.Context, src ha.StateReader, feed <-chan ha.Transition, quit <-chan struct{},
	now func() time.Time) error {
	if err := s.send(src.State(), now(), true); err != nil {
		return err
	}
	tick := time.NewTicker(streamPoll)
	defer tick.Stop()
	for {
		force := false
		select {
		case <-ctx.Done():
			return nil
		case <-quit:
			return nil
		case _, ok := <-feed:
			if !ok {
				feed = nil // the election ended; polling goes on
			}
			force = ok
		case <-tick.C:
		}
		if err := s.send(src.State(), now(), force); err != nil {
			return err
		}
	}
}

// send writes an event for st when force is set, when st differs from the
// last one sent in anything but the lease left, or when the last event is
// older than leaseRefresh (active) or streamHeartbeat (otherwise).
func (s *stream) send(st ha.State, now time.Time, force bool) error {
	key := st
	key.LeaseLeft = 0
	every := streamHeartbeat
	if st.Phase == ha.PhaseActive {
		every = leaseRefresh
	}
	if !force && now.Sub(s.at) < every && reflect.DeepEqual(key, s.sent) {
		return nil
	}
	first := s.at.IsZero()
	s.sent, s.at = key, now

	s.frag.Reset()
	if err := renderLive(&s.frag, s.id, st, now); err != nil {
		return err
	}
	s.buf.Reset()
	if first {
		s.buf.WriteString("retry: " + strconv.FormatInt(streamRetry.Milliseconds(), 10) + "\n")
	}
	s.buf.WriteString("event: status\n")
	for line := range bytes.Lines(s.frag.Bytes()) {
		s.buf.WriteString("data: ")
		s.buf.Write(bytes.TrimRight(line, "\r\n"))
		s.buf.WriteByte('\n')
	}
	s.buf.WriteByte('\n')
	if s.rc != nil {
		_ = s.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	}
	if _, err := s.w.Write(s.buf.Bytes()); err != nil {
		return err
	}
	if s.rc != nil {
		return s.rc.Flush()
	}
	return nil
}
