// Package e2e tests the real hanode binary against a real ZooKeeper server
// in Docker (internal/zktest): elections, failover, refusals, standalone
// mode and configuration errors, as an operator would see them through the
// CLI, the env file, the exit status, the log and the HTTP endpoints.
package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/haproxytest"
	"github.com/hanode/hanode/internal/nodetest"
)

func TestMain(m *testing.M) {
	code := nodetest.Main(m)
	haproxytest.Cleanup()
	os.Exit(code)
}

// Generous bounds: the numbers belong in bench/, these only catch hangs.
const (
	electionTimeout = 20 * time.Second // first leader of a fresh group
	gracefulBound   = 3 * time.Second  // SIGTERM to the leader until another answers ok
	exitBound       = 10 * time.Second // SIGTERM until the process exited
	cliTimeout      = 30 * time.Second
)

// cli runs the hanode binary with args and returns stdout, stderr and the
// exit code.
func cli(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodetest.Build(t), args...)
	cmd.Env = cleanEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("hanode %s: no exit within %v\nstderr: %s", strings.Join(args, " "), cliTimeout, errb.String())
	}
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("hanode %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// cleanEnv is the test's environment without HANODE_* settings.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HANODE_") {
			out = append(out, kv)
		}
	}
	return out
}

// writeFile writes a file in a fresh temporary directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := t.TempDir() + "/" + name
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// mustContain fails the test for every want missing from text.
func mustContain(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, text)
		}
	}
}
