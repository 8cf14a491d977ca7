package ping

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// The admin socket (issue 18): a Unix socket on this host on which the node
// serves the admin API and the read routes (/v2/status, /v2/history)
// without a bearer token. Who may connect is what guards it: the socket is
// born mode 0600, owned by the process's user, and every connection's peer
// credentials (SO_PEERCRED) are checked besides, so only that user and
// root are served; anyone else gets 403.

// Refusals of ListenSocket.
var (
	// ErrNotSocket: the path exists and is not a socket. Only a socket is
	// ever removed, and only a stale one.
	ErrNotSocket = errors.New("ping: not a socket")
	// ErrSocketInUse: a live process serves the path (a second node with
	// the same configuration?).
	ErrSocketInUse = errors.New("ping: socket in use")
)

// socketRoutes are the routes the admin socket serves; every other path
// answers 404 there.
var socketRoutes = map[string]bool{
	PathAdminPause: true, PathAdminResume: true, PathAdminSwitchover: true,
	PathStatus: true, PathHistory: true,
}

// staleDial bounds the dial that tells a live socket from a stale one.
const staleDial = time.Second

// SocketListener is the admin socket, made by ListenSocket. Close closes it
// and removes its file, if the file is still the one it made.
type SocketListener struct {
	*net.UnixListener
	path     string
	dev, ino uint64 // the socket file's identity, for Close
	once     sync.Once
}

// Path is the socket's path.
func (l *SocketListener) Path() string { return l.path }

// Close stops listening and removes the socket file, unless another file
// took its place meanwhile. It may be called more than once.
func (l *SocketListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		var st unix.Stat_t
		if unix.Lstat(l.path, &st) == nil && st.Dev == l.dev && st.Ino == l.ino {
			if rerr := os.Remove(l.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				err = errors.Join(err, rerr)
			}
		}
	})
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// ListenSocket creates the admin socket at path, mode 0600 and owned by
// this process's user, and listens on it. A socket file that nothing
// answers on (left by a process that died) is replaced. A path that exists
// and is not a socket is refused (ErrNotSocket), and so is a socket a live
// process answers on (ErrSocketInUse). The directory must exist.
//
// The file never has a wider mode while anyone can connect: it is made
// 0600 after bind(2) and before listen(2), and until listen a connect is
// refused. The check for a live socket and the bind happen under an
// exclusive lock on the directory, so two nodes starting at once cannot
// both find the path free.
func ListenSocket(path string) (*SocketListener, error) {
	// The lock is taken where it can be (a directory this user can read,
	// on a file system with flock); closing dir releases it, once the
	// socket answers. A missing directory fails at bind, saying so.
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		defer dir.Close()
		_ = unix.Flock(int(dir.Fd()), unix.LOCK_EX)
	}

	if err := clearStale(path); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("ping: socket %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path) // closes fd on every path below
	defer f.Close()
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		if errors.Is(err, unix.EADDRINUSE) {
			err = fmt.Errorf("%w: %s appeared while it was being created", ErrSocketInUse, path)
		}
		return nil, fmt.Errorf("ping: bind %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := os.Chmod(path, 0o600); err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("ping: socket %s: %w", path, err)
	}
	if err := unix.Lstat(path, &st); err != nil || st.Mode&0o777 != 0o600 {
		_ = os.Remove(path)
		return nil, fmt.Errorf("ping: socket %s: mode %04o after chmod 600: %v", path, st.Mode&0o7777, err)
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("ping: listen %s: %w", path, err)
	}
	ln, err := net.FileListener(f) // a dup of fd; f's copy is closed by the defer
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("ping: listen %s: %w", path, err)
	}
	return &SocketListener{UnixListener: ln.(*net.UnixListener), path: path, dev: st.Dev, ino: st.Ino}, nil
}

// clearStale makes way for a new socket at path: nothing there is fine, a
// socket nobody answers on is removed, anything else is refused.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("ping: socket %s: %w", path, err)
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("%w: %s exists and is a %s: only a stale socket is replaced; remove it or choose another path",
			ErrNotSocket, path, fileKind(fi.Mode()))
	}
	c, err := net.DialTimeout("unix", path, staleDial)
	switch {
	case err == nil:
		_ = c.Close()
		return fmt.Errorf("%w: a live process answers on %s", ErrSocketInUse, path)
	case errors.Is(err, syscall.EAGAIN) || dialTimedOut(err):
		// A full backlog: alive, and busy.
		return fmt.Errorf("%w: a live process listens on %s", ErrSocketInUse, path)
	case errors.Is(err, syscall.ECONNREFUSED):
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("ping: remove the stale socket %s: %w", path, err)
		}
		return nil
	}
	return fmt.Errorf("ping: socket %s: cannot tell whether it is in use: %w", path, err)
}

// dialTimedOut reports whether a dial ran out of time.
func dialTimedOut(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// fileKind names a file type for a refusal.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m.IsRegular():
		return "regular file"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	}
	return "file of type " + m.Type().String()
}

// peer is a connection's peer credentials, read once at accept.
type peer struct {
	pid      int32
	uid, gid uint32
	err      error // SO_PEERCRED failed: the peer is refused
}

// peerKey carries a connection's peer in its requests' contexts; only the
// admin socket's server sets it.
type peerKey struct{}

// trustedKey marks a request that came over the admin socket from an
// allowed peer: the admin API serves it without a token (adminAllowed).
type trustedKey struct{}

// fromSocket reports whether a request came over the admin socket from an
// allowed peer.
func fromSocket(ctx context.Context) bool {
	ok, _ := ctx.Value(trustedKey{}).(bool)
	return ok
}

// peerOf reads a connection's peer credentials.
func peerOf(c net.Conn) peer {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return peer{err: fmt.Errorf("not a Unix connection (%T)", c)}
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return peer{err: err}
	}
	var cred *unix.Ucred
	cerr := raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err = errors.Join(cerr, err); err != nil {
		return peer{err: err}
	}
	return peer{pid: cred.Pid, uid: cred.Uid, gid: cred.Gid}
}

// peerAllowed is the admin socket's rule: the process's own user (self)
// and root.
func peerAllowed(uid, self uint32) bool { return uid == self || uid == 0 }

// socketHandler serves the admin socket: it refuses peers other than self
// and root (403), answers 404 outside socketRoutes, and hands the rest to
// the node's routes, marked as trusted.
func (h *Handler) socketHandler(self uint32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := r.Context().Value(peerKey{}).(peer)
		switch {
		case !ok || p.err != nil:
			err := p.err
			if !ok {
				err = errors.New("not read")
			}
			socketAnswer(w, http.StatusForbidden, "refused: the admin socket could not read the peer's credentials: "+err.Error())
			return
		case !peerAllowed(p.uid, self):
			h.h.log.Warn("ping: admin socket refused a peer", zap.Uint32("uid", p.uid), zap.Int32("pid", p.pid))
			socketAnswer(w, http.StatusForbidden, fmt.Sprintf("refused: uid %d may not use the admin socket: only this node's user "+
				"(uid %d) and root may; use the HTTP admin API with the bearer token (ADMIN_TOKEN_FILE) instead", p.uid, self))
			return
		case !socketRoutes[r.URL.Path]:
			socketAnswer(w, http.StatusNotFound, "not served on the admin socket: "+r.URL.Path)
			return
		}
		h.echo.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), trustedKey{}, true)))
	})
}

// socketAnswer answers {"error": msg} as the admin API does.
func socketAnswer(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	b = append(b, '\n')
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", strconv.Itoa(len(b)))
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// ServeSocket serves the admin API and the read routes of h on ln, the
// admin socket (ListenSocket), without a token, to this process's user and
// root only (peer credentials), until ctx ends; then it shuts down like
// Serve (requests in flight get ShutdownTimeout) and removes the socket
// file. It owns ln and closes it. A nil log discards.
func ServeSocket(ctx context.Context, ln *SocketListener, h *Handler, log *zap.Logger) error {
	return serveSocket(ctx, ln, h, log, uint32(os.Geteuid()))
}

func serveSocket(ctx context.Context, ln *SocketListener, h *Handler, log *zap.Logger, self uint32) error {
	if log == nil {
		log = zap.NewNop()
	}
	errLog, err := zap.NewStdLogAt(log, zap.WarnLevel)
	if err != nil {
		errLog = zap.NewStdLog(log) // unreachable: WarnLevel is valid
	}
	srv := &http.Server{
		Handler:           h.socketHandler(self),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		// A switchover answers once the target leads: up to adminTimeout.
		WriteTimeout:   adminTimeout + writeTimeout,
		IdleTimeout:    idleTimeout,
		MaxHeaderBytes: maxHeaderBytes,
		ErrorLog:       errLog,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, peerKey{}, peerOf(c))
		},
	}
	log.Info("ping: serving the admin socket", zap.String("path", ln.Path()), zap.Uint32("uid", self))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var failed error
	select {
	case failed = <-served:
		log.Error("ping: admin socket failed", zap.String("path", ln.Path()), zap.Error(failed))
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	if failed == nil {
		if err = srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
		<-served
	}
	if cerr := ln.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if failed != nil {
		return fmt.Errorf("ping: serve %s: %w", ln.Path(), failed)
	}
	if err != nil {
		log.Warn("ping: admin socket shutdown incomplete", zap.String("path", ln.Path()), zap.Error(err))
		return fmt.Errorf("ping: shutdown %s: %w", ln.Path(), err)
	}
	log.Info("ping: admin socket stopped", zap.String("path", ln.Path()))
	return nil
}
