package ping

import (
	"net/http"
	"net/http/httptest"
	"testing"

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
