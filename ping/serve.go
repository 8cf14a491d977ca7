package ping

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// ShutdownTimeout bounds how long Serve waits, once its context ends, for
// requests in flight to finish before it closes their connections.
const ShutdownTimeout = 2 * time.Second

// Server timeouts: ping answers are tiny, so a client slower than this is
// broken or hostile. The wire path applies readHeaderTimeout and idleTimeout
// too (conns.go).
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
// Serve reads every connection itself first (wire.go): when h is the
// *Handler of New, it answers the ping routes on the connection, and it hands
// the connection to an http.Server serving h at the first request it does not
// answer. It caps and times out connections so that a client holding many of
// them open cannot grow the process's memory or lock balancers out (see
// conns.go), and it paces the requests net/http serves, pings excepted, so
// that clients asking in a loop cannot take the CPU pings need (pace.go).
//
// It returns nil after a shutdown that ctx asked for and that finished in
// time. It returns an error if serving failed before ctx ended (for example,
// ln was already closed), or if the shutdown ran out of time, in which case
// the remaining connections have been closed. The server's own errors (TLS
// handshakes, accept retries) are logged to log at warn level; a nil log
// discards them.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *zap.Logger) error {
	return serve(ctx, ln, h, log, ShutdownTimeout, defaultLimits())
}

// defaultLimits are Serve's connection limits (conns.go), the cap lowered to
// half the open-file limit when that is smaller.
func defaultLimits() limits {
	l := limits{
		maxConns:      maxConns,
		halfOpenGrace: halfOpenGrace,
		sweepEvery:    sweepEvery,
		headerTimeout: readHeaderTimeout,
		idleTimeout:   idleTimeout,
		releaseAfter:  releaseAfter,
		releaseEvery:  releaseEvery,
		release:       releaseMemory,
		pace:          paceGap,
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil {
		l.maxConns = capForFiles(l.maxConns, rl.Cur)
	}
	return l
}

// capForFiles lowers a connection cap to half the open-file limit, keeping
// the other half for the rest of the process, but not below 16.
func capForFiles(limit int, files uint64) int {
	if files/2 >= uint64(limit) {
		return limit
	}
	return max(int(files/2), 16)
}

// releaseMemory returns the memory of a burst of connections to the OS. The
// first collection moves the buffers net/http pooled for those connections
// into sync.Pool's victim cache; FreeOSMemory's collection frees them and
// returns every free page.
func releaseMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}

func serve(ctx context.Context, ln net.Listener, h http.Handler, log *zap.Logger, grace time.Duration, lim limits) error {
	if log == nil {
		log = zap.NewNop()
	}
	errLog, err := zap.NewStdLogAt(log, zap.WarnLevel)
	if err != nil {
		errLog = zap.NewStdLog(log) // unreachable: WarnLevel is valid
	}
	tr := newTracker(lim, log)
	handoff := newHandoffListener(ln.Addr())
	quit := make(chan struct{}) // closed as the shutdown begins
	var quitOnce sync.Once
	srv := &http.Server{
		Handler:           pace(h, lim.pace, quit),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          errLog,
		ConnState:         tr.connState,
	}
	srv.RegisterOnShutdown(func() { quitOnce.Do(func() { close(quit) }) })
	ws := &wireServer{tr: tr, handoff: handoff, log: log}
	if ph, ok := h.(*Handler); ok {
		ws.route, ws.h = ph.route, ph.h
		// Live streams never end by themselves: end them as the shutdown
		// begins, or they would hold it for its whole grace period.
		srv.RegisterOnShutdown(ph.h.streams.close)
	}
	addr := ln.Addr().String()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(handoff) }()
	stopSweep, swept := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(swept)
		tr.run(lim.sweepEvery, stopSweep)
	}()
	var wires sync.WaitGroup
	stopAccept, accepted := make(chan struct{}), make(chan error, 1)
	go func() { accepted <- ws.accept(ln, &wires, stopAccept) }()
	log.Info("ping: serving", zap.String("addr", addr))

	var failed error
	select {
	case failed = <-accepted:
		// Only errors arrive here: nobody has closed ln.
		log.Error("ping: serving failed", zap.String("addr", addr), zap.Error(failed))
		_ = ln.Close()
	case <-ctx.Done():
		close(stopAccept)
		_ = ln.Close()
		<-accepted
	}

	// No connection is added from here on.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if failed != nil {
		cancel() // no grace: close everything now
	}
	err = shutdown(sctx, srv, tr, &wires)
	close(stopSweep)
	<-swept
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if failed != nil {
		return fmt.Errorf("ping: serve %s: %w", addr, failed)
	}
	if err != nil {
		log.Warn("ping: shutdown incomplete", zap.String("addr", addr), zap.Error(err))
		return fmt.Errorf("ping: shutdown %s: %w", addr, err)
	}
	log.Info("ping: stopped", zap.String("addr", addr))
	return nil
}

// shutdown stops net/http and the wire path together: idle connections are
// closed at once, the others get until ctx ends to finish their request, then
// they are closed too. It returns once every connection is closed.
func shutdown(ctx context.Context, srv *http.Server, tr *tracker, wires *sync.WaitGroup) error {
	httpDone := make(chan error, 1)
	go func() {
		err := srv.Shutdown(ctx)
		if err != nil {
			_ = srv.Close() // drop the connections that outlived the grace period
		}
		httpDone <- err
	}()

	tr.closing.Store(true)
	tr.closeWhere(func(s int64) bool { return s&stateIdle != 0 })
	wired := make(chan struct{})
	go func() {
		wires.Wait()
		close(wired)
	}()
	var err error
	select {
	case <-wired:
	case <-ctx.Done():
		tr.closeWhere(func(int64) bool { return true })
		<-wired
		err = ctx.Err()
	}
	return errors.Join(err, <-httpDone)
}

// accept accepts connections until ln fails or is closed, tracking each and
// serving it on the wire path. Like net/http, it retries temporary errors
// (EMFILE, ...) after a pause growing from 5 ms to 1 s.
func (s *wireServer) accept(ln net.Listener, wires *sync.WaitGroup, stop <-chan struct{}) error {
	var pause time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() {
				pause = min(max(2*pause, 5*time.Millisecond), time.Second)
				s.log.Warn("ping: accept failed, retrying", zap.Duration("in", pause), zap.Error(err))
				select {
				case <-time.After(pause):
					continue
				case <-stop:
				}
			}
			return err
		}
		pause = 0
		t := s.tr.add(c, time.Now())
		wires.Add(1)
		go func() {
			defer wires.Done()
			s.serveConn(t)
		}()
	}
}
