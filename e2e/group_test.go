package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
	"github.com/hanode/hanode/ping"
)

// TestThreeNodesElectExactlyOneLeaderAndAgreeOnIt: three nodes configured by
// env files (one written the NetSpyGlass way, with the keys only inside
// SERVER_CLI, one whose wrong ZK is overridden by --zk) elect one leader.
// Exactly that node answers "ok" on both ping endpoints and runs the duty
// with its term; the others answer "standby" (200 and 503). Every node's
// /v2/status names the same leader and term, and `hanode status` (text and
// JSON) shows the group with three members, the leader and the term.
func TestThreeNodesElectExactlyOneLeaderAndAgreeOnIt(t *testing.T) {
	zk := zktest.Start(t)
	haID := nodetest.GroupID(t)

	a := nodetest.Start(t, nodetest.Options{Name: "a", Env: nodetest.HAEnv(zk.Addr, haID, "a"), Heartbeat: true})

	bEnv := nodetest.HAEnv("127.0.0.1:9", haID, "b") // wrong on purpose: --zk wins
	b := nodetest.Start(t, nodetest.Options{Name: "b", Env: bEnv, Args: []string{"--zk", zk.Addr}, Heartbeat: true})

	c := nodetest.Start(t, nodetest.Options{
		Name:      "c",
		Env:       map[string]string{"ZK_SESSION_TIMEOUT": "4s"},
		Heartbeat: true,
		Raw: fmt.Sprintf(`
# NetSpyGlass style: the keys reach hanode only as -DKEY=value in SERVER_CLI.
NAME="c"
JVM_CLI="-XX:+UseG1GC -XX:G1HeapRegionSize=32M"
SERVER_CLI="$JVM_CLI -DZK=%s -DNAME=$NAME -DROLE=primary -DREGION=world -DHA_ID=%s"
SERVER_CLI="$SERVER_CLI -DCONFIG=${HOME}/nw2.conf -DLOG_DIR=${HOME}/logs"
`, zk.Addr, haID),
	})
	nodes := []*nodetest.Node{a, b, c}

	// The NetSpyGlass file really was read through SERVER_CLI.
	out, stderr, code := cli(t, "check-config", "--env-file", c.EnvFilePath())
	if code != 0 {
		t.Fatalf("check-config of c: exit %d: %s", code, stderr)
	}
	mustContain(t, "check-config of c", out, "-DZK in SERVER_CLI", "-DHA_ID in SERVER_CLI", "-DROLE in SERVER_CLI")

	chk := nodetest.NewChecker(t, nodes...)
	leaderName := chk.WaitSingleLeader(electionTimeout)
	leader := chk.Node(leaderName)

	for _, n := range nodes {
		wantPing, wantSE, wantSECode := "standby", "standby", http.StatusServiceUnavailable
		if n == leader {
			wantPing, wantSE, wantSECode = "ok", "ok", http.StatusOK
		}
		if code, body, err := n.Ping(); err != nil || code != http.StatusOK || body != wantPing {
			t.Errorf("%s: ping = %d %q %v, want 200 %q", n, code, body, err, wantPing)
		}
		if code, body, err := n.PingSE(); err != nil || code != wantSECode || body != wantSE {
			t.Errorf("%s: ping se = %d %q %v, want %d %q", n, code, body, err, wantSECode, wantSE)
		}
	}

	// The next in line learns the leader and term from the leader's node
	// at once; the others from the leader record at their next relist
	// (every three session timeouts, with no event to wait for: the leader
	// record is not watched by every standby, which would wake them all at
	// every handover).
	var term int64
	var last []ping.Status
	testwait.For(t, 3*nodetest.DefaultSessionTimeout+5*time.Second, "every /v2/status to agree on leader and term", func() bool {
		last = last[:0]
		for _, n := range nodes {
			st, err := n.Status()
			if err != nil {
				return false
			}
			last = append(last, st)
		}
		term = last[0].Term
		for i, st := range last {
			wantState := "standby"
			if nodes[i] == leader {
				wantState = "active"
			}
			if st.State != wantState || st.Leader != leaderName || st.Term != term || term <= 0 || len(st.Members) != 3 {
				return false
			}
		}
		return true
	})
	for i, st := range last {
		if st.Name != nodes[i].Name() || st.HAID != haID || st.Role != "primary" || !st.ZK.Connected {
			t.Errorf("%s: status %+v", nodes[i], st)
		}
	}

	// Only the leader runs the duty, with its name, term, role and group.
	testwait.For(t, 5*time.Second, "the leader's duty to write a heartbeat", func() bool {
		return len(leader.Heartbeats()) > 0
	})
	for _, hb := range leader.Heartbeats() {
		if hb.Name != leaderName || hb.Term != term || hb.Role != "primary" || hb.HAID != haID {
			t.Errorf("leader's heartbeat %+v, want name %s term %d role primary ha_id %s", hb, leaderName, term, haID)
		}
	}
	for _, n := range nodes {
		if n != leader && len(n.Heartbeats()) > 0 {
			t.Errorf("standby %s ran the duty: %+v", n, n.Heartbeats())
		}
	}

	// hanode status, text.
	text, stderr, code := cli(t, "status", "--zk", zk.Addr)
	if code != 0 {
		t.Fatalf("hanode status: exit %d: %s", code, stderr)
	}
	mustContain(t, "hanode status", text, "HA_ID "+haID, "role primary", "leader "+leaderName+" ", fmt.Sprintf("term %d", term))
	for _, n := range nodes {
		mustContain(t, "hanode status", text, " "+n.Name()+" ")
	}
	// Each member's own state, then its ping answer.
	if got := len(regexp.MustCompile(`\sstandby\s+standby\s`).FindAllString(text, -1)); got != 2 {
		t.Errorf("hanode status lists %d standbys, want 2:\n%s", got, text)
	}

	// hanode status --json.
	js, stderr, code := cli(t, "status", "--zk", zk.Addr, "--json")
	if code != 0 {
		t.Fatalf("hanode status --json: exit %d: %s", code, stderr)
	}
	var doc struct {
		ZK     string           `json:"zk"`
		Root   string           `json:"root"`
		Groups []ha.GroupStatus `json:"groups"`
	}
	if err := json.Unmarshal([]byte(js), &doc); err != nil {
		t.Fatalf("hanode status --json: %v\n%s", err, js)
	}
	if doc.ZK != zk.Addr || doc.Root != "/hanode" || len(doc.Groups) != 1 {
		t.Fatalf("hanode status --json: %s", js)
	}
	g := doc.Groups[0]
	if g.HAID != haID || g.Role != "primary" || g.Region != "world" || g.Leader != leaderName ||
		g.Term != term || g.State != "active" || len(g.Members) != 3 {
		t.Errorf("hanode status --json group: %+v", g)
	}
	leaders := 0
	for _, m := range g.Members {
		if m.Leader {
			leaders++
			if m.Name != leaderName || m.PID != leader.PID() {
				t.Errorf("leader member %+v, want %s pid %d", m, leaderName, leader.PID())
			}
		}
	}
	if leaders != 1 {
		t.Errorf("%d members marked leader, want 1: %+v", leaders, g.Members)
	}
	chk.Assert(t)
}
