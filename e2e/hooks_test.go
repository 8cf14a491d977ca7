package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/zktest"
	"github.com/hanode/hanode/ping"
)

// markPrefix makes a command write "<unix ns> <what> start" to
// DIR/<HANODE_NAME>.marks when it starts and "<unix ns> <what> stop" when
// SIGTERM ends it. Both commands of a node write with date(1), so the
// marks of one node come from one clock; a mark is written while its
// command surely runs (after its start, before its exit). The stop reads
// the clock until it gets a reading: the stop's SIGTERM goes to the group
// and then to each process of the jail, which can catch the trap's own
// date(1).
func markPrefix(dir, what string) string {
	f := nodetest.ShellQuote(dir) + `/"$HANODE_NAME".marks`
	return `echo "$(date +%s%N) ` + what + ` start" >> ` + f + `
trap 't=; while [ -z "$t" ]; do t=$(date +%s%N); done; echo "$t ` + what + ` stop" >> ` + f + `; exit 0' TERM
`
}

// TestHooksSeeEveryTransitionInOrderAcrossFailovers: three real nodes,
// each with a NOTIFY_CMD appending what it is told to a file of its own, a
// STANDBY_CMD and an ACTIVE_CMD that mark their starts and stops; ten
// graceful failovers (SIGTERM to the leader, which is then restarted), then
// every node stopped. On every node the hook ran once for every transition
// its election reported ("state change" in its log, the same stream its
// Subscribe feed carries), in the same order, with nothing dropped; each
// process numbered its hooks 1, 2, ...; and STANDBY_CMD never ran while
// ACTIVE_CMD did.
func TestHooksSeeEveryTransitionInOrderAcrossFailovers(t *testing.T) {
	const rounds = 10
	zk := zktest.Start(t)
	dir := t.TempDir()
	haID := nodetest.GroupID(t)
	notify := `echo "$PPID $HANODE_SEQ $HANODE_FROM $HANODE_TO $HANODE_TERM $HANODE_DROPPED $HANODE_LEADER" >> ` +
		nodetest.ShellQuote(dir) + `/"$HANODE_NAME".hooks`
	standby := markPrefix(dir, "standby") + `while :; do sleep 0.02; done`
	var nodes []*nodetest.Node
	for _, name := range []string{"a", "b", "c"} {
		env := nodetest.HAEnv(zk.Addr, haID, name)
		env["NOTIFY_CMD"] = notify
		env["NOTIFY_TIMEOUT"] = "10s"
		env["STANDBY_CMD"] = standby
		env["STANDBY_STOP_TIMEOUT"] = "2s"
		nodes = append(nodes, nodetest.Start(t, nodetest.Options{Name: name, Env: env, Heartbeat: true,
			DutyCmd: func(hb string) string { return markPrefix(dir, "active") + nodetest.HeartbeatCmd(hb) }}))
	}
	chk := nodetest.NewChecker(t, nodes...)
	leader := chk.Node(chk.WaitSingleLeader(electionTimeout))

	for round := 1; round <= rounds; round++ {
		next, _ := chk.WaitTakeover(leader.Term(), leader, gracefulBound+2*time.Second)
		if code := leader.WaitExit(exitBound); code != 0 {
			t.Fatalf("round %d: %s exited %d after SIGTERM\n%s", round, leader, code, leader.Logs())
		}
		leader.Restart()
		waitState(t, leader, 10*time.Second, "standby")
		if got := chk.WaitSingleLeader(5 * time.Second); got != next.Name() {
			t.Fatalf("round %d: leader is %s after %s restarted, want %s", round, got, leader, next)
		}
		leader = next
	}
	chk.Assert(t)
	for _, n := range nodes { // the last runs' hooks, down to "stopped"
		n.Term()
	}
	for _, n := range nodes {
		require.Equal(t, 0, n.WaitExit(exitBound), "%s exited", n)
	}

	actives := 0
	for _, n := range nodes {
		want := stateChanges(t, n)
		got := hookRuns(t, filepath.Join(dir, n.Name()+".hooks"))
		assert.Equal(t, want, got.transitions, "%s: the hooks run, in order, against the transitions logged", n)
		assert.Equal(t, n.Runs(), got.processes, "%s: one numbered series of hooks per process", n)
		assert.Zero(t, got.dropped, "%s: no transition dropped", n)
		for _, tr := range want {
			if strings.HasSuffix(tr, " active") {
				actives++
			}
		}
		t.Logf("%s: %d transitions over %d runs", n, len(want), n.Runs())
		assertNeverTogether(t, n.Name(), readMarks(t, filepath.Join(dir, n.Name()+".marks")))
	}
	assert.GreaterOrEqual(t, actives, rounds+1, "a takeover per round, and the first leader")
}

// TestStandaloneHookSeesActiveThenStopped: a standalone node, always
// active, runs NOTIFY_CMD for its one transition to active, shows the run
// in /v2/status, and for "stopped" as it shuts down.
func TestStandaloneHookSeesActiveThenStopped(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "hooks")
	n := nodetest.Start(t, nodetest.Options{Env: map[string]string{"NAME": "solo", "ROLE": "primary",
		"NOTIFY_CMD": `echo "$HANODE_SEQ $HANODE_FROM $HANODE_TO $HANODE_TERM $HANODE_LEADER" >> ` + nodetest.ShellQuote(file)}})
	st, err := n.WaitStatus(10*time.Second, func(st ping.Status) bool { return st.Hook != nil && st.Hook.Exit != "" })
	require.NoError(t, err)
	assert.Equal(t, ping.StatusHook{From: "starting", To: "active", Exit: "exit status 0", OK: true,
		At: st.Hook.At, Took: st.Hook.Took}, *st.Hook)
	assert.Nil(t, st.Standby)
	n.Term()
	require.Equal(t, 0, n.WaitExit(exitBound))
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, "1 starting active 0 solo\n2 active stopped 0 \n", string(b))
}

// stateChanges is every "state change" a node logged, over all its runs,
// as "term from to" ("from to" with the term first, as hookRuns renders).
func stateChanges(t *testing.T, n *nodetest.Node) []string {
	t.Helper()
	var out []string
	for _, e := range nodetest.ParseLog(n.AllLogs()) {
		if e.Msg == "state change" {
			out = append(out, fmt.Sprintf("%d %s %s", e.Term, e.From, e.To))
		}
	}
	require.NotEmpty(t, out, "%s logged no state change", n)
	return out
}

type hookLog struct {
	transitions []string // "term from to", in file order
	processes   int      // series of HANODE_SEQ from 1
	dropped     int
}

// hookRuns reads a NOTIFY_CMD file: each process's lines must carry its
// pid and number its hooks 1, 2, ... without a gap.
func hookRuns(t *testing.T, file string) hookLog {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	var h hookLog
	pid, seq := "", 0
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		f := strings.Fields(line)
		require.GreaterOrEqual(t, len(f), 6, "hook line %q", line)
		if f[0] != pid {
			pid, seq = f[0], 0
			h.processes++
		}
		seq++
		assert.Equal(t, strconv.Itoa(seq), f[1], "hook line %q: HANODE_SEQ in process %s", line, pid)
		d, err := strconv.Atoi(f[5])
		require.NoError(t, err, "hook line %q", line)
		h.dropped += d
		h.transitions = append(h.transitions, fmt.Sprintf("%s %s %s", f[4], f[2], f[3]))
	}
	return h
}

type mark struct {
	at   int64
	what string // "standby start", "active stop", ...
}

func readMarks(t *testing.T, file string) []mark {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	var out []mark
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		f := strings.Fields(line)
		require.Len(t, f, 3, "mark %q", line)
		at, err := strconv.ParseInt(f[0], 10, 64)
		require.NoError(t, err, "mark %q", line)
		out = append(out, mark{at: at, what: f[1] + " " + f[2]})
	}
	return out
}

// assertNeverTogether checks one node's marks: every start of STANDBY_CMD
// or ACTIVE_CMD comes after the other's last stop. A start without a stop
// since leaves the command counted as running, so a SIGKILLed command
// (which writes no stop) fails the check rather than hiding an overlap.
func assertNeverTogether(t *testing.T, node string, marks []mark) {
	t.Helper()
	require.NotEmpty(t, marks, "%s: no marks", node)
	running := map[string]int64{} // start time of a running command
	starts := map[string]int{}
	for _, m := range marks {
		who, ev, _ := strings.Cut(m.what, " ")
		other := map[string]string{"standby": "active", "active": "standby"}[who]
		switch ev {
		case "start":
			if since, ok := running[other]; ok {
				t.Errorf("%s: %s started at %d while %s ran (since %d)", node, who, m.at, other, since)
			}
			running[who] = m.at
			starts[who]++
		case "stop":
			delete(running, who)
		}
	}
	t.Logf("%s: %d STANDBY_CMD and %d ACTIVE_CMD runs, never together", node, starts["standby"], starts["active"])
}
