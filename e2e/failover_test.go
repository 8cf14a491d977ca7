package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
	"github.com/hanode/hanode/ping"
)

// TestGracefulFailoverHandsOverWithoutOverlap: SIGTERM to the leader, ten
// rounds, restarting the old leader each round. Each time a standby answers
// "ok" within a few seconds, the old leader exits 0, the new term is larger
// than the old one, and the restarted node rejoins as a standby. Over all
// rounds no two nodes were surely active at once, by their answers or by
// their duties' heartbeats, and every duty ran with a larger term than the
// one before.
func TestGracefulFailoverHandsOverWithoutOverlap(t *testing.T) {
	const rounds = 10
	zk := zktest.Start(t)
	nodes := nodetest.StartGroup(t, nodetest.GroupOptions{ZK: zk.Addr, Heartbeat: true})
	chk := nodetest.NewChecker(t, nodes...)
	leader := chk.Node(chk.WaitSingleLeader(electionTimeout))

	var took []time.Duration
	for round := 1; round <= rounds; round++ {
		oldTerm := activeTerm(t, leader)
		fault := leader.Term()
		next, d := chk.WaitTakeover(fault, leader, gracefulBound+2*time.Second)
		took = append(took, d)
		if d > gracefulBound {
			t.Errorf("round %d: %s took over %v after SIGTERM to %s, want < %v", round, next, d, leader, gracefulBound)
		}
		if code := leader.WaitExit(exitBound); code != 0 {
			t.Errorf("round %d: %s exited %d after SIGTERM, want 0\n%s", round, leader, code, leader.Logs())
		}
		if newTerm := activeTerm(t, next); newTerm <= oldTerm {
			t.Errorf("round %d: term went from %d (%s) to %d (%s), want it to grow", round, oldTerm, leader, newTerm, next)
		}

		leader.Restart()
		waitState(t, leader, 10*time.Second, "standby")
		if got := chk.WaitSingleLeader(5 * time.Second); got != next.Name() {
			t.Fatalf("round %d: leader is %s after %s restarted, want %s to keep leading", round, got, leader, next)
		}
		leader = next
	}
	t.Logf("takeover after SIGTERM over %d rounds: %v", rounds, took)
	chk.Assert(t)
}

// TestCrashedLeaderIsReplacedOnceItsLeaseProvablyEnded: SIGKILL of the
// leader's whole node (hanode with its duty guard, as when the machine
// dies: nobody releases; hanode alone is released for by its guard,
// e2e/guard_release_test.go). The next member takes over W after the last extension
// it saw (ZK_SESSION_TIMEOUT=4s: W is 4.08 s), without waiting for ZooKeeper
// to expire the dead session. The killed node, restarted at once, finds its
// name held by its dead process, takes it back, and joins as a standby: it
// never answers "ok" and the new leader keeps leading.
func TestCrashedLeaderIsReplacedOnceItsLeaseProvablyEnded(t *testing.T) {
	zk := zktest.Start(t)
	nodes := nodetest.StartGroup(t, nodetest.GroupOptions{ZK: zk.Addr, Heartbeat: true})
	chk := nodetest.NewChecker(t, nodes...)
	leader := chk.Node(chk.WaitSingleLeader(electionTimeout))
	oldTerm := activeTerm(t, leader)

	fault := leader.KillGroup()
	if code := leader.WaitExit(exitBound); code != -1 {
		t.Fatalf("%s exited %d after SIGKILL, want -1 (killed)", leader, code)
	}
	leader.Restart()

	bound := nodetest.DefaultSessionTimeout + 6*time.Second
	next, took := chk.WaitTakeover(fault, leader, bound)
	t.Logf("%s took over %v after SIGKILL of %s", next, took, leader)
	if newTerm := activeTerm(t, next); newTerm <= oldTerm {
		t.Errorf("term went from %d to %d, want it to grow", oldTerm, newTerm)
	}

	// The restarted node takes its name back from its dead process, then
	// stands by.
	waitState(t, leader, nodetest.DefaultSessionTimeout+10*time.Second, "standby")
	if !leader.HasLog("taking over the server name") {
		t.Errorf("restarted %s did not log that it took its name back from its dead process\n%s", leader, leader.Logs())
	}
	if got := chk.WaitSingleLeader(5 * time.Second); got != next.Name() {
		t.Errorf("leader is %s after %s rejoined, want %s", got, leader, next)
	}
	// An answer to a request sent after the kill can only come from the
	// restarted process (one sent just before may arrive just after).
	for _, r := range chk.Runs(leader) {
		if r.Result == nodetest.ResultOK && r.LastSent.After(fault) {
			t.Errorf("restarted %s answered ok to a request sent %v after the crash", leader, r.LastSent.Sub(fault))
		}
	}
	chk.Assert(t)
}

// activeTerm waits until n reports itself active and returns its term.
func activeTerm(t *testing.T, n *nodetest.Node) int64 {
	t.Helper()
	var term int64
	testwait.For(t, 5*time.Second, n.Name()+" to report active with a term", func() bool {
		st, err := n.Status()
		term = st.Term
		return err == nil && st.State == "active" && st.Term > 0
	})
	return term
}

// waitState waits until n's /v2/status reports one of states.
func waitState(t *testing.T, n *nodetest.Node, timeout time.Duration, states ...string) {
	t.Helper()
	if _, err := n.WaitStatus(timeout, func(st ping.Status) bool { return slices.Contains(states, st.State) }); err != nil {
		t.Fatalf("want %s: %v", strings.Join(states, " or "), err)
	}
}
