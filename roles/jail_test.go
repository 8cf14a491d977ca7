package roles

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/internal/testwait"
)

// Duties that escape their process group, as operators write them. Each
// notes its escaped process's pid in $DIR/esc and its shell's in $DIR/pid.
const (
	notePID = `echo $$ > "$DIR/pid.tmp" && mv "$DIR/pid.tmp" "$DIR/pid"`
	escLoop = `echo $$ > "$DIR/esc.tmp" && mv "$DIR/esc.tmp" "$DIR/esc"; exec sleep 1000`
	// setsidDuty: a child in a session of its own, then the shell waits.
	setsidDuty = `setsid sh -c '` + escLoop + `' & ` + notePID + `; exec sleep 1000`
	// timeoutDuty: GNU timeout puts itself in a process group of its own.
	timeoutDuty = notePID + `; timeout 1000 sh -c '` + escLoop + `'; :`
	// daemonDuty: fork, setsid, fork; the starter exits 0 (Forking).
	daemonDuty = notePID + `; ( setsid sh -c '` + escLoop + `' & ) ; exit 0`
)

// cgroupJailer makes cgroup jails for a test, or skips where this machine
// cannot make cgroups (never in CI, which runs where it can).
func cgroupJailer(t *testing.T) *Jailer {
	t.Helper()
	j, _, err := NewJailer(ContainCgroup, fmt.Sprintf("hanode-test-%d-%s-", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_")))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run where cgroups can be made: %v", err)
		}
		t.Skipf("no cgroup v2 containment here: %v", err)
	}
	return j
}

// TestCgroupJailStopsEveryEscape: whatever the duty forks, setsids or
// re-groups, a stop (and a Kill) leaves no process of it, and its cgroup
// is removed.
func TestCgroupJailStopsEveryEscape(t *testing.T) {
	for _, tc := range []struct {
		name, cmd string
		kill      bool
	}{
		{"setsid", setsidDuty, false},
		{"timeout", timeoutDuty, false},
		{"setsid killed", setsidDuty, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := cgroupJailer(t)
			h := newHarness(t, SupervisorConfig{Command: tc.cmd, StopTimeout: 200 * time.Millisecond, Jailer: j})
			h.s.Start(1)
			testwait.For(t, 5*time.Second, "the escaped process", exists(h.path("esc")))
			esc := readPID(t, h.path("esc"))
			cg := procCgroup(t, esc)
			assert.True(t, strings.HasPrefix(cg, "/"), "cgroup %q", cg)
			stop := h.s.Stop
			if tc.kill {
				stop = h.s.Kill
			}
			require.NoError(t, stop("test"))
			assert.True(t, processDead(esc), "the escaped process outlived the stop")
			matches, _ := filepath.Glob(filepath.Join(j.Base(), j.prefix+"*"))
			assert.Empty(t, matches, "the run's cgroup was not removed")
		})
	}
}

// TestForkingDutyIsItsDaemon: with Forking, a starter that exits 0 leaving
// a daemon means the duty runs; the daemon's death is the duty's exit (it
// is restarted); a stop ends the daemon.
func TestForkingDutyIsItsDaemon(t *testing.T) {
	j := cgroupJailer(t)
	h := newHarness(t, SupervisorConfig{Command: daemonDuty, Forking: true, Jailer: j,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	h.s.Start(1)
	testwait.For(t, 5*time.Second, "the daemon", exists(h.path("esc")))
	first := readPID(t, h.path("esc"))
	testwait.For(t, 5*time.Second, "the starter's exit to be taken for a started daemon", func() bool {
		return h.logs.FilterMessage("duty's starter exited 0; its daemon runs").Len() == 1
	})
	st := h.s.Status()
	assert.Equal(t, DutyRunning, st.State)
	assert.Equal(t, 0, h.logs.FilterMessage("duty exited").Len())

	require.NoError(t, os.Remove(h.path("esc")))
	require.NoError(t, syscall.Kill(first, syscall.SIGKILL))
	testwait.For(t, 5*time.Second, "a new daemon", exists(h.path("esc")))
	second := readPID(t, h.path("esc"))
	assert.NotEqual(t, first, second)
	exits := h.logs.FilterMessage("duty exited").All()
	require.NotEmpty(t, exits)
	assert.Contains(t, exits[0].ContextMap()["exit"], "daemon exited")

	require.NoError(t, h.s.Stop("test"))
	assert.True(t, processDead(second), "the daemon outlived the stop")
}

// TestRestartLimitGivesUp: a duty that fails more than MaxRestarts times
// in RestartWindow is not restarted again, and OnGiveUp says so once.
func TestRestartLimitGivesUp(t *testing.T) {
	gaveUp := make(chan string, 4)
	h := newHarness(t, SupervisorConfig{Command: `echo x >> "$DIR/runs"; exit 3`,
		MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxRestarts: 2, RestartWindow: time.Minute,
		OnGiveUp: func(term int64, reason string) { gaveUp <- fmt.Sprintf("%d %s", term, reason) }})
	h.s.Start(7)
	select {
	case r := <-gaveUp:
		assert.Contains(t, r, "7 the duty ended 3 times within 1m0s")
		assert.Contains(t, r, "exit status 3")
	case <-time.After(10 * time.Second):
		t.Fatal("no give-up")
	}
	assert.Equal(t, DutyFailed, h.s.Status().State)
	assert.Len(t, lines(t, h.path("runs")), 3)
	require.NoError(t, h.s.Stop("test"))
	assert.Empty(t, gaveUp)
}

func procCgroup(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p
		}
	}
	t.Fatalf("pid %d: no cgroup v2 line in %q", pid, b)
	return ""
}

// TestParseContainment: the DUTY_CONTAINMENT values.
func TestParseContainment(t *testing.T) {
	for in, want := range map[string]Containment{"": ContainAuto, "auto": ContainAuto, "CGroup": ContainCgroup,
		"subreaper": ContainSubreaper, " none ": ContainNone} {
		got, err := ParseContainment(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := ParseContainment("pgroup")
	assert.Error(t, err)
}

// containedGuard is a Guard whose guard process runs with containment c
// (the coordinator's jailer too, as `hanode run` sets it up) and
// AnswerSlack 200 ms.
func containedGuard(t *testing.T, c Containment, command string, forking bool) *guardClientUnderTest {
	t.Helper()
	var coord *Jailer
	switch c {
	case ContainCgroup:
		coord = cgroupJailer(t)
	case ContainSubreaper:
		// As in `hanode run`: the coordinator is a subreaper too, so a dead
		// guard's orphans come to it. This test binary stays one from here
		// on (it reaps what it inherits: jailed, reapOrphans).
		j, _, err := NewJailer(ContainSubreaper, "")
		require.NoError(t, err)
		coord = j
	}
	args := []string{string(c)}
	if forking {
		args = append(args, "forking")
	}
	return newGuardClient(t, command, 2*time.Second, func(cfg *GuardConfig) {
		cfg.Args = append(cfg.Args, args...)
		cfg.Jailer, cfg.AnswerSlack = coord, 200*time.Millisecond
	})
}

// TestGuardContainsEscapes: under a real guard process, with each
// containment that stops escapes, a stop, the guard's death and a frozen
// guard each leave no process of a duty that setsid'd or daemonized.
func TestGuardContainsEscapes(t *testing.T) {
	for _, c := range []Containment{ContainCgroup, ContainSubreaper} {
		for _, fault := range []string{"stop", "guard killed", "guard frozen"} {
			t.Run(string(c)+"/"+fault, func(t *testing.T) {
				g := containedGuard(t, c, setsidDuty, false)
				g.g.Extend(time.Minute)
				g.g.Start(1)
				testwait.For(t, 5*time.Second, "the escaped process", exists(filepath.Join(g.dir, "esc")))
				esc := readPID(t, filepath.Join(g.dir, "esc"))
				guard := idleGuard(t, g.dir)
				testwait.For(t, 5*time.Second, "the duty reported running", func() bool { return g.g.Duty().State == DutyRunning })
				began := time.Now()
				switch fault {
				case "stop":
					require.NoError(t, g.g.Stop("test"))
				case "guard killed":
					require.NoError(t, syscall.Kill(guard, syscall.SIGKILL))
					testwait.For(t, 5*time.Second, "the dead guard's jail killed", func() bool { return processDead(esc) })
				case "guard frozen":
					require.NoError(t, syscall.Kill(guard, syscall.SIGSTOP))
					testwait.For(t, 5*time.Second, "the guard frozen", func() bool { return processStopped(guard) })
					began = time.Now()
					require.NoError(t, g.g.Stop("test"))
					assert.Less(t, time.Since(began), 200*time.Millisecond+KillGrace, "a frozen guard was waited for")
					assert.Equal(t, 1, g.logs.FilterMessage("duty guard did not acknowledge the stop (frozen?); killing it and its duty's every process").Len())
				}
				assert.True(t, processDead(esc), "the escaped process outlived the %s", fault)
			})
		}
	}
}

// TestGuardReportsAFailingDuty: the coordinator's report follows the
// duty (running, restarting with its exit), and a duty that keeps failing
// is reported lost once, with the reason.
func TestGuardReportsAFailingDuty(t *testing.T) {
	g := containedGuard(t, ContainSubreaper, `[ -e "$DIR/fail" ] && exit 4; echo "$$ $HANODE_TERM" > "$DIR/pid.tmp" && mv "$DIR/pid.tmp" "$DIR/pid"; exec sleep 1000`, false)
	g.g.Extend(time.Minute)
	g.g.Start(2)
	assert.True(t, g.g.Duty().Serving(time.Now(), time.Second), "a starting duty serves within the grace")
	assert.False(t, g.g.Duty().Serving(time.Now().Add(2*time.Second), time.Second), "nor after it")
	testwait.For(t, 5*time.Second, "running", func() bool { return g.g.Duty().State == DutyRunning })
	pid := g.waitDuty(t, 0).pid // written after its check of $DIR/fail: it runs on
	require.NoError(t, os.WriteFile(filepath.Join(g.dir, "fail"), nil, 0o644))
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	l := g.waitLost(t)
	assert.Equal(t, int64(2), l.term)
	assert.Contains(t, l.reason, "ACTIVE_MAX_RESTARTS=3")
	r := g.g.Duty()
	assert.Equal(t, DutyFailed, r.State)
	assert.Equal(t, "exit status 4", r.LastExit)
	assert.False(t, r.Serving(time.Now(), time.Hour))
	assert.GreaterOrEqual(t, r.Restarts, 2)
	require.NoError(t, g.g.Stop("test"))
	assert.Equal(t, DutyStopped, g.g.Duty().State)
}

// TestGuardForkingDaemonIsStopped: a forking duty under a real guard: the
// daemon is the duty, and a stop ends it.
func TestGuardForkingDaemonIsStopped(t *testing.T) {
	for _, c := range []Containment{ContainCgroup, ContainSubreaper} {
		t.Run(string(c), func(t *testing.T) {
			g := containedGuard(t, c, daemonDuty, true)
			g.g.Extend(time.Minute)
			g.g.Start(3)
			testwait.For(t, 5*time.Second, "the daemon", exists(filepath.Join(g.dir, "esc")))
			esc := readPID(t, filepath.Join(g.dir, "esc"))
			testwait.For(t, 5*time.Second, "the starter's exit", func() bool { return g.g.Duty().State == DutyRunning })
			require.NoError(t, g.g.Stop("test"))
			assert.True(t, processDead(esc), "the daemon outlived the stop")
		})
	}
}

// TestFenceLeavesNothingBehind: a FENCE_CMD child that setsid'd is killed
// before the fence counts, with a cgroup jail.
func TestFenceLeavesNothingBehind(t *testing.T) {
	j := cgroupJailer(t)
	dir := t.TempDir()
	cfg := FenceConfig{Command: `setsid sh -c '` + escLoop + `' & while [ ! -e "$DIR/esc" ]; do sleep 0.01; done; exit 0`,
		Timeout: 10 * time.Second, Env: append(os.Environ(), "DIR="+dir), Jailer: j}
	require.NoError(t, Fence(t.Context(), cfg, 4, Previous{}))
	esc := readPID(t, filepath.Join(dir, "esc"))
	assert.True(t, processDead(esc), "the fence's child outlived it")
}

// TestDutyReportServing: no "ok" for longer than the grace while the duty
// is down, however often it restarts, and no blip for a duty that came
// back within the grace and stays up.
func TestDutyReportServing(t *testing.T) {
	const grace = time.Second
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type step struct {
		ms    int
		event string // "start" or "exit"
	}
	for _, tc := range []struct {
		name  string
		steps []step
		at    int
		want  bool
	}{
		{"starting within the grace", nil, 900, true},
		{"starting past the grace", nil, 1100, false},
		{"running", []step{{10, "start"}}, 5000, true},
		{"restarting within the grace", []step{{10, "start"}, {5000, "exit"}}, 5900, true},
		{"restarting past the grace", []step{{10, "start"}, {5000, "exit"}}, 6100, false},
		{"one restart that stays up: no blip", []step{{10, "start"}, {5000, "exit"}, {5900, "start"}}, 6500, true},
		{"short restarts: down past the grace from the first exit", []step{{10, "start"}, {5000, "exit"}, {5200, "start"},
			{5210, "exit"}, {5600, "start"}, {5610, "exit"}, {6400, "start"}}, 6405, false},
		{"short restarts: restarting past the grace", []step{{10, "start"}, {5000, "exit"}, {5200, "start"},
			{5210, "exit"}}, 6100, false},
		{"a run of the grace ends the streak", []step{{10, "start"}, {5000, "exit"}, {6400, "start"}}, 7400, true},
		{"an exit after a healed run starts a new streak", []step{{10, "start"}, {5000, "exit"}, {5200, "start"},
			{9000, "exit"}}, 9900, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := DutyReport{State: DutyStarting, Since: t0}
			for _, s := range tc.steps {
				if s.event == "start" {
					r.started(at(s.ms))
				} else {
					r.exited(at(s.ms), "exit status 1", grace)
				}
			}
			assert.Equal(t, tc.want, r.Serving(at(tc.at), grace))
		})
	}
	for _, st := range []string{DutyFailed, DutyStopped} {
		assert.False(t, DutyReport{State: st, Since: t0}.Serving(t0, grace), st)
	}
}

// TestGuardWhoseCoordinatorGoesEndsItsOtherJails: a guard whose
// coordinator died ends the coordinator's other jails (a FENCE_CMD in
// flight and whatever it started), which nobody else would stop.
func TestGuardWhoseCoordinatorGoesEndsItsOtherJails(t *testing.T) {
	g := containedGuard(t, ContainCgroup, setsidDuty, false)
	require.NoError(t, g.g.Ready())
	guard := idleGuard(t, g.dir)
	coord := g.g.cfg.Jailer
	sleeper := exec.Command("/bin/sleep", "1000")
	fence, err := coord.start(sleeper) // a sibling of the guard's cgroup, as a FENCE_CMD's
	require.NoError(t, err)
	defer func() { _ = sleeper.Wait(); disown(sleeper.Process.Pid) }()

	// Close closes the guard's stdin, as the coordinator's death does, and
	// waits for the guard to exit.
	require.NoError(t, g.g.Close())
	assert.True(t, processDead(guard))
	testwait.For(t, 5*time.Second, "the fence's process to be ended by the guard", func() bool { return processDead(sleeper.Process.Pid) })
	_, err = os.Stat(fence.dir)
	assert.True(t, os.IsNotExist(err), "the fence's cgroup was not removed")
}

// TestStuckDutyIsNeitherRestartedNorReportedStopped: a run whose jail
// cannot be confirmed empty (a process stuck in the kernel) blocks every
// restart and makes the stop report an error, until a later kill confirms
// it gone.
func TestStuckDutyIsNeitherRestartedNorReportedStopped(t *testing.T) {
	j := cgroupJailer(t)
	h := newHarness(t, SupervisorConfig{Command: `echo x >> "$DIR/runs"; exec sleep 1000`, Jailer: j,
		MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond, RestartGrace: time.Second})
	h.s.Start(1)
	st := h.waitRunning(t, 1)
	testwait.For(t, 5*time.Second, "the first run", func() bool { return len(lines(t, h.path("runs"))) == 1 })
	j.testKillFails.Store(1000) // every kill fails from now on
	require.NoError(t, syscall.Kill(st.PID, syscall.SIGKILL))
	testwait.For(t, 5*time.Second, "the stuck run to be noticed", func() bool {
		return h.logs.FilterMessage("duty exited, but processes of it could not be killed; nothing starts until they are gone").Len() == 1
	})
	testwait.For(t, 5*time.Second, "a few retries", func() bool { return j.testKillFails.Load() < 990 })
	assert.Len(t, lines(t, h.path("runs")), 1, "restarted while a run was stuck")
	assert.Error(t, h.s.Stop("test"), "a stop was confirmed while a run was stuck")

	j.testKillFails.Store(0) // the process left the kernel: kills work again
	h.s.Start(2)
	h.waitRunning(t, 2)
	testwait.For(t, 5*time.Second, "the second run", func() bool { return len(lines(t, h.path("runs"))) == 2 })
	require.NoError(t, h.s.Stop("test"))
	assert.Equal(t, 1, h.logs.FilterMessage("the duty's leftover processes are gone").Len())
}

// TestSweepLeavesADeadHanodesWorkingGuardAlone: a starting hanode ends the
// jails of dead hanode processes in its cgroup, but not those of a dead
// hanode whose duty guard still runs (it is stopping the duty and
// releasing the lease; several hanode processes may share the cgroup), and
// never a live hanode's. Each jail holds a sleeping shell; the guard's
// shell carries GuardCommand in its arguments, as a guard does.
func TestSweepLeavesADeadHanodesWorkingGuardAlone(t *testing.T) {
	base := cgroupJailer(t)
	stem := fmt.Sprintf("hnsweep%d-", os.Getpid())
	deadPID := func() int {
		c := exec.Command("/bin/true")
		require.NoError(t, c.Run())
		return c.Process.Pid
	}
	// jailed starts a shell with argv0 in a jail of a hanode with pid owner.
	jailers := map[int]*Jailer{}
	jailed := func(owner int, argv0 string) (pid int, dir string) {
		j := jailers[owner]
		if j == nil {
			j = &Jailer{mode: ContainCgroup, base: base.Base(), prefix: fmt.Sprintf("%s%d-", stem, owner)}
			jailers[owner] = j
		}
		c := exec.Command("/bin/sh", "-c", "sleep 1000; :", argv0)
		jl, err := j.start(c)
		require.NoError(t, err)
		waited := make(chan struct{})
		go func() { _ = c.Wait(); close(waited) }() // reaped: processDead sees it gone
		t.Cleanup(func() {
			_ = cgroupKill(jl.dir, time.Now().Add(5*time.Second))
			<-waited
			jl.release()
		})
		return c.Process.Pid, jl.dir
	}
	withGuard, otherJail := deadPID(), deadPID()
	guard, guardDir := jailed(withGuard, GuardCommand)
	fence, fenceDir := jailed(withGuard, "fence") // a sibling the guard ends itself
	orphan, orphanDir := jailed(otherJail, "fence")
	live, liveDir := jailed(os.Getpid(), GuardCommand)

	sweeper := &Jailer{mode: ContainCgroup, base: base.Base()}
	ended := sweeper.Sweep(stem, time.Now().Add(5*time.Second))

	assert.Equal(t, []string{orphanDir}, ended)
	assert.True(t, processDead(orphan), "the jail of a dead hanode without a guard was not ended")
	assert.NoDirExists(t, orphanDir)
	for name, p := range map[string]int{"the working guard": guard, "its sibling": fence, "a live hanode's jail": live} {
		assert.False(t, processDead(p), "%s was ended", name)
	}
	for _, dir := range []string{guardDir, fenceDir, liveDir} {
		assert.DirExists(t, dir)
	}

	// Once the guard is done (it exits), the next start ends the rest.
	require.NoError(t, syscall.Kill(guard, syscall.SIGKILL))
	testwait.For(t, 5*time.Second, "the guard's exit", func() bool { return processDead(guard) })
	ended = sweeper.Sweep(stem, time.Now().Add(5*time.Second))
	assert.ElementsMatch(t, []string{guardDir, fenceDir}, ended)
	assert.True(t, processDead(fence), "the dead hanode's sibling jail outlived the sweep after its guard exited")
}
