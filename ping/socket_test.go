package ping

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/ha"
)

// lockedAdmin is fakeAdmin for requests served on another goroutine.
type lockedAdmin struct {
	mu sync.Mutex
	fakeAdmin
}

func (l *lockedAdmin) Pause(ctx context.Context, reason string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fakeAdmin.Pause(ctx, reason)
}

func (l *lockedAdmin) Resume(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fakeAdmin.Resume(ctx)
}

func (l *lockedAdmin) Switchover(ctx context.Context, to string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fakeAdmin.Switchover(ctx, to)
}

func (l *lockedAdmin) calls() ([]string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.paused...), l.resumed
}

// socketPath is a path for a socket in a fresh directory short enough for
// sun_path (t.TempDir's can be long).
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hs")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "admin.sock")
}

// socketClient is an HTTP client that reaches path.
func socketClient(path string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

func socketDo(t *testing.T, c *http.Client, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://admin-socket"+path, strings.NewReader(body))
	require.NoError(t, err)
	res, err := c.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b)
}

// serveTestSocket serves h on a new admin socket as uid self until the
// test ends, and returns the socket's path and a wait for ServeSocket's
// return after cancel.
func serveTestSocket(t *testing.T, h *Handler, self uint32) (path string, stop func() error) {
	t.Helper()
	path = socketPath(t)
	ln, err := ListenSocket(path)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveSocket(ctx, ln, h, nil, self) }()
	var once sync.Once
	var serr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case serr = <-done:
			case <-time.After(2 * ShutdownTimeout):
				serr = errors.New("ServeSocket did not return")
			}
		})
		return serr
	}
	t.Cleanup(func() { _ = stop() })
	return path, stop
}

func adminHandler(a Admin, token string) *Handler {
	h := New(testID, ha.StateFunc(func() ha.State { return ha.State{Phase: ha.PhaseStandby} }), nil)
	h.MountAdmin(a, token)
	h.MountHistory(&fakeHistory{entries: []ha.HistoryEntry{{From: "a", To: "b", Term: 7, Cause: ha.CauseSwitchover}}})
	return h
}

// TestSocketServesAdminAndReadsWithoutAToken: over the admin socket pause,
// resume and switchover need no token, with or without one configured for
// HTTP, and /v2/status and /v2/history answer; nothing else is served
// there (pings, the page, metrics). Over HTTP the same handler still
// wants the token (401) or is off (403).
func TestSocketServesAdminAndReadsWithoutAToken(t *testing.T) {
	for _, token := range []string{"", "s3cret-token-0123456789"} {
		a := &lockedAdmin{}
		h := adminHandler(a, token)
		path, stop := serveTestSocket(t, h, uint32(os.Geteuid()))
		c := socketClient(path)

		code, body := socketDo(t, c, http.MethodPost, PathAdminPause, "kernel upgrade")
		require.Equal(t, http.StatusOK, code, body)
		assert.JSONEq(t, `{"result": "paused: no takeover until resumed"}`, body)
		code, _ = socketDo(t, c, http.MethodPost, PathAdminResume, "")
		assert.Equal(t, http.StatusOK, code)
		code, body = socketDo(t, c, http.MethodPost, PathAdminSwitchover+"?to=nsg-c", "")
		assert.Equal(t, http.StatusOK, code)
		assert.JSONEq(t, `{"result": "nsg-c leads"}`, body)
		paused, resumed := a.calls()
		assert.Equal(t, []string{"kernel upgrade"}, paused)
		assert.Equal(t, 1, resumed)

		code, _ = socketDo(t, c, http.MethodGet, PathAdminPause, "")
		assert.Equal(t, http.StatusMethodNotAllowed, code, "still POST only")
		code, body = socketDo(t, c, http.MethodGet, PathStatus, "")
		require.Equal(t, http.StatusOK, code)
		var st Status
		require.NoError(t, json.Unmarshal([]byte(body), &st))
		assert.Equal(t, testID.Name, st.Name)
		code, body = socketDo(t, c, http.MethodGet, PathHistory, "")
		assert.Equal(t, http.StatusOK, code)
		assert.Contains(t, body, `"cause": "switchover"`)
		for _, p := range []string{"/v2/ping/net/1/", "/v2/ping/net/1/se/", "/", PathMetrics, "/v2/state"} {
			code, body := socketDo(t, c, http.MethodGet, p, "")
			assert.Equal(t, http.StatusNotFound, code, p)
			assert.Contains(t, body, "not served on the admin socket", p)
		}

		// HTTP, the same handler: the token is still needed.
		rec := adminDo(t, h, http.MethodPost, PathAdminResume, "", "")
		if token == "" {
			assert.Equal(t, http.StatusForbidden, rec.Code)
			assert.Contains(t, rec.Body.String(), "no token configured")
			assert.Contains(t, rec.Body.String(), "ADMIN_SOCKET")
		} else {
			assert.Equal(t, http.StatusUnauthorized, rec.Code)
		}
		_, resumed = a.calls()
		assert.Equal(t, 1, resumed, "an HTTP request without the token resumed")
		require.NoError(t, stop())
	}
}

// TestSocketIsOwnerOnlyAndRemovedOnShutdown: the socket file is born mode
// 0600 even with umask 0, owned by this process's user; a clean shutdown
// removes it.
func TestSocketIsOwnerOnlyAndRemovedOnShutdown(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path, stop := serveTestSocket(t, adminHandler(&lockedAdmin{}, ""), uint32(os.Geteuid()))
	syscall.Umask(old)
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSocket, fi.Mode().Type())
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	assert.Equal(t, uint32(os.Geteuid()), fi.Sys().(*syscall.Stat_t).Uid)

	code, _ := socketDo(t, socketClient(path), http.MethodGet, PathStatus, "")
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, stop())
	_, err = os.Lstat(path)
	assert.ErrorIs(t, err, os.ErrNotExist, "the socket outlived a clean shutdown")
}

// TestSocketReplacesAStaleOne: a socket file nothing answers on (its
// process died) is replaced, and the new one serves.
func TestSocketReplacesAStaleOne(t *testing.T) {
	path := socketPath(t)
	dead, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	dead.SetUnlinkOnClose(false)
	require.NoError(t, dead.Close())
	fi, err := os.Lstat(path)
	require.NoError(t, err, "the stale socket is there")
	require.Equal(t, os.ModeSocket, fi.Mode().Type())

	ln, err := ListenSocket(path)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeSocket(ctx, ln, adminHandler(&lockedAdmin{}, ""), nil) }()
	code, _ := socketDo(t, socketClient(path), http.MethodGet, PathStatus, "")
	assert.Equal(t, http.StatusOK, code)
	cancel()
	require.NoError(t, <-done)
}

// TestSocketRefusesWhatItMustNotRemove: a regular file, a directory or a
// symbolic link at the path is refused (ErrNotSocket) and left alone; a
// socket a live process answers on is refused (ErrSocketInUse) and keeps
// serving; a missing directory is an error naming the path.
func TestSocketRefusesWhatItMustNotRemove(t *testing.T) {
	path := socketPath(t)
	require.NoError(t, os.WriteFile(path, []byte("keep me"), 0o644))
	_, err := ListenSocket(path)
	require.ErrorIs(t, err, ErrNotSocket)
	assert.Contains(t, err.Error(), path+" exists and is a regular file")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "keep me", string(b))

	dir := socketPath(t)
	require.NoError(t, os.Mkdir(dir, 0o755))
	_, err = ListenSocket(dir)
	require.ErrorIs(t, err, ErrNotSocket)
	assert.Contains(t, err.Error(), "is a directory")

	link := socketPath(t)
	require.NoError(t, os.Symlink(path, link))
	_, err = ListenSocket(link)
	require.ErrorIs(t, err, ErrNotSocket)
	assert.Contains(t, err.Error(), "is a symbolic link")

	live, _ := serveTestSocket(t, adminHandler(&lockedAdmin{}, ""), uint32(os.Geteuid()))
	_, err = ListenSocket(live)
	require.ErrorIs(t, err, ErrSocketInUse)
	code, _ := socketDo(t, socketClient(live), http.MethodGet, PathStatus, "")
	assert.Equal(t, http.StatusOK, code, "the live socket still serves")

	_, err = ListenSocket(filepath.Join(filepath.Dir(path), "missing", "admin.sock"))
	require.Error(t, err)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// TestSocketPeerRule: only the node's user and root are served; another
// uid gets 403 saying who may, and the admin API is not called. A peer
// whose credentials could not be read is refused too.
func TestSocketPeerRule(t *testing.T) {
	assert.True(t, peerAllowed(998, 998))
	assert.True(t, peerAllowed(0, 998))
	assert.False(t, peerAllowed(1000, 998))
	assert.True(t, peerAllowed(0, 0))

	a := &lockedAdmin{}
	sh := adminHandler(a, "").socketHandler(998)
	for _, p := range []peer{{uid: 1000, pid: 42}, {err: errors.New("getsockopt: bad file descriptor")}} {
		req := httptestRequest(t, http.MethodPost, PathAdminPause, p)
		rec := httptest.NewRecorder()
		sh.ServeHTTP(rec, req)
		assert.Equal(t, http.StatusForbidden, rec.Code)
		if p.err == nil {
			assert.Contains(t, rec.Body.String(), "uid 1000 may not use the admin socket: only this node's user (uid 998) and root may")
		} else {
			assert.Contains(t, rec.Body.String(), "bad file descriptor")
		}
	}
	paused, _ := a.calls()
	assert.Empty(t, paused)

	// The real socket reads this process's credentials: served.
	path, _ := serveTestSocket(t, adminHandler(a, ""), uint32(os.Geteuid()))
	code, _ := socketDo(t, socketClient(path), http.MethodPost, PathAdminPause, "")
	assert.Equal(t, http.StatusOK, code)
}

func httptestRequest(t *testing.T, method, path string, p peer) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://admin-socket"+path, nil)
	require.NoError(t, err)
	return req.WithContext(context.WithValue(req.Context(), peerKey{}, p))
}
