// Package bench measures hanode's failover with the real binary and a real
// ZooKeeper (see BENCHMARKS.md at the top of the repository for the command and the latest numbers).
package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/zktest"
)

func TestMain(m *testing.M) { os.Exit(nodetest.Main(m)) }

// pollInterval is how often every node's /se/ is asked during a benchmark:
// a takeover is measured to within about this much.
const pollInterval = 2 * time.Millisecond

// phaseSpread bounds the random wait before each fault. It spans several
// periods of the clocks a SIGKILL takeover could depend on: the leader's
// extensions (every 0.93 s with a 4 s session) and ZooKeeper's tick (2 s).
const phaseSpread = 4 * time.Second

// zkTickMs is ZooKeeper's own default tickTime: a takeover that waited for
// ZooKeeper to expire the dead session would pay its rounding up to 2 s.
const zkTickMs = 2000

// BenchmarkTakeoverSIGTERM: each iteration sends SIGTERM to the leader of a
// three-node group and measures the time from the signal to the arrival of
// the first "ok" from another node; the old leader must exit 0 and is
// restarted as a standby before the next round.
func BenchmarkTakeoverSIGTERM(b *testing.B) {
	benchTakeover(b, takeoverBench{fault: func(leader *nodetest.Node) time.Time { return leader.Term() }, bound: 10 * time.Second})
}

// BenchmarkTakeoverSIGKILL: each iteration SIGKILLs the leader's hanode
// alone (ZK_SESSION_TIMEOUT=4s), its machine and its duty guard living on,
// and measures the time from the signal to the first "ok" from another
// node. The guard sees its stdin close, stops the duty, checks the kernel's
// proof that hanode exited and releases the lease with the ticket of
// hanode's last extension (issue 17); the next member claims at once. Were
// the ticket stale, the group would wait the lease out: W (4.081 s) after
// the last extension the next member saw. The guard's verdict is recorded
// per round. The killed node is restarted at once, as systemd would, and
// must rejoin as a standby.
func BenchmarkTakeoverSIGKILL(b *testing.B) {
	benchTakeover(b, takeoverBench{fault: func(leader *nodetest.Node) time.Time { return leader.Kill() }, wantExit: -1,
		bound: nodetest.DefaultSessionTimeout + 10*time.Second, guard: true})
}

// takeoverBench is one kind of failover round.
type takeoverBench struct {
	fault    func(*nodetest.Node) time.Time // returns the fault's instant
	wantExit int                            // the old leader's exit code (-1: a signal)
	bound    time.Duration                  // on one takeover
	args     []string                       // extra arguments of every node's `hanode run`
	guard    bool                           // wait for and record the old guard's verdict
	// guardSilent: the old guard must not have acted (it died with hanode).
	guardSilent bool
}

type round struct {
	from, to string
	takeover time.Duration // signal to the first ok of another node
	dark     time.Duration // the old leader's last ok to the new leader's first ok
	guard    guardVerdict  // the old leader's guard (takeoverBench.guard)
}

func benchTakeover(b *testing.B, tb takeoverBench) {
	zk := zktest.StartWith(b, zktest.Options{TickMs: zkTickMs})
	haID := nodetest.GroupID(b)
	var nodes []*nodetest.Node
	for _, name := range []string{"a", "b", "c"} {
		nodes = append(nodes, nodetest.Start(b, nodetest.Options{Name: name, Env: nodetest.HAEnv(zk.Addr, haID, name),
			Heartbeat: true, Args: tb.args}))
	}
	chk := nodetest.NewCheckerWith(b, nodetest.CheckerOptions{Interval: pollInterval}, nodes...)
	leader := chk.Node(chk.WaitSingleLeader(20 * time.Second))

	var rounds []round
	for b.Loop() {
		waitRandomPhase()
		at := tb.fault(leader)
		next, took := chk.WaitTakeover(at, leader, tb.bound)
		r := round{from: leader.Name(), to: next.Name(), takeover: took, dark: darkTime(chk, leader, at.Add(took))}
		if tb.guard {
			r.guard = waitGuardVerdict(b, leader)
		}
		if v, ok := guardLog(leader); tb.guardSilent && ok {
			b.Fatalf("round %d: %s's guard, killed with hanode, acted: %s", len(rounds)+1, leader, v)
		}
		rounds = append(rounds, r)

		if code := leader.WaitExit(10 * time.Second); code != tb.wantExit {
			b.Fatalf("round %d: %s exited %d, want %d\n%s", len(rounds), leader, code, tb.wantExit, leader.Logs())
		}
		leader.Restart()
		nodetest.WaitStandby(b, leader, nodetest.DefaultSessionTimeout+10*time.Second, "")
		if got := chk.WaitSingleLeader(5 * time.Second); got != next.Name() {
			b.Fatalf("round %d: %s leads after %s rejoined, want %s", len(rounds), got, leader, next)
		}
		leader = next
	}

	chk.Assert(b)
	report(b, chk, rounds)
	if tb.guard {
		reportGuard(b, rounds)
	}
}

// report prints the rounds' table and reports their quantiles and overlaps.
func report(b *testing.B, chk *nodetest.Checker, rounds []round) {
	rep := chk.Report()

	takeovers := make([]time.Duration, len(rounds))
	darks := make([]time.Duration, len(rounds))
	var table strings.Builder
	fmt.Fprintf(&table, "%5s  %-4s  %-4s  %12s  %12s  %s\n", "round", "from", "to", "takeover", "no-ok gap", "guard")
	for i, r := range rounds {
		takeovers[i], darks[i] = r.takeover, r.dark
		fmt.Fprintf(&table, "%5d  %-4s  %-4s  %12v  %12v  %s\n", i+1, r.from, r.to,
			r.takeover.Round(10*time.Microsecond), r.dark.Round(10*time.Microsecond), r.guard)
	}
	p50, p90, hi := quantiles(takeovers)
	p99 := quantile(takeovers, 0.99)
	d50, _, dhi := quantiles(darks)
	// The table goes to stdout: go test trims a benchmark's log to 10 lines.
	fmt.Printf("%s: %d rounds, /se/ polled every %v\n%s", b.Name(), len(rounds), pollInterval, table.String())
	b.Logf("takeover: median %v  p90 %v  p99 %v  max %v; no-ok gap: median %v  max %v",
		p50.Round(10*time.Microsecond), p90.Round(10*time.Microsecond), p99.Round(10*time.Microsecond),
		hi.Round(10*time.Microsecond), d50.Round(10*time.Microsecond), dhi.Round(10*time.Microsecond))
	b.Logf("overlaps: %d definite, %d possible (balancer view at %v), %d duty overlaps",
		len(rep.Definite), len(rep.Possible), pollInterval, len(rep.Duties))
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(0, "ns/op") // a round's wall time means nothing here
	b.ReportMetric(ms(p50), "takeover-p50-ms")
	b.ReportMetric(ms(p90), "takeover-p90-ms")
	b.ReportMetric(ms(p99), "takeover-p99-ms")
	b.ReportMetric(ms(hi), "takeover-max-ms")
	b.ReportMetric(float64(len(rep.Definite)+len(rep.Duties)), "overlaps")
}

// waitRandomPhase waits a random time below phaseSpread before the fault.
// It synchronizes nothing: each round starts a fixed time after the previous
// takeover, so without it every SIGKILL would come at the same phase of the
// leader's renewals and of the server's session-expiry ticks, and the
// numbers would show one phase instead of the spread.
func waitRandomPhase() {
	t := time.NewTimer(rand.N(phaseSpread))
	defer t.Stop()
	<-t.C
}

// darkTime is how long before newOK the old leader last answered "ok": the
// time in which no node answered "ok".
func darkTime(chk *nodetest.Checker, old *nodetest.Node, newOK time.Time) time.Duration {
	var last time.Time
	for _, r := range chk.Runs(old) {
		if r.Result == nodetest.ResultOK && !r.LastArrived.After(newOK) && r.LastArrived.After(last) {
			last = r.LastArrived
		}
	}
	if last.IsZero() {
		return 0
	}
	return newOK.Sub(last)
}

// quantiles returns the median, the 90th percentile (nearest rank) and the
// maximum.
func quantiles(ds []time.Duration) (p50, p90, hi time.Duration) {
	return quantile(ds, 0.5), quantile(ds, 0.9), quantile(ds, 1)
}

// quantile is the p quantile of ds by nearest rank (0 for none): with 30
// values, p99 is the maximum.
func quantile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}
