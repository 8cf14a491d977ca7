package faults

// Duty containment, from the outside: whatever a duty forks,
// re-parents, setsids or daemonizes, nothing of it outlives its node's
// leadership; a node whose duty does not run stops answering ok and, when
// the duty keeps failing, hands over; a frozen duty guard does not stretch
// the stop past the lease margin.
//
// The duties write nodetest's heartbeat lines ("<unix ns> NAME TERM ...")
// from whichever process escaped, so a line proves that some process of
// that duty ran at that instant. Each scenario asserts two things:
//
//   - no line of the old leader's duty (its name, its term) is later than
//     the successor duty's first line;
//   - no process of any duty is left when the test ends (found by the
//     node's marker in the environment or its directory in argv:
//     nodetest.Node.Processes), and none of the old leader's once the
//     successor's duty runs.

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/faultproxy"
	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

const (
	// containWindow is how long a scenario keeps watching after the
	// successor's first heartbeat line before it looks for later lines and
	// live processes of the old duty. What is tested is an absence: an
	// escaped duty writes every 50 ms, so a second gives it twenty chances
	// to show itself.
	containWindow = time.Second
	// leftoverBound is how long the processes of a node may take to vanish
	// after its hanode exited: the stop is confirmed before hanode exits,
	// so this is only the kernel's reaping.
	leftoverBound = 2 * time.Second
	// gracefulHandover bounds a graceful handover, from the leader's
	// decision to step down to the successor's first ok (measured 25–30 ms
	// p50 on the development VM; BENCHMARKS.md, "Failover"), with room for a
	// loaded machine.
	gracefulHandover = 500 * time.Millisecond
	// okTolerance is what the failing-duty check allows beyond the restart
	// grace: the poll interval, one request's travel and scheduling.
	okTolerance = 200 * time.Millisecond
)

// escape is an ACTIVE_CMD whose beating process leaves the duty shell's
// process group, or its session.
type escape struct {
	name string
	env  map[string]string
	duty func(file string) string
}

var escapes = []escape{
	// GNU timeout moves itself (and so the loop it runs) into a process
	// group of its own; the shell then waits for it.
	{"Timeout", nil, func(file string) string {
		return "timeout 1d sh -c " + nodetest.ShellQuote(nodetest.HeartbeatCmd(file)) + "; :"
	}},
	// setsid: a session (and group) of its own; the duty's own process is
	// a sleep.
	{"Setsid", nil, func(file string) string {
		return "setsid sh -c " + nodetest.ShellQuote(nodetest.HeartbeatCmd(file)) + " & exec sleep 100000"
	}},
	// A double-forking daemon: the starter forks a subshell that forks the
	// daemon and exits; the daemon is re-parented and leads a session of
	// its own. As real daemons do, the starter exits 0 once the daemon has
	// written its pid file. Like systemd's Type=forking, the duty is the
	// daemon.
	{"DoubleFork", map[string]string{"ACTIVE_CMD_MODE": "forking"}, func(file string) string {
		pidFile := nodetest.ShellQuote(filepath.Join(filepath.Dir(file), "daemon.pid"))
		daemon := "echo $$ > " + pidFile + "; " + nodetest.HeartbeatCmd(file)
		return "rm -f " + pidFile + "; ( setsid sh -c " + nodetest.ShellQuote(daemon) + " & ) ; " +
			"while [ ! -s " + pidFile + " ]; do sleep 0.01; done; exit 0"
	}},
}

// fault is one way the leader loses its leadership. inject returns the
// instant just before the fault; end, when set, undoes it (the old node
// then rejoins as a standby).
type fault struct {
	name, short string
	inject      func(t *testing.T, c *cluster, leader *nodetest.Node) time.Time
	end         func(t *testing.T, c *cluster, leader *nodetest.Node)
}

var leaderFaults = []fault{
	{name: "SIGKILL", short: "kill", inject: func(t *testing.T, _ *cluster, n *nodetest.Node) time.Time {
		at := n.Kill() // hanode alone: its guard lives in a session of its own
		if code := n.WaitExit(exitBound); code != -1 {
			t.Errorf("%s exited %d after SIGKILL, want -1", n, code)
		}
		return at
	}},
	{name: "SIGTERM", short: "term", inject: func(_ *testing.T, _ *cluster, n *nodetest.Node) time.Time {
		return n.Term()
	}},
	// Held until the successor's duty has run for containWindow: by then
	// the session surely expired (the successor leads).
	{name: "SIGSTOP", short: "stop", inject: func(_ *testing.T, _ *cluster, n *nodetest.Node) time.Time {
		return n.Stop()
	}, end: func(_ *testing.T, _ *cluster, n *nodetest.Node) { n.Cont() }},
	{name: "Partition", short: "cut", inject: func(_ *testing.T, c *cluster, n *nodetest.Node) time.Time {
		return c.stall(n)
	}, end: func(_ *testing.T, c *cluster, n *nodetest.Node) { c.heal(n) }},
}

// TestContainmentEscapes: three duties that escape the duty shell's process
// group (GNU timeout, setsid, a double-forking daemon run with
// ACTIVE_CMD_MODE=forking), each under SIGKILL of the leader's hanode
// (not its guard), SIGTERM, SIGSTOP held past the session timeout, and a
// ZooKeeper partition of the leader. Every time, the old duty's last line
// comes before the successor duty's first, none of the old duty's
// processes runs once the successor's duty does, and no duty process is
// left once every node has exited.
func TestContainmentEscapes(t *testing.T) {
	for _, e := range escapes {
		t.Run(e.name, func(t *testing.T) {
			zk := zktest.Start(t) // one ZooKeeper per duty; each fault has its own group
			for _, f := range leaderFaults {
				t.Run(f.name, func(t *testing.T) { escapeScenario(t, zk.Addr, e, f) })
			}
		})
	}
}

func escapeScenario(t *testing.T, zkAddr string, e escape, f fault) {
	scenario := fmt.Sprintf("containment: %s duty, leader %s", e.name, f.name)
	c := startDutyCluster(t, zkAddr, []string{f.short + "1", f.short + "2"}, e.env, e.duty)
	leader := c.leader(electionTimeout)
	before := activeStatus(t, leader, 5*time.Second)
	waitBeat(t, leader, before.Term, 5*time.Second)
	containment := "unknown (no duty in /v2/status)"
	if d, _ := dutyStatus(leader); d != nil {
		containment = fmt.Sprint(d["containment"])
	}

	at := f.inject(t, c, leader)
	next, took := c.chk.WaitTakeover(at, leader, waitTakeover)
	after := activeStatus(t, next, 5*time.Second)
	first := waitBeat(t, next, after.Term, 10*time.Second)
	watchSuccessor(t, c, next, first.At.Add(containWindow))
	stray := dutyProcesses(t, leader)
	if f.end != nil {
		f.end(t, c, leader)
		nodetest.WaitStandby(t, leader, sessionTimeout+10*time.Second, before.ZK.SessionID)
	}

	late, overlap := lateLines(leader, before.Term, first.At)
	if late > 0 {
		t.Errorf("%s's duty (term %d) wrote %d lines after %s's duty (term %d) wrote its first: overlap %v and counting",
			leader, before.Term, late, next, after.Term, overlap.Round(time.Millisecond))
	}
	for _, p := range stray {
		t.Errorf("%s's duty still runs %v after %s's duty began: %s", leader, containWindow, next, p)
	}
	c.assertClean(t)
	left := stopAll(t, c)
	outcome := fmt.Sprintf("takeover %v; old duty's late lines %d (overlap %v); old duty processes left %d; at the end %d; containment %s",
		took.Round(time.Millisecond), late, overlap.Round(time.Millisecond), len(stray), left, containment)
	t.Logf("%s: %s", scenario, outcome)
	record(t, scenario, outcomeOf(t, outcome), took)
}

// TestContainmentFailingDuty: the leader's duty starts failing at once on
// every start (exit 1), with ACTIVE_RESTART_GRACE=1s, ACTIVE_MAX_RESTARTS=3
// and ACTIVE_RESTART_WINDOW=60s. The leader answers ok no later than the
// restart grace after its duty's first exit, /v2/status shows the duty
// failing, and once the restart limit is reached another node (whose duty
// works) leads within 1 s plus a graceful handover, with no two nodes
// answering ok at once.
func TestContainmentFailingDuty(t *testing.T) {
	const (
		scenario    = "containment: leader's duty keeps failing (exit 1)"
		grace       = time.Second
		maxRestarts = 3
	)
	zk := zktest.Start(t)
	failing := filepath.Join(t.TempDir(), "failing") // holds the name whose duty fails
	duty := func(file string) string {
		exits := filepath.Join(filepath.Dir(file), "exits.log")
		return `while :; do
if [ "$(cat ` + nodetest.ShellQuote(failing) + ` 2>/dev/null)" = "$HANODE_NAME" ]; then
echo "$(date +%s%N) $HANODE_NAME $HANODE_TERM exit" >> ` + nodetest.ShellQuote(exits) + `; exit 1
fi
echo "$(date +%s%N) $HANODE_NAME $HANODE_TERM $HANODE_ROLE $HANODE_HA_ID" >> ` + nodetest.ShellQuote(file) + `; sleep 0.05
done`
	}
	c := startDutyCluster(t, zk.Addr, []string{"n1", "n2"}, map[string]string{
		"ACTIVE_RESTART_GRACE":  grace.String(),
		"ACTIVE_MAX_RESTARTS":   strconv.Itoa(maxRestarts),
		"ACTIVE_RESTART_WINDOW": "60s",
	}, duty)
	leader := c.leader(electionTimeout)
	before := activeStatus(t, leader, 5*time.Second)
	waitBeat(t, leader, before.Term, 5*time.Second)
	c.settle(t, settleTimeout) // the other node has joined as a standby

	broke := time.Now()
	if err := os.WriteFile(failing, []byte(leader.Name()), 0o644); err != nil {
		t.Fatal(err)
	}
	var exits []time.Time
	testwait.For(t, 5*time.Second, leader.Name()+"'s duty to exit", func() bool {
		exits = exitStamps(t, leader)
		return len(exits) > 0
	})
	firstExit := exits[0]

	// The node must stop answering ok by firstExit + grace; give the
	// restart limit and a handover time to happen, then look.
	var next *nodetest.Node
	var nextAt time.Time
	waited := maxRestartsWait(grace)
	err := testwait.Poll(waited, 5*time.Millisecond, func() bool {
		var ok bool
		next, nextAt, ok = c.chk.FirstOKAfter(firstExit, leader)
		return ok
	})
	duty1, _ := dutyStatus(leader)
	exits = exitStamps(t, leader)

	okLimit := firstExit.Add(grace + okTolerance)
	if r, ok := okSentAfter(c.chk, leader, okLimit); ok {
		end := r.LastSent
		for _, q := range c.chk.Runs(leader) {
			if q.Result == nodetest.ResultOK && q.LastSent.After(end) {
				end = q.LastSent
			}
		}
		t.Errorf("%s answered ok %v after its duty's first exit (%d exits since), want none later than the %v restart grace + %v",
			leader, end.Sub(firstExit).Round(time.Millisecond), len(exits), grace, okTolerance)
	}
	if duty1 == nil {
		t.Errorf("%s's /v2/status has no duty object (want state, restarts, last_exit, last_exit_at)", leader)
	} else {
		t.Logf("%s's duty in /v2/status: %v", leader, duty1)
		if st, _ := duty1["state"].(string); st == "running" {
			t.Errorf("%s's /v2/status says its duty is %q after %d exits", leader, st, len(exits))
		}
	}
	var took time.Duration = -1
	if err != nil {
		t.Errorf("no node other than %s answered ok within %v of its duty's first exit; its duty exited %d times and it answered ok throughout\n%s",
			leader, waited, len(exits), c.chk.Summary())
	} else {
		took = nextAt.Sub(firstExit)
		// The limit is reached at the exit that would need restart
		// maxRestarts+1; a node that gives up one exit earlier is fine.
		limit := exits[min(maxRestarts, len(exits)-1)]
		t.Logf("%s answered ok %v after %s's duty reached its restart limit (exit %d, %v after the first)",
			next, nextAt.Sub(limit).Round(time.Millisecond), leader, min(maxRestarts, len(exits)-1)+1,
			limit.Sub(firstExit).Round(time.Millisecond))
		if d := nextAt.Sub(limit); d > time.Second+gracefulHandover {
			t.Errorf("%s answered ok %v after %s's duty reached its restart limit (exit %d at +%v), want within 1s + %v",
				next, d.Round(time.Millisecond), leader, min(maxRestarts, len(exits)-1)+1,
				limit.Sub(firstExit).Round(time.Millisecond), gracefulHandover)
		}
		first := waitBeat(t, next, activeStatus(t, next, 5*time.Second).Term, 10*time.Second)
		t.Logf("%s's duty first exited %v after it was made to fail; %d exits by the takeover; %s answered ok %v after the first exit, its duty beat %v after it",
			leader, firstExit.Sub(broke).Round(time.Millisecond), len(exits), next, took.Round(time.Millisecond),
			first.At.Sub(firstExit).Round(time.Millisecond))
	}
	c.assertClean(t)
	left := stopAll(t, c)
	lastOK := "none"
	if r, ok := okSentAfter(c.chk, leader, firstExit); ok {
		end := r.LastSent
		for _, q := range c.chk.Runs(leader) {
			if q.Result == nodetest.ResultOK && q.LastSent.After(end) {
				end = q.LastSent
			}
		}
		lastOK = end.Sub(firstExit).Round(time.Millisecond).String()
	}
	record(t, scenario, outcomeOf(t, fmt.Sprintf("leader's last ok %s after its duty's first exit; %d exits; processes left %d",
		lastOK, len(exits), left)), took)
}

// maxRestartsWait bounds the wait for a takeover after a duty's first
// exit: the grace, three restarts with a backoff that doubles from 200 ms
// up to 1.6 s (3 s in all, generous), the 1 s TestContainmentFailingDuty
// allows another node to lead in, a handover and slack.
func maxRestartsWait(grace time.Duration) time.Duration {
	return grace + 3*time.Second + time.Second + gracefulHandover + 5*time.Second
}

// TestContainmentGuard: the duty guard as an operator and an adversary see
// it. ProcessName: `ps` names it hanode duty-guard. FrozenWhileLeaderPartitioned:
// the leader's guard is frozen (SIGSTOP) and then the leader is cut from
// ZooKeeper; the coordinator must get rid of the guard and its duty within
// the lease margin, so the old duty's last line comes before the
// successor's first, at T = 4 s and at the default T = 10 s (default
// LEASE_MARGIN and ACTIVE_STOP_TIMEOUT).
func TestContainmentGuard(t *testing.T) {
	zk := zktest.Start(t)
	t.Run("ProcessName", func(t *testing.T) {
		c := startDutyCluster(t, zk.Addr, []string{"ps1"}, nil, nil)
		leader := c.leader(electionTimeout)
		guard := dutyGuard(t, leader, 5*time.Second)
		ps := exec.Command("ps", "-o", "comm=,args=", "-p", strconv.Itoa(guard.PID))
		out, err := ps.Output()
		if err != nil {
			t.Fatalf("ps -p %d: %v", guard.PID, err)
		}
		line := strings.TrimSpace(string(out))
		comm, args, _ := strings.Cut(line, " ")
		t.Logf("ps -o comm=,args= -p %d: %s", guard.PID, line)
		if !strings.Contains(comm, "hanode") {
			t.Errorf("the duty guard's command name is %q, want it to say hanode (ps: %s)", comm, line)
		}
		if !strings.Contains(args, "duty-guard") {
			t.Errorf("the duty guard's arguments %q do not say duty-guard", args)
		}
		c.assertClean(t)
		stopAll(t, c)
	})
	for _, tc := range []struct {
		name    string
		timeout time.Duration
	}{
		{"FrozenWhileLeaderPartitioned/T=4s", 4 * time.Second},
		{"FrozenWhileLeaderPartitioned/T=10s", 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) { guardFrozenScenario(t, zk.Addr, tc.timeout) })
	}
}

func guardFrozenScenario(t *testing.T, zkAddr string, timeout time.Duration) {
	scenario := fmt.Sprintf("containment: leader's guard frozen, then leader partitioned, T=%v", timeout)
	short := fmt.Sprintf("gf%d", int(timeout.Seconds()))
	c := startDutyCluster(t, zkAddr, []string{short + "a", short + "b"},
		map[string]string{"ZK_SESSION_TIMEOUT": timeout.String()}, nil)
	leader := c.leader(electionTimeout)
	before := activeStatus(t, leader, 5*time.Second)
	waitBeat(t, leader, before.Term, 5*time.Second)
	guard := dutyGuard(t, leader, 5*time.Second)

	frozen := time.Now()
	if err := syscall.Kill(guard.PID, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP to %s's duty guard %d: %v", leader, guard.PID, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(guard.PID, syscall.SIGCONT) })
	extended := waitExtension(t, leader, timeout*7/10)
	cut := c.stall(leader)
	next, took := c.chk.WaitTakeover(cut, leader, timeout+15*time.Second)
	after := activeStatus(t, next, 5*time.Second)
	first := waitBeat(t, next, after.Term, 10*time.Second)
	watchSuccessor(t, c, next, first.At.Add(containWindow))
	stray := dutyProcesses(t, leader)
	guardAlive := guard.Alive()
	c.heal(leader)
	if guardAlive {
		_ = syscall.Kill(guard.PID, syscall.SIGCONT)
	}
	nodetest.WaitStandby(t, leader, timeout+10*time.Second, before.ZK.SessionID)

	late, overlap := lateLines(leader, before.Term, first.At)
	hb := beats(leader, before.Term)
	oldLast := hb[len(hb)-1].At
	if late > 0 {
		t.Errorf("%s's duty (term %d) wrote %d lines after %s's duty (term %d) wrote its first: overlap %v",
			leader, before.Term, late, next, after.Term, overlap.Round(time.Millisecond))
	}
	for _, p := range stray {
		t.Errorf("%s's duty still runs %v after %s's duty began: %s", leader, containWindow, next, p)
	}
	c.assertClean(t)
	left := stopAll(t, c)
	outcome := fmt.Sprintf("takeover %v after the cut; old duty's last line %v after the cut, %v before the successor's first (negative: overlap); guard still alive then: %v; processes left %d",
		took.Round(time.Millisecond), oldLast.Sub(cut).Round(time.Millisecond), first.At.Sub(oldLast).Round(time.Millisecond), guardAlive, left)
	t.Logf("%s: guard frozen %v before the cut, cut %v after an extension's acknowledgement was seen; %s",
		scenario, cut.Sub(frozen).Round(time.Millisecond), cut.Sub(extended).Round(time.Microsecond), outcome)
	t.Logf("%s since the cut:%s", leader, logSince(leader, cut))
	t.Logf("%s since the cut:%s", next, logSince(next, cut))
	record(t, scenario, outcomeOf(t, outcome), took)
}

// waitExtension waits until n's lease is extended (its /v2/status shows
// more lease left than at the previous look, and less than 100 ms of it
// gone) and returns when it saw that. A cut right then is the worst case for the old duty: the server
// heard from n last at that very extension (a ping follows only T/3
// later), so it expires n's session, and the successor claims, as early as
// it can, while n's lease ends no earlier.
func waitExtension(t testing.TB, n *nodetest.Node, lease time.Duration) time.Time {
	t.Helper()
	last, prev := "no answer", time.Duration(-1)
	err := testwait.Poll(lease+2*time.Second, 2*time.Millisecond, func() bool {
		st, err := n.Status()
		if err != nil {
			last = err.Error()
			return false
		}
		left, err := time.ParseDuration(st.LeaseLeft)
		if err != nil || st.State != "active" {
			last = fmt.Sprintf("%s lease_left %q", st.State, st.LeaseLeft)
			return false
		}
		last = fmt.Sprintf("%s lease_left %s", st.State, st.LeaseLeft)
		extended := prev >= 0 && left > prev && left > lease-100*time.Millisecond
		prev = left
		return extended
	})
	if err != nil {
		t.Fatalf("%s: no lease extension seen within %v (lease %v); last: %s", n, lease+2*time.Second, lease, last)
	}
	return time.Now()
}

// startDutyCluster starts one node per name, each reaching ZooKeeper
// through a proxy of its own, with the heartbeat duty built by duty (nil:
// nodetest.HeartbeatCmd) and env added to nodetest.HAEnv; then a Checker
// polling them all.
func startDutyCluster(t testing.TB, zkAddr string, names []string, env map[string]string, duty func(string) string) *cluster {
	t.Helper()
	c := &cluster{t: t, haID: nodetest.GroupID(t), servers: []string{zkAddr}, env: env, paths: map[*nodetest.Node][]*faultproxy.Proxy{}}
	for _, name := range names {
		p := faultproxy.Start(t, zkAddr)
		e := nodetest.HAEnv(p.Addr(), c.haID, name)
		maps.Copy(e, env)
		n := nodetest.Start(t, nodetest.Options{Name: name, Env: e, Heartbeat: true, DutyCmd: duty})
		c.paths[n] = []*faultproxy.Proxy{p}
		c.nodes = append(c.nodes, n)
	}
	c.chk = nodetest.NewChecker(t, c.nodes...)
	return c
}

// watchSuccessor holds the scenario until until, failing the test as soon
// as next stops answering ok: a bounded observation (the old duty's
// absence is what the caller then checks), not a synchronization.
func watchSuccessor(t *testing.T, c *cluster, next *nodetest.Node, until time.Time) {
	t.Helper()
	observe(time.Until(until), 50*time.Millisecond, func() {
		if l, ok := c.chk.Latest(next); ok && l.Result != nodetest.ResultOK {
			t.Fatalf("%s stopped answering ok (%s: %s) while it should lead", next, l.Result, l.Detail)
		}
	})
}

// lateLines counts the lines n's duty wrote in term at or after from, and
// how long after from the latest was written (0 when none).
func lateLines(n *nodetest.Node, term int64, from time.Time) (int, time.Duration) {
	late, last := 0, time.Duration(0)
	for _, hb := range beats(n, term) {
		if hb.Name == n.Name() && !hb.At.Before(from) {
			late++
			last = max(last, hb.At.Sub(from))
		}
	}
	return late, last
}

// dutyProcesses lists n's live processes other than hanode and its duty
// guard (processes of the hanode binary): what its duties left running.
func dutyProcesses(t testing.TB, n *nodetest.Node) []nodetest.Proc {
	bin := nodetest.Build(t)
	var out []nodetest.Proc
	for _, p := range n.Processes() {
		if (n.Running() && p.PID == n.PID()) || p.Exe == bin {
			continue
		}
		out = append(out, p)
	}
	return out
}

// dutyGuard waits until n's hanode has exactly one live duty guard (a
// process of n whose argv says duty-guard) and returns it.
func dutyGuard(t testing.TB, n *nodetest.Node, timeout time.Duration) nodetest.Proc {
	t.Helper()
	var guards []nodetest.Proc
	err := testwait.Poll(timeout, 5*time.Millisecond, func() bool {
		guards = guards[:0]
		for _, p := range n.Processes() {
			if p.PID != n.PID() && strings.Contains(strings.Join(p.Args, " "), "duty-guard") {
				guards = append(guards, p)
			}
		}
		return len(guards) == 1
	})
	if err != nil {
		t.Fatalf("%s: want one duty guard, found %v", n, guards)
	}
	return guards[0]
}

// stopAll sends SIGTERM to every node still running, waits for each to
// exit, and then fails the test for every process of any node still alive
// leftoverBound later (killing it in cleanup: nodetest does, by marker and
// by argv). It returns how many were left.
func stopAll(t *testing.T, c *cluster) int {
	t.Helper()
	for _, n := range c.nodes {
		if n.Running() {
			if n.Paused() {
				n.Cont()
			}
			n.Term()
		}
	}
	for _, n := range c.nodes {
		if code, err := n.Wait(exitBound); err != nil {
			t.Errorf("%v", err)
		} else if code != 0 && code != -1 {
			t.Logf("%s exited %d", n, code)
		}
	}
	var left []nodetest.Proc
	_ = testwait.Poll(leftoverBound, 10*time.Millisecond, func() bool {
		left = left[:0]
		for _, n := range c.nodes {
			left = append(left, n.Processes()...)
		}
		return len(left) == 0
	})
	for _, p := range left {
		t.Errorf("left running %v after every node exited: %s", leftoverBound, p)
	}
	return len(left)
}

// exitStamps reads the "<unix ns> NAME TERM exit" lines the failing duty
// writes just before each exit, in order.
func exitStamps(t testing.TB, n *nodetest.Node) []time.Time {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.Dir(), "exits.log"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Time
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 {
			continue
		}
		if ns, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			out = append(out, time.Unix(0, ns))
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// dutyStatus returns the "duty" object of n's /v2/status, nil when there
// is none.
func dutyStatus(n *nodetest.Node) (map[string]any, error) {
	body, err := statusJSON(n)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		return nil, err
	}
	d, _ := doc["duty"].(map[string]any)
	return d, nil
}
