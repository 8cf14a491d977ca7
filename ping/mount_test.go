package ping

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/ha"
)

// metricsStub stands in for the Prometheus handler.
var metricsStub = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	_, _ = io.WriteString(w, "hanode_active 1\n")
})

// TestHandleMountsAHandlerLikeEveryRoute: a mounted handler answers GET and
// HEAD, refuses every other method with 405 (OPTIONS too), and a panic in
// it answers 500; the ping routes answer as before.
func TestHandleMountsAHandlerLikeEveryRoute(t *testing.T) {
	h := New(testID, fixed(ha.PhaseActive), nil)
	h.Handle(PathMetrics, metricsStub)
	h.Handle("/panics", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))

	rec := do(t, h, http.MethodGet, PathMetrics)
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "hanode_active 1\n", rec.Body.String())
	assert.Equal(t, http.StatusOK, do(t, h, http.MethodHead, PathMetrics).Code)
	for _, method := range []string{http.MethodPost, http.MethodOptions, http.MethodDelete} {
		rec := do(t, h, method, PathMetrics)
		assert.Equal(t, http.StatusMethodNotAllowed, rec.Code, method)
		assert.Equal(t, "GET, HEAD", rec.Header().Get("Allow"), method)
	}
	assert.Equal(t, http.StatusInternalServerError, do(t, h, http.MethodGet, "/panics").Code)
	assert.Equal(t, "ok", do(t, h, http.MethodGet, "/v2/ping/net/1/se/").Body.String())
	assert.Equal(t, http.StatusNotFound, do(t, h, http.MethodGet, "/metrics/x").Code)
}

// TestPingAllocatesNothingWithAHandlerMounted: mounting /metrics leaves the
// ping fast path as it was, through ServeHTTP and on the wire.
func TestPingAllocatesNothingWithAHandlerMounted(t *testing.T) {
	h := New(testID, fixed(ha.PhaseActive), nil)
	h.Handle(PathMetrics, metricsStub)
	req := httptest.NewRequest(http.MethodGet, "/v2/ping/net/1/se/", nil)
	w := &discardWriter{h: make(http.Header)}
	h.ServeHTTP(w, req)
	assert.Zero(t, testing.AllocsPerRun(100, func() {
		w.reset()
		h.ServeHTTP(w, req)
	}), "ServeHTTP")

	ws := &wireServer{route: h.route, h: h.h}
	raw := []byte("GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: lb\r\n\r\n")
	out := make([]byte, 0, 512)
	now := time.Now()
	tk := &tracked{}
	assert.Zero(t, testing.AllocsPerRun(100, func() {
		req, v := ws.route.parse(raw)
		if v != verdictAnswer {
			t.Fatalf("verdict %d", v)
		}
		out, _ = ws.answer(tk, out[:0], &req, false, now)
	}), "wire")
}

// TestServeHandsAScrapeOverAfterPingsOnOneConnection: on one keep-alive
// connection, pings answered on the wire and then a scrape, which Serve
// hands to net/http.
func TestServeHandsAScrapeOverAfterPingsOnOneConnection(t *testing.T) {
	ln, err := Listen(t.Context(), "127.0.0.1:0")
	require.NoError(t, err)
	h := New(testID, fixed(ha.PhaseActive), nil)
	h.Handle(PathMetrics, metricsStub)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, h, nil) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, waitServe(t, done, ShutdownTimeout+time.Second))
	})

	tr := &http.Transport{MaxConnsPerHost: 1} // one connection for every request
	c := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	defer tr.CloseIdleConnections()
	base := "http://" + ln.Addr().String()
	for range 2 {
		code, body := get(t, c, base+"/v2/ping/net/1/se/")
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, "ok", body)
	}
	code, body := get(t, c, base+PathMetrics)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "hanode_active 1\n", body)
}
