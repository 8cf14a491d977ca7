package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
	"github.com/hanode/hanode/ping"
)

// TestMetricsFollowAFailover scrapes GET /metrics of a three-node group
// before and after its leader is killed (SIGKILL) and restarted: before and
// after, exactly one node reports hanode_active 1, the one answering "ok";
// the new leader's term is above the old one, its transitions counted its
// claim and activation, and it timed one takeover by rule C or D, from the
// dead leader's last extension as it saw it: at least the session timeout
// (the safe wait W is 1.02 of it), and not much more.
func TestMetricsFollowAFailover(t *testing.T) {
	zk := zktest.Start(t)
	nodes := nodetest.StartGroup(t, nodetest.GroupOptions{ZK: zk.Addr, Heartbeat: true})
	chk := nodetest.NewChecker(t, nodes...)
	leader := chk.Node(chk.WaitSingleLeader(electionTimeout))

	before := waitOneActive(t, nodes, leader)
	oldTerm := value(before[leader], "hanode_term", nil)
	if oldTerm <= 0 {
		t.Fatalf("%s: hanode_term %v, want the term it leads in", leader, oldTerm)
	}
	for _, n := range nodes {
		s := before[n]
		if got := value(s, "hanode_zk_session_state", map[string]string{"state": "has_session"}); got != 1 {
			t.Errorf("%s: hanode_zk_session_state{state=has_session} %v, want 1", n, got)
		}
		// A standby lists the members when it joins (it sees the leader
		// at least); the leader may have listed only itself before the
		// others joined, and lists again only every three leases.
		if got, want := value(s, "hanode_members", nil), 2.0; n != leader && got < want || got < 1 {
			t.Errorf("%s: hanode_members %v, want the group", n, got)
		}
	}
	if got := value(before[leader], "hanode_lease_seconds_left", nil); got <= 0 {
		t.Errorf("%s: hanode_lease_seconds_left %v while it leads", leader, got)
	}
	if got := value(before[leader], "hanode_zk_request_seconds", map[string]string{"op": "multi"}); got < 1 {
		t.Errorf("%s: %v multis timed, want its claim and extensions", leader, got)
	}
	// The duty's start is counted when its guard reports it, which may
	// come a moment after the node answers ok: wait for it.
	var starts float64
	if err := testwait.Poll(5*time.Second, 50*time.Millisecond, func() bool {
		s, err := scrape(leader)
		starts = value(s, "hanode_duty_starts_total", nil)
		return err == nil && starts >= 1
	}); err != nil {
		t.Errorf("%s: hanode_duty_starts_total %v, want its duty's start", leader, starts)
	}

	// hanode with its guard (the machine dies): the lease is waited out
	// and timed by rule C or D. (hanode alone is released for by its guard:
	// e2e/guard_release_test.go.)
	fault := leader.KillGroup()
	if code := leader.WaitExit(exitBound); code != -1 {
		t.Fatalf("%s exited %d after SIGKILL, want -1 (killed)", leader, code)
	}
	next, took := chk.WaitTakeover(fault, leader, nodetest.DefaultSessionTimeout+6*time.Second)
	t.Logf("%s took over %v after SIGKILL of %s", next, took, leader)
	leader.Restart()
	waitState(t, leader, nodetest.DefaultSessionTimeout+10*time.Second, "standby")

	after := waitOneActive(t, nodes, next)
	s := after[next]
	if got := value(s, "hanode_term", nil); got <= oldTerm {
		t.Errorf("%s: hanode_term %v after the takeover, want above %v", next, got, oldTerm)
	}
	toActive := map[string]string{"to": "active"}
	if b, a := value(before[next], "hanode_transitions_total", toActive), value(s, "hanode_transitions_total", toActive); a != b+1 {
		t.Errorf("%s: transitions to active went from %v to %v, want one more", next, b, a)
	}
	if b, a := value(before[next], "hanode_transitions_total", nil), value(s, "hanode_transitions_total", nil); a < b+2 {
		t.Errorf("%s: transitions went from %v to %v, want at least a claim and an activation more", next, b, a)
	}
	count := value(s, "hanode_takeover_seconds", nil)
	byRule := value(s, "hanode_takeover_seconds", map[string]string{"rule": "rule_c"}) +
		value(s, "hanode_takeover_seconds", map[string]string{"rule": "rule_d"})
	if count != 1 || byRule != 1 {
		t.Fatalf("%s: %v takeovers timed (%v by rule C or D), want 1 by rule C or D\n%s", next, count, byRule, dump(s, "hanode_takeover_seconds"))
	}
	secs := sampleSum(s, "hanode_takeover_seconds")
	t.Logf("%s timed its takeover at %.3fs", next, secs)
	if low, high := nodetest.DefaultSessionTimeout.Seconds(), (nodetest.DefaultSessionTimeout + 3*time.Second).Seconds(); secs < low || secs > high {
		t.Errorf("%s: takeover timed at %.3fs, want between the session timeout %.0fs and %.0fs (took %v from the kill)", next, secs, low, high, took)
	}
	// The restarted node is a standby that has never led in this life.
	r := after[leader]
	if value(r, "hanode_active", nil) != 0 || value(r, "hanode_takeover_seconds", nil) != 0 || value(r, "hanode_lease_seconds_left", nil) != 0 {
		t.Errorf("restarted %s reports leadership:\n%s", leader, dump(r, "hanode_"))
	}
	chk.Assert(t)
}

// TestMetricsOfAStandaloneNode: a node without a group reports itself
// active with an empty ha_id, counts its duty's starts, and has no
// ZooKeeper session to report.
func TestMetricsOfAStandaloneNode(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{Env: map[string]string{"NAME": "solo", "ROLE": "compute",
		"ACTIVE_CMD": "exec sleep 1000"}})
	var s map[string]*dto.MetricFamily
	testwait.For(t, 5*time.Second, "solo's duty start in its metrics", func() bool {
		var err error
		s, err = scrape(n)
		return err == nil && value(s, "hanode_duty_starts_total", nil) == 1
	})
	if got := value(s, "hanode_active", map[string]string{"ha_id": "", "name": "solo", "role": "compute"}); got != 1 {
		t.Errorf("hanode_active{ha_id=\"\",name=solo,role=compute} %v, want 1\n%s", got, dump(s, "hanode_active"))
	}
	if _, ok := s["hanode_zk_session_state"]; ok {
		t.Error("a standalone node reports a ZooKeeper session state")
	}
}

// waitOneActive scrapes every node until exactly one reports hanode_active
// 1 and it is want, and returns the last scrape of each.
func waitOneActive(t *testing.T, nodes []*nodetest.Node, want *nodetest.Node) map[*nodetest.Node]map[string]*dto.MetricFamily {
	t.Helper()
	var last map[*nodetest.Node]map[string]*dto.MetricFamily
	var seen string
	err := testwait.Poll(10*time.Second, 50*time.Millisecond, func() bool {
		last = map[*nodetest.Node]map[string]*dto.MetricFamily{}
		var active []string
		for _, n := range nodes {
			s, err := scrape(n)
			if err != nil {
				seen = err.Error()
				return false
			}
			last[n] = s
			if value(s, "hanode_active", nil) == 1 {
				active = append(active, n.Name())
			}
		}
		seen = fmt.Sprintf("active by their metrics: %v", active)
		return len(active) == 1 && active[0] == want.Name()
	})
	if err != nil {
		t.Fatalf("want only %s with hanode_active 1; last seen: %s", want, seen)
	}
	return last
}

// scrape fetches and parses a node's /metrics.
func scrape(n *nodetest.Node) (map[string]*dto.MetricFamily, error) {
	c := &http.Client{Timeout: nodetest.HTTPTimeout}
	resp, err := c.Get(n.URL(ping.PathMetrics))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: GET %s: %s", n, ping.PathMetrics, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// value sums the samples of name whose labels include want: counter and
// gauge values, histogram counts.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var sum float64
	for _, m := range samples(fams, name, want) {
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		default:
			sum += m.GetGauge().GetValue()
		}
	}
	return sum
}

// sampleSum sums the observations of histogram name.
func sampleSum(fams map[string]*dto.MetricFamily, name string) float64 {
	var sum float64
	for _, m := range samples(fams, name, nil) {
		sum += m.GetHistogram().GetSampleSum()
	}
	return sum
}

func samples(fams map[string]*dto.MetricFamily, name string, want map[string]string) []*dto.Metric {
	var out []*dto.Metric
	f := fams[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// dump prints the families whose names start with prefix, for a failure.
func dump(fams map[string]*dto.MetricFamily, prefix string) string {
	var b strings.Builder
	for name, f := range fams {
		if strings.HasPrefix(name, prefix) {
			fmt.Fprintln(&b, f.String())
		}
	}
	return b.String()
}
