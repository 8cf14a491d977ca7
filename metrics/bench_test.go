package metrics

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hanode/hanode/ha"
)

// BenchmarkScrape is one GET /metrics of an active node with a session:
// what a Prometheus server costs the node per scrape (go test -bench
// Scrape -benchmem ./metrics). Prometheus asks for gzip. "render" is a
// scrape that gathers and encodes (the first of each kind in a second),
// "snapshot" one served from the snapshot (every other).
func BenchmarkScrape(b *testing.B) {
	m := New(node)
	st := ha.State{Phase: ha.PhaseActive, Term: 42, LeaseLeft: 2 * time.Second, Members: make([]ha.Member, 3)}
	m.WatchState(ha.StateFunc(func() ha.State { return st }))
	m.WatchSession(fakeSession{state: zk.StateHasSession.String()})
	for _, op := range requestOps {
		m.ObserveRequest(op, time.Millisecond)
	}
	m.transition(ha.Transition{From: ha.PhaseWaiting, To: ha.PhaseActive, Reason: "leading in term 42, claimed by rule D (silent leader)",
		At: time.Now(), Evidence: time.Now().Add(-4 * time.Second)})
	for _, enc := range []string{"identity", "gzip"} {
		for _, kind := range []struct {
			name string
			h    http.Handler
		}{{"render", m.render()}, {"snapshot", m.Handler()}} {
			b.Run(enc+"/"+kind.name, func(b *testing.B) {
				req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
				req.Header.Set("Accept-Encoding", enc)
				var size int
				b.ReportAllocs()
				for b.Loop() {
					w := httptest.NewRecorder()
					kind.h.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Fatal(w.Code)
					}
					size = w.Body.Len()
				}
				b.ReportMetric(float64(size), "bytes/scrape")
			})
		}
	}
}
