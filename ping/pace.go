package ping

import (
	"net/http"
	"strings"
	"sync"
	"time"
)

// Requests other than pings, paced.
//
// Refusing a request costs the node almost as much as answering it: net/http
// has read and parsed it either way. A client that asks again as soon as it
// has an answer, /metrics or the status page or a 404 in a loop, on a few
// hundred connections, keeps a core busy on refusals as well as on answers,
// and every ping then waits its turn behind those requests: 256 scrapers of
// /metrics in a loop made the median ping 250 times slower (BENCHMARKS.md,
// "Scrapes and the status page under load"). What bounds such a client is
// making it wait: Serve starts the requests net/http serves at most one per
// paceGap, in the order they came, and lets each wait for its turn. A
// client on a connection sends its next request only after its answer, so
// the node serves at most 1/paceGap of them a second (333), however many
// connections ask, and they cost it under a tenth of a core. Connections
// are capped (maxConns), so no request waits longer than maxConns ×
// paceGap. The gap was 2 ms until the status page's loop still moved the
// median ping by 1.10 ×; at 3 ms both loops stay within about 1.05 ×
// (BENCHMARKS.md). Pings (anything under /v2/ping/) are never paced,
// whichever path serves them, and the status page's live streams are paced
// only as they open.
//
// Real users are far below the pace: Prometheus servers and dashboards ask
// every few seconds, an operator's browser twice per page; 256 scrapers
// once a second are three quarters of it.
const (
	paceGap   = 3 * time.Millisecond
	paceBatch = 10 * time.Millisecond // see pacer.batch
)

// pacer hands out the turns.
type pacer struct {
	gap time.Duration
	// batch gathers the wake-ups: a request that has to wait wakes at the
	// next multiple of batch (since the first turn) at or after its turn,
	// with every other request whose turn falls before it. Waking costs
	// the node a context switch or two, which on a virtual machine cost
	// more than serving a request from memory; a batch wakes it once. 0:
	// each at its own turn.
	batch time.Duration
	quit  <-chan struct{} // closed at shutdown: nothing waits any more

	mu    sync.Mutex
	epoch time.Time // the first turn
	next  time.Time // the next free turn
}

// turn reserves the next turn at now and returns when to wake for it.
func (p *pacer) turn(now time.Time) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.epoch.IsZero() {
		p.epoch = now
	}
	at := p.next
	if !at.After(now) {
		p.next = now.Add(p.gap)
		return now
	}
	p.next = at.Add(p.gap)
	if p.batch > 0 {
		at = p.epoch.Add((at.Sub(p.epoch) + p.batch - 1) / p.batch * p.batch)
	}
	return at
}

// wait returns at the next turn, or at once when the shutdown has begun.
// It does not stop for a client that has gone: net/http takes a client
// that closed its side after its request for gone too, and such a client
// still reads the answer; and a client must not get its answer sooner by
// leaving.
func (p *pacer) wait() {
	now := time.Now()
	d := p.turn(now).Sub(now)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.quit:
	}
}

// pingRoutes is where the ping routes are, and only they.
const pingRoutes = "/v2/ping/"

// pace returns h with its requests paced gap apart, pings excepted (h
// itself when gap is 0); quit ends every wait.
func pace(h http.Handler, gap time.Duration, quit <-chan struct{}) http.Handler {
	if gap <= 0 {
		return h
	}
	return paced{next: h, p: &pacer{gap: gap, batch: paceBatch, quit: quit}}
}

// paced serves next's requests in their turn, pings at once.
type paced struct {
	next http.Handler
	p    *pacer
}

func (h paced) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, pingRoutes) {
		h.p.wait()
	}
	h.next.ServeHTTP(w, r)
}
