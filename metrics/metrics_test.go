package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/hanode/hanode/ha"
)

// sample returns the value of the metric name whose labels include want
// (a counter, a gauge, or a histogram's count), and whether it exists.
func sample(t *testing.T, m *Metrics, name string, want map[string]string) (float64, bool) {
	t.Helper()
	fams, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, s := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range s.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue next
				}
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				return s.GetCounter().GetValue(), true
			case dto.MetricType_HISTOGRAM:
				return float64(s.GetHistogram().GetSampleCount()), true
			default:
				return s.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

func mustSample(t *testing.T, m *Metrics, name string, labels map[string]string, want float64) {
	t.Helper()
	got, ok := sample(t, m, name, labels)
	if !ok {
		t.Fatalf("no %s%v", name, labels)
	}
	if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

type fakeSession struct {
	state string
	stats ha.SessionStats
}

func (f fakeSession) ZK() ha.ZKStatus        { return ha.ZKStatus{State: f.state} }
func (f fakeSession) Stats() ha.SessionStats { return f.stats }

var node = Config{HAID: "g", Name: "a", Role: "primary", Version: "v1"}

// TestGaugesAreReadFromTheStateAtEachScrape: the group's gauges are the
// state read at the scrape, so they can never be staler than /v2/status.
func TestGaugesAreReadFromTheStateAtEachScrape(t *testing.T) {
	m := New(node)
	mustSample(t, m, "hanode_active", nil, 0) // nothing to read yet

	st := ha.State{Phase: ha.PhaseActive, Term: 42, LeaseLeft: 2500 * time.Millisecond,
		Members: make([]ha.Member, 3)}
	m.WatchState(ha.StateFunc(func() ha.State { return st }))
	labels := map[string]string{"ha_id": "g", "name": "a", "role": "primary"}
	mustSample(t, m, "hanode_active", labels, 1)
	mustSample(t, m, "hanode_term", labels, 42)
	mustSample(t, m, "hanode_lease_seconds_left", labels, 2.5)
	mustSample(t, m, "hanode_members", labels, 3)
	mustSample(t, m, "hanode_build_info", map[string]string{"version": "v1"}, 1)

	st.Duty = &ha.DutyState{State: "restarting", Serving: false} // no "ok" without a duty
	mustSample(t, m, "hanode_active", nil, 0)
	st = ha.State{Phase: ha.PhaseStandby, Term: 42}
	mustSample(t, m, "hanode_active", nil, 0)
	mustSample(t, m, "hanode_lease_seconds_left", nil, 0)
	if _, ok := sample(t, m, "hanode_cycle", nil); ok {
		t.Error("a node that follows no cycle reports one")
	}
	st.Cycle = &ha.CycleInfo{N: 17}
	mustSample(t, m, "hanode_cycle", labels, 17)

	m = New(Config{Name: "s", Role: "compute"})
	m.WatchState(ha.Standalone(time.Now(), "standalone: no HA_ID"))
	mustSample(t, m, "hanode_active", map[string]string{"ha_id": ""}, 1)
	if _, ok := sample(t, m, "hanode_zk_session_state", nil); ok {
		t.Error("a node without a session reports a session state")
	}
}

// TestTransitionsAreCountedByClassAndTakeoversTimedFromTheEvidence: the
// feed's transitions count under bounded labels, and an activation by
// rule B, C or D is timed from its Evidence; rule A is no takeover.
func TestTransitionsAreCountedByClassAndTakeoversTimedFromTheEvidence(t *testing.T) {
	m := New(node)
	feed := make(chan ha.Transition)
	done := make(chan struct{})
	go func() { m.Follow(feed); close(done) }()
	at := time.Now()
	feed <- ha.Transition{From: ha.PhaseStandby, To: ha.PhaseWaiting, Term: 7, Reason: "claiming term 7: rule D (silent leader)", At: at}
	feed <- ha.Transition{From: ha.PhaseWaiting, To: ha.PhaseActive, Term: 7, Reason: "leading in term 7, claimed by rule D (silent leader)",
		At: at.Add(5 * time.Millisecond), Evidence: at.Add(-4080 * time.Millisecond)}
	feed <- ha.Transition{From: ha.PhaseActive, To: ha.PhaseStandby, Term: 7, Reason: "lease expired: no acknowledged extension for 2.8s", At: at}
	feed <- ha.Transition{From: ha.PhaseWaiting, To: ha.PhaseActive, Term: 8, Reason: "leading in term 8, claimed by rule A (own lease lapsed)", At: at}
	close(feed)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not return when its feed closed")
	}
	mustSample(t, m, "hanode_transitions_total", map[string]string{"from": "standby", "to": "waiting", "reason": "rule_d"}, 1)
	mustSample(t, m, "hanode_transitions_total", map[string]string{"from": "waiting", "to": "active", "reason": "rule_d"}, 1)
	mustSample(t, m, "hanode_transitions_total", map[string]string{"from": "active", "to": "standby", "reason": "lease_expired"}, 1)
	mustSample(t, m, "hanode_transitions_total", map[string]string{"from": "waiting", "to": "active", "reason": "rule_a"}, 1)
	mustSample(t, m, "hanode_takeover_seconds", map[string]string{"rule": "rule_d"}, 1)
	mustSample(t, m, "hanode_takeover_seconds", map[string]string{"rule": "rule_b"}, 0) // present before any takeover
	if _, ok := sample(t, m, "hanode_takeover_seconds", map[string]string{"rule": "rule_a"}); ok {
		t.Error("rule A observed as a takeover")
	}
	fams, _ := m.Gatherer().Gather()
	for _, f := range fams {
		if f.GetName() == "hanode_takeover_seconds" {
			for _, s := range f.GetMetric() {
				if sum := s.GetHistogram().GetSampleSum(); sum != 0 && sum != 4.085 {
					t.Errorf("takeover sum %v, want 4.085 (activation - evidence)", sum)
				}
			}
		}
	}
}

// TestSessionDutyAndFenceAreCounted: the session's state and replacements
// at the scrape, request times, duty starts, exits and restarts (a start
// after an own exit in the same term), and fence results.
func TestSessionDutyAndFenceAreCounted(t *testing.T) {
	m := New(node)
	m.WatchSession(fakeSession{state: zk.StateHasSession.String(), stats: ha.SessionStats{Replacements: 2}})
	mustSample(t, m, "hanode_zk_session_state", map[string]string{"state": "has_session"}, 1)
	mustSample(t, m, "hanode_zk_session_state", map[string]string{"state": "disconnected"}, 0)
	mustSample(t, m, "hanode_zk_client_replacements_total", nil, 2)
	m.WatchSession(fakeSession{state: "StateFromTheFuture"})
	mustSample(t, m, "hanode_zk_session_state", map[string]string{"state": "unknown"}, 1)

	m.ObserveRequest("multi", 3*time.Millisecond)
	mustSample(t, m, "hanode_zk_request_seconds", map[string]string{"op": "multi"}, 1)
	mustSample(t, m, "hanode_zk_request_seconds", map[string]string{"op": "get"}, 0)

	m.DutyStarted(5, 100)
	m.DutyExited(5, "exit status 3")
	m.DutyStarted(5, 101) // a restart
	m.DutyExited(5, "exit status 3")
	m.DutyStarted(6, 102) // a new term: a first start
	mustSample(t, m, "hanode_duty_starts_total", nil, 3)
	mustSample(t, m, "hanode_duty_exits_total", nil, 2)
	mustSample(t, m, "hanode_duty_restarts_total", nil, 1)

	if m.Fence(nil) != nil {
		t.Error("Fence(nil) is not nil: the election would fence with nothing")
	}
	boom := errors.New("exit status 1")
	fence := m.Fence(func(ctx context.Context, _ ha.FenceRequest) error { return ctx.Err() })
	failing := m.Fence(func(context.Context, ha.FenceRequest) error { return boom })
	if err := fence(context.Background(), ha.FenceRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := failing(context.Background(), ha.FenceRequest{}); !errors.Is(err, boom) {
		t.Fatalf("the fence's error is not passed on: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = fence(ctx, ha.FenceRequest{})
	mustSample(t, m, "hanode_fence_runs_total", map[string]string{"result": "ok"}, 1)
	mustSample(t, m, "hanode_fence_runs_total", map[string]string{"result": "failed"}, 1)
	mustSample(t, m, "hanode_fence_runs_total", map[string]string{"result": "canceled"}, 1)
	mustSample(t, m, "hanode_fence_seconds", nil, 3)
}

// TestJobRunsAreCountedByJobAndResult: each ended run of a scheduled job.
func TestJobRunsAreCountedByJobAndResult(t *testing.T) {
	m := New(node)
	m.JobRun("report", "ok")
	m.JobRun("report", "ok")
	m.JobRun("report", "failed")
	m.JobRun("discovery", "ok")
	mustSample(t, m, "hanode_job_runs_total", map[string]string{"job": "report", "result": "ok"}, 2)
	mustSample(t, m, "hanode_job_runs_total", map[string]string{"job": "report", "result": "failed"}, 1)
	mustSample(t, m, "hanode_job_runs_total", map[string]string{"job": "discovery", "result": "ok"}, 1)
}

// TestEveryZooKeeperStateHasALabel: each state go-zookeeper reports maps
// to one of the fixed label values.
func TestEveryZooKeeperStateHasALabel(t *testing.T) {
	for _, s := range []zk.State{zk.StateUnknown, zk.StateDisconnected, zk.StateConnecting, zk.StateSyncConnected,
		zk.StateAuthFailed, zk.StateConnectedReadOnly, zk.StateSaslAuthenticated, zk.StateExpired, zk.StateConnected,
		zk.StateHasSession} {
		m := New(node)
		m.WatchSession(fakeSession{state: s.String()})
		var ones float64
		for _, v := range zkStates {
			x, _ := sample(t, m, "hanode_zk_session_state", map[string]string{"state": v})
			ones += x
		}
		if ones != 1 {
			t.Errorf("%s: %v states at 1, want exactly one", s, ones)
		}
	}
}

// TestHandlerServesLintCleanTextWithTheNodesLabels: a scrape answers the
// text format, every hanode_ series carries ha_id, name and role, and the
// names follow Prometheus's conventions.
func TestHandlerServesLintCleanTextWithTheNodesLabels(t *testing.T) {
	m := New(node)
	m.WatchState(ha.StateFunc(func() ha.State { return ha.State{Phase: ha.PhaseActive, LeaseLeft: time.Second} }))
	m.WatchSession(fakeSession{state: zk.StateHasSession.String()})
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("status %d, %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(string(body), `hanode_active{ha_id="g",name="a",role="primary"} 1`) {
		t.Errorf("no hanode_active 1 with the node's labels:\n%s", body)
	}
	fams, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if !strings.HasPrefix(f.GetName(), "hanode_") {
			continue
		}
		for _, s := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range s.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if got["ha_id"] != "g" || got["name"] != "a" || got["role"] != "primary" {
				t.Errorf("%s%v lacks the node's labels", f.GetName(), got)
			}
		}
	}
	problems, err := testutil.GatherAndLint(m.Gatherer())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}
