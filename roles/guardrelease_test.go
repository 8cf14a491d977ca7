package roles

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/testwait"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The guard's release for a coordinator that provably exited (issue 17):
// ServeGuard calls GuardExit.Release with the last ticket only when its
// stdin closed, the duty and every jail of the coordinator are confirmed
// stopped under cgroup containment, and the kernel proves the coordinator
// exited. These tests use real processes for the proof (a pidfd of a child
// of the test) and real cgroups for the jails.

// childProof returns an ExitProof of a child process of the test: one that
// has exited when exited, else one that lives until the test ends.
func childProof(t *testing.T, exited bool) *ExitProof {
	t.Helper()
	proc := sleeper(t)
	fd, err := unix.PidfdOpen(proc.Pid, 0)
	require.NoError(t, err, "pidfd_open")
	p := &ExitProof{fd: fd, pid: proc.Pid}
	t.Cleanup(func() { _ = p.Close() })
	if exited {
		_ = proc.Kill()
		_, err := proc.Wait()
		require.NoError(t, err)
	}
	return p
}

// sleeper starts a process that sleeps until the test ends, and reaps it
// then. Nothing waits for it meanwhile: requireNoDutyGoroutines would take
// a goroutine in os.(*Process).Wait for a duty's.
func sleeper(t *testing.T) *os.Process {
	t.Helper()
	path, err := exec.LookPath("sleep")
	require.NoError(t, err)
	proc, err := os.StartProcess(path, []string{"sleep", "60"}, &os.ProcAttr{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = proc.Kill()
		_, _ = proc.Wait()
	})
	return proc
}

var coordSeq atomic.Int64

// coordinatorJails lays out cgroups as a coordinator does under cgroup
// containment: the guard's own jail "<stem>1", in which the guard makes
// the duty's jails, and a sibling "<stem>2" that holds a running process
// (a FENCE_CMD in flight, say) which only the guard can end once the
// coordinator is gone. It returns the guard's Jailer and the sibling.
func coordinatorJails(t *testing.T) (*Jailer, string) {
	t.Helper()
	base := cgroupJailer(t).Base()
	stem := fmt.Sprintf("hanode-test-%d-%s-coord%d-", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_"), coordSeq.Add(1))
	own, sibling := filepath.Join(base, stem+"1"), filepath.Join(base, stem+"2")
	for _, dir := range []string{own, sibling} {
		require.NoError(t, os.Mkdir(dir, 0o755))
	}
	t.Cleanup(func() {
		for _, dir := range []string{sibling, own} {
			_ = cgroupKill(dir, time.Now().Add(KillGrace))
			assert.NoError(t, removeCgroup(dir))
		}
	})
	proc := sleeper(t) // unreaped once killed: a zombie is no process of its cgroup
	require.NoError(t, os.WriteFile(filepath.Join(sibling, "cgroup.procs"), []byte(strconv.Itoa(proc.Pid)), 0),
		"move pid %d into %s", proc.Pid, sibling)
	return &Jailer{mode: ContainCgroup, base: own, prefix: "duty-"}, sibling
}

// releases records the guard's calls of Release, with what had stopped by
// then.
type releases struct {
	mu    sync.Mutex
	calls []releaseCall
	// dutyPID and sibling say what to look at when Release is called.
	dutyPID func() int
	sibling string
}

type releaseCall struct {
	ticket                 string
	dutyDead, siblingEmpty bool
}

func (r *releases) release(ticket []byte, _ time.Time) {
	c := releaseCall{ticket: string(ticket)}
	if r.dutyPID != nil {
		c.dutyDead = processDead(r.dutyPID())
	}
	if r.sibling != "" {
		pop, err := cgroupPopulated(r.sibling)
		c.siblingEmpty = err == nil && !pop
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
}

func (r *releases) got() []releaseCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]releaseCall(nil), r.calls...)
}

func ticketLine(s string) string { return "ticket " + base64.StdEncoding.EncodeToString([]byte(s)) }

// runDuty gives g a lease, sends the lines, starts the duty of term 3 and
// returns its pid once the guard reported it started: every line before
// the start has been read by then, since the guard reads its commands in
// order.
func (g *guardUnderTest) runDuty(t *testing.T, lines ...string) int {
	t.Helper()
	g.lease(t, time.Minute)
	for _, l := range lines {
		g.send(t, l)
	}
	g.send(t, "start 3")
	pid := g.dutyPID(t)
	assert.Equal(t, fmt.Sprintf("started 3 %d", pid), g.reply(t))
	return pid
}

// closeAndWait closes the guard's stdin, as the coordinator's exit does,
// and waits until ServeGuard returned (Release, if any, ran before).
func (g *guardUnderTest) closeAndWait(t *testing.T) {
	t.Helper()
	require.NoError(t, g.in.Close())
	select {
	case err := <-g.done:
		g.done <- err // for startGuard's cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("ServeGuard did not return after its stdin closed")
	}
}

// TestGuardReleasesForAnExitedCoordinator: stdin closed and the
// coordinator provably exited: Release is called once, with the latest
// ticket, after the duty stopped and the coordinator's other jail was
// emptied.
func TestGuardReleasesForAnExitedCoordinator(t *testing.T) {
	jailer, sibling := coordinatorJails(t)
	rel := &releases{sibling: sibling}
	g := startGuard(t, SupervisorConfig{Jailer: jailer, Exit: &GuardExit{Proof: childProof(t, true), Release: rel.release}})
	var pid int
	rel.dutyPID = func() int { return pid }
	pid = g.runDuty(t, ticketLine("first"), ticketLine("second")) // a later extension's ticket replaces the first
	g.closeAndWait(t)

	calls := rel.got()
	require.Len(t, calls, 1, "Release calls")
	assert.Equal(t, "second", calls[0].ticket, "the latest ticket")
	assert.True(t, calls[0].dutyDead, "Release was called before the duty had stopped")
	assert.True(t, calls[0].siblingEmpty, "Release was called before the coordinator's other jail was emptied")
	assert.Equal(t, 1, g.logs.FilterMessage("ended what the gone coordinator was running").Len())
}

// TestGuardSignalledAfterItsCoordinatorExitedReleases: systemd stopping a
// unit whose main process died (KillMode=control-group) signals the guard
// as the coordinator's pipe ends. The guard reads what the coordinator sent
// before its end (a ticket written just before the exit), then stops the
// duty and releases with that ticket; the same signal while the coordinator
// lives stops the duty and releases nothing, at once.
func TestGuardSignalledAfterItsCoordinatorExitedReleases(t *testing.T) {
	t.Run("exited", func(t *testing.T) {
		jailer, sibling := coordinatorJails(t)
		rel := &releases{sibling: sibling}
		g := startGuard(t, SupervisorConfig{Jailer: jailer, Exit: &GuardExit{Proof: childProof(t, true), Release: rel.release}})
		var pid int
		rel.dutyPID = func() int { return pid }
		pid = g.runDuty(t, ticketLine("first"))
		g.send(t, ticketLine("last")) // on its way when the coordinator died
		g.signal()
		// Here the pipe's end comes after the signal is taken (in life a
		// little before it): the guard must wait for it.
		testwait.For(t, 5*time.Second, "the signal to be taken", func() bool {
			return g.logs.FilterMessage("signalled after the coordinator exited; reading what it sent").Len() == 1
		})
		g.closeAndWait(t)

		calls := rel.got()
		require.Len(t, calls, 1, "Release calls")
		assert.Equal(t, "last", calls[0].ticket, "the ticket sent before the end")
		assert.True(t, calls[0].dutyDead, "Release was called before the duty had stopped")
	})
	t.Run("alive", func(t *testing.T) {
		// systemctl stop: every process of the unit is signalled, the
		// coordinator too, and it stops the duty itself.
		jailer, _ := coordinatorJails(t)
		rel := &releases{}
		g := startGuard(t, SupervisorConfig{Jailer: jailer, Exit: &GuardExit{Proof: childProof(t, false), Release: rel.release}})
		pid := g.runDuty(t, ticketLine("valid"))
		g.signal()
		testwait.For(t, 5*time.Second, "the signal to be taken", func() bool {
			return g.logs.FilterMessage("signalled; the coordinator stops the duty").Len() == 1
		})
		g.send(t, "stop shutting down")
		assert.Equal(t, "stopping", g.reply(t), "the signalled guard still serves its coordinator")
		assert.Equal(t, "stopped", g.reply(t))
		assert.True(t, processDead(pid), "the duty must stop")
		g.closeAndWait(t)
		assert.Empty(t, rel.got(), "Release called for a coordinator that lives")
	})
	t.Run("alive and silent", func(t *testing.T) {
		// Signalled alone: the duty is stopped once the coordinator has
		// had the duty's stop timeout and more to do it.
		jailer, _ := coordinatorJails(t)
		rel := &releases{}
		g := startGuard(t, SupervisorConfig{Jailer: jailer, Exit: &GuardExit{Proof: childProof(t, false), Release: rel.release}})
		pid := g.runDuty(t, ticketLine("valid"))
		start := time.Now()
		g.signal()
		select {
		case err := <-g.done:
			g.done <- err
		case <-time.After(10 * time.Second):
			t.Fatal("ServeGuard did not return after the signal and the grace")
		}
		assert.GreaterOrEqual(t, time.Since(start), 500*time.Millisecond+signalGrace, "stopped the duty before the coordinator's grace")
		assert.Empty(t, rel.got(), "Release called for a coordinator that lives")
		assert.True(t, processDead(pid), "the duty must stop")
	})
}

// TestGuardDoesNotReleaseWithoutProofOfExit: a coordinator that closed the
// pipe but lives (frozen, busy, or it closed it by mistake) may still act on
// its lease: no Release, however valid the ticket, and the guard says why.
func TestGuardDoesNotReleaseWithoutProofOfExit(t *testing.T) {
	jailer, _ := coordinatorJails(t)
	rel := &releases{}
	proof := childProof(t, false)
	g := startGuard(t, SupervisorConfig{Jailer: jailer, Exit: &GuardExit{Proof: proof, Release: rel.release}})
	pid := g.runDuty(t, ticketLine("valid"))
	start := time.Now()
	g.closeAndWait(t)

	assert.Empty(t, rel.got(), "Release called for a coordinator that lives")
	assert.True(t, processDead(pid), "the duty must stop all the same")
	assert.GreaterOrEqual(t, time.Since(start), exitProofWait, "gave up on the proof before exitProofWait")
	entries := g.logs.FilterMessage("coordinator closed its pipe but has not exited: not releasing its lease").All()
	require.Len(t, entries, 1)
	assert.Equal(t, int64(proof.PID()), entries[0].ContextMap()["pid"])
}

// TestGuardForgetsItsTicket: a "stop" (the coordinator releases itself, or
// lets the lease lapse) and a "ticket -" withdraw the ticket: the guard of
// a coordinator that then exits releases nothing. So do containment other
// than cgroup (nothing proves that all the coordinator ran has stopped) and
// jails of the coordinator that cannot be found and confirmed ended.
func TestGuardForgetsItsTicket(t *testing.T) {
	for _, tc := range []struct {
		name string
		// jailer returns the guard's Jailer; nil: coordinatorJails.
		jailer func(t *testing.T) *Jailer
		// run starts the duty and does what comes before the exit.
		run func(t *testing.T, g *guardUnderTest)
		log string // what the guard logs instead of releasing, "" nothing
	}{
		{name: "stop", run: func(t *testing.T, g *guardUnderTest) {
			g.runDuty(t, ticketLine("valid"))
			g.send(t, "stop leadership ended")
			assert.Equal(t, "stopping", g.reply(t))
			assert.Equal(t, "stopped", g.reply(t))
		}},
		{name: "ticket -", run: func(t *testing.T, g *guardUnderTest) {
			g.runDuty(t, ticketLine("valid"), "ticket -")
		}},
		{name: "no ticket yet", run: func(t *testing.T, g *guardUnderTest) {
			g.runDuty(t)
		}},
		{
			name:   "containment none",
			jailer: func(*testing.T) *Jailer { return &Jailer{mode: ContainNone} },
			run:    func(t *testing.T, g *guardUnderTest) { g.runDuty(t, ticketLine("valid")) },
			log:    "not releasing the lease for the gone coordinator: only cgroup containment proves that all it ran has stopped; the group waits the lease out",
		},
		{
			name: "the coordinator's jails not told apart",
			jailer: func(t *testing.T) *Jailer {
				// A guard's own cgroup not named "<stem><n>": its
				// coordinator's other jails cannot be found and ended.
				j, _ := coordinatorJails(t)
				odd := j.Base() + "-odd"
				require.NoError(t, os.Mkdir(odd, 0o755))
				t.Cleanup(func() { assert.NoError(t, removeCgroup(odd)) })
				return &Jailer{mode: ContainCgroup, base: odd, prefix: "duty-"}
			},
			run: func(t *testing.T, g *guardUnderTest) { g.runDuty(t, ticketLine("valid")) },
			log: "not releasing the lease for the gone coordinator: not everything it ran is confirmed stopped; the group waits the lease out",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var jailer *Jailer
			if tc.jailer != nil {
				jailer = tc.jailer(t)
			} else {
				jailer, _ = coordinatorJails(t)
			}
			rel := &releases{}
			g := startGuard(t, SupervisorConfig{Jailer: jailer, Exit: &GuardExit{Proof: childProof(t, true), Release: rel.release}})
			tc.run(t, g)
			g.closeAndWait(t)
			assert.Empty(t, rel.got(), "Release calls")
			if tc.log != "" {
				assert.Equal(t, 1, g.logs.FilterMessage(tc.log).Len(), "want the guard to log %q", tc.log)
			}
		})
	}
}

// TestGuardReleasesWithTheTicketSentJustBeforeTheExit: the coordinator
// sends its lease and the ticket of an extension together ("until", then
// "ticket") and dies at once, so the guard reads both lines and the end of
// its stdin in one go, while it handles the first line. The release must
// use that last ticket, not the one before: the one before is stale (the
// extension moved the holder's member node on), so using it costs the
// group a whole lease.
func TestGuardReleasesWithTheTicketSentJustBeforeTheExit(t *testing.T) {
	const rounds = 50
	for round := range rounds {
		jailer, _ := coordinatorJails(t)
		rel := &releases{}
		g := startGuard(t, SupervisorConfig{Jailer: jailer, Exit: &GuardExit{Proof: childProof(t, true), Release: rel.release}})
		g.runDuty(t, ticketLine("old"))
		last := fmt.Sprintf("until %d\n%s\n", monoNow()+int64(time.Minute), ticketLine("new"))
		_, err := g.in.Write([]byte(last))
		require.NoError(t, err)
		g.closeAndWait(t)
		calls := rel.got()
		require.Len(t, calls, 1, "round %d: Release calls", round)
		if calls[0].ticket != "new" {
			t.Fatalf("round %d: released with ticket %q, want the last one sent, %q", round, calls[0].ticket, "new")
		}
	}
}

// TestGuardDoesNotReleaseAfterTheLease: a coordinator that exits after its
// lease ran out (the guard stopped the duty at the deadline) is not
// released for: the group claims by its own rules by then, and a release
// sent that late could land in a history ZooKeeper rolled back to before
// another member's claim (ha/doc.go, "Release by the guard").
func TestGuardDoesNotReleaseAfterTheLease(t *testing.T) {
	jailer, _ := coordinatorJails(t)
	rel := &releases{}
	g := startGuard(t, SupervisorConfig{Jailer: jailer, Exit: &GuardExit{Proof: childProof(t, true), Release: rel.release}})
	g.lease(t, 300*time.Millisecond)
	g.send(t, ticketLine("valid"))
	g.send(t, "start 3")
	pid := g.dutyPID(t)
	assert.Equal(t, fmt.Sprintf("started 3 %d", pid), g.reply(t))
	assert.Equal(t, "expired 3", g.reply(t), "the guard stops the duty at the lease's end")
	g.closeAndWait(t)

	assert.Empty(t, rel.got(), "Release called after the lease")
	assert.True(t, processDead(pid))
	assert.Equal(t, 1, g.logs.FilterMessage("not releasing the lease for the gone coordinator: its lease is over").Len())
}
