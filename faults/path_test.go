package faults

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/zktest"
)

// TestLeaderPathStalledBeyondSessionTimeout: the leader's TCP path to
// ZooKeeper stalls (bytes held, connections open, as on a dead link) for
// twice the session timeout, then heals. A standby takes over once
// ZooKeeper expires the cut-off session; the old leader's duty stopped
// before the new one's started; while cut off the old leader says why it is
// not active (cause disconnected or expired); after the heal it finds its
// session expired and rejoins as a standby in a new session.
func TestLeaderPathStalledBeyondSessionTimeout(t *testing.T) {
	cutLeaderPath(t, "leader path stalled 8 s", (*cluster).stall)
}

// TestLeaderPathResetBeyondSessionTimeout: as above, but the path refuses
// (every connection reset, new ones reset at once) instead of stalling.
func TestLeaderPathResetBeyondSessionTimeout(t *testing.T) {
	cutLeaderPath(t, "leader path reset 8 s", (*cluster).reset)
}

func cutLeaderPath(t *testing.T, scenario string, cut func(*cluster, *nodetest.Node) time.Time) {
	zk := zktest.Start(t)
	c := startCluster(t, clusterOptions{Servers: []string{zk.Addr}})
	leader := c.leader(electionTimeout)
	before := activeStatus(t, leader, 5*time.Second)
	waitBeat(t, leader, before.Term, 5*time.Second)
	watch := watchStatus(t, leader)

	fault := cut(c, leader)
	next, took := c.chk.WaitTakeover(fault, leader, waitTakeover)
	if took > takeoverBound {
		t.Errorf("%s took over %v after the cut, want < %v", next, took, takeoverBound)
	}
	after := activeStatus(t, next, 5*time.Second)
	if after.Term <= before.Term {
		t.Errorf("term went from %d (%s) to %d (%s), want it to grow", before.Term, leader, after.Term, next)
	}
	gap, oldLast := dutyHandover(t, leader, before.Term, next, after.Term)

	// Hold the cut to its full length, watching that the old leader stays
	// out and the new one stays in.
	observe(time.Until(fault.Add(cutHold)), 100*time.Millisecond, func() {
		if l, ok := c.chk.Latest(next); ok && l.Result != nodetest.ResultOK {
			t.Fatalf("%s stopped answering ok (%s: %s) while %s was cut off", next, l.Result, l.Detail, leader)
		}
	})
	healed := time.Now()
	cutSamples := watch.between(fault, healed)
	c.heal(leader)

	// Why was the old leader not active while cut off?
	t.Logf("%s while cut off: %s", leader, describe(cutSamples, fault))
	if len(cutSamples) == 0 {
		t.Fatalf("no /v2/status of %s while it was cut off", leader)
	}
	lastCut := cutSamples[len(cutSamples)-1]
	if lastCut.st.State == "active" {
		t.Errorf("%s still reported active %v after its path was cut", leader, lastCut.at.Sub(fault))
	}
	var causes []string
	for _, s := range cutSamples {
		if s.st.State != "active" && !slices.Contains(causes, s.st.Cause) {
			causes = append(causes, s.st.Cause)
		}
	}

	// After the heal: a new session, standby, the new leader keeps leading.
	rejoin := nodetest.WaitStandby(t, leader, sessionTimeout+10*time.Second, before.ZK.SessionID)
	rejoined := time.Since(healed)
	watch.Stop()
	if got := c.leader(5 * time.Second); got != next {
		t.Errorf("leader is %s after %s rejoined, want %s", got, leader, next)
	}
	if r, ok := okSentAfter(c.chk, leader, fault.Add(took)); ok {
		t.Errorf("%s answered ok %d times from %v after the cut, after %s took over", leader, r.N, r.FirstSent.Sub(fault), next)
	}
	t.Logf("%s: takeover by %s %v after the cut; old duty's last beat %v after the cut, new duty's first %v after that; "+
		"causes seen while cut off %q; rejoined as standby in session %s (was %s) %v after the heal",
		scenario, next, took.Round(time.Millisecond), oldLast.Sub(fault).Round(time.Millisecond),
		gap.Round(time.Millisecond), causes, rejoin.ZK.SessionID, before.ZK.SessionID, rejoined.Round(time.Millisecond))
	c.assertClean(t)
	otherFailed := t.Failed()
	// A subtest of its own, so that its name says what is wrong.
	causeOK := t.Run("StatusCauseWhileCutOff", func(t *testing.T) {
		if c := lastCut.st.Cause; c != "disconnected" && c != "expired" {
			t.Errorf("%s, cut off for %v, reported state %s with cause %q (%s); want cause disconnected or expired",
				leader, lastCut.at.Sub(fault).Round(time.Millisecond), lastCut.st.State, c, lastCut.st.Reason)
		}
	})
	outcome := "takeover; old duty stopped first; rejoined standby"
	if !causeOK {
		outcome += fmt.Sprintf("; WRONG cause %q while cut off", lastCut.st.Cause)
	}
	if otherFailed {
		outcome = "FAILED: " + outcome
	}
	record(t, scenario, outcome, took)
}
