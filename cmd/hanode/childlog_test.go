package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestLogLinesSplitsLongLinesAndKeepsTheLast: every line is one entry, a
// line longer than maxLine several, and a last line without an end of line
// is not lost.
func TestLogLinesSplitsLongLinesAndKeepsTheLast(t *testing.T) {
	long := strings.Repeat("x", maxLine+10)
	var got []string
	logLines(strings.NewReader("one\r\ntwo\n"+long+"\nlast"), func(s string) { got = append(got, s) })
	assert.Equal(t, []string{"one", "two", long[:maxLine], long[maxLine:], "last"}, got)
}

// TestChildOutputIsLoggedAsJSONLines: with LOG_FORMAT=json a child's
// stdout and stderr become log entries, each naming its stream; with the
// console format the child writes to the stream itself.
func TestChildOutputIsLoggedAsJSONLines(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	log := zap.New(core)
	stdout, err := newChildLog(log, "json", "stdout", os.Stdout)
	require.NoError(t, err)
	stderr, err := newChildLog(log, "json", "stderr", os.Stderr)
	require.NoError(t, err)
	cmd := exec.Command("/bin/sh", "-c", `echo "hello from the duty"; echo "a complaint" >&2`)
	cmd.Stdout, cmd.Stderr = stdout.w, stderr.w
	require.NoError(t, cmd.Run())
	stdout.Close(5 * time.Second)
	stderr.Close(5 * time.Second)
	var got []string
	for _, e := range logs.AllUntimed() {
		got = append(got, fmt.Sprintf("%s %s %v %v", e.Level, e.Message, e.ContextMap()["stream"], e.ContextMap()["line"]))
	}
	assert.ElementsMatch(t, []string{"info output stdout hello from the duty", "info output stderr a complaint"}, got)

	console, err := newChildLog(log, "console", "stdout", os.Stdout)
	require.NoError(t, err)
	assert.Same(t, os.Stdout, console.w)
	console.Close(time.Second)
}

// TestLoggerHasNoStackTraces: an error or a warning, in either format,
// carries no stack trace.
func TestLoggerHasNoStackTraces(t *testing.T) {
	for _, format := range []string{"json", "console"} {
		t.Run(format, func(t *testing.T) {
			log, err := newLogger("info", format)
			require.NoError(t, err)
			core, logs := observer.New(zapcore.InfoLevel)
			// The core is replaced, the logger's stack trace option kept.
			log = log.WithOptions(zap.WrapCore(func(zapcore.Core) zapcore.Core { return core }))
			log.Error("duty did not stop", zap.Error(fmt.Errorf("jail not empty")))
			log.Warn("no ZooKeeper session")
			require.Len(t, logs.All(), 2)
			for _, e := range logs.All() {
				assert.Empty(t, e.Stack, e.Message)
			}
		})
	}
}
