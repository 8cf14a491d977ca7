package faults

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/faultproxy"
	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/ping"
)

// cluster is an HA group of real hanode nodes, each reaching every
// ZooKeeper server through a proxy of its own, watched by one Checker.
type cluster struct {
	t       testing.TB
	haID    string
	servers []string // ZooKeeper client addresses, in the order of paths
	env     map[string]string
	nodes   []*nodetest.Node
	paths   map[*nodetest.Node][]*faultproxy.Proxy // one per server
	chk     *nodetest.Checker
}

type clusterOptions struct {
	// Servers are the ZooKeeper client addresses (required).
	Servers []string
	// Names of the nodes (default a, b, c).
	Names []string
	// Env adds or overrides keys of every node.
	Env map[string]string
	// Interval of the Checker's polls (default 10 ms).
	Interval time.Duration
}

// startCluster starts a proxy per node and server, then the nodes (each
// with the heartbeat duty and ZK set to its own proxies), then a Checker
// polling them all. Cleanup runs in reverse: checker, nodes, proxies.
func startCluster(t testing.TB, o clusterOptions) *cluster {
	t.Helper()
	if len(o.Names) == 0 {
		o.Names = []string{"a", "b", "c"}
	}
	c := &cluster{t: t, haID: nodetest.GroupID(t), servers: o.Servers, env: o.Env, paths: map[*nodetest.Node][]*faultproxy.Proxy{}}
	for _, name := range o.Names {
		c.nodes = append(c.nodes, c.startNode(name))
	}
	c.chk = nodetest.NewCheckerWith(t, nodetest.CheckerOptions{Interval: o.Interval}, c.nodes...)
	return c
}

// startNode starts one node behind proxies of its own.
func (c *cluster) startNode(name string) *nodetest.Node {
	c.t.Helper()
	var proxies []*faultproxy.Proxy
	var addrs []string
	for _, s := range c.servers {
		p := faultproxy.Start(c.t, s)
		proxies = append(proxies, p)
		addrs = append(addrs, p.Addr())
	}
	env := nodetest.HAEnv(strings.Join(addrs, ","), c.haID, name)
	maps.Copy(env, c.env)
	n := nodetest.Start(c.t, nodetest.Options{Name: name, Env: env, Heartbeat: true})
	c.paths[n] = proxies
	return n
}

// addNode starts a new member of the group and has the Checker poll it.
func (c *cluster) addNode(name string) *nodetest.Node {
	c.t.Helper()
	n := c.startNode(name)
	c.nodes = append(c.nodes, n)
	c.chk.Add(n)
	return n
}

// leader waits until exactly one running node answers ok and every other
// one standby, and returns it.
func (c *cluster) leader(timeout time.Duration) *nodetest.Node {
	c.t.Helper()
	return c.chk.Node(c.chk.WaitSingleLeader(timeout))
}

// others returns the nodes other than n.
func (c *cluster) others(n *nodetest.Node) []*nodetest.Node {
	var out []*nodetest.Node
	for _, m := range c.nodes {
		if m != n {
			out = append(out, m)
		}
	}
	return out
}

// stall, reset and heal act on every path of n (one per server).
func (c *cluster) stall(n *nodetest.Node) time.Time {
	at := time.Now()
	for _, p := range c.paths[n] {
		p.Stall()
	}
	return at
}

func (c *cluster) reset(n *nodetest.Node) time.Time {
	at := time.Now()
	for _, p := range c.paths[n] {
		p.Reset()
	}
	return at
}

func (c *cluster) heal(n *nodetest.Node) {
	for _, p := range c.paths[n] {
		p.Heal()
	}
}

// settle waits until every node runs, reports standby or active in
// /v2/status (it has joined the group: not starting, not disconnected),
// exactly one answers ok on /se/ and the others 503 standby. It returns the
// leader. t is the calling (sub)test: the cluster may belong to its parent.
func (c *cluster) settle(t testing.TB, timeout time.Duration) *nodetest.Node {
	t.Helper()
	var last string
	var leader *nodetest.Node
	err := testwait.Poll(timeout, 50*time.Millisecond, func() bool {
		leader = nil
		var parts []string
		joined := true
		for _, n := range c.nodes {
			if !n.Running() || n.Paused() {
				parts = append(parts, n.Name()+": not running")
				joined = false
				continue
			}
			st, err := n.Status()
			if err != nil {
				parts = append(parts, fmt.Sprintf("%s: %v", n, err))
				joined = false
				continue
			}
			code, body, err := n.PingSE()
			parts = append(parts, fmt.Sprintf("%s: %s (%s), /se/ %d %q %v", n, st.State, st.Reason, code, body, err))
			switch {
			case st.State == "active" && code == http.StatusOK && body == "ok" && leader == nil:
				leader = n
			case st.State == "standby" && code == http.StatusServiceUnavailable && body == "standby":
			default:
				joined = false
			}
		}
		last = strings.Join(parts, "; ")
		return joined && leader != nil
	})
	if err != nil {
		t.Fatalf("group did not settle within %v; last: %s\n%s", timeout, last, c.chk.Summary())
	}
	return leader
}

// activeStatus waits until n reports itself active with a term.
func activeStatus(t testing.TB, n *nodetest.Node, timeout time.Duration) ping.Status {
	t.Helper()
	var st ping.Status
	var err error
	if perr := testwait.Poll(timeout, 10*time.Millisecond, func() bool {
		st, err = n.Status()
		return err == nil && st.State == "active" && st.Term > 0
	}); perr != nil {
		t.Fatalf("%s did not report active with a term within %v; last: %+v %v", n, timeout, st, err)
	}
	return st
}

// maxTerm is the largest term any live node reports.
func maxTerm(nodes []*nodetest.Node) int64 {
	var term int64
	for _, n := range nodes {
		if st, err := n.Status(); err == nil {
			term = max(term, st.Term)
		}
	}
	return term
}

// okSentAfter returns the first "ok" run of n with an answer sent after at.
func okSentAfter(chk *nodetest.Checker, n *nodetest.Node, at time.Time) (nodetest.Run, bool) {
	for _, r := range chk.Runs(n) {
		if r.Result == nodetest.ResultOK && r.LastSent.After(at) {
			return r, true
		}
	}
	return nodetest.Run{}, false
}

// beats returns n's heartbeats in term.
func beats(n *nodetest.Node, term int64) []nodetest.Heartbeat {
	var out []nodetest.Heartbeat
	for _, hb := range n.Heartbeats() {
		if hb.Term == term {
			out = append(out, hb)
		}
	}
	return out
}

// waitBeat waits until n's duty wrote a heartbeat in term and returns the
// first one.
func waitBeat(t testing.TB, n *nodetest.Node, term int64, timeout time.Duration) nodetest.Heartbeat {
	t.Helper()
	var hb []nodetest.Heartbeat
	testwait.For(t, timeout, fmt.Sprintf("%s's duty to beat in term %d", n, term), func() bool {
		hb = beats(n, term)
		return len(hb) > 0
	})
	return hb[0]
}

// dutyHandover checks that the old leader's duty (term oldTerm) wrote its
// last heartbeat before the new leader's duty (newTerm) wrote its first,
// and returns the gap between them. It also returns the old duty's last
// heartbeat.
func dutyHandover(t testing.TB, old *nodetest.Node, oldTerm int64, next *nodetest.Node, newTerm int64) (gap time.Duration, oldLast time.Time) {
	t.Helper()
	first := waitBeat(t, next, newTerm, 10*time.Second)
	ob := beats(old, oldTerm)
	if len(ob) == 0 {
		t.Errorf("%s's duty never beat in term %d", old, oldTerm)
		return 0, time.Time{}
	}
	oldLast = ob[len(ob)-1].At
	gap = first.At.Sub(oldLast)
	if gap <= 0 {
		t.Errorf("%s's duty (term %d) beat at %s, after %s's duty (term %d) started at %s: overlap %v",
			old, oldTerm, oldLast.Format("15:04:05.000"), next, newTerm, first.At.Format("15:04:05.000"), -gap)
	}
	return gap, oldLast
}

// statusSample is one /v2/status answer and when it arrived.
type statusSample struct {
	at time.Time
	st ping.Status
}

// statusWatch samples a node's /v2/status in the background.
type statusWatch struct {
	mu      sync.Mutex
	samples []statusSample
	stop    chan struct{}
	done    chan struct{}
}

// watchStatus samples n's /v2/status every 50 ms until Stop (or cleanup).
func watchStatus(t testing.TB, n *nodetest.Node) *statusWatch {
	w := &statusWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if st, err := n.Status(); err == nil {
				w.mu.Lock()
				w.samples = append(w.samples, statusSample{time.Now(), st})
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(w.Stop)
	return w
}

// Stop ends sampling; it is idempotent.
func (w *statusWatch) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// between returns the samples taken in [from, to].
func (w *statusWatch) between(from, to time.Time) []statusSample {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []statusSample
	for _, s := range w.samples {
		if !s.at.Before(from) && !s.at.After(to) {
			out = append(out, s)
		}
	}
	return out
}

// describe renders the distinct (state, cause, reason) of samples, in order.
func describe(samples []statusSample, origin time.Time) string {
	var parts []string
	prev := ""
	for _, s := range samples {
		k := fmt.Sprintf("%s cause=%q (%s)", s.st.State, s.st.Cause, s.st.Reason)
		if k != prev {
			parts = append(parts, fmt.Sprintf("+%v %s", s.at.Sub(origin).Round(time.Millisecond), k))
			prev = k
		}
	}
	return strings.Join(parts, "; ")
}

// observe calls check every interval for d: a fault is held for d while
// its effects are watched. It is a bounded observation, not a
// synchronization: check may fail the test (and should, as soon as it sees
// something wrong).
func observe(d, interval time.Duration, check func()) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		check()
		select {
		case <-deadline.C:
			return
		case <-tick.C:
		}
	}
}

// holdFault keeps a fault in place for d: the length of a fault is part of
// the scenario, not a synchronization (nothing waits here for a condition
// that could be polled instead).
func holdFault(d time.Duration) {
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	<-timer.C
}

// handovers walks the "ok" runs of all nodes in time order from since on:
// consecutive ok runs of different nodes are a handover (with the time from
// the one's last ok to the other's first), consecutive ok runs of the same
// node an interruption of its leadership.
type okChange struct {
	from, to string
	gap      time.Duration
	at       time.Time
}

func handovers(chk *nodetest.Checker, since time.Time) (changes, interruptions []okChange) {
	type run struct {
		node string
		r    nodetest.Run
	}
	var all []run
	for _, n := range chk.Nodes() {
		for _, r := range chk.Runs(n) {
			if r.Result == nodetest.ResultOK && r.LastArrived.After(since) {
				all = append(all, run{n.Name(), r})
			}
		}
	}
	slices.SortFunc(all, func(a, b run) int { return a.r.FirstArrived.Compare(b.r.FirstArrived) })
	for i := 1; i < len(all); i++ {
		p, q := all[i-1], all[i]
		ch := okChange{from: p.node, to: q.node, gap: q.r.FirstArrived.Sub(p.r.LastArrived), at: q.r.FirstArrived}
		if p.node == q.node {
			interruptions = append(interruptions, ch)
		} else {
			changes = append(changes, ch)
		}
	}
	return changes, interruptions
}

// assertClean fails the test on any definite overlap of ok answers, any
// overlap of duties and any term that did not grow (the Checker's Assert),
// and logs the counts.
func (c *cluster) assertClean(t testing.TB) {
	t.Helper()
	rep := c.chk.Report()
	t.Logf("checker: %d definite overlaps, %d possible (balancer view), %d duty overlaps, %d term problems, %d duty spans",
		len(rep.Definite), len(rep.Possible), len(rep.Duties), len(rep.TermProblems), len(rep.Spans))
	c.chk.Assert(t)
}

// logSince renders n's state changes and ZooKeeper session events logged
// at or after since (all runs of the node), for diagnosis.
func logSince(n *nodetest.Node, since time.Time) string {
	var b strings.Builder
	for _, e := range nodetest.ParseLog(n.AllLogs()) {
		ts, _ := e.Fields["ts"].(string)
		at, err := time.Parse("2006-01-02T15:04:05.000Z0700", ts)
		if err != nil || at.Before(since.Add(-time.Millisecond)) {
			continue
		}
		switch e.Msg {
		case "state change":
			fmt.Fprintf(&b, "\n  +%v %s -> %s term %d (%s)", at.Sub(since).Round(time.Millisecond), e.From, e.To, e.Term, e.Reason)
		case "zookeeper session":
			fmt.Fprintf(&b, "\n  +%v zk %v via %v", at.Sub(since).Round(time.Millisecond), e.Fields["zk_state"], e.Fields["server"])
		case "duty started", "duty stopping", "duty stopped":
			fmt.Fprintf(&b, "\n  +%v %s", at.Sub(since).Round(time.Millisecond), e.Msg)
		}
	}
	return b.String()
}
