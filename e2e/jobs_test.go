package e2e

import (
	"fmt"
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

// jobLine is one run of the test job: the period it ran, in which term, on
// which node.
type jobLine struct {
	period time.Time
	term   int64
	name   string
}

// readJobLines parses the job's output file; a line still being written is
// left out.
func readJobLines(t *testing.T, path string) []jobLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []jobLine
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		p, err1 := time.Parse(time.RFC3339Nano, f[0])
		term, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, jobLine{period: p, term: term, name: f[2]})
	}
	return out
}

// waitJobRun waits until a run of term appears in the file and returns it.
func waitJobRun(t *testing.T, path string, term int64, timeout time.Duration) jobLine {
	t.Helper()
	var got jobLine
	testwait.For(t, timeout, fmt.Sprintf("a job run in term %d", term), func() bool {
		for _, l := range readJobLines(t, path) {
			if l.term == term {
				got = l
				return true
			}
		}
		return false
	})
	return got
}

// activeWithin is how long, within [from, to), some node was surely active
// by its answers.
func activeWithin(chk *nodetest.Checker, from, to time.Time) time.Duration {
	type span struct{ lo, hi time.Time }
	var spans []span
	for _, n := range chk.Nodes() {
		for _, r := range chk.Runs(n) {
			if r.Result != nodetest.ResultOK || r.N < 2 || !r.LastSent.After(r.FirstArrived) {
				continue
			}
			lo, hi := later(r.FirstArrived, from), earlier(r.LastSent, to)
			if hi.After(lo) {
				spans = append(spans, span{lo, hi})
			}
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return a.lo.Compare(b.lo) })
	var total time.Duration
	var end time.Time
	for _, s := range spans {
		if s.lo.Before(end) {
			s.lo = end
		}
		if s.hi.After(s.lo) {
			total += s.hi.Sub(s.lo)
			end = s.hi
		}
	}
	return total
}

// hasJobLog reports whether n's current run logged msg in term.
func hasJobLog(n *nodetest.Node, msg string, term int64) bool {
	for _, e := range n.LogEntries() {
		if e.Msg == msg && e.Term == term {
			return true
		}
	}
	return false
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// TestJobWithAOneSecondPeriodRunsEachPeriodOnceAcrossTenFailovers: a job
// with a 1 s period (JOB_TICK_EVERY=1s, MISSED=once) whose command appends
// its period, term and node to a file, in a three-node group, through ten
// forced failovers: eight SIGTERMs to the leader, at phases spread over
// the period, and two SIGKILLs of the leader's whole node (hanode, its
// guards and their runs, as when the machine dies: the next member takes
// over only after the lease, a gap of several periods). Counted from the file: no period ran twice, and
// every period during which some node was surely active for at least 300
// ms ran exactly once, and after each crash the new leader ran the latest
// period missed while nobody led, once (MISSED=once). /v2/status and `hanode status` show the
// job's last run.
func TestJobWithAOneSecondPeriodRunsEachPeriodOnceAcrossTenFailovers(t *testing.T) {
	const rounds = 10
	zk := zktest.Start(t)
	out := filepath.Join(t.TempDir(), "periods.log")
	nodes := nodetest.StartGroup(t, nodetest.GroupOptions{ZK: zk.Addr, Env: map[string]string{
		"JOB_TICK_CMD":    `echo "$HANODE_JOB_PERIOD $HANODE_TERM $HANODE_NAME" >> ` + nodetest.ShellQuote(out),
		"JOB_TICK_EVERY":  "1s",
		"JOB_TICK_MISSED": "once",
	}})
	chk := nodetest.NewChecker(t, nodes...)
	leader := chk.Node(chk.WaitSingleLeader(electionTimeout))
	begin := time.Now()
	for round := 1; round <= rounds; round++ {
		term := activeTerm(t, leader)
		ran := waitJobRun(t, out, term, 5*time.Second)
		crash := round%5 == 0
		// The fault's moment within the period, spread from 150 to 780 ms
		// after a period's start: this schedules the fault, it waits for no
		// state.
		phase := 150*time.Millisecond + time.Duration(round-1)*70*time.Millisecond
		at := ran.period.Add(phase)
		for at.Before(time.Now()) {
			at = at.Add(time.Second)
		}
		<-time.After(time.Until(at))
		if crash {
			// hanode with its guard, as when the machine dies: nobody
			// releases, so periods come due while nobody leads (hanode
			// alone would be released for by its guard within ms).
			fault := leader.KillGroup()
			if code := leader.WaitExit(exitBound); code != -1 {
				t.Fatalf("round %d: %s exited %d after SIGKILL", round, leader, code)
			}
			leader.Restart()
			next, d := chk.WaitTakeover(fault, leader, nodetest.DefaultSessionTimeout+6*time.Second)
			t.Logf("round %d: SIGKILL of %s, %s took over in %v", round, leader, next, d)
			// The periods of the gap came due while nobody led: the new
			// leader runs the latest of them once (MISSED=once).
			nt := activeTerm(t, next)
			first := waitJobRun(t, out, nt, 5*time.Second)
			if !first.period.Before(fault.Add(d)) || !hasJobLog(next, "running a job period missed while no member led (MISSED=once)", nt) {
				t.Errorf("round %d: %s's first run after the gap was period %s (took over at %s), not a missed period run once",
					round, next, first.period.Format(time.RFC3339Nano), fault.Add(d).Format(time.RFC3339Nano))
			}
			waitState(t, leader, nodetest.DefaultSessionTimeout+10*time.Second, "standby")
			leader = next
			continue
		}
		fault := leader.Term()
		next, d := chk.WaitTakeover(fault, leader, gracefulBound+2*time.Second)
		if code := leader.WaitExit(exitBound); code != 0 {
			t.Errorf("round %d: %s exited %d after SIGTERM\n%s", round, leader, code, leader.Logs())
		}
		t.Logf("round %d: SIGTERM to %s %v into a period, %s took over in %v", round, leader, phase, next, d)
		leader.Restart()
		waitState(t, leader, 10*time.Second, "standby")
		leader = next
	}
	last := waitJobRun(t, out, activeTerm(t, leader), 5*time.Second)
	elapsed := time.Since(begin)

	lines := readJobLines(t, out)
	runs := map[int64][]jobLine{} // by period, in seconds since the epoch
	first, final := lines[0].period, last.period
	for _, l := range lines {
		s := l.period.Unix()
		runs[s] = append(runs[s], l)
		if !l.period.Equal(l.period.Truncate(time.Second)) {
			t.Errorf("period %s is not on the 1 s grid", l.period)
		}
	}
	var owed, done, notOwed int
	for p := first; !p.After(final); p = p.Add(time.Second) {
		n := len(runs[p.Unix()])
		if n > 1 {
			t.Errorf("period %s ran %d times: %+v", p.Format(time.RFC3339), n, runs[p.Unix()])
		}
		active := activeWithin(chk, p, p.Add(time.Second))
		switch {
		case active >= 300*time.Millisecond:
			owed++
			if n == 0 {
				t.Errorf("period %s never ran, though a node was surely active for %v of it", p.Format(time.RFC3339), active)
			}
		case n == 0:
			notOwed++
		}
		if n > 0 {
			done++
		}
	}
	t.Logf("%d failovers in %v: %d periods from %s to %s, %d ran (each once at most), %d owed (all ran), %d not run while nobody led",
		rounds, elapsed.Round(time.Millisecond), int(final.Sub(first)/time.Second)+1, first.Format(time.TimeOnly),
		final.Format(time.TimeOnly), done, owed, notOwed)

	// Status shows the job's last run, on the leader and on a standby.
	var st ping.Status
	term := activeTerm(t, leader)
	testwait.For(t, 10*time.Second, "the leader's /v2/status to show the job", func() bool {
		var err error
		st, err = leader.Status()
		return err == nil && len(st.Jobs) == 1 && st.Jobs[0].LastTerm == term
	})
	j := st.Jobs[0]
	if j.Name != "tick" || j.Schedule != "every 1s" || j.LastState == "" || j.Next == "" || j.LastBy != leader.Name() {
		t.Errorf("/v2/status jobs: %+v", st.Jobs)
	}
	stdout, stderr, code := cli(t, "status", "--zk", zk.Addr)
	if code != 0 {
		t.Fatalf("hanode status exited %d: %s", code, stderr)
	}
	mustContain(t, "hanode status", stdout, "JOB", "tick", "every 1s", leader.Name())
	chk.Assert(t)
}

// TestJobRunningWhenLeadershipEndsIsStopped: a job's run (a 60 s sleep,
// with a child of its own) is stopped with the leadership, every process
// of it, within the lease margin; the next leader does not run that period
// again, and records its outcome as unknown (its leader could not record
// it).
func TestJobRunningWhenLeadershipEndsIsStopped(t *testing.T) {
	zk := zktest.Start(t)
	pids := filepath.Join(t.TempDir(), "pids.log")
	nodes := nodetest.StartGroup(t, nodetest.GroupOptions{ZK: zk.Addr, Names: []string{"a", "b"}, Env: map[string]string{
		"JOB_LONG_CMD":   `sleep 60 & echo "$HANODE_JOB_PERIOD $HANODE_TERM $! $$" >> ` + nodetest.ShellQuote(pids) + `; wait`,
		"JOB_LONG_EVERY": "1s",
	}})
	chk := nodetest.NewChecker(t, nodes...)
	leader := chk.Node(chk.WaitSingleLeader(electionTimeout))
	term := activeTerm(t, leader)
	var period string
	var procs []int
	testwait.For(t, 5*time.Second, "the leader's job run to start", func() bool {
		b, _ := os.ReadFile(pids)
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) == 4 && f[1] == strconv.FormatInt(term, 10) {
				period = f[0]
				sleepPID, _ := strconv.Atoi(f[2])
				shellPID, _ := strconv.Atoi(f[3])
				procs = []int{sleepPID, shellPID}
				return true
			}
		}
		return false
	})
	fault := leader.Term()
	margin := nodetest.DefaultSessionTimeout * 3 / 10
	testwait.For(t, margin, "every process of the run to be gone within the lease margin", func() bool {
		for _, pid := range procs {
			if p, ok := readProc(pid); ok && p.alive() {
				return false
			}
		}
		return true
	})
	t.Logf("the run of period %s stopped %v after SIGTERM to its leader", period, time.Since(fault).Round(time.Millisecond))
	next, _ := chk.WaitTakeover(fault, leader, gracefulBound+2*time.Second)
	nextTerm := activeTerm(t, next)
	testwait.For(t, 10*time.Second, "the next leader's own run", func() bool {
		b, _ := os.ReadFile(pids)
		return strings.Contains(string(b), " "+strconv.FormatInt(nextTerm, 10)+" ")
	})
	settled := false
	for _, e := range next.LogEntries() {
		settled = settled || e.Msg == "job period finished" && e.Fields["state"] == "unknown" && e.Term == term
	}
	if !settled {
		t.Errorf("%s did not record the interrupted run of term %d as unknown", next, term)
	}
	b, _ := os.ReadFile(pids)
	if n := strings.Count(string(b), period+" "); n != 1 {
		t.Errorf("period %s ran %d times:\n%s", period, n, b)
	}
	stdout, _, code := cli(t, "status", "--zk", zk.Addr, "--json")
	if code != 0 || !strings.Contains(stdout, `"name": "long"`) {
		t.Errorf("hanode status --json (exit %d) does not show the job:\n%s", code, stdout)
	}
	chk.Assert(t)
}
