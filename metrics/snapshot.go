package metrics

import (
	"bytes"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Scrapes from a snapshot.
//
// A gather reads every collector, the process's /proc files included, and
// encoding and compressing the answer costs more again: about 1 ms of CPU
// per gzip scrape. Many Prometheus servers or dashboards scraping one node
// would cost it that much each, and a burst of them would keep balancers'
// pings waiting for the CPU. So the handler keeps the answer it rendered
// last for each kind of scrape (the request headers that change the answer,
// Accept and Accept-Encoding, and the query) and serves it to every scrape
// of that kind for snapshotMaxAge: however many scrapers there are, a node
// renders each kind at most once a second. A scrape that finds its snapshot
// too old renders a new one while the scrapes of the same kind that arrive
// meanwhile wait for it, so simultaneous scrapes share one gather too.
//
// The price: a scrape shows the node as of at most snapshotMaxAge before
// it, which is less than the jitter between a Prometheus server's scrapes.
const (
	snapshotMaxAge = time.Second
	// maxSnapshots bounds the kinds kept; real scrapers send a handful.
	maxSnapshots = 16
)

// snapshots serves next's answers from snapshots.
type snapshots struct {
	next   http.Handler
	maxAge time.Duration
	now    func() time.Time

	mu    sync.Mutex
	kinds map[string]*snapshot
}

// snapshot is one kind of scrape's last answer.
type snapshot struct {
	mu   sync.Mutex // held while rendering
	at   time.Time  // when its rendering began; zero: none yet
	hdr  http.Header
	body []byte
}

func newSnapshots(next http.Handler, maxAge time.Duration, now func() time.Time) *snapshots {
	return &snapshots{next: next, maxAge: maxAge, now: now, kinds: map[string]*snapshot{}}
}

func (s *snapshots) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	snap := s.kind(r.Header.Get("Accept") + "\n" + r.Header.Get("Accept-Encoding") + "\n" + r.URL.RawQuery)
	snap.mu.Lock()
	if snap.at.IsZero() || s.now().Sub(snap.at) >= s.maxAge {
		at := s.now()
		rec := &recorder{hdr: http.Header{}, code: http.StatusOK}
		get := r
		if r.Method != http.MethodGet { // HEAD: a GET's answer is kept for both
			get = r.Clone(r.Context())
			get.Method = http.MethodGet
		}
		s.next.ServeHTTP(rec, get)
		if rec.code != http.StatusOK { // a refusal or an error: pass it on, keep nothing
			snap.mu.Unlock()
			answer(w, r, rec.code, rec.hdr, rec.body.Bytes())
			return
		}
		snap.at, snap.hdr, snap.body = at, rec.hdr, rec.body.Bytes()
	}
	hdr, body := snap.hdr, snap.body
	snap.mu.Unlock()
	answer(w, r, http.StatusOK, hdr, body)
}

// kind returns the snapshot of key, adding an empty one. When maxSnapshots
// are kept, the stale ones go first, else any one.
func (s *snapshots) kind(key string) *snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	if snap, ok := s.kinds[key]; ok {
		return snap
	}
	if len(s.kinds) >= maxSnapshots {
		now := s.now()
		for k, snap := range s.kinds {
			if snap.mu.TryLock() {
				if !snap.at.IsZero() && now.Sub(snap.at) >= s.maxAge {
					delete(s.kinds, k)
				}
				snap.mu.Unlock()
			}
		}
		for k := range s.kinds {
			if len(s.kinds) < maxSnapshots {
				break
			}
			delete(s.kinds, k) // its holders keep their pointer
		}
	}
	snap := &snapshot{}
	s.kinds[key] = snap
	return snap
}

// recorder keeps an answer.
type recorder struct {
	hdr  http.Header
	code int
	body bytes.Buffer
	sent bool // WriteHeader or Write was called
}

func (r *recorder) Header() http.Header { return r.hdr }

func (r *recorder) WriteHeader(code int) {
	if !r.sent {
		r.code, r.sent = code, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.sent = true
	return r.body.Write(b)
}

// answer writes code, a copy of hdr and body (none for HEAD) to w.
func answer(w http.ResponseWriter, r *http.Request, code int, hdr http.Header, body []byte) {
	h := w.Header()
	for k, v := range hdr {
		h[k] = slices.Clone(v)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
