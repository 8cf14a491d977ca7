package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
	"github.com/hanode/hanode/ping"
)

// healthCheck is a HEALTH_CMD that fails while DIR/<HANODE_NAME>.sick
// exists, appending "<unix ns at its start> ok|fail" to
// DIR/<HANODE_NAME>.checks on every run.
func healthCheck(dir string) string {
	d := nodetest.ShellQuote(dir)
	return `t=$(date +%s%N); if [ -e ` + d + `/"$HANODE_NAME".sick ]; then echo "$t fail" >> ` + d + `/"$HANODE_NAME".checks; exit 1; fi; ` +
		`echo "$t ok" >> ` + d + `/"$HANODE_NAME".checks`
}

// firstFailAfter is the start of the first failing check of node in dir
// that started at or after since.
func firstFailAfter(t *testing.T, dir, node string, since time.Time) time.Time {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, node+".checks"))
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || f[1] != "fail" {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		require.NoError(t, err, "check line %q", line)
		if at := time.Unix(0, ns); !at.Before(since) {
			return at
		}
	}
	t.Fatalf("%s: no failing check since %v", node, since)
	return time.Time{}
}

// waitMark waits until node's duty has written its mark what at or after
// since (a duty writes it just after it starts, so it may come a little
// after the node's first ok) and returns its time, 0 if none came.
func waitMark(t *testing.T, dir, node, what string, since int64) int64 {
	t.Helper()
	var at int64
	_ = testwait.Poll(5*time.Second, 5*time.Millisecond, func() bool {
		if _, err := os.Stat(filepath.Join(dir, node+".marks")); err != nil {
			return false
		}
		at = markOf(t, dir, node, what, since)
		return at != 0
	})
	return at
}

// markOf is the time of node's first mark what ("active start", ...) at
// or after since (unix ns), 0 if none.
func markOf(t *testing.T, dir, node, what string, since int64) int64 {
	t.Helper()
	for _, m := range readMarks(t, filepath.Join(dir, node+".marks")) {
		if m.what == what && m.at >= since {
			return m.at
		}
	}
	return 0
}

func sick(t *testing.T, dir, node string, on bool) {
	t.Helper()
	p := filepath.Join(dir, node+".sick")
	if on {
		require.NoError(t, os.WriteFile(p, nil, 0o644))
	} else {
		require.NoError(t, os.Remove(p))
	}
}

// TestFailingHealthCmdMovesLeadershipWithoutOverlap: three real nodes with
// HEALTH_INTERVAL=200ms and HEALTH_FAILURES=3. The leader's HEALTH_CMD
// starts failing: another node answers ok within 3 × 200ms + 1s of the
// first failing check, the old leader's duty stopped before the new one's
// started, no two nodes ever answered ok together, and the old leader's
// status says unhealthy with the reason and names the new leader. Once
// its check passes twice it joins again at the back, and leadership stays
// where it is. Then every member's check fails: nobody leads, and every
// member's status says so; the first to recover leads.
func TestFailingHealthCmdMovesLeadershipWithoutOverlap(t *testing.T) {
	const interval, failures = 200 * time.Millisecond, 3
	zk := zktest.Start(t)
	dir := t.TempDir()
	haID := nodetest.GroupID(t)
	var nodes []*nodetest.Node
	for _, name := range []string{"a", "b", "c"} {
		env := nodetest.HAEnv(zk.Addr, haID, name)
		env["HEALTH_CMD"] = healthCheck(dir)
		env["HEALTH_INTERVAL"] = interval.String()
		env["HEALTH_FAILURES"] = strconv.Itoa(failures)
		env["HEALTH_RECOVERIES"] = "2"
		nodes = append(nodes, nodetest.Start(t, nodetest.Options{Name: name, Env: env, Heartbeat: true,
			DutyCmd: func(hb string) string { return markPrefix(dir, "active") + nodetest.HeartbeatCmd(hb) }}))
	}
	chk := nodetest.NewChecker(t, nodes...)
	old := chk.Node(chk.WaitSingleLeader(electionTimeout))
	for _, n := range nodes {
		st, err := n.WaitStatus(10*time.Second, func(st ping.Status) bool { return st.Health != nil && st.Health.State == "healthy" })
		require.NoError(t, err)
		assert.Equal(t, "first-come", st.Candidacy.Policy)
	}

	fault := time.Now()
	sick(t, dir, old.Name(), true)
	next, _ := chk.WaitTakeover(fault, old, 10*time.Second)
	_, okAt, _ := chk.FirstOKAfter(fault, old)
	firstFail := firstFailAfter(t, dir, old.Name(), fault)
	took := okAt.Sub(firstFail)
	bound := failures*interval + time.Second
	t.Logf("takeover: %s answered ok %v after %s's first failing check (%v after the check file appeared); bound %v",
		next, took.Round(time.Millisecond), old, okAt.Sub(fault).Round(time.Millisecond), bound)
	assert.LessOrEqual(t, took, bound, "leadership moved within HEALTH_FAILURES × HEALTH_INTERVAL + 1s")

	st, err := old.WaitStatus(5*time.Second, func(st ping.Status) bool { return st.State == "unhealthy" && st.Leader != "" })
	require.NoError(t, err)
	assert.Equal(t, "health check failing: HEALTH_CMD failed 3 times: exit status 1", st.Reason)
	require.NotNil(t, st.Health)
	assert.Equal(t, "unhealthy", st.Health.State)
	assert.Equal(t, "HEALTH_CMD failed 3 times: exit status 1", st.Health.Reason)
	assert.GreaterOrEqual(t, st.Health.Failures, failures)
	assert.Equal(t, next.Name(), st.Leader, "out of the line, it still knows who leads")
	assert.Empty(t, st.LeaderNote)
	stopped := waitMark(t, dir, old.Name(), "active stop", fault.UnixNano())
	started := waitMark(t, dir, next.Name(), "active start", fault.UnixNano())
	require.NotZero(t, stopped, "%s's duty was stopped (SIGTERM), not killed", old)
	require.NotZero(t, started)
	assert.Less(t, stopped, started, "the old duty stopped before the new one started")

	sick(t, dir, old.Name(), false)
	// Joined again at the back: listed last, with a sequence number above
	// the others' (its status shows the line it left until it has joined).
	st, err = old.WaitStatus(5*time.Second, func(st ping.Status) bool {
		ms := st.Members
		return st.State == "standby" && len(ms) == 3 && ms[2].Name == old.Name() && ms[2].Seq > ms[1].Seq
	})
	require.NoError(t, err, "it joins again at the back")
	assert.Equal(t, "healthy", st.Health.State)
	assert.Equal(t, next.Name(), chk.WaitSingleLeader(5*time.Second), "leadership stays where it is")

	for _, n := range nodes {
		sick(t, dir, n.Name(), true)
	}
	for _, n := range nodes {
		st, err := n.WaitStatus(10*time.Second, func(st ping.Status) bool {
			return st.State == "unhealthy" && st.LeaderNote == "no leader: every member unhealthy or gone"
		})
		require.NoError(t, err)
		assert.Empty(t, st.Leader, n.Name())
		assert.Empty(t, st.Members, n.Name())
	}
	for _, n := range nodes {
		code, body, err := n.PingSE()
		require.NoError(t, err)
		assert.Equal(t, "503 standby", strconv.Itoa(code)+" "+body, "%s: nobody leads", n)
	}
	back := nodes[2]
	sick(t, dir, back.Name(), false)
	assert.Equal(t, back.Name(), chk.WaitSingleLeader(10*time.Second), "the first member to recover leads")
	chk.Assert(t)
}

// TestElectionPolicies runs the election policies on real nodes against
// one ZooKeeper server, each case in a group of its own.
func TestElectionPolicies(t *testing.T) {
	zk := zktest.Start(t)
	priorityEnv := func(t *testing.T, name string, priority int, preempt bool) map[string]string {
		env := nodetest.HAEnv(zk.Addr, nodetest.GroupID(t), name)
		env["ELECTION_POLICY"] = "priority"
		env["PRIORITY"] = strconv.Itoa(priority)
		if preempt {
			env["PREEMPT"] = "true"
			env["PREEMPT_DELAY"] = "500ms"
		}
		return env
	}

	// Without PREEMPT a preferred member that joins waits: the leader
	// keeps leading for three leases; members step behind the preferred
	// one, so that at the next handover it, not the one that joined
	// before it, takes over.
	t.Run("without preemption the leader keeps leading", func(t *testing.T) {
		a := nodetest.Start(t, nodetest.Options{Name: "a", Env: priorityEnv(t, "a", 5, false), Heartbeat: true})
		chk := nodetest.NewChecker(t, a)
		require.Equal(t, "a", chk.WaitSingleLeader(electionTimeout))
		c := nodetest.Start(t, nodetest.Options{Name: "c", Env: priorityEnv(t, "c", 3, false), Heartbeat: true})
		b := nodetest.Start(t, nodetest.Options{Name: "b", Env: priorityEnv(t, "b", 1, false), Heartbeat: true})
		chk.Add(c)
		chk.Add(b)
		waitState(t, b, 10*time.Second, "standby")
		waitState(t, c, 10*time.Second, "standby")
		joined := time.Now()
		// A negative property needs a window to watch: a must keep answering
		// ok for longer than three leases, the longest a leader goes
		// without listing the members (so it has seen b in the window; the
		// checker records every answer).
		window := 3*nodetest.DefaultSessionTimeout + time.Second
		<-time.After(window)
		for _, n := range []*nodetest.Node{a, b, c} {
			for _, r := range chk.Runs(n) {
				if r.LastSent.Before(joined) {
					continue
				}
				want := nodetest.ResultStandby
				if n == a {
					want = nodetest.ResultOK
				}
				assert.Equal(t, want.String(), r.Result.String(), "%s answered %s %d times within %v of b joining", n, r.Result, r.N, window)
			}
		}
		_, err := c.WaitStatus(5*time.Second, func(st ping.Status) bool {
			return len(st.Members) == 3 && st.Members[1].Name == "b" && st.Members[2].Name == "c"
		})
		require.NoError(t, err, "c stepped behind b")
		fault := a.Term()
		next, took := chk.WaitTakeover(fault, a, gracefulBound+2*time.Second)
		assert.Equal(t, "b", next.Name(), "the preferred member takes over at the next handover")
		t.Logf("handover to b after SIGTERM to a: %v", took.Round(time.Millisecond))
		require.Equal(t, 0, a.WaitExit(exitBound))
		chk.Assert(t)
	})

	// With PREEMPT=true and PREEMPT_DELAY=500ms the leader hands over to a
	// preferred member that joins, gracefully: its duty stopped before the
	// new one started, and the transition says preempted.
	t.Run("with preemption the leader hands over gracefully", func(t *testing.T) {
		dir := t.TempDir()
		duty := func(hb string) string { return markPrefix(dir, "active") + nodetest.HeartbeatCmd(hb) }
		a := nodetest.Start(t, nodetest.Options{Name: "a", Env: priorityEnv(t, "a", 5, true), Heartbeat: true, DutyCmd: duty})
		chk := nodetest.NewChecker(t, a)
		require.Equal(t, "a", chk.WaitSingleLeader(electionTimeout))
		joined := time.Now()
		b := nodetest.Start(t, nodetest.Options{Name: "b", Env: priorityEnv(t, "b", 1, true), Heartbeat: true, DutyCmd: duty})
		chk.Add(b)
		// The leader notices a member that joined when it lists the members
		// again, at the latest three leases after its last listing (the
		// core's relist; a holder keeps no watch on the members), and hands
		// over PREEMPT_DELAY after it noticed.
		bound := 3*nodetest.DefaultSessionTimeout + 500*time.Millisecond
		next, took := chk.WaitTakeover(joined, a, bound+5*time.Second)
		require.Equal(t, "b", next.Name())
		t.Logf("preemption: b answered ok %v after it was started (PREEMPT_DELAY=500ms; bound %v)", took.Round(time.Millisecond), bound)
		assert.GreaterOrEqual(t, took, 500*time.Millisecond, "not before PREEMPT_DELAY")
		assert.LessOrEqual(t, took, bound+2*time.Second)
		var preempted bool
		for _, e := range a.StateChanges() {
			if e.From == "active" && strings.Contains(e.Reason, "preempted by b (priority 1, this node 5)") {
				preempted = true
			}
		}
		assert.True(t, preempted, "a's transition out of active says it was preempted:\n%s", a.Logs())
		stopped := waitMark(t, dir, "a", "active stop", joined.UnixNano())
		started := waitMark(t, dir, "b", "active start", joined.UnixNano())
		require.NotZero(t, stopped, "a's duty was stopped, not killed")
		require.NotZero(t, started)
		assert.Less(t, stopped, started, "a's duty stopped before b's started")
		waitState(t, a, 10*time.Second, "standby")
		assert.Equal(t, "b", chk.WaitSingleLeader(5*time.Second))
		chk.Assert(t)
	})

	// NOFAILOVER: a node that joined first never leads, however many of the
	// others are killed, and its status says it never leads and that
	// nobody leads.
	t.Run("a NOFAILOVER node never answers ok", func(t *testing.T) {
		haID := nodetest.GroupID(t)
		nf := nodetest.HAEnv(zk.Addr, haID, "n")
		nf["NOFAILOVER"] = "true"
		n := nodetest.Start(t, nodetest.Options{Name: "n", Env: nf, Heartbeat: true})
		a := nodetest.Start(t, nodetest.Options{Name: "a", Env: nodetest.HAEnv(zk.Addr, haID, "a"), Heartbeat: true})
		b := nodetest.Start(t, nodetest.Options{Name: "b", Env: nodetest.HAEnv(zk.Addr, haID, "b"), Heartbeat: true})
		chk := nodetest.NewChecker(t, n, a, b)
		first := chk.Node(chk.WaitSingleLeader(electionTimeout))
		require.NotEqual(t, "n", first.Name())
		st := n.MustStatus()
		assert.True(t, st.Candidacy.NoFailover)
		assert.Contains(t, st.Reason, "NOFAILOVER") // the core's reason, or the status wrapper's note after a transient one

		fault := first.Kill()
		second, took := chk.WaitTakeover(fault, first, 3*nodetest.DefaultSessionTimeout)
		require.NotEqual(t, "n", second.Name())
		t.Logf("%s took over %v after %s was killed", second, took.Round(time.Millisecond), first)
		second.Kill()
		st, err := n.WaitStatus(5*nodetest.DefaultSessionTimeout, func(st ping.Status) bool {
			return st.Leader == "" && st.LeaderNote == "no leader: every member that may lead is unhealthy or gone (1 NOFAILOVER member never leads)"
		})
		require.NoError(t, err)
		assert.Contains(t, st.Reason, "NOFAILOVER") // the core's reason, or the status wrapper's note after a transient one
		// Two more leases: nobody is left to claim but n, which must not.
		<-time.After(2 * nodetest.DefaultSessionTimeout)
		for _, r := range chk.Runs(n) {
			assert.NotEqual(t, nodetest.ResultOK, r.Result, "n answered ok %d times", r.N)
		}
		code, body, err := n.PingSE()
		require.NoError(t, err)
		assert.Equal(t, "503 standby", strconv.Itoa(code)+" "+body)
		chk.Assert(t)
	})

	// Members that disagree on the policy: the second is refused (exit
	// status 77) with a message naming both policies, and the leader keeps
	// leading.
	t.Run("another policy is refused", func(t *testing.T) {
		haID := nodetest.GroupID(t)
		a := nodetest.Start(t, nodetest.Options{Name: "a", Env: nodetest.HAEnv(zk.Addr, haID, "a")})
		chk := nodetest.NewChecker(t, a)
		chk.WaitSingleLeader(electionTimeout)
		env := nodetest.HAEnv(zk.Addr, haID, "b")
		env["ELECTION_POLICY"] = "priority"
		b := nodetest.Launch(t, nodetest.Options{Name: "b", Env: env})
		if code := b.WaitExit(refusalBound); code != 77 {
			t.Fatalf("b exited %d, want 77\n%s", code, b.Logs())
		}
		mustContain(t, "the refused node's log", b.Logs(), haID, "ELECTION_POLICY=first-come", "ELECTION_POLICY=priority")
		assert.Equal(t, "a", chk.WaitSingleLeader(5*time.Second))
		chk.Assert(t)
	})
}

// TestCrashLoopingDutyTakesTheNodeOutOfTheLine: with no HEALTH_CMD, a
// leader whose ACTIVE_CMD keeps exiting gives up after
// ACTIVE_MAX_RESTARTS, hands over, and stays out of the line, unhealthy
// with the duty's loss as the reason, until HEALTH_RECOVERIES ×
// HEALTH_INTERVAL have passed without another loss; then it joins again
// at the back, and the healthy leader keeps leading.
func TestCrashLoopingDutyTakesTheNodeOutOfTheLine(t *testing.T) {
	zk := zktest.Start(t)
	haID := nodetest.GroupID(t)
	duty := func(hb string) string {
		return `[ "$HANODE_NAME" = a ] && exit 3; ` + nodetest.HeartbeatCmd(hb)
	}
	env := func(name string) map[string]string {
		e := nodetest.HAEnv(zk.Addr, haID, name)
		e["ACTIVE_MAX_RESTARTS"] = "2"
		e["HEALTH_INTERVAL"] = "1s"
		e["HEALTH_RECOVERIES"] = "3"
		return e
	}
	a := nodetest.Start(t, nodetest.Options{Name: "a", Env: env("a"), Heartbeat: true, DutyCmd: duty})
	waitState(t, a, 10*time.Second, "standby", "waiting") // a joins first: first-come makes it the leader
	b := nodetest.Start(t, nodetest.Options{Name: "b", Env: env("b"), Heartbeat: true, DutyCmd: duty})
	chk := nodetest.NewChecker(t, a, b)

	st, err := a.WaitStatus(electionTimeout+10*time.Second, func(st ping.Status) bool { return st.State == "unhealthy" })
	require.NoError(t, err)
	out := time.Now()
	require.NotNil(t, st.Health)
	assert.False(t, st.Health.Command, "no HEALTH_CMD: only lost duties count")
	assert.Equal(t, "unhealthy", st.Health.State)
	assert.True(t, strings.HasPrefix(st.Health.Reason, "duty lost: "), st.Health.Reason)
	assert.Equal(t, "health check failing: "+st.Health.Reason, st.Reason)
	assert.Equal(t, "b", chk.Node(chk.WaitSingleLeader(10*time.Second)).Name())

	st, err = a.WaitStatus(10*time.Second, func(st ping.Status) bool { return st.State == "standby" })
	require.NoError(t, err)
	quiet := time.Since(out)
	t.Logf("a out of the line for about %v (HEALTH_RECOVERIES × HEALTH_INTERVAL = 3s)", quiet.Round(100*time.Millisecond))
	assert.GreaterOrEqual(t, quiet, 2*time.Second)
	assert.Equal(t, "healthy", st.Health.State)
	assert.Equal(t, "b", chk.WaitSingleLeader(5*time.Second), "the healthy leader keeps leading")
	chk.Assert(t)
}
