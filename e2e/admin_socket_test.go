package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/zktest"
	"github.com/hanode/hanode/ping"
)

// socketDir is a fresh directory for admin sockets, short enough for a
// socket's path (a test's TempDir can be longer than sun_path allows).
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hsock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// TestAdminSocketPausesAndResumesWithoutAToken: the members of a group have
// ADMIN_SOCKET and no admin token. Each serves its socket, mode 0600 and
// owned by its user; the HTTP admin API refuses (403, no token
// configured); hanode pause, history and resume with the standby's env
// file reach it over the socket and act on the whole group. A second
// hanode on the same socket is refused (exit 1, naming the key) and the
// first keeps serving; a SIGKILLed node's stale socket is replaced when it
// restarts; a clean stop removes it.
func TestAdminSocketPausesAndResumesWithoutAToken(t *testing.T) {
	zk := zktest.Start(t)
	haID := nodetest.GroupID(t)
	dir := socketDir(t)
	socks := map[string]string{}
	var nodes []*nodetest.Node
	for _, name := range []string{"a", "b"} {
		env := nodetest.HAEnv(zk.Addr, haID, name)
		socks[name] = filepath.Join(dir, name+".sock")
		env["ADMIN_SOCKET"] = socks[name]
		nodes = append(nodes, nodetest.Start(t, nodetest.Options{Name: name, Env: env}))
	}
	chk := nodetest.NewChecker(t, nodes...)
	leader := chk.Node(chk.WaitSingleLeader(electionTimeout))
	standby := nodes[0]
	if standby == leader {
		standby = nodes[1]
	}
	sock := socks[standby.Name()]

	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatalf("%s serves no admin socket: %v\n%s", standby, err, standby.Logs())
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != uint32(os.Geteuid()) {
		t.Errorf("admin socket %s: mode %v, owner %d; want a socket, 0600, owned by uid %d", sock, fi.Mode(),
			fi.Sys().(*syscall.Stat_t).Uid, os.Geteuid())
	}
	if !standby.HasLog("ping: serving the admin socket") {
		t.Errorf("%s did not log its admin socket\n%s", standby, standby.Logs())
	}

	// Over HTTP, with no token configured: 403, saying so.
	res, err := http.Post(standby.URL(ping.PathAdminPause), "text/plain", strings.NewReader("over http"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "no token configured") {
		t.Errorf("HTTP pause without a token: %s %s, want 403 saying no token is configured", res.Status, body)
	}

	stdout, stderr, code := cli(t, "pause", "--env-file", standby.EnvFilePath(), "--reason", "socket maintenance")
	if code != 0 || !strings.Contains(stdout, "paused") {
		t.Fatalf("hanode pause over the socket: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	for _, n := range nodes {
		if _, err := n.WaitStatus(10*time.Second, func(st ping.Status) bool {
			return st.Paused != nil && st.Paused.Reason == "socket maintenance" && st.Paused.By == standby.Name()
		}); err != nil {
			t.Fatalf("%s never showed the pause: %v", n, err)
		}
	}
	if stdout, stderr, code := cli(t, "history", "--env-file", standby.EnvFilePath(), "--socket", sock); code != 0 ||
		!strings.Contains(stdout, "socket maintenance") {
		t.Errorf("hanode history --socket: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	if _, stderr, code := cli(t, "resume", "--env-file", standby.EnvFilePath()); code != 0 {
		t.Fatalf("hanode resume over the socket: exit %d: %s", code, stderr)
	}
	for _, n := range nodes {
		if _, err := n.WaitStatus(10*time.Second, func(st ping.Status) bool { return st.Paused == nil }); err != nil {
			t.Fatalf("%s still shows the pause after the resume: %v", n, err)
		}
	}

	// A second node on the same socket: refused, naming the key; the first
	// still serves it.
	env := nodetest.HAEnv(zk.Addr, haID, "c")
	env["ADMIN_SOCKET"] = sock
	second := nodetest.Launch(t, nodetest.Options{Name: "c", Env: env})
	if code := second.WaitExit(exitBound); code != 1 {
		t.Errorf("a second hanode on %s exited %d, want 1", sock, code)
	}
	mustContain(t, "the second hanode's log", second.Logs(), `ADMIN_SOCKET="`+sock+`"`, "another process serves this socket")
	if _, stderr, code := cli(t, "resume", "--env-file", standby.EnvFilePath()); code != 0 {
		t.Errorf("the admin socket stopped serving after the refused second node: exit %d: %s", code, stderr)
	}

	// SIGKILL leaves the socket file; the restart replaces it and serves.
	standby.Kill()
	standby.WaitExit(exitBound)
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("a killed node's socket is gone already (%v): the stale case is not tested", err)
	}
	standby.Restart()
	if _, stderr, code := cli(t, "resume", "--env-file", standby.EnvFilePath()); code != 0 {
		t.Errorf("resume over the socket of the restarted node: exit %d: %s\n%s", code, stderr, standby.Logs())
	}

	// A clean stop removes it.
	standby.Term()
	if code := standby.WaitExit(exitBound); code != 0 {
		t.Errorf("%s exited %d after SIGTERM", standby, code)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("the admin socket outlived a clean stop: %v", err)
	}
	chk.Assert(t)
}
