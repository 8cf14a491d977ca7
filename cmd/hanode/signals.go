package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"go.uber.org/zap"
)

// notifySignals sets the signal policy of a long-running hanode process
// (`hanode run` and `hanode duty-guard`) and returns a context cancelled on
// SIGTERM or SIGINT, which start an orderly shutdown.
//
//   - SIGHUP calls reload (`hanode run`: read the configuration again and
//     apply what can change at run time), one call at a time, on the
//     signal goroutine. With reload nil (the duty guard) it is logged and
//     ignored. Either way the process goes on: SIGHUP's default action
//     would end it at once (exit 129), with no handover, and the group
//     would wait a whole session timeout.
//   - SIGPIPE is made harmless: a write to a closed stdout or stderr (a log
//     pipe whose reader went away) returns EPIPE instead of killing the
//     process. zap drops a line it cannot write (it reports that to the same
//     broken stderr, once per line, and moves on), so logging neither spins
//     nor crashes. This part stays in force for the rest of the process,
//     after stop too: the final log lines and the exit status must not be
//     lost to a closed pipe.
//
// Signals are only caught, never ignored (SIG_IGN would be inherited by the
// duty through exec), so the duty starts with every default action. stop
// restores the default actions of SIGTERM, SIGINT and SIGHUP and cancels the
// context.
func notifySignals(parent context.Context, log *zap.Logger, reload func()) (ctx context.Context, stop context.CancelFunc) {
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(parent)
	term := make(chan os.Signal, 1)
	hup := make(chan os.Signal, 1)
	pipe := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	signal.Notify(hup, syscall.SIGHUP)
	signal.Notify(pipe, syscall.SIGPIPE)

	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipeLogged := false
		for {
			select {
			case s := <-term:
				log.Info("signal received; shutting down", zap.String("signal", signalName(s)))
				cancel()
			case <-hup:
				if reload == nil {
					log.Warn("signal ignored", zap.String("signal", "SIGHUP"),
						zap.String("reason", "this process has no configuration to reload"))
					continue
				}
				log.Info("signal received; reloading the configuration", zap.String("signal", "SIGHUP"))
				reload()
			case <-pipe:
				if !pipeLogged { // stderr may be the broken one: say it once
					pipeLogged = true
					log.Warn("broken pipe on stdout or stderr; writes there fail from now on", zap.String("signal", "SIGPIPE"))
				}
			case <-quit:
				return
			}
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(term)
			signal.Stop(hup)
			close(quit)
			<-done
			cancel()
		})
	}
}

func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGPIPE:
		return "SIGPIPE"
	}
	return s.String()
}
