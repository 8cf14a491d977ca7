package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
	"github.com/hanode/hanode/ping"
)

// adminGroup starts real nodes a, b and c of one group, all with the same
// admin token file, and waits for its leader.
func adminGroup(t *testing.T) (token string, nodes []*nodetest.Node, chk *nodetest.Checker, leader *nodetest.Node) {
	t.Helper()
	zk := zktest.Start(t)
	haID := nodetest.GroupID(t)
	token = filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(token, []byte("e2e-admin-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c"} {
		env := nodetest.HAEnv(zk.Addr, haID, name)
		env["ADMIN_TOKEN_FILE"] = token
		nodes = append(nodes, nodetest.Start(t, nodetest.Options{Name: name, Env: env, Heartbeat: true}))
	}
	chk = nodetest.NewChecker(t, nodes...)
	return token, nodes, chk, chk.Node(chk.WaitSingleLeader(electionTimeout))
}

// TestPauseHoldsThroughALeaderKillAndResumeBringsALeader: hanode pause on a
// standby's host (its env file gives the address and the token) pauses the
// group; every member's status says so; the leader is SIGKILLed and for
// three session timeouts nobody answers ok; hanode resume brings a leader
// within the takeover bound. A wrong token is refused, the group untouched.
func TestPauseHoldsThroughALeaderKillAndResumeBringsALeader(t *testing.T) {
	token, nodes, _, leader := adminGroup(t)
	var standby *nodetest.Node
	for _, n := range nodes {
		if n != leader {
			standby = n
			break
		}
	}

	// The wrong token: refused, nothing paused.
	wrong := filepath.Join(t.TempDir(), "wrong.env")
	env, err := os.ReadFile(standby.EnvFilePath())
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad-token")
	if err := os.WriteFile(bad, []byte("not-the-token-0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrong, []byte(strings.ReplaceAll(string(env), token, bad)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := cli(t, "pause", "--env-file", wrong); code == 0 || !strings.Contains(stderr, "wrong bearer token") {
		t.Fatalf("pause with a wrong token: exit %d, %s", code, stderr)
	}
	if st := standby.MustStatus(); st.Paused != nil {
		t.Fatalf("a refused pause paused the group: %+v", st.Paused)
	}

	stdout, stderr, code := cli(t, "pause", "--env-file", standby.EnvFilePath(), "--reason", "e2e maintenance")
	if code != 0 {
		t.Fatalf("hanode pause: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "paused") {
		t.Errorf("hanode pause printed %q", stdout)
	}
	for _, n := range nodes {
		if _, err := n.WaitStatus(10*time.Second, func(st ping.Status) bool {
			return st.Paused != nil && st.Paused.Reason == "e2e maintenance" && st.Paused.By == standby.Name()
		}); err != nil {
			t.Fatalf("%s never showed the pause: %v", n, err)
		}
	}

	leader.Kill()
	// No takeover for three session timeouts: only an absence to watch.
	answering := func() *nodetest.Node {
		for _, n := range nodes {
			if c, _, err := n.PingSE(); n != leader && err == nil && c == 200 {
				return n
			}
		}
		return nil
	}
	if err := testwait.Poll(3*nodetest.DefaultSessionTimeout, 20*time.Millisecond, func() bool { return answering() != nil }); err == nil {
		t.Fatalf("%s answered ok in a paused group whose leader was killed", answering())
	}

	resumed := time.Now()
	if _, stderr, code := cli(t, "resume", "--env-file", standby.EnvFilePath()); code != 0 {
		t.Fatalf("hanode resume: exit %d: %s", code, stderr)
	}
	var next *nodetest.Node
	testwait.For(t, 2*nodetest.DefaultSessionTimeout, "a leader after the resume", func() bool {
		next = answering()
		return next != nil
	})
	t.Logf("%s leads %v after the resume", next, time.Since(resumed).Round(time.Millisecond))
	if st := next.MustStatus(); st.Paused != nil {
		t.Errorf("the new leader still shows the pause: %+v", st.Paused)
	}
}
