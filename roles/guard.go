package roles

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// The duty guard keeps the active duty fenced by the lease even when the
// coordinator cannot act. It is a small process of hanode's own
// (`hanode duty-guard`) that owns the duty's process groups and holds its own
// copy of the lease deadline:
//
//   - the coordinator sends the lease deadline at every renewal ("until"), as
//     an absolute CLOCK_MONOTONIC reading (clock.go), so the copy ends when
//     the lease does, however late the line arrives or the guard runs;
//   - when the deadline passes without an extension (the coordinator froze,
//     starved, or its clock stopped with it) the guard stops the duty;
//   - when its stdin closes (the coordinator died, even by SIGKILL to its
//     whole process group: the guard has a session of its own) it stops the
//     duty and exits.
//
// The coordinator's end (Guard) handles the guard's own death: every process
// the guard started stays in the guard's session, and the coordinator kills
// that whole session before it starts anything else (see Guard).
//
// Every process of the duty is kept in the guard's jail (jail.go: a cgroup
// of the guard's own, or the guard as a child subreaper), so a duty that
// forks, setsids or daemonizes is stopped whole.
//
// Protocol, one line each way:
//
//	coordinator -> guard: "until <CLOCK_MONOTONIC ns>", "start <term>", "stop <reason>",
//	                      "ticket <base64>" or "ticket -" (the release the guard may
//	                      write for a coordinator that provably exited; GuardExit)
//	guard -> coordinator: "started <term> <pgid>" whenever a duty process starts
//	                      (restarts included), "exited <term> <how>" when it
//	                      ended on its own, "failed <term> <reason>" when the
//	                      guard gave up restarting it (MaxRestarts), "refused
//	                      <term> <reason>" for a start without a lease,
//	                      "expired <term>" after it stopped the duty because
//	                      the lease ran out, "stopping" as soon as it reads a
//	                      stop (a guard that does not say so at once is taken
//	                      for frozen), and "stopped" or "stopped error <text>"
//	                      after each stop

// exitProofWait bounds how long a guard whose coordinator's pipe closed
// waits for the kernel's proof that the coordinator exited: the pipe
// closes as the process exits, so the proof comes at once unless it lives.
const exitProofWait = time.Second

// signalGrace is how much longer than the duty's stop timeout a signalled
// guard leaves its living coordinator to stop the duty and close it.
const signalGrace = 2 * time.Second

// GuardExit lets the guard release the lease for a coordinator that has
// provably exited (issue 17): once the duty and every jail of the
// coordinator are confirmed stopped, and Proof says the coordinator exited,
// the guard calls Release with the last ticket the coordinator sent
// ("ticket <base64>"; a "stop" or "ticket -" withdraws it).
type GuardExit struct {
	Proof *ExitProof
	// Release writes the ticket's release; it must not send it after
	// leaseEnd (this process's clock), nor on a second connection.
	Release func(ticket []byte, leaseEnd time.Time)
}

// replyTimeout bounds how long a guard that is ending waits to hand its last
// replies to the coordinator.
const replyTimeout = time.Second

// ServeGuard is the guard's main loop: it reads commands from in, runs the
// duty as cfg says (cfg.OnStart is wrapped to report each start), and
// answers on out. It returns when in closes or out breaks, after stopping
// the duty. ctx ending is a signal (notifySignals): after the coordinator's
// exit it is taken as the end of in; while the coordinator lives, the guard
// goes on serving it for the duty's stop timeout and signalGrace, then
// stops the duty and returns.
func ServeGuard(ctx context.Context, in io.Reader, out io.Writer, cfg SupervisorConfig) error {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	w := newReplyWriter(out)
	defer w.close(replyTimeout)
	onStart := cfg.OnStart
	cfg.OnStart = func(term int64, pgid int) {
		if onStart != nil {
			onStart(term, pgid)
		}
		if !w.trySend(fmt.Sprintf("started %d %d", term, pgid)) {
			log.Warn("coordinator not reading; start not reported", zap.Int64("term", term), zap.Int("pgid", pgid))
		}
	}
	onExit, onGiveUp := cfg.OnExit, cfg.OnGiveUp
	cfg.OnExit = func(term int64, how string) {
		if onExit != nil {
			onExit(term, how)
		}
		w.trySend(fmt.Sprintf("exited %d %s", term, oneLine(how)))
	}
	cfg.OnGiveUp = func(term int64, reason string) {
		if onGiveUp != nil {
			onGiveUp(term, reason)
		}
		if !w.trySend(fmt.Sprintf("failed %d %s", term, oneLine(reason))) {
			log.Warn("coordinator not reading; failure not reported", zap.Int64("term", term))
		}
	}
	sup := NewSupervisor(cfg)

	inFD := inputFD(in)
	lines := make(chan string, 64) // buffered: queued commands can be seen (len) after a stall
	// The end of stdin closes lines, after every command before it: a
	// coordinator that sent a ticket and died at once is gone only once
	// that ticket was read (a separate channel for the end could be picked
	// first by the select below, and the release would use the stale
	// ticket before it).
	var readErr error // written before lines closes
	quit := make(chan struct{})
	defer close(quit)
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-quit: // not ctx: after a signal the last lines still count
				return
			}
		}
		readErr = sc.Err()
		close(lines)
	}()

	expiry := time.NewTimer(time.Hour)
	expiry.Stop()
	var deadline int64 // CLOCK_MONOTONIC ns; 0: no lease
	stop := func(reason string) error {
		expiry.Stop()
		deadline = 0
		return sup.Stop(reason)
	}
	// kill: the lease may have ended already in real time; no grace.
	kill := func(reason string) error {
		expiry.Stop()
		deadline = 0
		return sup.Kill(reason)
	}
	var ticket []byte // the release the coordinator last handed us (Exit), nil none
	// gone: the coordinator died or closed us. Its other jails (a fence in
	// flight) have nobody else to end them.
	gone := func() error {
		leaseEnd := deadline // stop forgets it
		err := stop("coordinator gone")
		if cfg.Once {
			// A run-once guard (a job's run) is one of several guards of
			// one coordinator, closed after every run: it ends only its
			// own jail. The duty's guard ends the siblings.
			return err
		}
		t := ticket
		ticket = nil
		// With a ticket, the kernel's proof of the exit comes first: only
		// then can nothing new be started beside what is ended below.
		exited := t != nil && cfg.Exit != nil && cfg.Jailer.Mode() == ContainCgroup && cfg.Exit.Proof.Exited(exitProofWait)
		ended, endErr := cfg.Jailer.EndSiblings(time.Now().Add(KillGrace))
		for _, dir := range ended {
			log.Warn("ended what the gone coordinator was running", zap.String("cgroup", dir))
		}
		switch {
		case t == nil || cfg.Exit == nil:
		case cfg.Jailer.Mode() != ContainCgroup:
			log.Info("not releasing the lease for the gone coordinator: only cgroup containment proves that all it ran has stopped; the group waits the lease out",
				zap.String("containment", string(cfg.Jailer.Mode())))
		case !exited:
			// A closed pipe, and the process lives (or its exit is not
			// proven): it may still act on its lease.
			log.Warn("coordinator closed its pipe but has not exited: not releasing its lease", zap.Int("pid", cfg.Exit.Proof.PID()))
		case err != nil || endErr != nil:
			log.Warn("not releasing the lease for the gone coordinator: not everything it ran is confirmed stopped; the group waits the lease out",
				zap.NamedError("duty", err), zap.NamedError("jails", endErr))
		case leaseEnd == 0 || monoUntil(leaseEnd) <= 0:
			// Past the lease nothing is gained (the group claims by its
			// own rules now), and a release sent later could land in a
			// history ZooKeeper rolled back to before another member's
			// claim (ha/doc.go, "Release by the guard").
			log.Info("not releasing the lease for the gone coordinator: its lease is over", zap.Int64("lease_end_ns", leaseEnd))
		default:
			cfg.Exit.Release(t, time.Now().Add(monoUntil(leaseEnd)))
		}
		return err
	}
	clock := newGuardClock(guardClockSource) // guardclock.go
	clockTick := time.NewTicker(guardClockEvery)
	defer clockTick.Stop()
	var reap <-chan time.Time // a subreaper reaps the orphans that die while the duty runs
	if cfg.Jailer.Mode() == ContainSubreaper {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		reap = t.C
	}
	done := ctx.Done()
	var drained <-chan time.Time // after a signal once the coordinator died: its pipe's end is late
	for {
		if by := clock.check(); by > 0 && deadline != 0 {
			log.Warn("monotonic clock stalled (host paused?): killing the duty", zap.Duration("stall", by))
			term := sup.Status().Term
			_ = kill(stallReason(by))
			if term != 0 && !w.trySend(fmt.Sprintf("expired %d", term)) {
				log.Warn("coordinator not reading; expiry not reported", zap.Int64("term", term))
			}
		}
		select {
		case <-clockTick.C:
		case <-reap:
			reapOrphans()
		case <-done:
			done = nil
			if cfg.Exit != nil && !cfg.Once && cfg.Exit.Proof.Exited(0) {
				// A SIGTERM after the coordinator died: systemd stopping the
				// unit whose main process died (KillMode=control-group
				// signals every process left in it, then waits for them).
				// That is the end of the coordinator's pipe, which comes
				// with its exit: read what it sent before (its last
				// ticket), then its end stops the duty and releases.
				log.Warn("signalled after the coordinator exited; reading what it sent", zap.Int("coordinator_pid", cfg.Exit.Proof.PID()))
				drained = time.After(exitProofWait)
				continue
			}
			// The coordinator lives: the whole unit is being stopped
			// (systemctl stop signals every process of the unit), and the
			// coordinator stops the duty, releases and closes us. Only if it
			// has not within the duty's stop timeout, stop the duty here.
			grace := cfg.StopTimeout + signalGrace
			log.Info("signalled; the coordinator stops the duty", zap.Duration("else_after", grace))
			drained = time.After(grace)
		case <-drained:
			if cfg.Exit != nil && !cfg.Once && cfg.Exit.Proof.Exited(0) {
				log.Warn("the gone coordinator's pipe did not end; stopping the duty")
				return gone()
			}
			return stop("guard signalled, and the coordinator did not stop the duty")
		case <-w.failed:
			log.Warn("coordinator gone (reply pipe broken); stopping the duty")
			return gone()
		case <-expiry.C:
			if left := monoUntil(deadline); deadline != 0 && left > 0 {
				expiry.Reset(left) // never early, whatever the timer's clock did
				continue
			}
			if deadline != 0 && (len(lines) > 0 || inputPending(inFD)) {
				// Resumed after a stop (SIGSTOP, a host pause): read the
				// extensions queued meanwhile before acting on a stale
				// deadline. The lease itself is safe either way: the clock
				// check above kills the duty after a stall.
				expiry.Reset(time.Millisecond)
				continue
			}
			log.Warn("lease expired without an extension from the coordinator; stopping the duty")
			term := sup.Status().Term
			_ = stop("lease expired (guard): the coordinator stopped extending it")
			if term != 0 && !w.trySend(fmt.Sprintf("expired %d", term)) {
				log.Warn("coordinator not reading; expiry not reported", zap.Int64("term", term))
			}
		case line, ok := <-lines:
			if !ok {
				log.Warn("coordinator gone; stopping the duty", zap.Error(readErr))
				return gone()
			}
			verb, arg, _ := strings.Cut(line, " ")
			switch verb {
			case "until":
				ns, err := strconv.ParseInt(arg, 10, 64)
				if err != nil || ns <= 0 {
					log.Error("bad guard command", zap.String("line", line))
					continue
				}
				deadline = ns
				expiry.Reset(max(0, monoUntil(ns)))
			case "ticket":
				ticket = nil
				if arg != "-" {
					t, err := base64.StdEncoding.DecodeString(arg)
					if err != nil {
						log.Error("bad guard command", zap.String("verb", verb), zap.Error(err))
						continue
					}
					ticket = t
				}
			case "start":
				term, err := strconv.ParseInt(arg, 10, 64)
				if err != nil {
					log.Error("bad guard command", zap.String("line", line))
					continue
				}
				if deadline == 0 || monoUntil(deadline) <= 0 {
					log.Warn("not starting the duty: no lease left", zap.Int64("term", term))
					if !w.send(fmt.Sprintf("refused %d no lease left", term)) {
						return gone()
					}
					continue
				}
				if cfg.Command == "" {
					w.send(fmt.Sprintf("started %d 0", term)) // nothing to run
				}
				sup.Start(term)
			case "stop":
				ticket = nil // the coordinator releases, or leaves the lease to lapse
				if !w.send("stopping") {
					return gone()
				}
				reply := "stopped"
				if err := stop(arg); err != nil {
					reply = "stopped error " + strings.ReplaceAll(err.Error(), "\n", " ")
				}
				if !w.send(reply) {
					return gone()
				}
			default:
				log.Error("bad guard command", zap.String("line", line))
			}
		}
	}
}

// oneLine keeps a reply on one line.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// inputFD is in's file descriptor, -1 when it has none; read before the
// reader starts (Fd may change the file's mode).
func inputFD(in io.Reader) int {
	if f, ok := in.(interface{ Fd() uintptr }); ok {
		return int(f.Fd())
	}
	return -1
}

// inputPending reports whether the coordinator's pipe (fd) holds unread
// commands.
func inputPending(fd int) bool {
	if fd < 0 {
		return false
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&unix.POLLIN != 0
}

// replyWriter writes the guard's replies from one goroutine, so that the
// supervisor's goroutine reporting a start never blocks on the pipe.
type replyWriter struct {
	lines  chan string
	failed chan struct{} // closed when a write failed: the coordinator is gone
	done   chan struct{} // closed when the writer returned
}

func newReplyWriter(out io.Writer) *replyWriter {
	w := &replyWriter{lines: make(chan string, 64), failed: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for line := range w.lines {
			if _, err := io.WriteString(out, line+"\n"); err != nil {
				close(w.failed)
				for range w.lines { // drop the rest until close
				}
				return
			}
		}
	}()
	return w
}

// send queues a reply; false when the coordinator is gone.
func (w *replyWriter) send(line string) bool {
	select {
	case w.lines <- line:
		return true
	case <-w.failed:
		return false
	}
}

// trySend queues a reply unless the queue is full.
func (w *replyWriter) trySend(line string) bool {
	select {
	case w.lines <- line:
		return true
	default:
		return false
	}
}

// close lets the writer finish the queued replies, waiting at most timeout.
// Nothing may send after close.
func (w *replyWriter) close(timeout time.Duration) {
	close(w.lines)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-w.done:
	case <-t.C:
	}
}
