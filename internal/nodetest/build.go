package nodetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// BinEnv names an environment variable that, when set, is used as the hanode
// binary instead of building one (for a binary built with other flags).
const BinEnv = "HANODE_BIN"

// Version is the version string compiled into the binary Build makes, so
// tests can check `hanode version`.
const Version = "0.0.0-nodetest"

const buildTimeout = 5 * time.Minute

var build struct {
	once sync.Once
	dir  string // temporary directory holding the binary, "" with BinEnv
	path string
	err  error
}

// Build returns the path of a hanode binary built from this module's
// ./cmd/hanode, building it on the first call in the test binary (later calls
// reuse it). It fails the test if the build fails.
func Build(t testing.TB) string {
	t.Helper()
	path, err := BuildOnce()
	if err != nil {
		t.Fatalf("nodetest: %v", err)
	}
	return path
}

// BuildOnce is Build without a test: it returns the binary or the build error.
func BuildOnce() (string, error) {
	build.once.Do(func() {
		if bin := os.Getenv(BinEnv); bin != "" {
			build.path = bin
			if _, err := os.Stat(bin); err != nil {
				build.err = fmt.Errorf("%s=%s: %w", BinEnv, bin, err)
			}
			return
		}
		build.path, build.err = buildBinary()
	})
	return build.path, build.err
}

// Main runs the tests and removes the binary Build made; use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(nodetest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
	return code
}

func buildBinary() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "hanode-nodetest-")
	if err != nil {
		return "", err
	}
	build.dir = dir
	out := filepath.Join(dir, "hanode")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out,
		"-ldflags", "-X main.version="+Version, "./cmd/hanode")
	cmd.Dir = root
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/hanode in %s: %w\n%s", root, err, buf.String())
	}
	return out, nil
}

// moduleRoot finds the directory of this module's go.mod: `go env GOMOD` from
// the working directory (a package directory while testing), else the
// directory two levels above this source file.
func moduleRoot() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output(); err == nil {
		if gomod := strings.TrimSpace(string(out)); gomod != "" && gomod != os.DevNull {
			return filepath.Dir(gomod), nil
		}
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot find the module root")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("cannot find the module root: %w", err)
	}
	return root, nil
}
