package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// TestStandaloneNodeIsActiveAndStopsItsDutyOnSIGTERM: without ZK and HA_ID
// a node answers "ok" on both endpoints, reports term 0, runs ACTIVE_CMD
// through /bin/sh with HANODE_NAME, HANODE_ROLE, HANODE_HA_ID (empty) and
// HANODE_TERM=0, and on SIGTERM stops the duty's whole process group and
// exits 0.
func TestStandaloneNodeIsActiveAndStopsItsDutyOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	envOut, beats := filepath.Join(dir, "duty.env"), filepath.Join(dir, "beats")
	n := nodetest.Start(t, nodetest.Options{Env: map[string]string{
		"NAME":       "solo",
		"ROLE":       "primary,monitor",
		"ACTIVE_CMD": "env > " + nodetest.ShellQuote(envOut) + "; " + nodetest.HeartbeatCmd(beats),
	}})

	for _, ping := range []func() (int, string, error){n.Ping, n.PingSE} {
		if code, body, err := ping(); err != nil || code != http.StatusOK || body != "ok" {
			t.Errorf("ping = %d %q %v, want 200 ok", code, body, err)
		}
	}
	st := n.MustStatus()
	if st.State != "active" || st.Term != 0 || st.HAID != "" || len(st.Members) != 0 {
		t.Errorf("status %+v, want active, term 0, no group", st)
	}

	testwait.For(t, 5*time.Second, "the duty's first heartbeat", func() bool {
		hb, _, _ := nodetest.ReadHeartbeats(beats)
		return len(hb) > 0
	})
	hb, _, _ := nodetest.ReadHeartbeats(beats)
	if hb[0].Name != "solo" || hb[0].Term != 0 || hb[0].Role != "primary,monitor" {
		t.Errorf("heartbeat %+v, want solo term 0 role primary,monitor", hb[0])
	}
	data, err := os.ReadFile(envOut)
	if err != nil {
		t.Fatal(err)
	}
	env := "\n" + string(data)
	mustContain(t, "the duty's environment", env,
		"\nHANODE_NAME=solo\n", "\nHANODE_ROLE=primary,monitor\n", "\nHANODE_TERM=0\n", "\nHANODE_HA_ID=\n")
	if len(n.DutyPIDs()) == 0 {
		t.Fatal("no duty process found while the node is active")
	}

	n.Term()
	if code := n.WaitExit(exitBound); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0\n%s", code, n.Logs())
	}
	if pids := n.DutyPIDs(); len(pids) != 0 {
		t.Errorf("duty processes %v still run after hanode exited", pids)
	}
}

// TestNodesStandByWhileZooKeeperIsUnreachableAndElectOneWhenItReturns:
// nodes started while their ZooKeeper is down keep running, answer
// "standby" (200 and 503), report starting or disconnected and run no duty;
// once ZooKeeper is back, exactly one becomes active.
func TestNodesStandByWhileZooKeeperIsUnreachableAndElectOneWhenItReturns(t *testing.T) {
	zk := zktest.Start(t)
	zk.Stop(t)
	nodes := nodetest.StartGroup(t, nodetest.GroupOptions{ZK: zk.Addr, Heartbeat: true})
	chk := nodetest.NewChecker(t, nodes...)

	// Let every node answer for a full second without ZooKeeper.
	testwait.For(t, 10*time.Second, "a second of answers from every node", func() bool {
		for _, n := range nodes {
			if r, ok := chk.Latest(n); !ok || r.LastArrived.Sub(r.FirstArrived) < time.Second {
				return false
			}
		}
		return true
	})
	for _, n := range nodes {
		for _, r := range chk.Runs(n) {
			if r.Result != nodetest.ResultStandby {
				t.Errorf("%s answered %s (%s) %d times without ZooKeeper, want only 503 standby", n, r.Result, r.Detail, r.N)
			}
		}
		if code, body, err := n.Ping(); err != nil || code != http.StatusOK || body != "standby" {
			t.Errorf("%s: ping = %d %q %v, want 200 standby", n, code, body, err)
		}
		st := n.MustStatus()
		if st.State != "starting" && st.State != "disconnected" {
			t.Errorf("%s: state %q (%s), want starting or disconnected", n, st.State, st.Reason)
		}
		if !n.Running() {
			t.Errorf("%s exited without ZooKeeper\n%s", n, n.Logs())
		}
		if len(n.Heartbeats()) > 0 {
			t.Errorf("%s ran its duty without ZooKeeper", n)
		}
	}

	zk.Restart(t)
	leader := chk.WaitSingleLeader(30 * time.Second)
	t.Logf("%s leads once ZooKeeper is back", leader)
	chk.Assert(t)
}
