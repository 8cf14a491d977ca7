package ping

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hanode/hanode/ha"
)

// discardWriter is a reusable http.ResponseWriter, so the benchmark measures
// the handler rather than a recorder's allocations.
type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *discardWriter) Header() http.Header { return w.h }

func (w *discardWriter) WriteHeader(code int) { w.code = code }

func (w *discardWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }

func (w *discardWriter) reset() {
	clear(w.h)
	w.code, w.n = 0, 0
}

// BenchmarkPingSE is what a balancer costs per probe: routing, one State
// call and the answer, without a socket.
func BenchmarkPingSE(b *testing.B) {
	for _, bc := range []struct {
		name  string
		phase ha.Phase
		code  int
	}{
		{"active", ha.PhaseActive, http.StatusOK},
		{"standby", ha.PhaseStandby, http.StatusServiceUnavailable},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := New(testID, fixed(bc.phase), nil)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest(http.MethodGet, "/v2/ping/net/1/se/", nil)
				w := &discardWriter{h: make(http.Header)}
				for pb.Next() {
					w.reset()
					e.ServeHTTP(w, req)
					if w.code != bc.code {
						b.Fatalf("status %d, want %d", w.code, bc.code)
					}
				}
			})
		})
	}
}

// BenchmarkPingSERecorder is the same probe answered into a fresh
// httptest.ResponseRecorder per request.
func BenchmarkPingSERecorder(b *testing.B) {
	e := New(testID, fixed(ha.PhaseActive), nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, "/v2/ping/net/1/se/", nil)
		for pb.Next() {
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d", rec.Code)
			}
		}
	})
}

// BenchmarkStatus is an operator's /v2/status on a three-member group.
func BenchmarkStatus(b *testing.B) {
	st := ha.State{Phase: ha.PhaseActive, Leader: "nsg-a", Term: 3, Members: []ha.Member{
		{MemberInfo: ha.MemberInfo{Name: "nsg-a", Host: "10.0.0.1"}, Seq: 1, Leader: true},
		{MemberInfo: ha.MemberInfo{Name: "nsg-b", Host: "10.0.0.2"}, Seq: 2},
		{MemberInfo: ha.MemberInfo{Name: "nsg-c", Host: "10.0.0.3"}, Seq: 3},
	}}
	e := New(testID, ha.StateFunc(func() ha.State { return st }), nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, "/v2/status", nil)
		w := &discardWriter{h: make(http.Header)}
		for pb.Next() {
			w.reset()
			e.ServeHTTP(w, req)
			if w.code != http.StatusOK {
				b.Fatalf("status %d", w.code)
			}
		}
	})
}

// BenchmarkPingSEWire is the same probe on the wire path: parsing the raw
// request and appending the raw answer, without a socket.
func BenchmarkPingSEWire(b *testing.B) {
	h := New(testID, fixed(ha.PhaseActive), nil)
	ws := &wireServer{route: h.route, h: h.h}
	raw := []byte("GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: 10.0.0.1:9100\r\nUser-Agent: HAProxy\r\n\r\n")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		out := make([]byte, 0, 512)
		tk := &tracked{}
		for pb.Next() {
			req, v := ws.route.parse(raw)
			if v != verdictAnswer {
				b.Fatalf("verdict %d", v)
			}
			out, _ = ws.answer(tk, out[:0], &req, false, time.Now())
		}
	})
}
