package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/ping"
)

// TestWatchPrintsChangesAndTheTakeover: each change of a member's answer
// is printed once, with the arrival time; a member becoming active prints
// how long before the previous one last answered active, or that both did.
func TestWatchPrintsChangesAndTheTakeover(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var out strings.Builder
	p := printer{out: &out, interval: 5 * time.Millisecond, last: map[string]observation{}}
	a, b := "http://a/v2/status", "http://b/v2/status"
	for _, ob := range []observation{
		{url: a, at: at(0), name: "a", state: "active", term: 7, leader: "a"},
		{url: b, at: at(1), name: "b", state: "standby", term: 7, leader: "a"},
		{url: a, at: at(10), name: "a", state: "active", term: 7, leader: "a"}, // no change
		{url: a, at: at(15), name: "a", state: "stopped", term: 7, leader: "a"},
		{url: a, at: at(20), state: "down", detail: "connection refused"},
		{url: b, at: at(30), name: "b", state: "active", term: 8, leader: "b"},
		{url: a, at: at(40), name: "a", state: "active", term: 9, leader: "a"}, // b never said it stopped
	} {
		p.see(ob)
	}
	want := `2026-01-02T03:04:05.000000Z  a            (new) -> active  term=7 leader=a
2026-01-02T03:04:05.001000Z  b            (new) -> standby  term=7 leader=a
2026-01-02T03:04:05.015000Z  a            active -> stopped  term=7 leader=a
2026-01-02T03:04:05.020000Z  a            stopped -> down  term=0 leader=- (connection refused)
2026-01-02T03:04:05.030000Z  b            standby -> active  term=8 leader=b
2026-01-02T03:04:05.030000Z  takeover: b answered active 20.0 ms after a last did (polled every 5ms)
2026-01-02T03:04:05.040000Z  a            down -> active  term=9 leader=a
2026-01-02T03:04:05.040000Z  takeover: a answered active 10.0 ms after b last did (polled every 5ms)
`
	assert.Equal(t, want, out.String())

	out.Reset()
	p.see(observation{url: a, at: at(60), name: "a", state: "active", term: 9, leader: "a"}) // a's answer, arriving late
	p.see(observation{url: b, at: at(55), name: "b", state: "standby", term: 9, leader: "a"})
	p.see(observation{url: b, at: at(58), name: "b", state: "active", term: 10, leader: "b"})
	assert.Contains(t, out.String(), "takeover: b answered active while a still did (2.0 ms apart)")
}

// TestWatchPollsMembersOverHTTP: watch asks each URL, and a member that
// stops answering is reported down under its name.
func TestWatchPollsMembersOverHTTP(t *testing.T) {
	var aState, bState atomic.Value
	aState.Store("active")
	bState.Store("standby")
	member := func(name string, state *atomic.Value) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_ = json.NewEncoder(w).Encode(ping.Status{Name: name, State: state.Load().(string), Term: 3})
		}))
	}
	a, b := member("a", &aState), member("b", &bState)
	defer b.Close()
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- watch(ctx, out, watchOptions{interval: 5 * time.Millisecond,
			members: func(context.Context) ([]string, error) { return []string{statusURL(a.URL), statusURL(b.URL)}, nil }})
	}()
	testwait.For(t, 10*time.Second, "both members to be seen", func() bool {
		return strings.Contains(out.String(), "a            (new) -> active") && strings.Contains(out.String(), "b            (new) -> standby")
	})
	a.Close()
	bState.Store("active")
	testwait.For(t, 10*time.Second, "the takeover to be printed", func() bool {
		return strings.Contains(out.String(), "takeover: b answered active") &&
			strings.Contains(out.String(), "a            active -> down")
	})
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
