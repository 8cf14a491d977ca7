package metrics

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hanode/hanode/ha"
)

// Config names the node. HAID, Name and Role are constant labels of every
// hanode_ metric (ha_id is empty for a standalone node).
type Config struct {
	HAID, Name, Role string
	Version          string
}

// Buckets of the histograms, in seconds. Takeovers cluster at W (about
// 1.02 session timeouts, 10.2 s by default) after a crash and at
// milliseconds after a release; requests at a round trip to ZooKeeper.
var (
	takeoverBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 3, 4, 5, 6, 8, 10, 11, 12.5, 15, 20, 30, 60}
	requestBuckets  = prometheus.ExponentialBuckets(.0005, 2, 14) // 0.5 ms to 4.1 s
	fenceBuckets    = []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60}
)

// The label values set up front, so that their series exist at 0 before the
// first event (a rate over a series that appears later misses its first
// increase).
var (
	takeoverRules = []string{ReasonRuleB, ReasonRuleC, ReasonRuleD}
	requestOps    = []string{"create", "delete", "set", "get", "children", "multi"}
	fenceResults  = []string{fenceOK, fenceFailed, fenceCanceled}
)

// The results of hanode_fence_runs_total.
const (
	fenceOK       = "ok"       // the command exited 0
	fenceFailed   = "failed"   // it failed or timed out
	fenceCanceled = "canceled" // the claim it was for ended first (lost, or shutdown)
)

// Metrics is one node's registry and instruments. Its methods are safe for
// concurrent use; the sources (WatchState, WatchSession) are read at every
// gather and may be set at any time.
type Metrics struct {
	reg *prometheus.Registry
	d   descs // of the gauges read at each gather

	state   atomic.Pointer[ha.StateReader]
	session atomic.Pointer[SessionReader]

	transitions *prometheus.CounterVec
	takeover    *prometheus.HistogramVec
	requests    *prometheus.HistogramVec
	dutyStarts  prometheus.Counter
	dutyExits   prometheus.Counter
	dutyRestart prometheus.Counter
	fenceRuns   *prometheus.CounterVec
	jobRuns     *prometheus.CounterVec
	fenceTime   prometheus.Histogram

	dutyMu   sync.Mutex
	dutyTerm int64 // the term of the duty's last start or exit
	dutyDown bool  // its last event was an exit: the next start in that term is a restart
}

// SessionReader is what Metrics reads from the process's ZooKeeper
// session (*ha.Session).
type SessionReader interface {
	ZK() ha.ZKStatus
	Stats() ha.SessionStats
}

// New returns the metrics of a node with nothing to read yet: hanode_active
// is 0 until WatchState.
func New(cfg Config) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The constant labels go into each description rather than through
	// prometheus.WrapRegistererWith, which rebuilds every description at
	// every gather.
	node := prometheus.Labels{"ha_id": cfg.HAID, "name": cfg.Name, "role": cfg.Role}
	m := &Metrics{reg: reg, d: newDescs(node)}
	m.transitions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hanode_transitions_total", ConstLabels: node,
		Help: "Phase changes of this node, by phase before and after and by the class of their reason."},
		[]string{"from", "to", "reason"})
	m.takeover = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hanode_takeover_seconds", ConstLabels: node,
		Help: "From this node's observation of what its claim rests on (rule D: the silent leader's last extension as " +
			"seen here; rule C: the vanished leader's, or the first look with no member below; rule B: the release) " +
			"to its activation, by claim rule.",
		Buckets: takeoverBuckets}, []string{"rule"})
	m.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hanode_zk_request_seconds", ConstLabels: node,
		Help:    "How long ZooKeeper took to answer the elections' requests, failures included, by request type.",
		Buckets: requestBuckets}, []string{"op"})
	m.dutyStarts = prometheus.NewCounter(prometheus.CounterOpts{Name: "hanode_duty_starts_total", ConstLabels: node,
		Help: "Starts of the duty (ACTIVE_CMD), first starts and restarts."})
	m.dutyExits = prometheus.NewCounter(prometheus.CounterOpts{Name: "hanode_duty_exits_total", ConstLabels: node,
		Help: "Ends of the duty on its own (not asked to stop), its guard's death included."})
	m.dutyRestart = prometheus.NewCounter(prometheus.CounterOpts{Name: "hanode_duty_restarts_total", ConstLabels: node,
		Help: "Starts of the duty after it ended on its own in the same term."})
	m.fenceRuns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hanode_fence_runs_total", ConstLabels: node,
		Help: "FENCE_CMD runs by result: ok, failed (or timed out), canceled (the claim ended first)."}, []string{"result"})
	m.fenceTime = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hanode_fence_seconds", ConstLabels: node,
		Help: "How long each FENCE_CMD run took.", Buckets: fenceBuckets})
	m.jobRuns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hanode_job_runs_total", ConstLabels: node,
		Help: "Runs of the scheduled jobs (JOB_<NAME>_*) this node started, by job and by how they ended."},
		[]string{"job", "result"})
	for _, v := range takeoverRules {
		m.takeover.WithLabelValues(v)
	}
	for _, from := range []ha.Phase{ha.PhaseWaiting, ha.PhaseFencing} { // every activation: the rules count them
		for _, rule := range []string{ReasonRuleA, ReasonRuleB, ReasonRuleC, ReasonRuleD} {
			m.transitions.WithLabelValues(string(from), string(ha.PhaseActive), rule)
		}
	}
	for _, v := range requestOps {
		m.requests.WithLabelValues(v)
	}
	for _, v := range fenceResults {
		m.fenceRuns.WithLabelValues(v)
	}
	info := prometheus.MustNewConstMetric(prometheus.NewDesc("hanode_build_info", "Always 1; the version is a label.", nil,
		prometheus.Labels{"ha_id": cfg.HAID, "name": cfg.Name, "role": cfg.Role, "version": cfg.Version}), prometheus.GaugeValue, 1)
	reg.MustRegister(m.transitions, m.takeover, m.requests, m.dutyStarts, m.dutyExits, m.dutyRestart,
		m.fenceRuns, m.fenceTime, m.jobRuns, groupCollector{m}, sessionCollector{m}, constCollector{info})
	return m
}

// Handler serves the metrics in Prometheus's text format (and OpenMetrics
// or gzip when the scraper asks) from a snapshot at most a second old,
// rendered at most once a second for each kind of scrape however many
// scrapers ask (snapshot.go). At most a few renders run at once; more are
// refused with 503 rather than queued.
func (m *Metrics) Handler() http.Handler { return newSnapshots(m.render(), snapshotMaxAge, time.Now) }

// render answers every scrape with a new gather.
func (m *Metrics) render() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4, Timeout: 5 * time.Second})
}

// Gatherer is the registry, for tests and for other exporters.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// WatchState makes src the source of the group's gauges, read at every
// gather: the election (with its duty), or ha.Standalone; nil: none.
func (m *Metrics) WatchState(src ha.StateReader) {
	if src == nil {
		m.state.Store(nil)
		return
	}
	m.state.Store(&src)
}

// WatchSession makes s the source of the ZooKeeper session's metrics; nil:
// none.
func (m *Metrics) WatchSession(s SessionReader) {
	if s == nil {
		m.session.Store(nil)
		return
	}
	m.session.Store(&s)
}

// Follow counts the transitions of feed (Election.Subscribe) until it is
// closed; run it on a goroutine of its own.
func (m *Metrics) Follow(feed <-chan ha.Transition) {
	for t := range feed {
		m.transition(t)
	}
}

func (m *Metrics) transition(t ha.Transition) {
	class := ReasonClass(t.Reason)
	m.transitions.WithLabelValues(string(t.From), string(t.To), class).Inc()
	if t.To == ha.PhaseActive && !t.Evidence.IsZero() {
		m.takeover.WithLabelValues(class).Observe(t.At.Sub(t.Evidence).Seconds())
	}
}

// ObserveRequest is ha.SessionConfig.ObserveRequest.
func (m *Metrics) ObserveRequest(op string, took time.Duration) {
	m.requests.WithLabelValues(op).Observe(took.Seconds())
}

// DutyStarted counts a start of the duty in term (roles' OnStart): a
// restart when the duty last ended on its own in the same term.
func (m *Metrics) DutyStarted(term int64, _ int) {
	m.dutyMu.Lock()
	restart := m.dutyDown && m.dutyTerm == term
	m.dutyTerm, m.dutyDown = term, false
	m.dutyMu.Unlock()
	m.dutyStarts.Inc()
	if restart {
		m.dutyRestart.Inc()
	}
}

// DutyExited counts an end of the duty on its own in term (roles' OnExit).
func (m *Metrics) DutyExited(term int64, _ string) {
	m.dutyMu.Lock()
	m.dutyTerm, m.dutyDown = term, true
	m.dutyMu.Unlock()
	m.dutyExits.Inc()
}

// JobRun counts a scheduled job's run that ended in state (roles.Jobs'
// OnResult). Job names come from the configuration, so the labels stay
// bounded.
func (m *Metrics) JobRun(job, state string) { m.jobRuns.WithLabelValues(job, state).Inc() }

// FenceFunc is the election's fence (ha.Callbacks.Fence).
type FenceFunc = func(context.Context, ha.FenceRequest) error

// Fence returns f counting its runs by result and timing them; nil for nil.
func (m *Metrics) Fence(f FenceFunc) FenceFunc {
	if f == nil {
		return nil
	}
	return func(ctx context.Context, req ha.FenceRequest) error {
		start := time.Now()
		err := f(ctx, req)
		m.fenceTime.Observe(time.Since(start).Seconds())
		result := fenceOK
		switch {
		case err != nil && ctx.Err() != nil:
			result = fenceCanceled
		case err != nil:
			result = fenceFailed
		}
		m.fenceRuns.WithLabelValues(result).Inc()
		return err
	}
}
