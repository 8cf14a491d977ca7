package nodetest

import (
	"testing"
	"time"

	"github.com/hanode/hanode/internal/testwait"
)

// TestCheckerCatchesTwoActiveNodes runs two standalone nodes (each always
// active, each running the heartbeat duty): the checker must report definite
// overlaps of their ok answers and of their duties. This is the harness's
// own proof that a double leader would not go unnoticed.
func TestCheckerCatchesTwoActiveNodes(t *testing.T) {
	var nodes []*Node
	for _, name := range []string{"x", "y"} {
		nodes = append(nodes, Start(t, Options{Heartbeat: true, Env: map[string]string{"NAME": name, "ROLE": "primary"}}))
	}
	c := NewChecker(t, nodes...)
	testwait.For(t, 10*time.Second, "both nodes to answer ok and beat for a while", func() bool {
		for _, n := range nodes {
			r, ok := c.Latest(n)
			if !ok || r.Result != ResultOK || r.N < 20 || len(n.Heartbeats()) < 3 {
				return false
			}
		}
		return true
	})
	r := c.Report()
	if len(r.Definite) == 0 {
		t.Errorf("no definite overlap reported for two always-active nodes\n%s", c.Summary())
	}
	if len(r.Duties) == 0 {
		t.Errorf("no duty overlap reported for two always-running duties: %v", r.Spans)
	}
	if len(r.TermProblems) == 0 {
		t.Errorf("no term problem reported for two duties with term 0: %v", r.Spans)
	}
}

// TestNodeCleanupKillsHanodeAndItsDuties: KillGroup takes down hanode and
// the duty it forked in its own process group.
func TestNodeCleanupKillsHanodeAndItsDuties(t *testing.T) {
	n := Start(t, Options{Heartbeat: true, Env: map[string]string{"NAME": "z", "ROLE": "primary"}})
	testwait.For(t, 10*time.Second, "the duty to run", func() bool { return len(n.DutyPIDs()) > 0 })
	n.KillGroup()
	if code := n.WaitExit(10 * time.Second); code != -1 {
		t.Errorf("exit %d after SIGKILL, want -1", code)
	}
	testwait.For(t, 5*time.Second, "every duty process to be gone", func() bool { return len(n.DutyPIDs()) == 0 })
}
