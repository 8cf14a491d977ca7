package ping

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/internal/testwait"
)

// eventWait bounds every wait for an event that should come at once or
// within a poll.
const eventWait = 3 * time.Second

// sseEvent is one server-sent event as a client parses it.
type sseEvent struct {
	name, data, retry string
	at                time.Time
}

// liveState is a StateReader whose state a test changes.
type liveState struct{ p atomic.Pointer[ha.State] }

func newLiveState(st ha.State) *liveState {
	s := &liveState{}
	s.set(st)
	return s
}

func (s *liveState) set(st ha.State) { s.p.Store(&st) }
func (s *liveState) State() ha.State { return *s.p.Load() }

// liveServer serves h over HTTP for the test; its live streams end first
// at cleanup, so that closing the server does not wait for them.
func liveServer(t *testing.T, h *Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(h.h.streams.close)
	return srv
}

// openStream opens the live stream at url and returns its answer and its
// events, parsed as they arrive; the channel closes with the stream. The
// stream is closed at cleanup.
func openStream(t *testing.T, url string) (*http.Response, <-chan sseEvent) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+PathEvents, nil)
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = res.Body.Close() })
	events := make(chan sseEvent, 64)
	go readEvents(res.Body, events)
	return res, events
}

// readEvents parses text/event-stream from r into out, closing out at the
// end of the stream.
func readEvents(r io.Reader, out chan<- sseEvent) {
	defer close(out)
	sc := bufio.NewScanner(r)
	var ev sseEvent
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.name != "" || len(data) > 0 {
				ev.data, ev.at = strings.Join(data, "\n"), time.Now()
				out <- ev
			}
			ev, data = sseEvent{}, nil
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		case strings.HasPrefix(line, "retry: "):
			ev.retry = strings.TrimPrefix(line, "retry: ")
		}
	}
}

// nextEvent returns the next event, failing the test if none comes within
// limit or the stream ends.
func nextEvent(t *testing.T, events <-chan sseEvent, limit time.Duration) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(limit):
		t.Fatalf("no event within %v", limit)
		return sseEvent{}
	}
}

// eventWhere returns the first event whose data holds want, failing the
// test if none comes within limit.
func eventWhere(t *testing.T, events <-chan sseEvent, limit time.Duration, want string) sseEvent {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no event showing %q within %v", want, limit)
		}
		if ev := nextEvent(t, events, left); strings.Contains(ev.data, want) {
			return ev
		}
	}
}

func TestLiveStreamSendsThePageAtOnceThenEachChange(t *testing.T) {
	src := newLiveState(groupState())
	srv := liveServer(t, New(testID, src, nil))
	res, events := openStream(t, srv.URL)
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "text/event-stream; charset=utf-8", res.Header.Get("Content-Type"))
	assert.Equal(t, "no-store", res.Header.Get("Cache-Control"))

	first := nextEvent(t, events, eventWait)
	assert.Equal(t, "status", first.name)
	assert.Equal(t, "1000", first.retry, "browsers reconnect after a second")
	assert.True(t, strings.HasPrefix(first.data, `<div id="view" data-title="nsg-a · standby · leader nsg-b">`), first.data)
	assert.Contains(t, first.data, `<li class="member is-leader" data-name="nsg-b" data-role="leader">`)
	assert.NotContains(t, first.data, "<html", "only the live part")

	// nsg-b left; this standby now sees nsg-c lead: no transition of its
	// own, found by the poll.
	st := groupState()
	st.Leader, st.Term = "nsg-c", st.Term+1
	st.Members = []ha.Member{st.Members[1], st.Members[2]}
	st.Members[1].Leader = true
	src.set(st)
	ev := eventWhere(t, events, streamPoll+eventWait, `<dd id="node-leader">nsg-c</dd>`)
	assert.Contains(t, ev.data, `<li class="member is-leader" data-name="nsg-c" data-role="leader">`)
	assert.Contains(t, ev.data, `<dd class="num" id="node-term">1767225600124</dd>`)
	assert.Contains(t, ev.data, `2 members`)
}

func TestLiveStreamPushesATransitionAtOnce(t *testing.T) {
	feed := make(chan ha.Transition, 1)
	var subscribed, ended atomic.Int32
	subscribe := func() (<-chan ha.Transition, func()) {
		subscribed.Add(1)
		return feed, func() { ended.Add(1) }
	}
	srv := liveServer(t, New(testID, ha.StateFunc(groupState), nil, WithTransitions(subscribe)))
	_, events := openStream(t, srv.URL)
	nextEvent(t, events, eventWait)
	assert.EqualValues(t, 1, subscribed.Load())

	// Nothing changed, so only the transition can bring an event before
	// the heartbeat.
	sent := time.Now()
	feed <- ha.Transition{From: ha.PhaseStandby, To: ha.PhaseWaiting}
	ev := nextEvent(t, events, streamHeartbeat-time.Second)
	assert.Less(t, ev.at.Sub(sent), streamHeartbeat-time.Second)

	h := srv.Config.Handler.(*Handler)
	h.h.streams.close()
	testwait.For(t, eventWait, "the stream to end its subscription", func() bool { return ended.Load() == 1 })
}

func TestLiveStreamsAreBounded(t *testing.T) {
	h := New(testID, ha.StateFunc(groupState), nil)
	srv := liveServer(t, h)
	var closers []context.CancelFunc
	for range maxStreams {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		closers = append(closers, cancel)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+PathEvents, nil)
		require.NoError(t, err)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { _ = res.Body.Close() })
		require.Equal(t, http.StatusOK, res.StatusCode)
	}
	assert.Equal(t, maxStreams, h.h.streams.open())

	res, err := http.Get(srv.URL + PathEvents)
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	assert.Equal(t, "10", res.Header.Get("Retry-After"))
	assert.Equal(t, "too many live pages open on this node", string(body))

	// The page itself is always served.
	page, err := http.Get(srv.URL + "/")
	require.NoError(t, err)
	_ = page.Body.Close()
	assert.Equal(t, http.StatusOK, page.StatusCode)

	closers[0]()
	testwait.For(t, eventWait, "a closed stream to free its place", func() bool {
		return h.h.streams.open() == maxStreams-1
	})
	res2, events := openStream(t, srv.URL)
	assert.Equal(t, http.StatusOK, res2.StatusCode)
	nextEvent(t, events, eventWait)
}

func TestLiveStreamAnswersHEADWithHeadersOnly(t *testing.T) {
	rec := do(t, New(testID, ha.StateFunc(groupState), nil), http.MethodHead, PathEvents)
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "text/event-stream; charset=utf-8", rec.Header().Get("Content-Type"))
	assert.Empty(t, rec.Body.String())
}

// TestServeEndsLiveStreamsAtShutdown: an open page does not hold a node's
// exit for the shutdown's grace period.
func TestServeEndsLiveStreamsAtShutdown(t *testing.T) {
	ln, err := Listen(t.Context(), "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, New(testID, ha.StateFunc(groupState), nil), nil) }()
	_, events := openStream(t, "http://"+ln.Addr().String())
	nextEvent(t, events, eventWait)

	stopped := time.Now()
	cancel()
	require.NoError(t, waitServe(t, done, ShutdownTimeout+time.Second))
	assert.Less(t, time.Since(stopped), ShutdownTimeout/2, "the stream ended as the shutdown began")
	for range events { // the client sees the stream end
	}
}

// TestLiveStreamOutlivesTheServerTimeouts: the server's read and write
// timeouts bound one request; the stream is one long request and must go
// on past them. It takes readTimeout plus a second.
func TestLiveStreamOutlivesTheServerTimeouts(t *testing.T) {
	t.Parallel()
	ln, err := Listen(t.Context(), "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	t.Cleanup(func() {
		cancel()
		<-done
	})
	st := groupState()
	st.Phase, st.LeaseLeft = ha.PhaseActive, 2*time.Second // an event every leaseRefresh
	go func() { done <- Serve(ctx, ln, New(testID, ha.StateFunc(func() ha.State { return st }), nil), nil) }()

	opened := time.Now()
	_, events := openStream(t, "http://"+ln.Addr().String())
	until := opened.Add(max(readTimeout, writeTimeout) + time.Second)
	n := 0
	for {
		ev := nextEvent(t, events, leaseRefresh+eventWait)
		n++
		if ev.at.After(until) {
			break
		}
	}
	assert.GreaterOrEqual(t, n, 10, "an event every second while active")
}
