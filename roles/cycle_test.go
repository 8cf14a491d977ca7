package roles

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/hanode/hanode/internal/testwait"
)

func newTestRunner(t *testing.T, command string) *CycleRunner {
	r := NewCycleRunner(CycleConfig{Command: command, Name: "p1", Role: "primary", HAID: "g",
		Env: []string{"PATH=" + os.Getenv("PATH"), "HANODE_CYCLE=stale"}, Logger: zaptest.NewLogger(t)})
	t.Cleanup(r.Close)
	return r
}

func TestCycleCommandRunsOncePerCycleWithItsNumberAndStart(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "cycles")
	r := newTestRunner(t, `echo "$HANODE_CYCLE $HANODE_CYCLE_STARTED $HANODE_NAME $HANODE_ROLE $HANODE_HA_ID" >> `+out)
	t0 := time.Date(2026, 12, 6, 19, 0, 0, 123456789, time.FixedZone("x", 3600))
	r.Cycle(1, t0)
	testwait.For(t, 5*time.Second, "cycle 1 run", func() bool { return len(readLines(t, out)) == 1 })
	r.Cycle(2, t0.Add(time.Second))
	testwait.For(t, 5*time.Second, "cycle 2 run", func() bool { return len(readLines(t, out)) == 2 })
	r.Cycle(2, t0.Add(time.Second)) // again: never twice
	r.Cycle(1, t0)                  // older than one run: never
	r.Cycle(3, t0.Add(2*time.Second))
	testwait.For(t, 5*time.Second, "cycle 3 run", func() bool { return len(readLines(t, out)) >= 3 })
	r.Close()
	want := []string{
		"1 2026-12-06T18:00:00.123456789Z p1 primary g",
		"2 2026-12-06T18:00:01.123456789Z p1 primary g",
		"3 2026-12-06T18:00:02.123456789Z p1 primary g",
	}
	if got := readLines(t, out); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("runs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestCycleArrivingDuringARunWaitsAndANewerOneReplacesIt: one run at a
// time; of the cycles that came meanwhile only the newest runs.
func TestCycleArrivingDuringARunWaitsAndANewerOneReplacesIt(t *testing.T) {
	dir := t.TempDir()
	out, gate := filepath.Join(dir, "cycles"), filepath.Join(dir, "gate")
	r := newTestRunner(t, `echo "start $HANODE_CYCLE" >> `+out+`; while [ ! -e `+gate+` ]; do sleep 0.01; done; echo "end $HANODE_CYCLE" >> `+out)
	now := time.Now()
	r.Cycle(1, now)
	testwait.For(t, 5*time.Second, "cycle 1 started", func() bool { return len(readLines(t, out)) == 1 })
	r.Cycle(2, now)
	r.Cycle(3, now)
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 5*time.Second, "cycle 3 run", func() bool { return len(readLines(t, out)) == 4 })
	r.Close()
	if got := strings.Join(readLines(t, out), ","); got != "start 1,end 1,start 3,end 3" {
		t.Fatalf("runs: %s", got)
	}
}

// TestCycleCommandLeavesNothingRunning: what a run leaves behind is killed
// when its shell exits, and Close kills a run still going.
func TestCycleCommandLeavesNothingRunning(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	r := newTestRunner(t, `sleep 60 & echo $! >> `+pids+`; if [ "$HANODE_CYCLE" = 2 ]; then wait; fi`)
	r.Cycle(1, time.Now())
	testwait.For(t, 5*time.Second, "cycle 1's leftover pid", func() bool { return len(readLines(t, pids)) == 1 })
	alive := func(line string) bool {
		pid, err := strconv.Atoi(line)
		if err != nil {
			t.Fatal(err)
		}
		if syscall.Kill(pid, 0) != nil {
			return false
		}
		st, err := os.ReadFile("/proc/" + line + "/stat")
		return err == nil && !strings.Contains(string(st), ") Z ")
	}
	testwait.For(t, 5*time.Second, "cycle 1's sleep killed once its shell exited", func() bool { return !alive(readLines(t, pids)[0]) })
	r.Cycle(2, time.Now())
	testwait.For(t, 5*time.Second, "cycle 2's pid", func() bool { return len(readLines(t, pids)) == 2 })
	second := readLines(t, pids)[1]
	if !alive(second) {
		t.Fatal("cycle 2's sleep is not running while its shell waits for it")
	}
	r.Close()
	if alive(second) {
		t.Fatal("Close left cycle 2's sleep running")
	}
}
