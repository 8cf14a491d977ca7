package metrics

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gatherCounter is a registry whose only metric is the number of times it
// was gathered, so an answer shows which gather it came from.
type gatherCounter struct {
	n    atomic.Int64
	desc *prometheus.Desc
}

func (c *gatherCounter) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *gatherCounter) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(c.n.Add(1)))
}

// stepClock is a clock that moves only when told.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *stepClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// counted serves a gatherCounter's registry from snapshots on clk.
func counted(t *testing.T) (*snapshots, *gatherCounter, *stepClock) {
	t.Helper()
	c := &gatherCounter{desc: prometheus.NewDesc("gathers", "Gathers so far.", nil, nil)}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	clk := &stepClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	return newSnapshots(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), snapshotMaxAge, clk.now), c, clk
}

// scrapeOf asks h for method /metrics with the given Accept-Encoding.
func scrapeOf(h http.Handler, method, encoding string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/metrics", nil)
	if encoding != "" {
		req.Header.Set("Accept-Encoding", encoding)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func gathersIn(t *testing.T, body string) string {
	t.Helper()
	for l := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(l, "gathers "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no gathers sample in %q", body)
	return ""
}

func TestScrapesWithinASecondShareOneGather(t *testing.T) {
	h, c, clk := counted(t)
	first := scrapeOf(h, http.MethodGet, "")
	require.Equal(t, http.StatusOK, first.Code)
	assert.Equal(t, "1", gathersIn(t, first.Body.String()))

	clk.advance(snapshotMaxAge - time.Millisecond)
	again := scrapeOf(h, http.MethodGet, "")
	assert.Equal(t, first.Body.String(), again.Body.String(), "a scrape within the snapshot's age")
	assert.Equal(t, first.Header().Get("Content-Type"), again.Header().Get("Content-Type"))
	assert.Equal(t, fmt.Sprint(first.Body.Len()), again.Header().Get("Content-Length"))

	clk.advance(time.Millisecond)
	later := scrapeOf(h, http.MethodGet, "")
	assert.Equal(t, "2", gathersIn(t, later.Body.String()), "a scrape once the snapshot is a second old")
	assert.Equal(t, int64(2), c.n.Load())
}

func TestSimultaneousScrapesShareOneGather(t *testing.T) {
	h, c, _ := counted(t)
	const scrapers = 64
	bodies := make([]string, scrapers)
	var wg sync.WaitGroup
	for i := range scrapers {
		wg.Go(func() {
			rec := scrapeOf(h, http.MethodGet, "gzip")
			if rec.Code == http.StatusOK {
				bodies[i] = rec.Body.String()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(1), c.n.Load(), "gathers for %d simultaneous scrapes", scrapers)
	for i, b := range bodies {
		require.NotEmpty(t, b, "scrape %d", i)
		assert.Equal(t, bodies[0], b, "scrape %d", i)
	}
}

func TestEachKindOfScrapeHasItsOwnSnapshot(t *testing.T) {
	h, c, _ := counted(t)
	zipped := scrapeOf(h, http.MethodGet, "gzip")
	plain := scrapeOf(h, http.MethodGet, "")
	require.Equal(t, http.StatusOK, zipped.Code)
	require.Equal(t, "gzip", zipped.Header().Get("Content-Encoding"))
	assert.Empty(t, plain.Header().Get("Content-Encoding"))
	zr, err := gzip.NewReader(zipped.Body)
	require.NoError(t, err)
	unzipped, err := io.ReadAll(zr)
	require.NoError(t, err)
	assert.Equal(t, "1", gathersIn(t, string(unzipped)))
	assert.Equal(t, "2", gathersIn(t, plain.Body.String()))

	scrapeOf(h, http.MethodGet, "gzip")
	scrapeOf(h, http.MethodGet, "")
	assert.Equal(t, int64(2), c.n.Load(), "two kinds, each scraped twice")
}

func TestAFailedScrapeIsNotKept(t *testing.T) {
	var calls atomic.Int64
	g := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		if calls.Add(1) == 1 {
			return nil, errors.New("collector broke")
		}
		return prometheus.NewRegistry().Gather()
	})
	clk := &stepClock{t: time.Now()}
	h := newSnapshots(promhttp.HandlerFor(g, promhttp.HandlerOpts{}), snapshotMaxAge, clk.now)
	assert.Equal(t, http.StatusInternalServerError, scrapeOf(h, http.MethodGet, "").Code)
	assert.Equal(t, http.StatusOK, scrapeOf(h, http.MethodGet, "").Code, "the next scrape gathers again")
	assert.Equal(t, int64(2), calls.Load())
}

func TestHeadAndGetShareTheGetsSnapshot(t *testing.T) {
	h, c, _ := counted(t)
	head := scrapeOf(h, http.MethodHead, "")
	get := scrapeOf(h, http.MethodGet, "")
	require.Equal(t, http.StatusOK, head.Code)
	assert.Zero(t, head.Body.Len(), "HEAD answers no body")
	assert.Equal(t, fmt.Sprint(get.Body.Len()), head.Header().Get("Content-Length"))
	assert.Equal(t, "1", gathersIn(t, get.Body.String()))
	assert.Equal(t, int64(1), c.n.Load())
}

func TestSnapshotsKeptAreBounded(t *testing.T) {
	h, _, clk := counted(t)
	for i := range 3 * maxSnapshots {
		req := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/metrics?name[]=gathers&i=%d", i), nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code)
		if i%5 == 0 {
			clk.advance(snapshotMaxAge) // some kept ones go stale
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	assert.LessOrEqual(t, len(h.kinds), maxSnapshots)
}
