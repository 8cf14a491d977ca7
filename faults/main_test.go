// Package faults injects real faults into an HA group of the real hanode
// binary running against real ZooKeeper (internal/zktest), and checks the
// promise from the outside: never two actives in a group, and a fast
// takeover when the leader really is gone.
//
// Every node reaches every ZooKeeper server through a faultproxy of its own
// (internal/faultproxy), so one node's path can be stalled or refused alone.
// Every node runs the heartbeat duty (nodetest), and a nodetest.Checker
// polls every node's /se/ for the whole test: each test ends with zero
// definite overlaps of "ok" answers, zero overlaps of duty heartbeat spans
// and terms that only grow. Takeover times (fault injection to the first
// "ok" from another node) are logged as RESULT lines and summarized at the
// end of the run; docs/faults.md has the table and the commands.
//
// The soak (TestSoak) replays a seeded random sequence of all these faults:
// HANODE_SOAK_SEED and HANODE_SOAK_FAULTS choose it.
package faults

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/nodetest"
)

func TestMain(m *testing.M) {
	code := nodetest.Main(m)
	printResults()
	os.Exit(code)
}

// Bounds. The session timeout is nodetest's default (ZK_SESSION_TIMEOUT=4s,
// so LEASE_MARGIN 1.2 s, a 2.8 s lease and ACTIVE_STOP_TIMEOUT 0.8 s);
// zktest's ZooKeeper ticks every 500 ms, so a dead session ends at most
// 0.5 s after its timeout.
const (
	sessionTimeout  = nodetest.DefaultSessionTimeout
	lease           = sessionTimeout * 7 / 10 // ZK_SESSION_TIMEOUT - LEASE_MARGIN (30 %)
	electionTimeout = 20 * time.Second        // first leader of a fresh group
	// takeoverBound is what a takeover after a real loss of the leader must
	// beat: the session timeout, one tick of expiry, and slack for a loaded
	// CI machine (the brief: T + 1 s, asserted with 2 s more).
	takeoverBound = sessionTimeout + 3*time.Second
	// waitTakeover bounds the wait itself, so a slow takeover is measured
	// and reported rather than cut off.
	waitTakeover  = sessionTimeout + 15*time.Second
	settleTimeout = 45 * time.Second // back to one leader and all standbys
	exitBound     = 10 * time.Second
	// cutHold is how long a path fault or freeze lasts in the scenarios:
	// twice the session timeout, so the session surely expires.
	cutHold = 2 * sessionTimeout
	// signalTolerance: an "ok" sent this soon after SIGSTOP may still have
	// been served before the process actually stopped.
	signalTolerance = 100 * time.Millisecond
)

// result is one measured outcome, for the summary table.
type result struct {
	scenario string
	outcome  string
	takeover time.Duration // < 0: no takeover
}

var results struct {
	sync.Mutex
	rows []result
}

// record logs a RESULT line and keeps it for the summary. takeover < 0
// means no takeover (none was expected, or it is not the measure).
func record(t testing.TB, scenario, outcome string, takeover time.Duration) {
	t.Helper()
	took := "none"
	if takeover >= 0 {
		took = takeover.Round(time.Millisecond).String()
	}
	t.Logf("RESULT scenario=%q outcome=%q takeover=%s", scenario, outcome, took)
	results.Lock()
	results.rows = append(results.rows, result{scenario, outcome, takeover})
	results.Unlock()
}

// printResults prints the summary: one row per scenario and outcome, with
// the median and maximum takeover.
func printResults() {
	results.Lock()
	defer results.Unlock()
	if len(results.rows) == 0 {
		return
	}
	type key struct{ scenario, outcome string }
	var order []key
	took := map[key][]time.Duration{}
	count := map[key]int{}
	for _, r := range results.rows {
		k := key{r.scenario, r.outcome}
		if count[k] == 0 {
			order = append(order, k)
		}
		count[k]++
		if r.takeover >= 0 {
			took[k] = append(took[k], r.takeover)
		}
	}
	var b strings.Builder
	b.WriteString("\nfault results:\n| scenario | outcome | n | takeover median | takeover max |\n|---|---|---|---|---|\n")
	for _, k := range order {
		med, hi := "none", "none"
		if ds := took[k]; len(ds) > 0 {
			slices.Sort(ds)
			med = ds[(len(ds)-1)/2].Round(time.Millisecond).String()
			hi = ds[len(ds)-1].Round(time.Millisecond).String()
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s |\n", k.scenario, k.outcome, count[k], med, hi)
	}
	fmt.Print(b.String())
}
