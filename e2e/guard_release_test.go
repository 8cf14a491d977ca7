package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// The duty guard's release (issue 17), seen from outside: when the
// leader's `hanode run` dies and its machine lives, its guard stops the
// duty, checks the kernel's proof that hanode exited and writes the release
// with the ticket of hanode's last extension, and the next member claims at
// once; when the guard dies too, or the ticket is stale, the group waits
// the lease out (W = 4.08 s at ZK_SESSION_TIMEOUT=4s).

// Bounds that tell the two ways a crash ends: a released lease is claimed
// within a few ZooKeeper round trips, far below fastTakeover; a lease waited
// out takes W − (time since the last extension) > W − R = 3.15 s, far above
// waitedOut. Nothing may fall between.
const (
	fastTakeover = time.Second
	waitedOut    = 2 * time.Second
	// extendEvery is R, the holder's extension period at
	// ZK_SESSION_TIMEOUT=4s (ha/internal/core.ExtendEvery).
	extendEvery = 930 * time.Millisecond
	// crashBound bounds any takeover after a crash: W plus slack.
	crashBound = nodetest.DefaultSessionTimeout + 6*time.Second
	// verdictBound bounds the guard's release: its dial and one multi
	// (cmd/hanode releaseTimeout) and the stop before it.
	verdictBound = 10 * time.Second
)

// What the guard logs (cmd/hanode/guard.go) once its coordinator exited.
const (
	msgGone     = "coordinator gone; stopping the duty"
	msgReleased = "the coordinator exited; its duty stopped; lease released for it"
	msgStale    = "the coordinator exited; its lease was not released (it extended or another member claimed since): the group waits it out"
	msgFailed   = "the coordinator exited; releasing its lease failed: the group waits it out"
	// msgLeaseOver: the guard does not even send a release once the lease
	// it holds is over (a late one could rest on a rolled-back history).
	msgLeaseOver = "not releasing the lease for the gone coordinator: its lease is over"
)

// midLease is how long after an extension landed a fault is sent when the
// test wants it far from both extensions around it.
const midLease = 300 * time.Millisecond

// leaderRecord is the part of the group's leader record these tests read.
type leaderRecord struct {
	Term   int64  `json:"term"`
	Holder string `json:"holder"`
	Name   string `json:"name"`
	State  string `json:"state"`
	Reason string `json:"reason"`
}

// groupZK reads a group's znodes with a client of the test's own.
type groupZK struct {
	conn *zk.Conn
	haID string
}

func newGroupZK(t *testing.T, addr, haID string) groupZK {
	return groupZK{conn: zktest.Connect(t, addr, 10*time.Second), haID: haID}
}

func (g groupZK) leaderPath() string { return "/hanode/groups/" + g.haID + "/leader" }

func (g groupZK) memberPath(node string) string {
	return "/hanode/groups/" + g.haID + "/members/" + node
}

// record reads the leader record.
func (g groupZK) record(t *testing.T) leaderRecord {
	t.Helper()
	data, _, err := g.conn.Get(g.leaderPath())
	if err != nil {
		t.Fatalf("read %s: %v", g.leaderPath(), err)
	}
	var r leaderRecord
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("decode %s: %v: %q", g.leaderPath(), err, data)
	}
	return r
}

// nextExtension waits until the holder named by the leader record (which
// must be leader) writes its member node again, as every extension does,
// and returns the instant the test saw the change. ZooKeeper sends the
// watch event after its answer to the writer, so the holder has its
// acknowledgement at about that instant: the ticket for it reaches its guard
// just after.
func (g groupZK) nextExtension(t *testing.T, leader *nodetest.Node) time.Time {
	t.Helper()
	rec := g.record(t)
	if rec.Name != leader.Name() || rec.State != "active" {
		t.Fatalf("leader record names %s (%s), want %s active", rec.Name, rec.State, leader)
	}
	_, _, ch, err := g.conn.GetW(g.memberPath(rec.Holder))
	if err != nil {
		t.Fatalf("watch %s's member node: %v", leader, err)
	}
	timer := time.NewTimer(3 * extendEvery)
	defer timer.Stop()
	select {
	case ev := <-ch:
		if ev.Type != zk.EventNodeDataChanged {
			t.Fatalf("%s's member node: %v, want an extension", leader, ev.Type)
		}
		return time.Now()
	case <-timer.C:
		t.Fatalf("%s did not extend its lease within %v", leader, 3*extendEvery)
		return time.Time{}
	}
}

// afterExtension waits for the leader's next extension, then d more, and
// sends the fault. Waiting is the fault's chosen phase, not a
// synchronization.
func (g groupZK) afterExtension(t *testing.T, leader *nodetest.Node, d time.Duration, fault func() time.Time) time.Time {
	t.Helper()
	waitUntil(g.nextExtension(t, leader).Add(d))
	return fault()
}

// guardSaid reports which of msgs n's guard logged in the current run's
// log (the guard writes to hanode's stderr), "" none.
func guardSaid(n *nodetest.Node, msgs ...string) string {
	for _, e := range n.LogEntries() {
		if e.Fields["logger"] != "guard" {
			continue
		}
		for _, m := range msgs {
			if e.Msg == m {
				return m
			}
		}
	}
	return ""
}

// guardVerdict waits until n's guard logged what became of the lease of
// its dead coordinator and returns that message.
func guardVerdict(t *testing.T, n *nodetest.Node) string {
	t.Helper()
	var said string
	testwait.For(t, verdictBound, n.Name()+"'s guard to release the lease or give up", func() bool {
		said = guardSaid(n, msgReleased, msgStale, msgFailed, msgLeaseOver)
		return said != ""
	})
	return said
}

// lastHistory waits until n's group history, read with `hanode history`
// from n's env file, ends with an entry for term, and returns it.
func lastHistory(t *testing.T, n *nodetest.Node, term int64) ha.HistoryEntry {
	t.Helper()
	var last ha.HistoryEntry
	testwait.For(t, 10*time.Second, fmt.Sprintf("the history to record term %d", term), func() bool {
		out, _, code := cli(t, "history", "--json", "--env-file", n.EnvFilePath())
		var doc struct {
			History []ha.HistoryEntry `json:"history"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || len(doc.History) == 0 {
			return false
		}
		last = doc.History[len(doc.History)-1]
		return last.Term == term
	})
	return last
}

// rejoin restarts a crashed node and checks that it stands by while next
// keeps leading.
func rejoin(t *testing.T, chk *nodetest.Checker, old, next *nodetest.Node) {
	t.Helper()
	old.Restart()
	nodetest.WaitStandby(t, old, nodetest.DefaultSessionTimeout+10*time.Second, "")
	if got := chk.WaitSingleLeader(5 * time.Second); got != next.Name() {
		t.Fatalf("%s leads after %s rejoined, want %s", got, old, next)
	}
}

// dutyGap is the time from old's last heartbeat to next's first one in
// term: how long no duty ran.
func dutyGap(chk *nodetest.Checker, old, next *nodetest.Node, term int64) (time.Duration, bool) {
	var last, first time.Time
	for _, s := range chk.DutySpans() {
		switch {
		case s.Name == old.Name() && s.Last.After(last):
			last = s.Last
		case s.Name == next.Name() && s.Term == term:
			first = s.First
		}
	}
	return first.Sub(last), !last.IsZero() && !first.IsZero()
}

// TestGuardReleasesTheLeaseOfAKilledLeader: SIGKILL of the leader's hanode
// alone, mid-lease. Its guard stops the duty, proves the exit and releases
// the lease, and the next member answers ok well below the lease (not W
// later); the guard says so in the old node's log, the old duty's last
// heartbeat comes before the new duty's first, and the new leader's history
// entry is a crash takeover from the old one. The killed node, restarted,
// stands by.
func TestGuardReleasesTheLeaseOfAKilledLeader(t *testing.T) {
	zkSrv := zktest.Start(t)
	nodes := nodetest.StartGroup(t, nodetest.GroupOptions{ZK: zkSrv.Addr, Heartbeat: true})
	chk := nodetest.NewChecker(t, nodes...)
	leader := chk.Node(chk.WaitSingleLeader(electionTimeout))
	oldTerm := activeTerm(t, leader)
	g := newGroupZK(t, zkSrv.Addr, nodetest.GroupID(t))

	fault := g.afterExtension(t, leader, midLease, leader.Kill)
	next, took := chk.WaitTakeover(fault, leader, crashBound)
	t.Logf("%s answered ok %v after SIGKILL of %s's hanode", next, took, leader)
	if took >= fastTakeover {
		t.Errorf("takeover took %v after SIGKILL, want < %v: the guard's release did not land", took, fastTakeover)
	}
	if code := leader.WaitExit(exitBound); code != -1 {
		t.Errorf("%s exited %d after SIGKILL, want -1 (killed)", leader, code)
	}
	if said := guardVerdict(t, leader); said != msgReleased {
		t.Errorf("%s's guard logged %q, want %q\n%s", leader, said, msgReleased, leader.Logs())
	}
	newTerm := activeTerm(t, next)
	if newTerm <= oldTerm {
		t.Errorf("term went from %d to %d, want it to grow", oldTerm, newTerm)
	}
	if h := lastHistory(t, next, newTerm); h.Cause != ha.CauseCrash || h.From != leader.Name() || h.To != next.Name() {
		t.Errorf("history entry of term %d: %+v, want a %q from %s to %s", newTerm, h, ha.CauseCrash, leader, next)
	}
	var gap time.Duration
	testwait.For(t, 5*time.Second, next.Name()+"'s duty to beat in term "+fmt.Sprint(newTerm), func() bool {
		var ok bool
		gap, ok = dutyGap(chk, leader, next, newTerm)
		return ok
	})
	if gap <= 0 {
		t.Errorf("duty gap %v: the old duty's last heartbeat must come before the new one's first", gap)
	} else {
		t.Logf("no duty ran for %v (the old duty's last heartbeat to the new one's first, 50 ms beats)", gap)
	}

	rejoin(t, chk, leader, next)
	chk.Assert(t)
}

// TestGuardReleaseRecordsThatTheHolderExited: the release a guard writes
// for its dead coordinator deletes the holder's member node and leaves the
// leader record released, with a reason starting "exited:". The standbys
// are frozen (SIGSTOP) for the moment between the kill and the read, so the
// released record is there to read before anyone claims over it; once they
// resume, one claims at once and records a crash takeover.
func TestGuardReleaseRecordsThatTheHolderExited(t *testing.T) {
	zkSrv := zktest.Start(t)
	nodes := nodetest.StartGroup(t, nodetest.GroupOptions{ZK: zkSrv.Addr, Heartbeat: true})
	chk := nodetest.NewChecker(t, nodes...)
	leader := chk.Node(chk.WaitSingleLeader(electionTimeout))
	oldTerm := activeTerm(t, leader)
	g := newGroupZK(t, zkSrv.Addr, nodetest.GroupID(t))
	holder := g.record(t).Holder

	var standbys []*nodetest.Node
	for _, n := range nodes {
		if n != leader {
			standbys = append(standbys, n)
		}
	}
	g.afterExtension(t, leader, midLease, func() time.Time {
		for _, n := range standbys {
			n.Stop()
		}
		return leader.Kill()
	})
	said := guardVerdict(t, leader)
	rec := g.record(t)
	gone, _, err := g.conn.Exists(g.memberPath(holder))
	resumed := time.Now()
	for _, n := range standbys {
		n.Cont()
	}
	if said != msgReleased {
		t.Errorf("%s's guard logged %q, want %q\n%s", leader, said, msgReleased, leader.Logs())
	}
	if rec.State != "released" || !strings.HasPrefix(rec.Reason, "exited:") || rec.Name != leader.Name() || rec.Term != oldTerm {
		t.Errorf("leader record after the guard's release: %+v, want %s's term %d released with a reason starting \"exited:\"", rec, leader, oldTerm)
	}
	if err != nil || gone {
		t.Errorf("%s's member node %s: exists %v (%v), want it deleted by the release", leader, holder, gone, err)
	}
	t.Logf("released record: state %q, reason %q", rec.State, rec.Reason)

	next, took := chk.WaitTakeover(resumed, leader, crashBound)
	if took >= fastTakeover {
		t.Errorf("%s took over %v after the standbys resumed, want < %v (rule B over a released record)", next, took, fastTakeover)
	}
	newTerm := activeTerm(t, next)
	if h := lastHistory(t, next, newTerm); h.Cause != ha.CauseCrash || h.From != leader.Name() {
		t.Errorf("history entry of term %d: %+v, want a %q from %s", newTerm, h, ha.CauseCrash, leader)
	}
	rejoin(t, chk, leader, next)
	chk.Assert(t)
}

// TestNoReleaseWhenHanodeAndItsGuardDieTogether: the leader's hanode and
// its guard are killed together (Node.KillGroup: the guard first, so it
// cannot see hanode exit). Nobody releases: the next member claims only
// after waiting out the lease, W − (time since the last extension), and no
// two nodes or duties were ever active at once.
func TestNoReleaseWhenHanodeAndItsGuardDieTogether(t *testing.T) {
	zkSrv := zktest.Start(t)
	nodes := nodetest.StartGroup(t, nodetest.GroupOptions{ZK: zkSrv.Addr, Heartbeat: true})
	chk := nodetest.NewChecker(t, nodes...)
	leader := chk.Node(chk.WaitSingleLeader(electionTimeout))
	g := newGroupZK(t, zkSrv.Addr, nodetest.GroupID(t))

	fault := g.afterExtension(t, leader, midLease, leader.KillGroup)
	next, took := chk.WaitTakeover(fault, leader, crashBound)
	t.Logf("%s answered ok %v after %s's hanode and guard died together", next, took, leader)
	if took <= waitedOut {
		t.Errorf("takeover took %v, want > %v: with the guard dead nobody may release, the lease must be waited out", took, waitedOut)
	}
	if code := leader.WaitExit(exitBound); code != -1 {
		t.Errorf("%s exited %d, want -1 (killed)", leader, code)
	}
	if said := guardSaid(leader, msgGone, msgReleased, msgStale, msgFailed); said != "" {
		t.Errorf("%s's guard, killed with its coordinator, logged %q", leader, said)
	}
	rejoin(t, chk, leader, next)
	chk.Assert(t)
}

// TestGuardReleasesUnderSystemdAfterTheMainProcessDied: what the shipped
// unit's KillMode=control-group does when hanode is killed: systemd reaps
// it, then SIGTERMs every process left in the unit's cgroup (the guard and
// the duty) and waits for them. The guard takes the signal after its
// coordinator's exit as the end of its pipe: it stops the duty and
// releases, and the next member answers ok well below the lease. (Under
// KillMode=mixed, the unit's earlier setting, systemd SIGKILLs the guard at
// once and the lease is waited out: TestNoReleaseWhenHanodeAndItsGuardDieTogether.)
func TestGuardReleasesUnderSystemdAfterTheMainProcessDied(t *testing.T) {
	zkSrv := zktest.Start(t)
	nodes := nodetest.StartGroup(t, nodetest.GroupOptions{ZK: zkSrv.Addr, Heartbeat: true})
	chk := nodetest.NewChecker(t, nodes...)
	leader := chk.Node(chk.WaitSingleLeader(electionTimeout))
	g := newGroupZK(t, zkSrv.Addr, nodetest.GroupID(t))

	fault := g.afterExtension(t, leader, midLease, leader.KillUnderSystemd)
	next, took := chk.WaitTakeover(fault, leader, crashBound)
	t.Logf("%s answered ok %v after %s's hanode was killed and systemd signalled what was left", next, took, leader)
	if took >= fastTakeover {
		t.Errorf("takeover took %v, want < %v: the guard's release did not land", took, fastTakeover)
	}
	if said := guardVerdict(t, leader); said != msgReleased {
		t.Errorf("%s's guard logged %q, want %q\n%s", leader, said, msgReleased, leader.Logs())
	}
	rejoin(t, chk, leader, next)
	chk.Assert(t)
}

// TestSystemctlStopHandsOverUnderControlGroup: `systemctl stop` with the
// shipped KillMode=control-group signals hanode, its guard and the duty at
// once. hanode still hands over as on a SIGTERM of its own (the guard,
// signalled while its coordinator lives, leaves the duty's stop to it), the
// next member answers ok at once, and nothing is logged as an error.
func TestSystemctlStopHandsOverUnderControlGroup(t *testing.T) {
	zkSrv := zktest.Start(t)
	nodes := nodetest.StartGroup(t, nodetest.GroupOptions{ZK: zkSrv.Addr, Heartbeat: true})
	chk := nodetest.NewChecker(t, nodes...)
	leader := chk.Node(chk.WaitSingleLeader(electionTimeout))

	fault := leader.StopUnderSystemd()
	next, took := chk.WaitTakeover(fault, leader, crashBound)
	t.Logf("%s answered ok %v after systemctl stop of %s (every process signalled)", next, took, leader)
	if took >= fastTakeover {
		t.Errorf("takeover took %v after systemctl stop, want < %v: no release", took, fastTakeover)
	}
	if code := leader.WaitExit(exitBound); code != 0 {
		t.Errorf("%s exited %d after systemctl stop, want 0", leader, code)
	}
	for _, e := range leader.LogEntries() {
		if e.Level == "error" {
			t.Errorf("%s logged an error on systemctl stop: %s %v", leader, e.Msg, e.Fields)
		}
	}
	rejoin(t, chk, leader, next)
	chk.Assert(t)
}

// TestGuardReleasesTheLeaseOfAPanickedLeader: a Go panic of the leader's
// hanode (the hidden, test-only --debug-panic-on-sigusr2, signalled
// mid-lease) exits 2, and the guard releases its lease as after a SIGKILL:
// the next member answers ok well below the lease.
func TestGuardReleasesTheLeaseOfAPanickedLeader(t *testing.T) {
	zkSrv := zktest.Start(t)
	haID := nodetest.GroupID(t)
	var nodes []*nodetest.Node
	for _, name := range []string{"a", "b", "c"} {
		nodes = append(nodes, nodetest.Start(t, nodetest.Options{Name: name, Env: nodetest.HAEnv(zkSrv.Addr, haID, name),
			Heartbeat: true, Args: []string{"--debug-panic-on-sigusr2"}}))
	}
	chk := nodetest.NewChecker(t, nodes...)
	leader := chk.Node(chk.WaitSingleLeader(electionTimeout))
	g := newGroupZK(t, zkSrv.Addr, haID)

	fault := g.afterExtension(t, leader, midLease, func() time.Time { return leader.Signal(syscall.SIGUSR2) })
	next, took := chk.WaitTakeover(fault, leader, crashBound)
	t.Logf("%s answered ok %v after %s's hanode panicked", next, took, leader)
	if took >= fastTakeover {
		t.Errorf("takeover took %v after the panic, want < %v: the guard's release did not land", took, fastTakeover)
	}
	if code := leader.WaitExit(exitBound); code != 2 {
		t.Errorf("%s exited %d after the panic, want 2", leader, code)
	}
	mustContain(t, leader.Name()+"'s stderr", leader.Logs(), "panic: test-only panic: --debug-panic-on-sigusr2")
	if said := guardVerdict(t, leader); said != msgReleased {
		t.Errorf("%s's guard logged %q, want %q", leader, said, msgReleased)
	}
	newTerm := activeTerm(t, next)
	if h := lastHistory(t, next, newTerm); h.Cause != ha.CauseCrash || h.From != leader.Name() {
		t.Errorf("history entry of term %d: %+v, want a %q from %s", newTerm, h, ha.CauseCrash, leader)
	}
	rejoin(t, chk, leader, next)
	chk.Assert(t)
}

// TestKillMidExtensionIsReleasedOrWaitedOut: SIGKILL from outside (as the
// OOM killer sends it) at any phase of the leader's extensions. Half the
// rounds kill at a random phase of the extension period; the other half
// within 15 ms of when the next extension is due (R after the last one
// landed), where the extension may be on its way to ZooKeeper, or its
// acknowledgement or the ticket for it on its way to hanode or its guard.
// Every takeover is one of two: fast, after the guard's release; or
// after the lease was waited out, because the ticket the guard held was
// stale (the extension landed after it) and ZooKeeper refused it. Never in
// between, never an overlap, and the guard's log says which it was.
func TestKillMidExtensionIsReleasedOrWaitedOut(t *testing.T) {
	const rounds = 20
	zkSrv := zktest.Start(t)
	nodes := nodetest.StartGroup(t, nodetest.GroupOptions{ZK: zkSrv.Addr, Heartbeat: true})
	chk := nodetest.NewChecker(t, nodes...)
	leader := chk.Node(chk.WaitSingleLeader(electionTimeout))
	g := newGroupZK(t, zkSrv.Addr, nodetest.GroupID(t))

	type outcome struct{ released, waited int }
	var random, edge outcome
	for round := 1; round <= rounds; round++ {
		targeted := round%2 == 0
		var fault time.Time
		if targeted {
			// R ± 15 ms after an extension: around the next one, whose
			// period jitters by about ±10 ms.
			fault = g.afterExtension(t, leader, extendEvery-15*time.Millisecond+rand.N(30*time.Millisecond), leader.Kill)
		} else {
			fault = g.afterExtension(t, leader, rand.N(extendEvery), leader.Kill)
		}
		next, took := chk.WaitTakeover(fault, leader, crashBound)
		said := guardVerdict(t, leader)
		count := &random
		if targeted {
			count = &edge
		}
		switch {
		case took < fastTakeover && said == msgReleased:
			count.released++
		case took > waitedOut && said == msgStale:
			count.waited++
		default:
			t.Errorf("round %d (targeted %v): %s took over %v after SIGKILL of %s and the guard logged %q: want < %v released, or > %v stale",
				round, targeted, next, took, leader, said, fastTakeover, waitedOut)
		}
		t.Logf("round %2d (%s): %s -> %s in %v; guard: %q", round, map[bool]string{false: "random phase", true: "around an extension"}[targeted],
			leader, next, took.Round(100*time.Microsecond), said)
		if code := leader.WaitExit(exitBound); code != -1 {
			t.Errorf("round %d: %s exited %d after SIGKILL, want -1", round, leader, code)
		}
		rejoin(t, chk, leader, next)
		leader = next
	}
	t.Logf("random phase: %d released, %d waited out; around an extension: %d released, %d waited out",
		random.released, random.waited, edge.released, edge.waited)
	chk.Assert(t)
}

// TestStaleTicketOfAnExtensionInFlightIsRefused: hanode is killed while an
// extension it sent is on its way, and the extension lands after the kill.
// ZooKeeper is frozen (docker pause) just before the extension is due, so
// the extension waits in the server's socket; hanode is killed; ZooKeeper
// resumes and applies the extension before the guard's release, which
// needs a new session first. The guard's ticket predates the extension:
// ZooKeeper refuses it, the guard says so, and the group waits the lease
// out, counted from the extension that landed; no overlap.
func TestStaleTicketOfAnExtensionInFlightIsRefused(t *testing.T) {
	zkSrv := zktest.Start(t)
	nodes := nodetest.StartGroup(t, nodetest.GroupOptions{ZK: zkSrv.Addr, Heartbeat: true})
	chk := nodetest.NewChecker(t, nodes...)
	leader := chk.Node(chk.WaitSingleLeader(electionTimeout))
	g := newGroupZK(t, zkSrv.Addr, nodetest.GroupID(t))

	landed := g.nextExtension(t, leader)
	holder := g.record(t).Holder
	_, _, next, err := g.conn.GetW(g.memberPath(holder)) // set before ZooKeeper freezes
	if err != nil {
		t.Fatal(err)
	}
	// Freeze a quarter period before the next extension is due, kill 100 ms
	// after: the extensions come every R ± 15 ms.
	waitUntil(landed.Add(extendEvery - 250*time.Millisecond))
	docker(t, "pause", zkSrv.ContainerID())
	paused := time.Now()
	resumed := false
	unpause := func() {
		if !resumed {
			resumed = true
			docker(t, "unpause", zkSrv.ContainerID())
		}
	}
	t.Cleanup(unpause)
	select {
	case ev := <-next:
		t.Fatalf("the extension landed (%v) before ZooKeeper froze %v after the last one: the test proves nothing", ev.Type, paused.Sub(landed))
	default:
	}
	waitUntil(landed.Add(extendEvery + 100*time.Millisecond))
	leader.Kill()
	testwait.For(t, 5*time.Second, leader.Name()+"'s guard to see its coordinator gone", func() bool { return guardSaid(leader, msgGone) != "" })
	unpause()
	fault := time.Now() // the extension lands from here: the lease counts from it
	t.Logf("ZooKeeper frozen for %v, %v after the last extension", fault.Sub(paused), paused.Sub(landed))

	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	select {
	case ev := <-next:
		if ev.Type != zk.EventNodeDataChanged {
			t.Fatalf("%s's member node: %v after ZooKeeper resumed, want the extension in flight to land", leader, ev.Type)
		}
	case <-timer.C:
		t.Fatalf("no extension of %s landed after ZooKeeper resumed: it was not in flight at the kill", leader)
	}
	if said := guardVerdict(t, leader); said != msgStale {
		t.Errorf("%s's guard logged %q, want %q", leader, said, msgStale)
	}
	succ, took := chk.WaitTakeover(fault, leader, crashBound)
	t.Logf("%s answered ok %v after the extension in flight landed", succ, took)
	if took <= waitedOut {
		t.Errorf("takeover %v after a stale ticket, want > %v: the lease must be waited out", took, waitedOut)
	}
	rejoin(t, chk, leader, succ)
	chk.Assert(t)
}

// TestLateReleaseAfterAnotherClaimedIsRefused: the whole leader node
// freezes (SIGSTOP) until another member has waited its lease out and
// leads; then its hanode is killed and its guard resumes, with the ticket
// of its last extension. The lease it holds is over: it sends nothing (a
// ticket that late is stale anyway, the leader record moved on), and the
// new leader keeps its lease and term.
func TestLateReleaseAfterAnotherClaimedIsRefused(t *testing.T) {
	zkSrv := zktest.Start(t)
	nodes := nodetest.StartGroup(t, nodetest.GroupOptions{ZK: zkSrv.Addr, Heartbeat: true})
	chk := nodetest.NewChecker(t, nodes...)
	leader := chk.Node(chk.WaitSingleLeader(electionTimeout))
	g := newGroupZK(t, zkSrv.Addr, nodetest.GroupID(t))
	guard := guardOf(t, leader, 5*time.Second)

	fault := g.afterExtension(t, leader, midLease, leader.StopAll)
	next, took := chk.WaitTakeover(fault, leader, crashBound)
	newTerm := activeTerm(t, next)
	t.Logf("%s took over %v after %s froze", next, took, leader)
	leader.Kill()
	if code := leader.WaitExit(exitBound); code != -1 {
		t.Errorf("%s exited %d after SIGKILL, want -1", leader, code)
	}
	if err := syscall.Kill(guard.pid, syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT %s's guard (pid %d): %v", leader, guard.pid, err)
	}
	if said := guardVerdict(t, leader); said != msgLeaseOver {
		t.Errorf("%s's guard logged %q, want %q", leader, said, msgLeaseOver)
	}
	if rec := g.record(t); rec.Name != next.Name() || rec.Term != newTerm || rec.State != "active" {
		t.Errorf("leader record after the late release: %+v, want %s's term %d active", rec, next, newTerm)
	}
	if got := chk.WaitSingleLeader(5 * time.Second); got != next.Name() {
		t.Errorf("%s leads after the late release, want %s", got, next)
	}
	if term := activeTerm(t, next); term != newTerm {
		t.Errorf("%s's term went from %d to %d after the late release", next, newTerm, term)
	}
	rejoin(t, chk, leader, next)
	chk.Assert(t)
}

// waitUntil waits until at: the fault's chosen moment, not a
// synchronization.
func waitUntil(at time.Time) {
	timer := time.NewTimer(time.Until(at))
	defer timer.Stop()
	<-timer.C
}

// docker runs a docker command on a container of the test.
func docker(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput(); err != nil {
		t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
}
