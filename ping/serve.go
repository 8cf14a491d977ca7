package ping

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// ShutdownTimeout bounds how long Serve waits, once its context ends, for
// requests in flight to finish before it closes their connections.
const ShutdownTimeout = 2 * time.Second

// Server timeouts: ping answers are tiny, so a client slower than this is
// broken or hostile.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
)

// Listen opens a TCP listener on addr ("host:port"; port 0 picks a free one).
// The bound address is ln.Addr(), known before anything is served, so callers
// can log it or hand it to tests. Listening is separate from Serve so a bad
// address fails at start, before any other component runs.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ping: listen %s: %w", addr, err)
	}
	return ln, nil
}

// Serve serves h on ln until ctx ends, then shuts down gracefully: it stops
// accepting, closes idle connections and waits up to ShutdownTimeout for
// requests in flight. Serve owns ln and closes it.
//
// It returns nil after a shutdown that ctx asked for and that finished in
// time. It returns an error if serving failed before ctx ended (for example,
// ln was already closed), or if the shutdown ran out of time, in which case
// the remaining connections have been closed. The server's own errors (TLS
// handshakes, accept retries) are logged to log at warn level; a nil log
// discards them.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *zap.Logger) error {
	return serve(ctx, ln, h, log, ShutdownTimeout)
}

func serve(ctx context.Context, ln net.Listener, h http.Handler, log *zap.Logger, grace time.Duration) error {
	if log == nil {
		log = zap.NewNop()
	}
	errLog, err := zap.NewStdLogAt(log, zap.WarnLevel)
	if err != nil {
		errLog = zap.NewStdLog(log) // unreachable: WarnLevel is valid
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          errLog,
	}
	addr := ln.Addr().String()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("ping: serving", zap.String("addr", addr))

	select {
	case err := <-served:
		// srv.Serve returns only errors here: nobody has called Shutdown.
		log.Error("ping: serving failed", zap.String("addr", addr), zap.Error(err))
		return fmt.Errorf("ping: serve %s: %w", addr, err)
	case <-ctx.Done():
	}

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	err = srv.Shutdown(sctx)
	if err != nil {
		_ = srv.Close() // drop the connections that outlived the grace period
	}
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		log.Warn("ping: shutdown incomplete", zap.String("addr", addr), zap.Error(err))
		return fmt.Errorf("ping: shutdown %s: %w", addr, err)
	}
	log.Info("ping: stopped", zap.String("addr", addr))
	return nil
}
