package e2e

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/haproxytest"
	"github.com/hanode/hanode/internal/nodetest"
)

// TestKeepalivedCheckScript: etc/keepalived/hanode-check.sh exits 0 only
// for a node that answers "ok": a standalone node (always active) passes;
// a group member that cannot reach ZooKeeper (503 standby), the same node
// asked on the route that always answers 200 ("standby" in the body), and
// a port where nothing listens fail. Both of its HTTP clients, curl and
// wget, are tried where installed.
func TestKeepalivedCheckScript(t *testing.T) {
	script, err := filepath.Abs(filepath.Join("..", "etc", "keepalived", "hanode-check.sh"))
	if err != nil {
		t.Fatal(err)
	}
	active := nodetest.Start(t, nodetest.Options{Name: "solo", Env: map[string]string{"NAME": "solo", "ROLE": "primary"}})
	// ZooKeeper on a port where nothing listens: the node stays out of its
	// group.
	standby := nodetest.Start(t, nodetest.Options{Name: "lost",
		Env: nodetest.HAEnv("127.0.0.1:"+closedPort(t), nodetest.GroupID(t), "lost")})
	closed := "http://127.0.0.1:" + closedPort(t) + "/v2/ping/net/1/se/"

	cases := []struct {
		name string
		url  string
		want int
	}{
		{"active", active.URL(active.PingSEPath()), 0},
		{"standby", standby.URL(standby.PingSEPath()), 1},
		{"standby on the route that always answers 200", standby.URL(standby.PingPath()), 1},
		{"nothing listening", closed, 1},
	}
	clients := 0
	for _, tool := range []string{"curl", "wget"} {
		path, err := exec.LookPath(tool)
		if err != nil {
			t.Logf("%s is not installed: the script's %s branch is not tested", tool, tool)
			continue
		}
		clients++
		// A PATH with this one client only.
		bin := t.TempDir()
		if err := os.Symlink(path, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
		for _, tc := range cases {
			t.Run(tool+"/"+tc.name, func(t *testing.T) {
				if got := runCheck(t, script, tc.url, bin); got != tc.want {
					t.Errorf("hanode-check.sh %s exited %d, want %d", tc.url, got, tc.want)
				}
			})
		}
	}
	if clients == 0 {
		t.Skip("neither curl nor wget is installed: hanode-check.sh is not tested")
	}
}

// runCheck runs the script with PATH=bin and returns its exit status.
func runCheck(t *testing.T, script, url, bin string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", script, url)
	cmd.Env = []string{"PATH=" + bin, "HANODE_CHECK_TIMEOUT=2"}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("hanode-check.sh %s did not exit within 10s", url)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		t.Fatalf("hanode-check.sh: %v\n%s", err, out)
	}
	return 0
}

// closedPort returns a loopback port nothing listens on (it was free a
// moment ago).
func closedPort(t *testing.T) string {
	t.Helper()
	_, port, err := net.SplitHostPort(haproxytest.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	return port
}
