package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// The duty guard (`hanode duty-guard`, a child of the leader's hanode) and
// signals, seen from outside: ping answers, /v2/status, heartbeats and
// /proc.

// guardRestartBound is how long a leader's duty may be missing after its
// guard was killed: the dead guard's session killed, a new guard started,
// the duty started and its first line written. The guard must report the
// duty within 1 s (roles.DefaultGuardStartTimeout); the rest is slack for a
// loaded machine.
const guardRestartBound = 2 * time.Second

// beatLoop is the heartbeat duty of nodetest with a sixth field: $$, the
// duty shell's pid, which is the duty's process group (in a subshell too).
// Lines of two duty runs of one node and term are told apart by it.
func beatLoop(file string) string {
	return `while :; do echo "$(date +%s%N) $HANODE_NAME $HANODE_TERM $HANODE_ROLE $HANODE_HA_ID $$" >> ` +
		nodetest.ShellQuote(file) + `; sleep 0.05; done`
}

// execDuty replaces the duty's shell with the beating shell: the duty's
// first process is the one that beats.
func execDuty(file string) string { return "exec /bin/sh -c " + nodetest.ShellQuote(beatLoop(file)) }

// loopDuty is not an exec: the duty's shell waits while a subshell beats.
// The subshell outlives the shell's parent-death signal; only killing the
// whole group ends it.
func loopDuty(file string) string { return beatLoop(file) + " & wait" }

// groupBeat is one heartbeat line with the duty's process group.
type groupBeat struct {
	at   time.Time
	name string
	term int64
	pgid int
}

// groupBeats reads a heartbeat file written by beatLoop.
func groupBeats(t *testing.T, n *nodetest.Node) []groupBeat {
	t.Helper()
	f, err := os.Open(n.HeartbeatFile())
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []groupBeat
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) != 6 {
			continue // a line cut short by a kill
		}
		ns, err1 := strconv.ParseInt(fl[0], 10, 64)
		term, err2 := strconv.ParseInt(fl[2], 10, 64)
		pgid, err3 := strconv.Atoi(fl[5])
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		out = append(out, groupBeat{at: time.Unix(0, ns), name: fl[1], term: term, pgid: pgid})
	}
	return out
}

// groupSpan is the first and last beat of one duty run.
type groupSpan struct {
	pgid        int
	term        int64
	first, last time.Time
	lines       int
}

// groupSpans groups a node's beats by process group, ordered by first beat.
func groupSpans(beats []groupBeat) []groupSpan {
	idx := map[int]int{}
	var out []groupSpan
	for _, b := range beats {
		i, ok := idx[b.pgid]
		if !ok {
			idx[b.pgid] = len(out)
			out = append(out, groupSpan{pgid: b.pgid, term: b.term, first: b.at, last: b.at})
			i = len(out) - 1
		}
		s := &out[i]
		s.first, s.last = earliest(s.first, b.at), latest(s.last, b.at)
		s.lines++
	}
	slices.SortFunc(out, func(a, b groupSpan) int { return a.first.Compare(b.first) })
	return out
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// beatingGroup waits until n's duty beats for term, after since, from a
// process group other than not, and returns that group.
func beatingGroup(t *testing.T, n *nodetest.Node, term int64, since time.Time, not int, timeout time.Duration) int {
	t.Helper()
	pgid := 0
	testwait.For(t, timeout, fmt.Sprintf("%s's duty to beat for term %d from a group other than %d", n, term, not), func() bool {
		for _, b := range groupBeats(t, n) {
			if b.at.After(since) && b.term == term && b.name == n.Name() && b.pgid != not {
				pgid = b.pgid
				return true
			}
		}
		return false
	})
	return pgid
}

// procInfo identifies a process across pid reuse.
type procInfo struct {
	pid, ppid, pgid int
	start           string // start time in clock ticks since boot
	state           byte
}

func readProc(pid int) (procInfo, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procInfo{}, false
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return procInfo{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	pgid, _ := strconv.Atoi(f[2])
	return procInfo{pid: pid, ppid: ppid, pgid: pgid, start: f[19], state: f[0][0]}, true
}

// alive reports whether the very process p (not a later one with its pid)
// still runs.
func (p procInfo) alive() bool {
	now, ok := readProc(p.pid)
	return ok && now.start == p.start && now.state != 'Z' && now.state != 'X'
}

// guardOf waits until exactly one live duty guard runs under n's hanode (a
// child whose argv holds "duty-guard") and returns it.
func guardOf(t *testing.T, n *nodetest.Node, timeout time.Duration) procInfo {
	t.Helper()
	var guards []procInfo
	err := testwait.Poll(timeout, 5*time.Millisecond, func() bool {
		guards = guards[:0]
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			p, ok := readProc(pid)
			if !ok || p.ppid != n.PID() || !p.alive() {
				continue
			}
			argv, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err == nil && slices.Contains(strings.Split(string(argv), "\x00"), "duty-guard") {
				guards = append(guards, p)
			}
		}
		return len(guards) == 1
	})
	if err != nil {
		requireRunning(t, n)
		t.Fatalf("%s: want one duty guard under hanode pid %d, found %+v", n, n.PID(), guards)
	}
	return guards[0]
}

// requireRunning fails the test if n's hanode has exited, with its status.
func requireRunning(t *testing.T, n *nodetest.Node) {
	t.Helper()
	if !n.Running() {
		code, _ := n.Wait(time.Second)
		t.Fatalf("%s: hanode exited (status %d, -1: killed by a signal)", n, code)
	}
}

// dutyProcs lists n's live processes outside hanode and its guard: the duty.
func dutyProcs(n *nodetest.Node, guard procInfo) []procInfo {
	var out []procInfo
	for _, pid := range n.DutyPIDs() {
		if p, ok := readProc(pid); ok && pid != guard.pid && p.alive() {
			out = append(out, p)
		}
	}
	return out
}

// groupsOf is the set of process groups of procs.
func groupsOf(procs []procInfo) []int {
	var out []int
	for _, p := range procs {
		if !slices.Contains(out, p.pgid) {
			out = append(out, p.pgid)
		}
	}
	slices.Sort(out)
	return out
}

// startBeatingGroup starts three members whose duties write beatLoop lines.
func startBeatingGroup(t *testing.T, zkAddr string, duty func(string) string, stderrPipe bool) []*nodetest.Node {
	t.Helper()
	haID := nodetest.GroupID(t)
	var nodes []*nodetest.Node
	for _, name := range []string{"a", "b", "c"} {
		nodes = append(nodes, nodetest.Start(t, nodetest.Options{
			Name: name, Env: nodetest.HAEnv(zkAddr, haID, name),
			Heartbeat: true, DutyCmd: duty, StderrPipe: stderrPipe,
		}))
	}
	return nodes
}

// killGuard SIGKILLs the leader's duty guard and checks what follows: every
// process of the old duty is gone, a new guard under the same hanode runs
// the duty again in the same term as the only duty group, the old run's
// last beat comes before the new run's first, and the duty was missing for
// less than guardRestartBound. It returns the new duty's process group.
func killGuard(t *testing.T, leader *nodetest.Node, term int64, oldPGID int) int {
	t.Helper()
	guard := guardOf(t, leader, 5*time.Second)
	old := dutyProcs(leader, guard)
	if groups := groupsOf(old); len(groups) != 1 || groups[0] != oldPGID {
		t.Fatalf("%s: duty groups %v before the kill, want only %d", leader, groups, oldPGID)
	}
	fault := time.Now()
	if err := syscall.Kill(guard.pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill duty guard %d: %v", guard.pid, err)
	}

	if err := testwait.Poll(5*time.Second, 5*time.Millisecond, func() bool { return !slices.ContainsFunc(old, procInfo.alive) }); err != nil {
		requireRunning(t, leader)
		t.Fatalf("%s: old duty processes still run 5s after the guard was killed", leader)
	}
	newPGID := beatingGroup(t, leader, term, fault, oldPGID, 10*time.Second)
	newGuard := guardOf(t, leader, 5*time.Second)
	if newGuard.pid == guard.pid {
		t.Fatalf("%s: the killed guard %d still runs", leader, guard.pid)
	}
	if groups := groupsOf(dutyProcs(leader, newGuard)); len(groups) != 1 || groups[0] != newPGID {
		t.Errorf("%s: duty groups %v after the guard was replaced, want only %d", leader, groups, newPGID)
	}

	// Let the new duty beat a while, then compare the two runs.
	testwait.For(t, 5*time.Second, leader.Name()+"'s new duty to beat ten times", func() bool {
		for _, s := range groupSpans(groupBeats(t, leader)) {
			if s.pgid == newPGID && s.lines >= 10 {
				return true
			}
		}
		return false
	})
	var before, after *groupSpan
	spans := groupSpans(groupBeats(t, leader))
	for i := range spans {
		switch spans[i].pgid {
		case oldPGID:
			before = &spans[i]
		case newPGID:
			after = &spans[i]
		}
	}
	if before == nil || after == nil {
		t.Fatalf("%s: no beats from group %d or %d: %+v", leader, oldPGID, newPGID, spans)
	}
	if !after.first.After(before.last) {
		t.Errorf("%s: two duties ran at once: group %d beat until %s, group %d from %s",
			leader, oldPGID, before.last.Format("15:04:05.000"), newPGID, after.first.Format("15:04:05.000"))
	}
	if after.term != term {
		t.Errorf("%s: the new duty runs in term %d, want %d", leader, after.term, term)
	}
	gap := after.first.Sub(before.last)
	if gap > guardRestartBound {
		t.Errorf("%s: no duty for %v after its guard was killed, want < %v", leader, gap, guardRestartBound)
	}
	t.Logf("%s: guard %d killed; old duty's last beat %v after the kill, new guard %d's duty beat %v later",
		leader, guard.pid, before.last.Sub(fault).Round(time.Millisecond), newGuard.pid, gap.Round(time.Millisecond))
	return newPGID
}

// requireLeading checks that n is still the only leader, in term, and that
// no other node answered ok since since.
func requireLeading(t *testing.T, chk *nodetest.Checker, n *nodetest.Node, term int64, since time.Time) {
	t.Helper()
	if got := chk.WaitSingleLeader(5 * time.Second); got != n.Name() {
		requireRunning(t, n)
		t.Fatalf("leader is %s, want %s to keep leading", got, n)
	}
	if got := activeTerm(t, n); got != term {
		t.Errorf("%s leads in term %d, want %d", n, got, term)
	}
	if other, at, ok := chk.FirstOKAfter(since, n); ok {
		t.Errorf("%s answered ok %v after the fault", other, at.Sub(since))
	}
}

// TestGuardKilledLeaderKeepsLeadingWithOneDuty: SIGKILL to the leader's
// duty guard, three times, with a duty that is an exec and with one whose
// shell waits for a beating subshell (which used to outlive its dead guard
// and keep beating while no new duty was started). Each time every process
// of the old duty is gone before the new one starts, a new guard under the
// same hanode runs the duty again in the same term within
// guardRestartBound, and it is the only duty: the same node leads in the
// same term and no other node answers ok.
func TestGuardKilledLeaderKeepsLeadingWithOneDuty(t *testing.T) {
	zk := zktest.Start(t)
	for _, tc := range []struct {
		name string
		duty func(string) string
	}{
		{"exec", execDuty},
		{"loop", loopDuty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := startBeatingGroup(t, zk.Addr, tc.duty, false)
			chk := nodetest.NewChecker(t, nodes...)
			leader := chk.Node(chk.WaitSingleLeader(electionTimeout))
			term := activeTerm(t, leader)
			start := time.Now()
			pgid := beatingGroup(t, leader, term, time.Time{}, 0, 5*time.Second)
			for range 3 {
				pgid = killGuard(t, leader, term, pgid)
			}
			requireLeading(t, chk, leader, term, start)
			for _, n := range nodes {
				if n != leader && len(groupBeats(t, n)) > 0 {
					t.Errorf("standby %s ran the duty", n)
				}
			}
			chk.Assert(t)
		})
	}
}

// TestSignalHUPLeavesHanodeAndItsGuardRunning: SIGHUP (a terminal's hangup,
// or systemctl reload) to the leader's hanode, to its duty guard and to a
// standby. hanode logs that it reloads its configuration, the guard that it
// ignored the signal, and each goes on: the same node leads in the same
// term, its duty keeps beating from the same process group, and the
// standby stays a standby.
func TestSignalHUPLeavesHanodeAndItsGuardRunning(t *testing.T) {
	zk := zktest.Start(t)
	nodes := startBeatingGroup(t, zk.Addr, loopDuty, false)
	chk := nodetest.NewChecker(t, nodes...)
	leader := chk.Node(chk.WaitSingleLeader(electionTimeout))
	term := activeTerm(t, leader)
	pgid := beatingGroup(t, leader, term, time.Time{}, 0, 5*time.Second)
	guard := guardOf(t, leader, 5*time.Second)
	standby := nodes[0]
	if standby == leader {
		standby = nodes[1]
	}

	fault := leader.Signal(syscall.SIGHUP)
	if err := syscall.Kill(guard.pid, syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP to the duty guard: %v", err)
	}
	standby.Signal(syscall.SIGHUP)
	// hanode's own lines carry no "logger" field and say it reloads; its
	// guard's say "guard" and that it ignored the signal.
	waitIgnored := func(n *nodetest.Node, logger any, what string) {
		t.Helper()
		msg := "signal received; reloading the configuration"
		if logger != nil {
			msg = "signal ignored"
		}
		testwait.For(t, 5*time.Second, what+" to log the SIGHUP", func() bool {
			if !n.Running() {
				return true // reported below
			}
			for _, e := range n.LogEntries() {
				if e.Msg == msg && e.Fields["signal"] == "SIGHUP" && e.Fields["logger"] == logger {
					return true
				}
			}
			return false
		})
		requireRunning(t, n)
	}
	waitIgnored(leader, nil, "the leader's hanode")
	waitIgnored(leader, "guard", "the leader's duty guard")
	waitIgnored(standby, nil, "the standby")

	// The duty goes on from the same group, under the same guard.
	testwait.For(t, 5*time.Second, "beats after the SIGHUP", func() bool {
		n := 0
		for _, b := range groupBeats(t, leader) {
			if b.at.After(fault) {
				if b.pgid != pgid {
					return false
				}
				n++
			}
		}
		return n >= 10
	})
	if !guard.alive() {
		t.Errorf("%s's duty guard %d did not survive SIGHUP", leader, guard.pid)
	}
	if groups := groupsOf(dutyProcs(leader, guard)); len(groups) != 1 || groups[0] != pgid {
		t.Errorf("%s: duty groups %v after SIGHUP, want only %d", leader, groups, pgid)
	}
	for _, n := range nodes {
		if !n.Running() {
			t.Errorf("%s exited after SIGHUP", n)
		}
	}
	requireLeading(t, chk, leader, term, fault)
	if code, body, err := standby.PingSE(); err != nil || code != http.StatusServiceUnavailable || body != "standby" {
		t.Errorf("standby %s answers %d %q %v after SIGHUP, want 503 standby", standby, code, body, err)
	}
	chk.Assert(t)
}

// TestSignalClosedStderrKeepsTheLeaderServing: the leader's stderr is a
// pipe whose reader goes away. hanode, its duty guard and a replacement
// guard all write their logs into the broken pipe (a SIGHUP, then a killed
// guard make them log), and go on: the leader keeps answering ok in the
// same term with one duty.
func TestSignalClosedStderrKeepsTheLeaderServing(t *testing.T) {
	zk := zktest.Start(t)
	nodes := startBeatingGroup(t, zk.Addr, loopDuty, true)
	chk := nodetest.NewChecker(t, nodes...)
	leader := chk.Node(chk.WaitSingleLeader(electionTimeout))
	term := activeTerm(t, leader)
	pgid := beatingGroup(t, leader, term, time.Time{}, 0, 5*time.Second)

	fault := leader.CloseStderr()
	leader.Signal(syscall.SIGHUP) // logs into the broken pipe
	requireLeading(t, chk, leader, term, fault)
	pgid = killGuard(t, leader, term, pgid)

	// Still serving, a second after the last log writes.
	since := time.Now()
	testwait.For(t, 10*time.Second, leader.Name()+" to keep answering ok for a second", func() bool {
		r, ok := chk.Latest(leader)
		return ok && r.Result == nodetest.ResultOK && r.LastSent.Sub(since) > time.Second
	})
	if !leader.Running() {
		t.Fatalf("%s exited after its stderr closed", leader)
	}
	requireLeading(t, chk, leader, term, fault)
	guard := guardOf(t, leader, 5*time.Second)
	if groups := groupsOf(dutyProcs(leader, guard)); len(groups) != 1 || groups[0] != pgid {
		t.Errorf("%s: duty groups %v, want only %d", leader, groups, pgid)
	}
	chk.Assert(t)
}

// TestGuardResumedFromSIGSTOPReadsItsExtensionsFirst: the leader's duty
// guard is frozen (SIGSTOP) for longer than the lease while hanode goes on
// extending it; the extensions queue in the guard's pipe. On SIGCONT the
// guard's timer for the old deadline has fired too: it must read the queued
// extensions before acting on it, so the duty is neither stopped nor
// restarted (the same process group beats on) and the same node leads in
// the same term.
func TestGuardResumedFromSIGSTOPReadsItsExtensionsFirst(t *testing.T) {
	zk := zktest.Start(t)
	nodes := startBeatingGroup(t, zk.Addr, loopDuty, false)
	chk := nodetest.NewChecker(t, nodes...)
	leader := chk.Node(chk.WaitSingleLeader(electionTimeout))
	term := activeTerm(t, leader)
	start := time.Now()
	pgid := beatingGroup(t, leader, term, time.Time{}, 0, 5*time.Second)
	guard := guardOf(t, leader, 5*time.Second)

	if err := syscall.Kill(guard.pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	// The fault is the freeze itself: held for the whole lease and more, so
	// that the guard's own deadline passes while it cannot run.
	hold := nodetest.DefaultSessionTimeout + time.Second
	_ = testwait.Poll(hold+time.Second, 50*time.Millisecond, func() bool { return time.Since(frozen) >= hold })
	if err := syscall.Kill(guard.pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	// The same group beats after the resume: the duty was not restarted.
	if got := beatingGroup(t, leader, term, resumed, 0, 5*time.Second); got != pgid {
		t.Errorf("%s's duty beats from group %d after SIGCONT, want %d: it was restarted", leader, got, pgid)
	}
	requireLeading(t, chk, leader, term, start)
	if leader.HasLog("lease expired without an extension from the coordinator; stopping the duty") {
		t.Errorf("%s's guard acted on its stale deadline after SIGCONT instead of reading the queued extensions", leader)
	}
	if got := guardOf(t, leader, 5*time.Second); got.pid != guard.pid {
		t.Errorf("%s's guard was replaced (%d, was %d): the frozen guard was taken for dead", leader, got.pid, guard.pid)
	}
	chk.Assert(t)
}
