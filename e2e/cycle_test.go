package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
	"github.com/hanode/hanode/ping"
)

// cycleRuns reads the CYCLE_CMD log: one "name cycle started" line per run.
func cycleRuns(t *testing.T, path string) (byNode map[string][]int64, started map[int64]time.Time) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	byNode, started = map[string][]int64{}, map[int64]time.Time{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			t.Fatalf("CYCLE_CMD log line %q: %v", line, err)
		}
		at, err := time.Parse(time.RFC3339Nano, f[2])
		if err != nil {
			t.Fatalf("CYCLE_CMD log line %q: HANODE_CYCLE_STARTED: %v", line, err)
		}
		byNode[f[0]] = append(byNode[f[0]], n)
		if prev, ok := started[n]; ok && !prev.Equal(at) {
			t.Errorf("cycle %d started at %s and at %s", n, prev, at)
		}
		started[n] = at
	}
	return byNode, started
}

func cycleOf(t *testing.T, n *nodetest.Node, query string) ping.StatusCycle {
	t.Helper()
	resp, err := http.Get(n.URL(ping.PathCycle + query))
	if err != nil {
		t.Fatalf("%s: GET /v2/cycle%s: %v", n, query, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var c ping.StatusCycle
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &c) != nil {
		t.Fatalf("%s: GET /v2/cycle%s: %d %s", n, query, resp.StatusCode, b)
	}
	return c
}

// TestEveryNodeOfEveryGroupRunsEveryCycle: a cluster of three groups
// (primary, monitor, compute); the primary group's leader advances the
// cycle every second. Every node runs CYCLE_CMD for every cycle, once,
// through a failover of the primary group; /v2/status, /v2/cycle and its
// long poll agree.
func TestEveryNodeOfEveryGroupRunsEveryCycle(t *testing.T) {
	zk := zktest.Start(t)
	log := filepath.Join(t.TempDir(), "cycles.log")
	cmd := `echo "$HANODE_NAME $HANODE_CYCLE $HANODE_CYCLE_STARTED" >> ` + log
	var nodes []*nodetest.Node
	// The followers first: every node watches before cycle 1.
	for _, g := range []struct{ role, id string }{{"monitor", "nsg-monitor-ha"}, {"compute", "nsg-compute-ha"}} {
		nodes = append(nodes, nodetest.StartGroup(t, nodetest.GroupOptions{ZK: zk.Addr, HAID: g.id,
			Names: []string{g.role + "-1", g.role + "-2"}, Env: map[string]string{"ROLE": g.role, "CYCLE_CMD": cmd}})...)
	}
	primaries := nodetest.StartGroup(t, nodetest.GroupOptions{ZK: zk.Addr, HAID: "nsg-primary-ha",
		Names: []string{"primary-1", "primary-2", "primary-3"},
		Env:   map[string]string{"POLL_INTERVAL": "1s", "CYCLE_CMD": cmd}})
	nodes = append(nodes, primaries...)
	chk := nodetest.NewChecker(t, primaries...)
	leader := chk.Node(chk.WaitSingleLeader(electionTimeout))

	monitor := nodes[0]
	first := cycleOf(t, monitor, "?after=0&wait=30s")
	if first.N < 1 || first.Group != "nsg-primary-ha" || first.By != leader.Name() {
		t.Fatalf("first cycle %+v, want one advanced by %s", first, leader)
	}
	next := cycleOf(t, monitor, fmt.Sprintf("?after=%d&wait=30s", first.N))
	if next.N != first.N+1 {
		t.Fatalf("the long poll after %d answered %+v", first.N, next)
	}
	testwait.For(t, 30*time.Second, "cycle 4 on every node", func() bool {
		for _, n := range nodes {
			st, err := n.Status()
			if err != nil || st.Cycle == nil || st.Cycle.N < 4 {
				return false
			}
		}
		return true
	})

	// A failover of the primary group: the cycle goes on.
	leader.Term()
	if code := leader.WaitExit(exitBound); code != 0 {
		t.Fatalf("%s exited %d", leader, code)
	}
	stoppedAt := cycleOf(t, monitor, "")
	live := make([]*nodetest.Node, 0, len(nodes))
	for _, n := range nodes {
		if n != leader {
			live = append(live, n)
		}
	}
	final := stoppedAt.N + 4
	testwait.For(t, 60*time.Second, fmt.Sprintf("every live node to run cycle %d", final), func() bool {
		runs, _ := cycleRuns(t, log)
		for _, n := range live {
			r := runs[n.Name()]
			if len(r) == 0 || r[len(r)-1] < final {
				return false
			}
		}
		return true
	})
	after := cycleOf(t, monitor, "")
	if after.By == leader.Name() {
		t.Fatalf("cycle %d advanced by the stopped %s", after.N, leader)
	}

	runs, started := cycleRuns(t, log)
	for _, n := range nodes {
		r := runs[n.Name()]
		last := final
		if n == leader {
			last = r[len(r)-1] // it stopped
		}
		want := make([]int64, 0, last)
		for i := int64(1); i <= last; i++ {
			want = append(want, i)
		}
		got := r
		if n != leader {
			got = r[:min(len(r), len(want))]
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s ran CYCLE_CMD for %v, want every cycle once: %v", n, r, want)
		}
	}
	var ns []int64
	for n := range started {
		ns = append(ns, n)
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i] < ns[j] })
	for i := 1; i < len(ns); i++ {
		if d := started[ns[i]].Sub(started[ns[i-1]]); ns[i] == ns[i-1]+1 && d < time.Second {
			t.Errorf("cycles %d and %d started %s apart", ns[i-1], ns[i], d)
		}
	}
	t.Logf("cycles 1..%d, every node; the failover after cycle %d", final, stoppedAt.N)
}
