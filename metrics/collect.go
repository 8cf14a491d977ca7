package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// descs describe the metrics read from the sources at every gather, with
// the node's constant labels.
type descs struct {
	active, term, lease, members, cycle, zkState, replaced *prometheus.Desc
}

func newDescs(node prometheus.Labels) descs {
	return descs{
		active: prometheus.NewDesc("hanode_active",
			`1 when this node answers "ok" (active, and its duty, if any, serving), else 0.`, nil, node),
		term: prometheus.NewDesc("hanode_term",
			"The term (fencing token) of the group's current leadership as this node knows it; 0 when none seen.", nil, node),
		lease: prometheus.NewDesc("hanode_lease_seconds_left",
			"How long this node's lease has left; 0 when it holds none.", nil, node),
		members: prometheus.NewDesc("hanode_members",
			"Members of the group in this node's last listing.", nil, node),
		cycle: prometheus.NewDesc("hanode_cycle",
			"The highest cluster-wide polling cycle this node has seen (ZK_ROOT/cycle); absent when it follows none.", nil, node),
		zkState: prometheus.NewDesc("hanode_zk_session_state",
			"1 for the ZooKeeper client's state, 0 for every other state.", []string{"state"}, node),
		replaced: prometheus.NewDesc("hanode_zk_client_replacements_total",
			"ZooKeeper clients replaced after a session timeout without a session.", nil, node),
	}
}

// constCollector serves metrics that never change.
type constCollector []prometheus.Metric

func (c constCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c {
		ch <- m.Desc()
	}
}

func (c constCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c {
		ch <- m
	}
}

// groupCollector reads the group's state once per gather.
type groupCollector struct{ m *Metrics }

func (c groupCollector) Describe(ch chan<- *prometheus.Desc) {
	d := c.m.d
	ch <- d.active
	ch <- d.term
	ch <- d.lease
	ch <- d.members
	ch <- d.cycle
}

func (c groupCollector) Collect(ch chan<- prometheus.Metric) {
	var active, term, lease, members float64
	d := c.m.d
	if src := c.m.state.Load(); src != nil {
		st := (*src).State()
		if st.Active() {
			active = 1
		}
		term, lease, members = float64(st.Term), st.LeaseLeft.Seconds(), float64(len(st.Members))
		if st.Cycle != nil {
			ch <- prometheus.MustNewConstMetric(d.cycle, prometheus.GaugeValue, float64(st.Cycle.N))
		}
	}
	ch <- prometheus.MustNewConstMetric(d.active, prometheus.GaugeValue, active)
	ch <- prometheus.MustNewConstMetric(d.term, prometheus.GaugeValue, term)
	ch <- prometheus.MustNewConstMetric(d.lease, prometheus.GaugeValue, lease)
	ch <- prometheus.MustNewConstMetric(d.members, prometheus.GaugeValue, members)
}

// zkStates are hanode_zk_session_state's label values, and zkState maps
// go-zookeeper's state names to them.
var (
	zkStates = []string{"has_session", "connected", "connecting", "disconnected", "expired", "auth_failed", "unknown"}
	zkState  = map[string]string{
		"StateHasSession":    "has_session",
		"StateConnected":     "connected",
		"StateSyncConnected": "connected",
		"StateConnecting":    "connecting",
		"StateDisconnected":  "disconnected",
		"StateExpired":       "expired",
		"StateAuthFailed":    "auth_failed",
	}
)

// sessionCollector reads the ZooKeeper session once per gather; it reports
// nothing without one (a standalone node).
type sessionCollector struct{ m *Metrics }

func (c sessionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.m.d.zkState
	ch <- c.m.d.replaced
}

func (c sessionCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.m.session.Load()
	if src == nil {
		return
	}
	s := *src
	state, ok := zkState[s.ZK().State]
	if !ok {
		state = "unknown"
	}
	for _, v := range zkStates {
		var x float64
		if v == state {
			x = 1
		}
		ch <- prometheus.MustNewConstMetric(c.m.d.zkState, prometheus.GaugeValue, x, v)
	}
	ch <- prometheus.MustNewConstMetric(c.m.d.replaced, prometheus.CounterValue, float64(s.Stats().Replacements))
}
