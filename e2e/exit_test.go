package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/nodetest"
)

// Exit statuses of the real binary (README.md, "Exit status"), checked
// against the shipped unit: what the Go runtime does on a panic or SIGQUIT
// must be restarted, what restarting cannot fix must not be.

// soloEnv is a standalone node: no ZooKeeper, always active.
var soloEnv = map[string]string{"NAME": "solo", "ROLE": "primary"}

// runtimeEnviron pins the Go runtime's crash behaviour to its default, so a
// GOTRACEBACK=crash in the test's environment (SIGABRT, a core) cannot change
// the status under test.
var runtimeEnviron = []string{"GOTRACEBACK=single"}

// TestExitSIGQUITIs2WithAGoroutineDump: `kill -QUIT` of a running
// `hanode run` prints the Go runtime's goroutine dump on stderr and exits 2,
// a status the unit restarts.
func TestExitSIGQUITIs2WithAGoroutineDump(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{Env: soloEnv, Environ: runtimeEnviron})
	n.Signal(syscall.SIGQUIT)
	code := n.WaitExit(exitBound)
	stderr := n.Logs()
	if code != 2 {
		t.Fatalf("exit %d after SIGQUIT, want 2\n%s", code, stderr)
	}
	mustContain(t, "stderr", stderr, "SIGQUIT: quit")
	// Every goroutine, main's included ("goroutine 1 [select]:", or with
	// gp= and m= fields in newer runtimes).
	mustMatch(t, "stderr", stderr, `^goroutine 1 .*\[.+\]:$`)
	requireRestarted(t, code)
}

// TestExitPanicIs2: a panic in a goroutine of a running `hanode run` (the
// hidden, test-only --debug-panic-after) exits 2 with the panic's message and
// stack, a status the unit restarts; before the panic the node served.
func TestExitPanicIs2(t *testing.T) {
	const after = 2 * time.Second
	start := time.Now()
	n := nodetest.Start(t, nodetest.Options{Env: soloEnv, Environ: runtimeEnviron, Args: []string{"--debug-panic-after", after.String()}})
	if served := time.Since(start); served >= after {
		t.Fatalf("the node took %v to answer, longer than the %v before the panic: the test proves nothing", served, after)
	}
	code := n.WaitExit(after + exitBound)
	stderr := n.Logs()
	if code != 2 {
		t.Fatalf("exit %d after the test-only panic, want 2\n%s", code, stderr)
	}
	mustContain(t, "stderr", stderr, "panic: test-only panic: --debug-panic-after=2s")
	mustMatch(t, "stderr", stderr, `^goroutine \d+ .*\[running\]:$`)
	if !strings.Contains(stderr, `"msg":"hanode starting"`) {
		t.Errorf("the node panicked before it started:\n%s", stderr)
	}
	requireRestarted(t, code)
}

// TestExitDebugPanicFlagIsHidden: the test-only flag is not in `hanode run
// --help`.
func TestExitDebugPanicFlagIsHidden(t *testing.T) {
	out, stderr, code := cli(t, "run", "--help")
	if code != 0 {
		t.Fatalf("hanode run --help: exit %d\n%s", code, stderr)
	}
	if strings.Contains(out, "debug-panic") {
		t.Errorf("hanode run --help shows the test-only flag:\n%s", out)
	}
}

// TestExitBadConfigurationIs78AndFinal: a bad configuration exits 78
// (EX_CONFIG), for `run` and `check-config` alike, and the unit does not
// restart it; a usage error exits 78 too.
func TestExitBadConfigurationIs78AndFinal(t *testing.T) {
	bad := writeFile(t, "bad.env", "NAME=n1\nROLE=boss\n")
	for _, args := range [][]string{
		{"run", "--env-file", bad},
		{"check-config", "--env-file", bad},
		{"run", "--no-such-flag"},
		{"rnu"},
	} {
		_, stderr, code := cli(t, args...)
		if code != 78 {
			t.Errorf("hanode %s: exit %d, want 78\n%s", strings.Join(args, " "), code, stderr)
		}
	}
	if prevented := unitRestartPrevented(t); !slices.Contains(prevented, "78") || !slices.Contains(prevented, "77") {
		t.Errorf("RestartPreventExitStatus=%s, want 77 and 78 in it", strings.Join(prevented, " "))
	}
}

// requireRestarted fails the test if the shipped unit would not restart a
// process that exited with code.
func requireRestarted(t *testing.T, code int) {
	t.Helper()
	unit := readUnit(t)
	if !slices.Contains(strings.Split(unit, "\n"), "Restart=on-failure") {
		t.Errorf("the unit does not say Restart=on-failure")
	}
	if slices.Contains(unitRestartPrevented(t), strconv.Itoa(code)) {
		t.Errorf("the unit's RestartPreventExitStatus holds %d: a panic or SIGQUIT would leave the node down", code)
	}
}

func readUnit(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "etc", "systemd", "hanode.service"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// unitRestartPrevented lists the statuses of the unit's
// RestartPreventExitStatus= lines.
func unitRestartPrevented(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(readUnit(t), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "RestartPreventExitStatus="); ok {
			out = append(out, strings.Fields(v)...)
		}
	}
	return out
}
