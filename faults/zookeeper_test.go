package faults

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// serverOf returns the index (in c.servers) of the ZooKeeper server n last
// got a session from, read from its log ("zookeeper session" entries with
// zk_state StateHasSession name the proxy it used), or -1.
func (c *cluster) serverOf(n *nodetest.Node) int {
	addr := ""
	for _, e := range n.LogEntries() {
		if e.Msg == "zookeeper session" && e.Fields["zk_state"] == "StateHasSession" {
			addr, _ = e.Fields["server"].(string)
		}
	}
	for i, p := range c.paths[n] {
		if p.Addr() == addr {
			return i
		}
	}
	return -1
}

// steer moves n's session onto server i: every other path of n refuses
// until n has a session through server i, then heals. The session
// survives (the client reconnects within milliseconds).
func (c *cluster) steer(t testing.TB, n *nodetest.Node, i int) {
	t.Helper()
	if c.serverOf(n) == i {
		return
	}
	for j, p := range c.paths[n] {
		if j != i {
			p.Reset()
		}
	}
	err := testwait.Poll(10*time.Second, 10*time.Millisecond, func() bool { return c.serverOf(n) == i })
	c.heal(n)
	if err != nil {
		t.Fatalf("%s did not move its session to server %d (it is on %d)", n, i+1, c.serverOf(n)+1)
	}
}

// TestEnsembleMemberLoss runs a group on a three-server ensemble, every
// node reaching every server through its own proxy.
//
// One server stopped, the one the leader's session is on (first a
// follower, then the ensemble's leader, the leader's session moved onto
// each beforehand): no failover, the leader keeps its term, and its duty
// runs on without a gap, since ZooKeeper keeps a quorum and the leader's
// client moves to another server within its lease.
//
// Two servers stopped (no quorum): no node stays active beyond the session
// timeout, every node says why (cause "no quorum" or "disconnected"), and
// once the servers are back there is exactly one leader again.
func TestEnsembleMemberLoss(t *testing.T) {
	ens := zktest.StartEnsemble(t, 3)
	var servers []string
	for _, s := range ens.Servers {
		servers = append(servers, s.Addr)
	}
	c := startCluster(t, clusterOptions{Servers: servers})
	c.leader(electionTimeout)

	t.Run("FollowerWithTheLeadersSession", func(t *testing.T) {
		zkLeader := ens.Leader(t, 30*time.Second)
		i := slices.IndexFunc(ens.Servers, func(s *zktest.Server) bool { return s != zkLeader })
		oneServerDown(t, c, ens, i, "a follower, the leader's session on it")
	})
	t.Run("EnsembleLeaderWithTheLeadersSession", func(t *testing.T) {
		zkLeader := ens.Leader(t, 30*time.Second)
		oneServerDown(t, c, ens, slices.Index(ens.Servers, zkLeader), "the ensemble's leader, the leader's session on it")
	})
	t.Run("QuorumLost", func(t *testing.T) {
		quorumLost(t, c, ens)
	})
	c.assertClean(t)
}

// oneServerDown moves the leader's session onto server i, stops that
// server, watches for the session timeout and more that the leader keeps
// leading in the same term with its duty running, restarts the server and
// waits for the group to settle with the same leader.
func oneServerDown(t *testing.T, c *cluster, ens *zktest.Ensemble, i int, which string) {
	srv := ens.Servers[i]
	leader := c.settle(t, settleTimeout)
	c.steer(t, leader, i)
	leader = c.settle(t, settleTimeout)
	before := activeStatus(t, leader, 5*time.Second)
	waitBeat(t, leader, before.Term, 5*time.Second)
	role := "follower"
	if ens.Leader(t, 30*time.Second) == srv {
		role = "leader"
	}
	if c.serverOf(leader) != i {
		t.Fatalf("%s's session moved off server %d before the fault", leader, i+1)
	}
	scenario := fmt.Sprintf("ensemble of 3: one server stopped (%s)", which)

	fault := time.Now()
	srv.Stop(t)
	stopped := time.Since(fault)
	var problems []string
	prev := ""
	observe(sessionTimeout+2*time.Second, 50*time.Millisecond, func() {
		st, err := leader.Status()
		if err != nil || (st.State == "active" && st.Term == before.Term) {
			return
		}
		if k := fmt.Sprintf("%s term %d cause %q (%s)", st.State, st.Term, st.Cause, st.Reason); k != prev {
			problems = append(problems, fmt.Sprintf("+%v %s", time.Since(fault).Round(time.Millisecond), k))
			prev = k
		}
	})
	for _, p := range problems {
		t.Errorf("%s after stopping %s (%s, zk %s): %s", leader, srv, which, role, p)
	}
	if n, at, ok := c.chk.FirstOKAfter(fault, leader); ok {
		t.Errorf("%s answered ok %v after %s stopped: a failover", n, at.Sub(fault), srv)
	}
	for _, r := range c.chk.Runs(leader) {
		if r.Result != nodetest.ResultOK && r.LastArrived.After(fault) {
			t.Errorf("%s answered %s (%s) %d times from %v after %s stopped", leader, r.Result, r.Detail, r.N, r.FirstSent.Sub(fault), srv)
		}
	}
	maxGap := dutyGap(t, leader, before.Term, fault.Add(-time.Second), time.Now())
	moved := c.serverOf(leader)

	srv.Restart(t)
	if got := c.settle(t, settleTimeout); got != leader {
		t.Errorf("leader is %s after %s came back, want %s", got, srv, leader)
	}
	after := activeStatus(t, leader, 5*time.Second)
	if after.Term != before.Term {
		t.Errorf("%s's term went from %d to %d over the loss of one server", leader, before.Term, after.Term)
	}
	t.Logf("%s: stopped %s (zk %s, %s's session on it) in %v; leader kept term %d, its duty's longest gap between beats %v, "+
		"its session moved to server %d",
		scenario, srv, role, leader, stopped.Round(time.Millisecond), before.Term, maxGap.Round(time.Millisecond), moved+1)
	outcome := "no failover, same term, duty uninterrupted"
	if len(problems) > 0 || t.Failed() {
		outcome = "FAILED: " + strings.Join(problems, "; ")
	}
	record(t, scenario, outcome, -1)
}

// dutyGap returns the longest time between two consecutive heartbeats of
// n's duty in term within [from, to], and fails the test if the duty beat
// in another term in that window or stopped beating more than a second.
func dutyGap(t *testing.T, n *nodetest.Node, term int64, from, to time.Time) time.Duration {
	t.Helper()
	var prev time.Time
	var gap time.Duration
	if b := beats(n, term); len(b) > 0 && b[0].At.After(from) {
		from = b[0].At // the duty's earlier terms ended before this one began
	}
	for _, hb := range n.Heartbeats() {
		if hb.At.Before(from) || hb.At.After(to) {
			continue
		}
		if hb.Term != term {
			t.Errorf("%s's duty beat in term %d at %s, want only term %d", n, hb.Term, hb.At.Format("15:04:05.000"), term)
			continue
		}
		if !prev.IsZero() {
			gap = max(gap, hb.At.Sub(prev))
		}
		prev = hb.At
	}
	if prev.IsZero() {
		t.Errorf("%s's duty did not beat in term %d between %s and %s", n, term, from.Format("15:04:05.000"), to.Format("15:04:05.000"))
	} else if to.Sub(prev) > time.Second {
		t.Errorf("%s's duty stopped beating at %s", n, prev.Format("15:04:05.000"))
	}
	if gap > time.Second {
		t.Errorf("%s's duty stopped for %v", n, gap)
	}
	return gap
}

// quorumLost stops two of the three servers (the leader's own server among
// them), checks that every node stops being active within the session
// timeout and reports why, then restarts both and waits for one leader.
func quorumLost(t *testing.T, c *cluster, ens *zktest.Ensemble) {
	const scenario = "ensemble of 3: two servers stopped (no quorum), then restarted"
	leader := c.settle(t, settleTimeout)
	before := activeStatus(t, leader, 5*time.Second)
	first := ens.Servers[max(c.serverOf(leader), 0)]
	var second *zktest.Server
	for _, s := range ens.Servers {
		if s != first {
			second = s
			break
		}
	}
	var watches []*statusWatch
	for _, n := range c.nodes {
		watches = append(watches, watchStatus(t, n))
	}

	first.Stop(t)
	fault := time.Now() // the quorum is lost while the second one stops
	second.Stop(t)
	stoppedIn := time.Since(fault)
	// Every node out within the session timeout, and saying why.
	var causes []string
	observe(sessionTimeout+2*time.Second, 100*time.Millisecond, func() {
		if time.Since(fault) < sessionTimeout {
			return
		}
		for _, n := range c.nodes {
			if r, ok := c.chk.Latest(n); ok && r.Result == nodetest.ResultOK && r.LastSent.After(fault.Add(sessionTimeout)) {
				t.Fatalf("%s still answers ok %v after the quorum was lost", n, r.LastSent.Sub(fault))
			}
		}
	})
	end := time.Now()
	var lastOK time.Time
	for _, n := range c.nodes {
		for _, r := range c.chk.Runs(n) {
			if r.Result == nodetest.ResultOK && r.LastSent.After(lastOK) {
				lastOK = r.LastSent
			}
		}
		if r, ok := okSentAfter(c.chk, n, fault.Add(sessionTimeout)); ok {
			t.Errorf("%s answered ok %v after the quorum was lost (session timeout %v)", n, r.LastSent.Sub(fault), sessionTimeout)
		}
		for _, hb := range n.Heartbeats() {
			if hb.At.After(fault.Add(sessionTimeout)) {
				t.Errorf("%s's duty beat %v after the quorum was lost", n, hb.At.Sub(fault))
				break
			}
		}
	}
	for i, n := range c.nodes {
		samples := watches[i].between(fault, end)
		t.Logf("%s without quorum: %s", n, describe(samples, fault))
		if len(samples) == 0 {
			t.Errorf("no /v2/status of %s without quorum", n)
			continue
		}
		last := samples[len(samples)-1].st
		causes = append(causes, n.Name()+"="+last.Cause)
		if last.State == "active" || (last.Cause != "no quorum" && last.Cause != "disconnected") {
			t.Errorf("%s without quorum for %v: state %s cause %q (%s), want not active with cause no quorum or disconnected",
				n, end.Sub(fault).Round(time.Millisecond), last.State, last.Cause, last.Reason)
		}
	}
	for _, w := range watches {
		w.Stop()
	}

	restart := time.Now()
	ens.Restart(t, first, second)
	quorum := time.Since(restart)
	next := c.settle(t, settleTimeout)
	back := time.Since(restart)
	after := activeStatus(t, next, 5*time.Second)
	if after.Term <= before.Term {
		t.Errorf("term went from %d to %d over the loss of the quorum", before.Term, after.Term)
	}
	t.Logf("%s: stopping the second server took %v; last ok sent %v after the quorum was lost; causes %s; "+
		"servers back in %v, %s leads (term %d -> %d) %v after the restart began",
		scenario, stoppedIn.Round(time.Millisecond), lastOK.Sub(fault).Round(time.Millisecond), strings.Join(causes, " "),
		quorum.Round(time.Millisecond), next, before.Term, after.Term, back.Round(time.Millisecond))
	record(t, scenario, outcomeOf(t, fmt.Sprintf("no active within %v (last ok %v after the loss); one leader %v after restart",
		sessionTimeout, lastOK.Sub(fault).Round(10*time.Millisecond), back.Round(100*time.Millisecond))), -1)
}

// TestZooKeeperRestart restarts the group's only ZooKeeper server: at
// once keeping its data, after an outage of twice the session timeout
// keeping its data, and at once losing its data. Each time there is one
// leader afterwards and terms never go backwards; after the data loss
// every member rejoins in a new session, the tree is recreated and the new
// leader's term is larger than any seen before (members remember the terms
// they saw).
func TestZooKeeperRestart(t *testing.T) {
	for _, tc := range []struct {
		name, scenario string
		restart        func(testing.TB, *cluster, *zktest.Server)
		wiped          bool
	}{
		{"DataKept", "ZooKeeper (single) restarted, data kept",
			func(t testing.TB, _ *cluster, zk *zktest.Server) { zk.Restart(t) }, false},
		{"DataKeptDown8s", "ZooKeeper (single) down 8 s, data kept",
			func(t testing.TB, c *cluster, zk *zktest.Server) {
				fault := time.Now()
				zk.Stop(t)
				// Nobody may stay active beyond the session timeout.
				holdFault(time.Until(fault.Add(cutHold)))
				for _, n := range c.nodes {
					if r, ok := okSentAfter(c.chk, n, fault.Add(sessionTimeout)); ok {
						t.Errorf("%s answered ok %v after ZooKeeper stopped", n, r.LastSent.Sub(fault))
					}
				}
				zk.Restart(t)
			}, false},
		{"DataLost", "ZooKeeper (single) restarted, data lost",
			func(t testing.TB, _ *cluster, zk *zktest.Server) { zk.RestartWiped(t) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			zk := zktest.Start(t)
			c := startCluster(t, clusterOptions{Servers: []string{zk.Addr}})
			leader := c.leader(electionTimeout)
			st := activeStatus(t, leader, 5*time.Second)
			waitBeat(t, leader, st.Term, 5*time.Second)
			termBefore := maxTerm(c.nodes)
			sessions := map[string]string{}
			for _, n := range c.nodes {
				sessions[n.Name()] = n.MustStatus().ZK.SessionID
			}

			fault := time.Now()
			tc.restart(t, c, zk)
			serving := time.Since(fault)
			if tc.wiped {
				// The server forgot every session: every node must notice
				// and rejoin in a new session, before the group can be
				// said to have settled.
				stuck := 0
				for _, n := range c.nodes {
					if !rejoinedNewSession(t, n, fault, fault.Add(3*sessionTimeout), sessions[n.Name()]) {
						stuck++
					}
				}
				if stuck > 0 {
					c.assertClean(t)
					record(t, tc.scenario, fmt.Sprintf("FAILED: %d of %d members never rejoined", stuck, len(c.nodes)), -1)
					t.FailNow()
				}
			}
			next := c.settle(t, settleTimeout)
			settled := time.Since(fault)
			after := activeStatus(t, next, 5*time.Second)
			if after.Term < termBefore {
				t.Errorf("term went backwards: %d before the restart, %d after", termBefore, after.Term)
			}
			if tc.wiped && after.Term <= termBefore {
				t.Errorf("term %d after the data loss, want more than %d (the largest seen before)", after.Term, termBefore)
			}
			kept := 0
			for _, n := range c.nodes {
				if n.MustStatus().ZK.SessionID == sessions[n.Name()] {
					kept++
				}
			}
			// The tree is back: the leader record holds the new term.
			conn := zktest.Connect(t, zk.Addr, 10*time.Second)
			data, _, err := conn.Get("/hanode/groups/" + c.haID + "/leader")
			var rec struct {
				Term int64  `json:"term"`
				Name string `json:"name"`
			}
			if err == nil {
				err = json.Unmarshal(data, &rec)
			}
			if err != nil {
				t.Errorf("read the leader record after the restart: %v", err)
			} else if rec.Term != after.Term || rec.Name != next.Name() {
				t.Errorf("leader record says %s term %d, the leader says %s term %d", rec.Name, rec.Term, next, after.Term)
			}
			// Back to ok: the first ok answer that ended a time without
			// one (none if the leader never stopped answering ok).
			back, noOK := time.Duration(-1), time.Duration(0)
			changes, interruptions := handovers(c.chk, fault)
			for _, ch := range append(changes, interruptions...) {
				if d := ch.at.Sub(fault); d > 0 && (back < 0 || d < back) {
					back, noOK = d, ch.gap
				}
			}
			okAgain := "the leader never stopped answering ok"
			if back >= 0 {
				okAgain = fmt.Sprintf("ok again %v after the restart began, after %v without any ok", back.Round(time.Millisecond), noOK.Round(time.Millisecond))
			}
			t.Logf("%s: ZooKeeper serving again %v after the restart began; %s leads (was %s), term %d -> %d, %d of %d sessions kept; "+
				"%s; group settled %v after the restart began",
				tc.scenario, serving.Round(time.Millisecond), next, leader, termBefore, after.Term, kept, len(c.nodes),
				okAgain, settled.Round(time.Millisecond))
			c.assertClean(t)
			outcome := fmt.Sprintf("one leader (%s), term %d -> %d, %d/%d sessions kept; settled in %v",
				sameOr(next == leader, "same node", "another node"), termBefore, after.Term, kept, len(c.nodes), settled.Round(100*time.Millisecond))
			record(t, tc.scenario, outcomeOf(t, outcome), back)
		})
	}
}

// rejoinedNewSession waits until deadline for n to report standby or
// active in a session other than notSession; it fails the test (without
// stopping it) and reports false when n has not by then.
func rejoinedNewSession(t testing.TB, n *nodetest.Node, fault, deadline time.Time, notSession string) bool {
	t.Helper()
	last := ""
	err := testwait.Poll(max(time.Until(deadline), time.Millisecond), 20*time.Millisecond, func() bool {
		st, err := n.Status()
		if err != nil {
			last = err.Error()
			return false
		}
		last = fmt.Sprintf("%s cause %q (%s), session %s", st.State, st.Cause, st.Reason, st.ZK.SessionID)
		return (st.State == "standby" || st.State == "active") && st.ZK.SessionID != "" && st.ZK.SessionID != notSession
	})
	if err != nil {
		t.Errorf("%s has not rejoined in a new session (its old one was %s) %v after the data loss; last: %s",
			n, notSession, time.Since(fault).Round(time.Millisecond), last)
		return false
	}
	return true
}

func sameOr(cond bool, yes, no string) string {
	if cond {
		return yes
	}
	return no
}

// TestZooKeeperDataLossThenANewNode: the group's only ZooKeeper server,
// which has some history (a few hundred transactions, as any shared server
// has), loses its data while the leader holds its lease, and a node that
// was not running before (a new member, or one systemd restarted during
// the outage) starts as soon as ZooKeeper serves again. The old leader's
// lease still runs: the new node must not act before it ends, and its term
// must be larger than every term the group ever used.
func TestZooKeeperDataLossThenANewNode(t *testing.T) {
	const scenario = "ZooKeeper (single) restarted with data lost, then a new node starts"
	zk := zktest.Start(t)
	zkHistory(t, zk.Addr, 300)
	c := startCluster(t, clusterOptions{Servers: []string{zk.Addr}})
	leader := c.leader(electionTimeout)
	st := activeStatus(t, leader, 5*time.Second)
	waitBeat(t, leader, st.Term, 5*time.Second)
	termBefore := maxTerm(c.nodes)
	old := slices.Clone(c.nodes)
	sessions := map[*nodetest.Node]string{}
	for _, n := range old {
		sessions[n] = n.MustStatus().ZK.SessionID
	}

	fault := time.Now()
	zk.RestartWiped(t)
	serving := time.Since(fault)
	d := c.addNode("d")
	started := time.Since(fault)
	next, took := c.chk.WaitTakeover(fault, leader, waitTakeover)
	nst := activeStatus(t, next, 5*time.Second)
	if next == d && nst.Term <= termBefore {
		t.Errorf("term went backwards: %s leads in term %d after the data loss; the group had used term %d", d, nst.Term, termBefore)
	}
	// The old members must rejoin in new sessions (theirs are gone with the
	// data), within a bound; and the checker watches past the end of the
	// old leader's lease.
	stuck := 0
	for _, n := range old {
		if !rejoinedNewSession(t, n, fault, fault.Add(3*sessionTimeout), sessions[n]) {
			stuck++
		}
	}
	var oldLastOK time.Time
	for _, r := range c.chk.Runs(leader) {
		if r.Result == nodetest.ResultOK {
			oldLastOK = r.LastSent
		}
	}
	t.Logf("%s: ZooKeeper serving again %v after the restart began, %s started %v after it; %s active %v after it in term %d "+
		"(terms before: up to %d); the old leader %s last answered ok (sent) %v after the restart began; %d of %d old members rejoined",
		scenario, serving.Round(time.Millisecond), d, started.Round(time.Millisecond), next, took.Round(time.Millisecond),
		nst.Term, termBefore, leader, oldLastOK.Sub(fault).Round(time.Millisecond), len(old)-stuck, len(old))
	c.assertClean(t)
	record(t, scenario, outcomeOf(t, fmt.Sprintf("%s leads in term %d (before: %d); %d of %d old members rejoined", next, nst.Term, termBefore, len(old)-stuck, len(old))), took)
}

// zkHistory gives the server a history of 2n transactions (n creates and
// n deletes), as a server shared with other users has: every client that
// connects afterwards has seen a zxid at least that large.
func zkHistory(t testing.TB, addr string, n int) {
	t.Helper()
	conn := zktest.Connect(t, addr, 10*time.Second)
	for i := range n {
		p := fmt.Sprintf("/faults-history-%d", i)
		if _, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatalf("create %s: %v", p, err)
		}
		if err := conn.Delete(p, -1); err != nil {
			t.Fatalf("delete %s: %v", p, err)
		}
	}
}
