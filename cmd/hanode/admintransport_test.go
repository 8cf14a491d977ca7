package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/ping"
)

// recordingAdmin records pauses; requests arrive on the server's goroutines.
type recordingAdmin struct {
	mu     sync.Mutex
	paused []string
}

func (a *recordingAdmin) Pause(_ context.Context, reason string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.paused = append(a.paused, reason)
	return nil
}

func (a *recordingAdmin) Resume(context.Context) error { return nil }

func (a *recordingAdmin) Switchover(_ context.Context, to string) (string, error) { return to, nil }

func (a *recordingAdmin) reasons() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.paused...)
}

type oneEntry struct{}

func (oneEntry) History(int) ([]ha.HistoryEntry, error) {
	return []ha.HistoryEntry{{At: t0, To: "nsg-b", Cause: ha.CausePause, Reason: "over the socket"}}, nil
}

// nodeHandler is a node's HTTP side with the admin API (token "" for none)
// and the history.
func nodeHandler(a ping.Admin, token string) *ping.Handler {
	h := ping.New(ping.Identity{Name: "nsg-b", NetID: "1"}, ha.StateFunc(func() ha.State { return ha.State{Phase: ha.PhaseStandby} }), nil)
	h.MountAdmin(a, token)
	h.MountHistory(oneEntry{})
	return h
}

// shortDir is a fresh directory whose paths fit a socket's sun_path.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ht")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// serveSocket serves h on a new admin socket until the test ends.
func serveSocket(t *testing.T, h *ping.Handler) string {
	t.Helper()
	path := filepath.Join(shortDir(t), "admin.sock")
	ln, err := ping.ListenSocket(path)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ping.ServeSocket(ctx, ln, h, nil) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(2 * ping.ShutdownTimeout):
			t.Error("ServeSocket did not return")
		}
	})
	return path
}

// serveHTTP serves h on a loopback port until the test ends.
func serveHTTP(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// envFile writes a node's env file with extra lines.
func envFile(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hanode.env")
	body := "NAME=nsg-b\nROLE=primary\n" + strings.Join(lines, "\n") + "\n"
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

// hanodeCmd runs the CLI in process and returns its stdout and error.
func hanodeCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	root.SetArgs(args)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.Execute()
	return out.String(), err
}

// TestAdminCommandsUseTheSocketWithoutAToken: with ADMIN_SOCKET in the env
// file and no token, pause and history reach the node over the socket;
// HTTP_LISTEN (where nothing listens) is not asked.
func TestAdminCommandsUseTheSocketWithoutAToken(t *testing.T) {
	a := &recordingAdmin{}
	sock := serveSocket(t, nodeHandler(a, ""))
	env := envFile(t, "ADMIN_SOCKET="+sock, "HTTP_LISTEN="+goneMember(t))

	out, err := hanodeCmd(t, "pause", "--env-file", env, "--reason", "kernel upgrade")
	require.NoError(t, err)
	assert.Equal(t, "paused: no takeover until resumed\n", out)
	assert.Equal(t, []string{"kernel upgrade"}, a.reasons())

	out, err = hanodeCmd(t, "history", "--env-file", env)
	require.NoError(t, err)
	assert.Contains(t, out, "over the socket")
}

// TestAdminCommandsFallBackToHTTPWithTheToken: an ADMIN_SOCKET that does
// not exist (the node does not serve one) leaves HTTP_LISTEN with the
// token, as before the socket.
func TestAdminCommandsFallBackToHTTPWithTheToken(t *testing.T) {
	const token = "cli-admin-token-0123456789"
	a := &recordingAdmin{}
	addr := serveHTTP(t, nodeHandler(a, token))
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(token), 0o600))
	env := envFile(t, "ADMIN_SOCKET="+filepath.Join(shortDir(t), "absent.sock"), "HTTP_LISTEN="+addr, "ADMIN_TOKEN_FILE="+tokenFile)

	out, err := hanodeCmd(t, "pause", "--env-file", env, "--reason", "over http")
	require.NoError(t, err)
	assert.Equal(t, "paused: no takeover until resumed\n", out)
	assert.Equal(t, []string{"over http"}, a.reasons())
}

// TestSocketFlagOverridesTheEnvFile: --socket names the socket to use,
// whatever ADMIN_SOCKET says, and never falls back to HTTP.
func TestSocketFlagOverridesTheEnvFile(t *testing.T) {
	a := &recordingAdmin{}
	sock := serveSocket(t, nodeHandler(a, ""))
	env := envFile(t, "ADMIN_SOCKET="+filepath.Join(shortDir(t), "absent.sock"), "HTTP_LISTEN="+goneMember(t))
	out, err := hanodeCmd(t, "pause", "--env-file", env, "--socket", sock, "--reason", "flag")
	require.NoError(t, err)
	assert.Equal(t, "paused: no takeover until resumed\n", out)
	assert.Equal(t, []string{"flag"}, a.reasons())

	const token = "cli-admin-token-0123456789"
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(token), 0o600))
	addr := serveHTTP(t, nodeHandler(a, token))
	missing := filepath.Join(shortDir(t), "missing.sock")
	env = envFile(t, "HTTP_LISTEN="+addr, "ADMIN_TOKEN_FILE="+tokenFile)
	_, err = hanodeCmd(t, "pause", "--env-file", env, "--socket", missing)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "over the admin socket "+missing+" (--socket)")
	assert.Contains(t, err.Error(), "is hanode running")
	assert.Equal(t, []string{"flag"}, a.reasons(), "fell back to HTTP")
}

// TestAdminCommandsSayWhatWasTriedAndTheFix: when neither way can work,
// the error names each way tried and both fixes; with nothing configured
// it is a usage error (exit 78), with a socket configured but absent (the
// node down) a runtime one (exit 1).
func TestAdminCommandsSayWhatWasTriedAndTheFix(t *testing.T) {
	env := envFile(t, "HTTP_LISTEN="+goneMember(t))
	_, err := hanodeCmd(t, "resume", "--env-file", env)
	require.Error(t, err)
	assert.Equal(t, exitConfig, exitStatus(err))
	for _, want := range []string{"ADMIN_SOCKET is not set", "no admin token for HTTP_LISTEN (ADMIN_TOKEN_FILE is not set in " + env + ")",
		"Fix: set ADMIN_SOCKET (e.g. /run/hanode/admin.sock) in " + env, "or set ADMIN_TOKEN_FILE in " + env} {
		assert.Contains(t, err.Error(), want)
	}

	missing := filepath.Join(shortDir(t), "admin.sock")
	env = envFile(t, "HTTP_LISTEN="+goneMember(t), "ADMIN_SOCKET="+missing)
	_, err = hanodeCmd(t, "switchover", "--env-file", env)
	require.Error(t, err)
	assert.Equal(t, exitFailure, exitStatus(err))
	for _, want := range []string{"the admin socket " + missing + " (ADMIN_SOCKET)", "no such file or directory",
		"is hanode running, with ADMIN_SOCKET=" + missing, "Fix: start hanode with this env file", "or set ADMIN_TOKEN_FILE in " + env} {
		assert.Contains(t, err.Error(), want)
	}

	// A token but nothing answering: both attempts are named.
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("cli-admin-token-0123456789"), 0o600))
	gone := goneMember(t)
	env = envFile(t, "HTTP_LISTEN="+gone, "ADMIN_SOCKET="+missing, "ADMIN_TOKEN_FILE="+tokenFile)
	_, err = hanodeCmd(t, "pause", "--env-file", env)
	require.Error(t, err)
	for _, want := range []string{"the admin socket " + missing + " (ADMIN_SOCKET)", "http://" + gone + "/v2/admin/pause (HTTP_LISTEN)",
		"connection refused"} {
		assert.Contains(t, err.Error(), want)
	}
}
