package bench

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
	"github.com/hanode/hanode/ping"
)

// cycleStamp is one CYCLE_CMD run: the node, the cycle, the advancer's
// start stamp (HANODE_CYCLE_STARTED) and the command's own clock as it ran.
type cycleStamp struct {
	node    string
	n       int64
	started time.Time
	ran     time.Time
}

// readStamps parses the CYCLE_CMD log ("name n started unix.nanos").
func readStamps(path string) ([]cycleStamp, error) {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	var out []cycleStamp
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 {
			continue // a line still being written
		}
		n, err1 := strconv.ParseInt(f[1], 10, 64)
		started, err2 := time.Parse(time.RFC3339Nano, f[2])
		sec, frac, _ := strings.Cut(f[3], ".")
		s, err3 := strconv.ParseInt(sec, 10, 64)
		ns, err4 := strconv.ParseInt((frac + "000000000")[:9], 10, 64)
		if err := errorsJoin(err1, err2, err3, err4); err != nil {
			return nil, fmt.Errorf("line %q: %w", line, err)
		}
		out = append(out, cycleStamp{node: f[0], n: n, started: started, ran: time.Unix(s, ns)})
	}
	return out, nil
}

func errorsJoin(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// BenchmarkCycleSignal: nine nodes in three HA groups (primary, monitor,
// compute; three each) on one ZooKeeper; the primary group's leader
// advances the cycle every second (POLL_INTERVAL=1s, the shortest). Each
// iteration is one cycle, and ends when all nine nodes have run CYCLE_CMD
// for it. The latency of a node is from the advancer's start stamp (its
// wall clock just before its fenced write, HANODE_CYCLE_STARTED) to the
// moment the node's CYCLE_CMD, a /bin/sh, read the clock (`date +%s.%N`):
// the fenced write, the watch notification, the read, the fork and exec of
// the shell and of date. All processes share one host and so one clock.
func BenchmarkCycleSignal(b *testing.B) {
	zk := zktest.StartWith(b, zktest.Options{TickMs: zkTickMs})
	log := filepath.Join(b.TempDir(), "cycles.log")
	cmd := `echo "$HANODE_NAME $HANODE_CYCLE $HANODE_CYCLE_STARTED $(date +%s.%N)" >> ` + log
	var names []string
	var primaries, all9 []*nodetest.Node
	for _, g := range []struct{ role, id, interval string }{
		{"monitor", "nsg-monitor-ha", ""}, {"compute", "nsg-compute-ha", ""}, {"primary", "nsg-primary-ha", "1s"},
	} {
		ns := []string{g.role + "-1", g.role + "-2", g.role + "-3"}
		names = append(names, ns...)
		env := map[string]string{"ROLE": g.role, "CYCLE_CMD": cmd}
		if g.interval != "" {
			env["POLL_INTERVAL"] = g.interval
		}
		nodes := nodetest.StartGroup(b, nodetest.GroupOptions{ZK: zk.Addr, HAID: g.id, Names: ns, Env: env})
		if g.role == "primary" {
			primaries = nodes
		}
		all9 = append(all9, nodes...)
	}
	// The advancer: the primary group's leader (no failover here).
	leaderName := func() string {
		for _, n := range primaries {
			if st, err := n.Status(); err == nil && st.State == "active" {
				return n.Name()
			}
		}
		return ""
	}
	// Every node watches before the cycle counted from starts: wait for two
	// cycles run everywhere first.
	complete := func(n int64) bool {
		st, err := readStamps(log)
		if err != nil {
			b.Fatal(err)
		}
		seen := map[string]bool{}
		for _, s := range st {
			if s.n == n {
				seen[s.node] = true
			}
		}
		return len(seen) == len(names)
	}
	var first int64 = 2
	testwait.For(b, 60*time.Second, "cycle 2 run on every node", func() bool { return complete(first) })
	advancer := leaderName()
	next := first
	var polled []time.Duration // the same signal to a long poll of /v2/cycle on every node
	for b.Loop() {
		arrivals := make(chan time.Duration, len(all9))
		for _, n := range all9 {
			go func() { arrivals <- longPoll(n, next) }()
		}
		next++
		testwait.Every(b, 10*time.Second, 20*time.Millisecond, fmt.Sprintf("cycle %d run on every node", next),
			func() bool { return complete(next) })
		for range all9 {
			d := <-arrivals
			if d < 0 {
				b.Fatalf("a long poll of /v2/cycle after %d failed", next-1)
			}
			polled = append(polled, d)
		}
	}
	if l := leaderName(); l != advancer || l == "" {
		b.Fatalf("the primary group's leader changed during the run: %q, then %q", advancer, l)
	}
	st, err := readStamps(log)
	if err != nil {
		b.Fatal(err)
	}
	var leader, watchers []time.Duration
	byNode := map[string]int{}
	for _, s := range st {
		if s.n <= first || s.n > next {
			continue
		}
		d := s.ran.Sub(s.started)
		byNode[s.node]++
		if s.node == advancer {
			leader = append(leader, d)
		} else {
			watchers = append(watchers, d)
		}
	}
	all := append(slices.Clone(leader), watchers...)
	q := func(ds []time.Duration, p float64) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		s := slices.Clone(ds)
		slices.Sort(s)
		i := int(p*float64(len(s))+0.999999) - 1 // nearest rank
		return s[min(max(i, 0), len(s)-1)]
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	cycles := next - first
	b.Logf("advancer %s", advancer)
	b.Logf("%d cycles x %d nodes: all %d runs: median %v p99 %v max %v; watchers (%d): median %v p99 %v; the advancer itself (%d): median %v p99 %v",
		cycles, len(names), len(all), q(all, .5), q(all, .99), q(all, 1), len(watchers), q(watchers, .5), q(watchers, .99),
		len(leader), q(leader, .5), q(leader, .99))
	for _, name := range names {
		if byNode[name] != int(cycles) {
			b.Errorf("%s ran CYCLE_CMD %d times for %d cycles", name, byNode[name], cycles)
		}
	}
	b.Logf("long polls of /v2/cycle (%d): median %v p99 %v max %v", len(polled), q(polled, .5), q(polled, .99), q(polled, 1))
	b.ReportMetric(0, "ns/op") // an iteration is one interval by construction
	b.ReportMetric(ms(q(all, .5)), "signal-p50-ms")
	b.ReportMetric(ms(q(all, .99)), "signal-p99-ms")
	b.ReportMetric(ms(q(watchers, .5)), "watcher-p50-ms")
	b.ReportMetric(ms(q(watchers, .99)), "watcher-p99-ms")
	b.ReportMetric(ms(q(polled, .5)), "longpoll-p50-ms")
	b.ReportMetric(ms(q(polled, .99)), "longpoll-p99-ms")
}

// longPoll waits on n's /v2/cycle for the cycle after prev and returns how
// long after its start stamp the answer arrived (-1 on failure).
func longPoll(n *nodetest.Node, prev int64) time.Duration {
	resp, err := http.Get(n.URL(fmt.Sprintf("/v2/cycle?after=%d&wait=10s", prev)))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var c ping.StatusCycle
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil || c.N != prev+1 {
		return -1
	}
	arrived := time.Now()
	started, err := time.Parse(time.RFC3339Nano, c.Started)
	if err != nil {
		return -1
	}
	return arrived.Sub(started)
}
