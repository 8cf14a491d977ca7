package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
)

// TestSwitchoverCommandMovesLeadershipWithoutOverlap: hanode switchover
// --to a standby, then to the next, from the real binary on a member's
// host: each returns once the new leader answers ok, the right member
// leads, and no two members ever answered ok at once; a switchover to a
// member that does not exist is refused with exit 1 and why.
func TestSwitchoverCommandMovesLeadershipWithoutOverlap(t *testing.T) {
	_, nodes, chk, leader := adminGroup(t)
	var target *nodetest.Node
	for _, n := range nodes {
		if n != leader {
			target = n
		}
	}
	if _, stderr, code := cli(t, "switchover", "--env-file", leader.EnvFilePath(), "--to", "nope"); code != 1 ||
		!strings.Contains(stderr, "nope is not a member") {
		t.Fatalf("switchover to nope: exit %d, %s", code, stderr)
	}
	start := time.Now()
	stdout, stderr, code := cli(t, "switchover", "--env-file", leader.EnvFilePath(), "--to", target.Name())
	if code != 0 {
		t.Fatalf("hanode switchover --to %s: exit %d: %s", target, code, stderr)
	}
	t.Logf("switchover --to %s: %v (command to exit); %q", target, time.Since(start).Round(time.Millisecond), stdout)
	if n := chk.Node(chk.WaitSingleLeader(electionTimeout)); n != target {
		t.Fatalf("%s leads after a switchover to %s", n, target)
	}
	start = time.Now()
	stdout, stderr, code = cli(t, "switchover", "--env-file", target.EnvFilePath())
	if code != 0 {
		t.Fatalf("hanode switchover: exit %d: %s", code, stderr)
	}
	t.Logf("switchover to the next: %v; %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(stdout))
	if n := chk.Node(chk.WaitSingleLeader(electionTimeout)); n == target {
		t.Fatalf("%s still leads after a switchover to the next", n)
	}
	// The new leader records its takeover just after it leads: wait for it.
	var out string
	testwait.For(t, 10*time.Second, "hanode history to show two switchovers", func() bool {
		var code int
		out, _, code = cli(t, "history", "--env-file", target.EnvFilePath())
		return code == 0 && strings.Count(out, "switchover") == 2
	})
	chk.Assert(t)
}
