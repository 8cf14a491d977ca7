package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hanode/hanode/internal/testwait"
)

// signalsHelperEnv makes the test binary a helper process (TestMain).
const signalsHelperEnv = "HANODE_SIGNALS_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(signalsHelperEnv); mode != "" {
		os.Exit(brokenStderrHelper(mode))
	}
	os.Exit(m.Run())
}

// brokenStderrHelper says "ready" on stderr, waits for a line on stdin (by
// then the parent has closed the read end of its stderr), logs a thousand
// lines and writes to stderr directly, then says "survived" on stdout. In
// mode "handled" it runs under notifySignals first.
func brokenStderrHelper(mode string) int {
	log, err := newLogger("info", "json")
	if err != nil {
		return 2
	}
	if mode == "handled" {
		_, stop := notifySignals(context.Background(), log, nil)
		defer stop()
	}
	fmt.Fprintln(os.Stderr, "ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return 2
	}
	for i := range 1000 {
		log.Info("a line nobody reads", zap.Int("i", i))
	}
	_, werr := fmt.Fprintln(os.Stderr, "direct")
	fmt.Println("survived; stderr write error:", errors.Is(werr, syscall.EPIPE))
	return 0
}

// TestSignalsSIGHUPIsLoggedAndIgnored: without a reload (the duty guard), a
// hangup neither ends the process nor cancels the context; it is logged
// with the reason.
func TestSignalsSIGHUPIsLoggedAndIgnored(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	ctx, stop := notifySignals(context.Background(), zap.New(core), nil)
	defer stop()
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	testwait.For(t, 5*time.Second, "SIGHUP to be logged", func() bool { return logs.FilterMessage("signal ignored").Len() == 1 })
	e := logs.FilterMessage("signal ignored").All()[0]
	assert.Equal(t, zapcore.WarnLevel, e.Level)
	assert.Equal(t, "SIGHUP", e.ContextMap()["signal"])
	assert.Contains(t, e.ContextMap()["reason"], "no configuration to reload")
	assert.NoError(t, ctx.Err(), "SIGHUP cancelled the context")
}

// TestSignalsSIGHUPReloads: with a reload (`hanode run`), each hangup calls
// it once, logged, and the process goes on.
func TestSignalsSIGHUPReloads(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	var reloads atomic.Int32
	ctx, stop := notifySignals(context.Background(), zap.New(core), func() { reloads.Add(1) })
	defer stop()
	for want := int32(1); want <= 2; want++ {
		require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
		testwait.For(t, 5*time.Second, fmt.Sprintf("reload %d", want), func() bool { return reloads.Load() == want })
	}
	assert.Equal(t, 2, logs.FilterMessage("signal received; reloading the configuration").FilterField(zap.String("signal", "SIGHUP")).Len())
	assert.Zero(t, logs.FilterMessage("signal ignored").Len())
	assert.NoError(t, ctx.Err(), "SIGHUP cancelled the context")
}

// TestSignalsTERMAndINTStartAShutdown: each cancels the context, logged.
func TestSignalsTERMAndINTStartAShutdown(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(signalName(sig), func(t *testing.T) {
			core, logs := observer.New(zapcore.InfoLevel)
			ctx, stop := notifySignals(context.Background(), zap.New(core), nil)
			defer stop()
			require.NoError(t, syscall.Kill(os.Getpid(), sig))
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
				t.Fatalf("%v did not cancel the context", sig)
			}
			testwait.For(t, 5*time.Second, "the signal to be logged", func() bool {
				return logs.FilterMessage("signal received; shutting down").FilterField(zap.String("signal", signalName(sig))).Len() == 1
			})
		})
	}
}

// TestSignalsStopCancelsTheContext: stop releases everything at once.
func TestSignalsStopCancelsTheContext(t *testing.T) {
	ctx, stop := notifySignals(context.Background(), nil, nil)
	stop()
	stop() // idempotent
	assert.Error(t, ctx.Err())
}

// TestSignalsLeaveTheDutyDefaultActions: signals are caught, not ignored, so
// a process hanode starts (the duty) does not inherit SIG_IGN for SIGHUP or
// SIGPIPE.
func TestSignalsLeaveTheDutyDefaultActions(t *testing.T) {
	if ignored(t, os.Getpid(), syscall.SIGHUP) || ignored(t, os.Getpid(), syscall.SIGPIPE) {
		t.Skip("the test itself runs with SIGHUP or SIGPIPE ignored (nohup?)")
	}
	_, stop := notifySignals(context.Background(), nil, nil)
	defer stop()
	out, err := exec.Command("/bin/sh", "-c", "grep '^SigIgn:' /proc/self/status").Output()
	require.NoError(t, err)
	mask := parseSigIgn(t, string(out))
	assert.Zero(t, mask&(1<<(syscall.SIGHUP-1)), "a child inherits SIGHUP ignored")
	assert.Zero(t, mask&(1<<(syscall.SIGPIPE-1)), "a child inherits SIGPIPE ignored")
}

func ignored(t *testing.T, pid int, sig syscall.Signal) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "SigIgn:") {
			return parseSigIgn(t, line)&(1<<(sig-1)) != 0
		}
	}
	return false
}

func parseSigIgn(t *testing.T, line string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "SigIgn:")), 16, 64)
	require.NoError(t, err)
	return v
}

// TestSignalsBrokenStderrIsHarmless: a process whose stderr pipe lost its
// reader keeps logging (the lines are dropped) and goes on; without
// notifySignals, the first write kills it with SIGPIPE.
func TestSignalsBrokenStderrIsHarmless(t *testing.T) {
	for _, tc := range []struct {
		mode     string
		survives bool
	}{
		{"handled", true},
		{"unhandled", false},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0])
			cmd.Env = append(os.Environ(), signalsHelperEnv+"="+tc.mode)
			pr, pw, err := os.Pipe()
			require.NoError(t, err)
			stdin, err := cmd.StdinPipe()
			require.NoError(t, err)
			var stdout strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, pw
			require.NoError(t, cmd.Start())
			_ = pw.Close()
			line, err := bufio.NewReader(pr).ReadString('\n')
			require.NoError(t, err)
			require.Equal(t, "ready\n", line)
			require.NoError(t, pr.Close()) // the log reader goes away
			_, err = stdin.Write([]byte("go\n"))
			require.NoError(t, err)
			err = cmd.Wait()
			require.NoError(t, ctx.Err(), "the helper hung")
			if tc.survives {
				require.NoError(t, err)
				assert.Equal(t, "survived; stderr write error: true\n", stdout.String())
				return
			}
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit)
			ws := exit.Sys().(syscall.WaitStatus)
			assert.True(t, ws.Signaled() && ws.Signal() == syscall.SIGPIPE, "want death by SIGPIPE, got %v", err)
		})
	}
}
