package faults

import (
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// guardStopBound is how long after a freeze of hanode its duty guard may
// take to stop the duty: the whole lease (the guard's copy never outlasts
// it), ACTIVE_STOP_TIMEOUT (0.8 s), the kill grace (0.5 s) and 0.5 s of
// scheduling slack.
const guardStopBound = lease + 800*time.Millisecond + 500*time.Millisecond + 500*time.Millisecond

// TestLeaderProcessFrozenBeyondSessionTimeout: SIGSTOP to the leader's
// hanode process alone (not its duty guard, not its duty) for twice the
// session timeout. The guard, whose lease copy stops being extended, stops
// the duty before ZooKeeper expires the session, so before the new
// leader's duty starts. On SIGCONT the old node answers standby at once
// (it evaluates its lease against the clock), never ok, and rejoins as a
// standby in a new session.
func TestLeaderProcessFrozenBeyondSessionTimeout(t *testing.T) {
	const scenario = "leader's hanode frozen (SIGSTOP) 8 s"
	zk := zktest.Start(t)
	c := startCluster(t, clusterOptions{Servers: []string{zk.Addr}})
	leader := c.leader(electionTimeout)
	before := activeStatus(t, leader, 5*time.Second)
	waitBeat(t, leader, before.Term, 5*time.Second)

	fault := leader.Stop()
	next, took := c.chk.WaitTakeover(fault, leader, waitTakeover)
	if took > takeoverBound {
		t.Errorf("%s took over %v after %s froze, want < %v", next, took, leader, takeoverBound)
	}
	after := activeStatus(t, next, 5*time.Second)
	if after.Term <= before.Term {
		t.Errorf("term went from %d to %d, want it to grow", before.Term, after.Term)
	}
	gap, oldLast := dutyHandover(t, leader, before.Term, next, after.Term)
	if d := oldLast.Sub(fault); d > guardStopBound {
		t.Errorf("%s's duty beat %v after its hanode froze, want the guard to stop it within %v", leader, d, guardStopBound)
	}

	observe(time.Until(fault.Add(cutHold)), 100*time.Millisecond, func() {
		if l, ok := c.chk.Latest(next); ok && l.Result != nodetest.ResultOK {
			t.Fatalf("%s stopped answering ok (%s: %s) while %s was frozen", next, l.Result, l.Detail, leader)
		}
	})
	if hb := beats(leader, before.Term); len(hb) > 0 && hb[len(hb)-1].At.After(oldLast) {
		t.Errorf("%s's duty beat again at %s while its hanode was frozen", leader, hb[len(hb)-1].At.Format("15:04:05.000"))
	}

	resumed := leader.Cont()
	code, body, err := leader.PingSE()
	answered := time.Since(resumed)
	if err != nil || code != http.StatusServiceUnavailable || body != "standby" {
		t.Errorf("%s answered %d %q (%v) %v after SIGCONT, want 503 standby at once", leader, code, body, err, answered)
	}
	if st, err := leader.Status(); err != nil || st.State == "active" {
		t.Errorf("%s's status after SIGCONT: %+v %v, want not active", leader, st, err)
	}
	rejoin := nodetest.WaitStandby(t, leader, sessionTimeout+10*time.Second, before.ZK.SessionID)
	rejoined := time.Since(resumed)
	if got := c.leader(5 * time.Second); got != next {
		t.Errorf("leader is %s after %s rejoined, want %s", got, leader, next)
	}
	if r, ok := okSentAfter(c.chk, leader, fault.Add(signalTolerance)); ok {
		t.Errorf("%s answered ok %d times, the first sent %v after SIGSTOP", leader, r.N, r.FirstSent.Sub(fault))
	}
	if !leader.HasLog("lease expired without an extension from the coordinator; stopping the duty") {
		t.Errorf("%s's duty guard did not log that it stopped the duty on its own", leader)
	}
	t.Logf("%s: takeover by %s %v after SIGSTOP; the guard stopped the duty (last beat %v after SIGSTOP), "+
		"the new duty began %v later; after SIGCONT: %d %q in %v, standby in session %s (was %s) %v after SIGCONT",
		scenario, next, took.Round(time.Millisecond), oldLast.Sub(fault).Round(time.Millisecond), gap.Round(time.Millisecond),
		code, body, answered.Round(time.Millisecond), rejoin.ZK.SessionID, before.ZK.SessionID, rejoined.Round(time.Millisecond))
	c.assertClean(t)
	record(t, scenario, outcomeOf(t, "takeover; guard stopped the duty first; standby at once on SIGCONT"), took)
}

// TestLeaderKilled: SIGKILL to the leader's hanode process, and to its
// whole process group. The duty guard runs in a group of its own, so
// either way it survives hanode, sees its stdin close and stops the duty
// at once. A standby takes over once ZooKeeper expires the dead session;
// the killed node, restarted, rejoins as a standby.
func TestLeaderKilled(t *testing.T) {
	for _, tc := range []struct {
		name, scenario string
		kill           func(t *testing.T, n *nodetest.Node) time.Time
	}{
		{"Process", "leader SIGKILLed (process)", func(_ *testing.T, n *nodetest.Node) time.Time { return n.Kill() }},
		{"ProcessGroup", "leader SIGKILLed (process group)", func(t *testing.T, n *nodetest.Node) time.Time {
			at := time.Now()
			if err := syscall.Kill(-n.PID(), syscall.SIGKILL); err != nil {
				t.Fatalf("kill process group %d: %v", n.PID(), err)
			}
			return at
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			zk := zktest.Start(t)
			c := startCluster(t, clusterOptions{Servers: []string{zk.Addr}})
			leader := c.leader(electionTimeout)
			before := activeStatus(t, leader, 5*time.Second)
			waitBeat(t, leader, before.Term, 5*time.Second)
			// The test means what it says only if the guard and the duty
			// live outside hanode's process group.
			for _, pid := range leader.DutyPIDs() {
				if pg, err := syscall.Getpgid(pid); err == nil && pg == leader.PID() {
					t.Fatalf("pid %d of %s's duty runs in hanode's process group %d", pid, leader, pg)
				}
			}

			fault := tc.kill(t, leader)
			if code := leader.WaitExit(exitBound); code != -1 {
				t.Fatalf("%s exited %d after SIGKILL, want -1", leader, code)
			}
			testwait.For(t, guardStopBound, leader.Name()+"'s duty and guard to be gone", func() bool {
				return len(leader.DutyPIDs()) == 0
			})
			gone := time.Since(fault)
			next, took := c.chk.WaitTakeover(fault, leader, waitTakeover)
			if took > takeoverBound {
				t.Errorf("%s took over %v after SIGKILL of %s, want < %v", next, took, leader, takeoverBound)
			}
			after := activeStatus(t, next, 5*time.Second)
			gap, oldLast := dutyHandover(t, leader, before.Term, next, after.Term)

			leader.Restart()
			nodetest.WaitStandby(t, leader, sessionTimeout+10*time.Second, "")
			if got := c.leader(5 * time.Second); got != next {
				t.Errorf("leader is %s after %s rejoined, want %s", got, leader, next)
			}
			t.Logf("%s: duty's last beat %v after the kill, duty and guard gone %v after it; takeover by %s %v after the kill "+
				"(duty began %v after the old one's last beat); restarted node rejoined as standby",
				tc.scenario, oldLast.Sub(fault).Round(time.Millisecond), gone.Round(time.Millisecond), next,
				took.Round(time.Millisecond), gap.Round(time.Millisecond))
			c.assertClean(t)
			record(t, tc.scenario, outcomeOf(t, fmt.Sprintf("takeover; guard and duty gone %v after the kill", gone.Round(time.Millisecond))), took)
		})
	}
}

// TestRollingRestart: every node of the group in turn gets SIGTERM, is
// restarted and must rejoin as a standby before the next one goes. A
// standby's restart leaves the leader alone; the leader's hands over to
// another node. There is one leader at all times but for the handovers.
func TestRollingRestart(t *testing.T) {
	const scenario = "rolling restart (SIGTERM, restart, standby), 3 nodes"
	zk := zktest.Start(t)
	c := startCluster(t, clusterOptions{Servers: []string{zk.Addr}})
	start := time.Now() // before the first leader: handovers counts from its first ok
	leader := c.leader(electionTimeout)

	var leaderRestarts []time.Duration
	for _, n := range c.nodes {
		// The leader's duty runs before anyone goes, as an operator would
		// check before restarting the next node.
		waitBeat(t, leader, activeStatus(t, leader, 5*time.Second).Term, 5*time.Second)
		wasLeader := n == leader
		at := n.Term()
		if wasLeader {
			next, took := c.chk.WaitTakeover(at, n, 10*time.Second)
			if took > 3*time.Second {
				t.Errorf("%s took over %v after SIGTERM to %s, want < 3s", next, took, n)
			}
			leaderRestarts = append(leaderRestarts, took)
			record(t, "rolling restart: leader's SIGTERM", outcomeOf(t, "graceful handover"), took)
			leader = next
		}
		if code := n.WaitExit(exitBound); code != 0 {
			t.Errorf("%s exited %d after SIGTERM, want 0", n, code)
		}
		n.Restart()
		nodetest.WaitStandby(t, n, 15*time.Second, "")
		if got := c.leader(5 * time.Second); got != leader {
			t.Fatalf("leader is %s after %s restarted, want %s", got, n, leader)
		}
	}

	changes, interruptions := handovers(c.chk, start)
	for _, ch := range changes {
		t.Logf("handover %s -> %s: no ok from anyone for %v", ch.from, ch.to, ch.gap.Round(time.Microsecond))
		if ch.gap > time.Second {
			t.Errorf("handover %s -> %s left no leader for %v", ch.from, ch.to, ch.gap)
		}
	}
	for _, ch := range interruptions {
		t.Errorf("%s stopped answering ok for %v (at %s) without a handover", ch.from, ch.gap, ch.at.Format("15:04:05.000"))
	}
	if len(changes) != len(leaderRestarts) {
		t.Errorf("%d changes of the ok-answering node, want %d (one per restart of the leader)", len(changes), len(leaderRestarts))
	}
	c.assertClean(t)
	record(t, scenario, outcomeOf(t, fmt.Sprintf("%d handovers, no other gap", len(changes))), -1)
}

// outcomeOf prefixes FAILED when the test failed so far.
func outcomeOf(t testing.TB, outcome string) string {
	if t.Failed() {
		return "FAILED: " + outcome
	}
	return outcome
}
