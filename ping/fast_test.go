package ping

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hanode/hanode/ha"
)

// fastTargets are the request targets of every test in this package, and a
// few more around the ping routes.
var fastTargets = []string{
	"/v2/ping/net/1/", "/v2/ping/net/1/se/",
	"/v2/ping/net/1/?verbose=1", "/v2/ping/net/1/se/?verbose=1", "/v2/ping/net/1/se/?",
	"/v2/ping/net/%31/", "/v2/ping/net/%31/se/", "/v2/ping/net/1%2F/se/",
	"/v2/ping/net/2/", "/v2/ping/net/2/se/", "/v2/ping/net/01/", "/v2/ping/net/11/se/",
	"/v2/ping/net//", "/v2/ping/net//se/",
	"/v2/ping/net/1", "/v2/ping/net/1/se", "/v2/ping/net/1/x/", "/v2/ping/net/1/se/x",
	"/v2/ping/net/1/se/se/", "/v2/ping/net/1//", "/v2/ping/net/1/./se/",
	"/v2/ping/net/", "/v2/ping/", "/v2/status", "/v2/status/", "/", "/favicon.ico",
	"/V2/PING/NET/1/", "/v2/ping/net/1/SE/",
}

var fastMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodTrace, "PROPFIND", "get",
}

// TestFastPathAnswersAsEchoDoes compares the Handler with its echo router
// alone, for every method and target, in every phase.
func TestFastPathAnswersAsEchoDoes(t *testing.T) {
	for _, phase := range []ha.Phase{ha.PhaseActive, ha.PhaseStandby, ha.PhaseStarting, ha.PhaseDisconnected, ""} {
		h := New(testID, fixed(phase), nil)
		for _, method := range fastMethods {
			for _, target := range fastTargets {
				t.Run(string(phase)+" "+method+" "+target, func(t *testing.T) {
					want, got := httptest.NewRecorder(), httptest.NewRecorder()
					h.echo.ServeHTTP(want, httptest.NewRequest(method, target, nil))
					h.ServeHTTP(got, httptest.NewRequest(method, target, nil))
					assert.Equal(t, want.Code, got.Code)
					assert.Equal(t, want.Header(), got.Header())
					assert.Equal(t, want.Body.String(), got.Body.String())
				})
			}
		}
	}
}

func TestFastPathServesOnlyNetIDsThatNeedNoEscaping(t *testing.T) {
	for _, tc := range []struct {
		netID string
		fast  bool
	}{
		{"1", true},
		{"net-1.eu_west~2", true},
		{"a:b@c!$&'()*+,;=", true},
		{"", false},
		{"a/b", false},
		{"a%31", false},
		{"a b", false},
		{"a?b", false},
		{"a#b", false},
		{"zürich", false},
	} {
		t.Run(tc.netID, func(t *testing.T) {
			id := testID
			id.NetID = tc.netID
			h := New(id, fixed(ha.PhaseActive), nil)
			assert.Equal(t, tc.fast, h.route.prefix != "")
			// Whatever the route, the answers are echo's: for the id as
			// it is, and as a client would escape it.
			plain := func() *http.Request {
				r := httptest.NewRequest(http.MethodGet, "/", nil)
				r.URL.Path = "/v2/ping/net/" + tc.netID + "/se/"
				return r
			}
			escaped := func() *http.Request {
				return httptest.NewRequest(http.MethodGet, "/v2/ping/net/"+escapeSegment(tc.netID)+"/se/", nil)
			}
			for _, req := range []func() *http.Request{plain, escaped} {
				want, got := httptest.NewRecorder(), httptest.NewRecorder()
				h.echo.ServeHTTP(want, req())
				h.ServeHTTP(got, req())
				assert.Equal(t, want.Code, got.Code, req().URL.String())
				assert.Equal(t, want.Body.String(), got.Body.String(), req().URL.String())
			}
		})
	}
}

// escapeSegment percent-encodes every byte outside RFC 3986's unreserved set.
func escapeSegment(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[c>>4])+string("0123456789abcdef"[c&15])))
	}
	return b.String()
}

func TestFastPathPanickingStateReaderAnswers500Once(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	calls := 0
	h := New(testID, ha.StateFunc(func() ha.State { calls++; panic("elector bug") }), zap.New(core))
	rec := do(t, h, http.MethodHead, "/v2/ping/net/1/se/")
	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	assert.Equal(t, "21", rec.Header().Get("Content-Length"))
	assert.Empty(t, rec.Body.String())
	assert.Equal(t, 1, calls)
	entries := logs.FilterMessage("ping: handler panicked").All()
	require.Len(t, entries, 1)
	assert.Equal(t, "HEAD", entries[0].ContextMap()["method"])
}

func TestFastPathPassesAbortHandlerOnToNetHTTP(t *testing.T) {
	h := New(testID, ha.StateFunc(func() ha.State { panic(http.ErrAbortHandler) }), nil)
	assert.PanicsWithValue(t, http.ErrAbortHandler, func() { do(t, h, http.MethodGet, "/v2/ping/net/1/") })
}

// TestPingAllocatesNothing: a probe costs no allocation, whether net/http
// hands it to ServeHTTP or the wire path parses and answers it.
func TestPingAllocatesNothing(t *testing.T) {
	for _, phase := range []ha.Phase{ha.PhaseActive, ha.PhaseStandby} {
		h := New(testID, fixed(phase), nil)
		req := httptest.NewRequest(http.MethodGet, "/v2/ping/net/1/se/", nil)
		w := &discardWriter{h: make(http.Header)}
		h.ServeHTTP(w, req)
		assert.Zero(t, testing.AllocsPerRun(100, func() {
			w.reset()
			h.ServeHTTP(w, req)
		}), "ServeHTTP, %s", phase)

		ws := &wireServer{route: h.route, h: h.h}
		raw := []byte("GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: lb\r\nUser-Agent: HAProxy\r\n\r\n")
		out := make([]byte, 0, 512)
		now := time.Now()
		tk := &tracked{}
		assert.Zero(t, testing.AllocsPerRun(100, func() {
			req, v := ws.route.parse(raw)
			if v != verdictAnswer {
				t.Fatalf("verdict %d", v)
			}
			out, _ = ws.answer(tk, out[:0], &req, false, now)
		}), "wire, %s", phase)
	}
}

func TestParseVerdicts(t *testing.T) {
	r := newRoute("1")
	full := "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tc := range []struct {
		name string
		in   string
		want verdict
		n    int
	}{
		{"complete", full, verdictAnswer, len(full)},
		{"complete, more follows", full + "GET /v2/ping/net/1/ HTTP/1.1\r\n", verdictAnswer, len(full)},
		{"every prefix asks for more", full[:len(full)-1], verdictMore, 0},
		{"empty", "", verdictMore, 0},
		{"a partial request line", "GET /v2/pi", verdictMore, 0},
		{"a bad first line at once", "POST /v2/ping/net/1/se/ HTTP/1.1\r\n", verdictHandOff, 0},
		{"a bad header line at once", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost x\r\n", verdictHandOff, 0},
		{"a request line as long as the limit", "GET /" + strings.Repeat("a", maxWireHeader), verdictHandOff, 0},
		{"a header as long as the limit", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nX: " + strings.Repeat("a", maxWireHeader), verdictHandOff, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, v := r.parse([]byte(tc.in))
			assert.Equal(t, tc.want, v)
			if v == verdictAnswer {
				assert.Equal(t, tc.n, req.n)
			}
		})
	}
	// Every strict prefix of a good request asks for more.
	for i := range len(full) {
		_, v := r.parse([]byte(full[:i]))
		assert.Equal(t, verdictMore, v, "prefix %q", full[:i])
	}
}
