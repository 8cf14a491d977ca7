package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/hanode/hanode/conf"
	"github.com/hanode/hanode/ping"
)

// listenAdminSocket opens the admin socket (ADMIN_SOCKET; nil when unset)
// before the node joins its group, so that a path it may not take fails the
// start: a file that is not a socket is a configuration error (exit 78), a
// socket another live process serves a runtime one (exit 1, like a busy
// HTTP_LISTEN port), each naming the key.
func listenAdminSocket(cfg *conf.Config) (*ping.SocketListener, error) {
	if cfg.AdminSocket == "" {
		return nil, nil
	}
	ln, err := ping.ListenSocket(cfg.AdminSocket)
	if err == nil {
		return ln, nil
	}
	s := conf.Setting{Key: conf.KeyAdminSocket, Value: cfg.AdminSocket}
	for _, set := range cfg.Settings() {
		if set.Key == conf.KeyAdminSocket {
			s = set
		}
	}
	where := fmt.Sprintf("%s=%q (from %s)", s.Key, s.Value, s.Source)
	switch {
	case errors.Is(err, ping.ErrNotSocket):
		return nil, &conf.FieldError{Key: s.Key, Value: s.Value, Source: s.Source,
			Msg: strings.TrimPrefix(err.Error(), ping.ErrNotSocket.Error()+": ")}
	case errors.Is(err, ping.ErrSocketInUse):
		return nil, fmt.Errorf("%s: another process serves this socket (a second hanode with the same configuration?): "+
			"stop it, or give this node another ADMIN_SOCKET: %w", where, err)
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: its directory %s does not exist: create it, owned by the node's user "+
			"(systemd's RuntimeDirectory=hanode makes /run/hanode): %w", where, filepath.Dir(s.Value), err)
	}
	return nil, fmt.Errorf("%s: %w", where, err)
}

// serveAdminSocket serves the admin socket, if any, with h's routes until
// ctx ends; wait returns ServeSocket's result once it has returned.
func serveAdminSocket(ctx context.Context, ln *ping.SocketListener, h *ping.Handler, log *zap.Logger) (wait func() error) {
	if ln == nil {
		return func() error { return nil }
	}
	done := make(chan error, 1)
	go func() { done <- ping.ServeSocket(ctx, ln, h, log) }()
	return func() error { return <-done }
}

// closeAdminSocket closes the admin socket on a start that fails before it
// is served (ServeSocket closes it otherwise; closing twice is harmless).
func closeAdminSocket(ln *ping.SocketListener) {
	if ln != nil {
		_ = ln.Close()
	}
}
