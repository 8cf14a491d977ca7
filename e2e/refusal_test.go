package e2e

import (
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/zktest"
)

// refusalBound: a refused process must exit promptly (no wait for a live
// holder; the wait for a dead one is bounded by the session timeout + 5 s).
const refusalBound = 15 * time.Second

// TestSecondProcessWithANameInUseIsRefused: a second process with a name
// already held by a live process exits 77 (EX_NOPERM), in its own group and in another
// group, and its stderr names the name and the holder's host and pid. The
// holder keeps answering "ok" throughout.
func TestSecondProcessWithANameInUseIsRefused(t *testing.T) {
	zk := zktest.Start(t)
	haID := nodetest.GroupID(t)
	holder := nodetest.Start(t, nodetest.Options{Env: nodetest.HAEnv(zk.Addr, haID, "dup"), Heartbeat: true})
	chk := nodetest.NewChecker(t, holder)
	if got := chk.WaitSingleLeader(electionTimeout); got != "dup" {
		t.Fatalf("leader %q, want dup", got)
	}
	since := time.Now()
	host, _ := os.Hostname()

	for _, group := range []string{haID, haID + "-other"} {
		t.Run("group "+group, func(t *testing.T) {
			second := nodetest.Launch(t, nodetest.Options{Name: "dup-second", Env: nodetest.HAEnv(zk.Addr, group, "dup")})
			if code := second.WaitExit(refusalBound); code != 77 {
				t.Fatalf("second process exited %d, want 77\n%s", code, second.Logs())
			}
			mustContain(t, "stderr of the refused process", second.Logs(),
				`"dup"`, "host "+host, fmt.Sprintf("pid %d", holder.PID()))
		})
	}

	if code, body, err := holder.PingSE(); err != nil || code != http.StatusOK || body != "ok" {
		t.Errorf("holder answers %d %q %v, want 200 ok", code, body, err)
	}
	for _, r := range chk.Runs(holder) {
		if r.Result != nodetest.ResultOK && r.LastSent.After(since) {
			t.Errorf("holder answered %s (%s) %d times while the duplicate was refused", r.Result, r.Detail, r.N)
		}
	}
	chk.Assert(t)
}

// TestJoiningAGroupWithAnotherRoleIsRefused: a node that joins an HA_ID
// recorded with another role exits 77 and names the recorded role; the
// group's leader keeps answering "ok".
func TestJoiningAGroupWithAnotherRoleIsRefused(t *testing.T) {
	zk := zktest.Start(t)
	haID := nodetest.GroupID(t)
	primary := nodetest.Start(t, nodetest.Options{Env: nodetest.HAEnv(zk.Addr, haID, "p1")})
	chk := nodetest.NewChecker(t, primary)
	chk.WaitSingleLeader(electionTimeout)
	since := time.Now()

	env := nodetest.HAEnv(zk.Addr, haID, "s1")
	env["ROLE"] = "secondary"
	other := nodetest.Launch(t, nodetest.Options{Env: env})
	if code := other.WaitExit(refusalBound); code != 77 {
		t.Fatalf("secondary exited %d, want 77\n%s", code, other.Logs())
	}
	mustContain(t, "stderr of the refused process", other.Logs(), haID, "role=primary", "role=secondary")

	for _, r := range chk.Runs(primary) {
		if r.Result != nodetest.ResultOK && r.LastSent.After(since) {
			t.Errorf("leader answered %s (%s) %d times while the secondary was refused", r.Result, r.Detail, r.N)
		}
	}
	chk.Assert(t)
}
