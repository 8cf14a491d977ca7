package ping

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
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

// BenchmarkPage is one GET / of the status page: a standby's view of a
// three-member group, rendered whole (about 12 KB with its CSS and script).
func BenchmarkPage(b *testing.B) {
	h := New(testID, ha.StateFunc(groupState), nil)
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	}
	b.ReportMetric(float64(w.n), "bytes/page")
}

// BenchmarkLiveEvent is one event of the live stream: the page's live part
// rendered and framed as a server-sent event.
func BenchmarkLiveEvent(b *testing.B) {
	s := stream{w: io.Discard, id: testID}
	st, now := groupState(), time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.send(st, now, true); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(s.buf.Len()), "bytes/event")
}

// BenchmarkLivePoll is what an open page costs its node every streamPoll
// while nothing changes: one State and a comparison.
func BenchmarkLivePoll(b *testing.B) {
	s := stream{w: io.Discard, id: testID}
	src, now := ha.StateFunc(groupState), time.Now()
	if err := s.send(src.State(), now, true); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.send(src.State(), now, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPingWhilePagesAreOpen is a balancer's probe over a keep-alive
// loopback connection to Serve (request written, answer read), on an
// active node with no status page open and with maxStreams pages open,
// each sent an event every leaseRefresh and polling every streamPoll.
func BenchmarkPingWhilePagesAreOpen(b *testing.B) {
	for _, pages := range []int{0, maxStreams} {
		b.Run("pages="+strconv.Itoa(pages), func(b *testing.B) {
			st := groupState()
			st.Phase, st.LeaseLeft = ha.PhaseActive, 2*time.Second
			st.Duty = nil
			ln, err := Listen(b.Context(), "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(b.Context())
			done := make(chan error, 1)
			go func() { done <- Serve(ctx, ln, New(testID, ha.StateFunc(func() ha.State { return st }), nil), nil) }()
			defer func() {
				cancel()
				<-done
			}()
			base := "http://" + ln.Addr().String()
			for range pages {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+PathEvents, nil)
				res, err := http.DefaultClient.Do(req)
				if err != nil || res.StatusCode != http.StatusOK {
					b.Fatalf("page stream: %v %v", err, res)
				}
				go func() {
					_, _ = io.Copy(io.Discard, res.Body)
					_ = res.Body.Close()
				}()
			}
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			probe := []byte("GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: HAProxy\r\n\r\n")
			br := bufio.NewReader(c)
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Write(probe); err != nil {
					b.Fatal(err)
				}
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Fatalf("status %d", res.StatusCode)
				}
			}
		})
	}
}
