package roles

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
)

// NOTIFY_CMD: a hook run on every transition of the node's state, in
// order, one at a time, each to its end (or its timeout) before the next.
//
// The election must never wait for a hook: Notify only queues. The queue
// is bounded; when it is full the oldest queued transition is dropped, never
// the newest, and the next hook that runs is told how many were dropped
// before it (HANODE_DROPPED). So after any burst, flaps included, the last
// hook to run is for the node's latest transition: the hook always ends up
// told where the node stands (keepalived's issue #1884 was a notify script
// not run again after a flap, leaving the node in the wrong state).
//
// Each run is a one-shot command (runOnce): whatever it leaves running is
// killed when it exits. Under ContainSubreaper a process orphaned by a hook
// and one orphaned by STANDBY_CMD cannot be told apart (both are re-parented
// to hanode): the end of either may kill the other's orphans. A cgroup
// keeps them apart; commands that stay in the foreground need neither.
//
// A hook should be idempotent: it may be told of a state twice in a row
// (A→B, B→A, A→B with the middle dropped), and should act on HANODE_TO, the
// state reached, rather than on the difference between two runs.

// DefaultHookQueue is HookConfig.Queue's default.
const DefaultHookQueue = 64

// HookConfig configures NOTIFY_CMD.
type HookConfig struct {
	// Command is run via /bin/sh -c for every transition; empty: Notify
	// does nothing.
	Command string
	// Timeout bounds one run; past it the run's whole jail is SIGKILLed and
	// the next hook runs (0: no bound).
	Timeout time.Duration
	// Name, Role and HAID reach the hook as HANODE_NAME, HANODE_ROLE and
	// HANODE_HA_ID.
	Name, Role, HAID string
	// Env is the base environment (os.Environ() when nil).
	Env []string
	// Output receives the hook's stdout and stderr (nil: os.Stderr).
	Output io.Writer
	// Jailer keeps every process of a run together, so that none outlives
	// it (nil: its process group only).
	Jailer *Jailer
	// Queue bounds the transitions waiting for their hook
	// (default DefaultHookQueue).
	Queue  int
	Logger *zap.Logger
}

// HookEvent is one transition as the hook sees it.
type HookEvent struct {
	From, To string
	Term     int64
	// Leader is the group's leader as the node knew it when the transition
	// was queued ("" when unknown).
	Leader string
	Reason string
	At     time.Time
	// Seq numbers the transitions given to Notify, from 1.
	Seq int64
}

// HookRun is how the latest hook run ended.
type HookRun struct {
	Event HookEvent
	// Exit is "exit status 0" and the like, "timed out after 30s", or
	// "start failed: ...".
	Exit string
	OK   bool // exit status 0 within the timeout
	// Started and Took say when it ran and for how long.
	Started time.Time
	Took    time.Duration
	// Dropped is how many transitions were dropped right before this one.
	Dropped int
}

// HookStatus is a snapshot of the hook runner.
type HookStatus struct {
	// Last is the latest run; zero when none ran yet.
	Last HookRun
	// Queued is how many transitions wait for their hook, the running one
	// not counted.
	Queued int
	// Dropped counts every transition dropped so far.
	Dropped int64
}

// Hooks runs NOTIFY_CMD for each transition, on a goroutine of its own.
// Notify and Status are safe for concurrent use and never block on a hook.
type Hooks struct {
	cfg HookConfig
	log *zap.Logger

	mu      sync.Mutex
	queue   []HookEvent
	dropped int // dropped since the last dequeue: told to the next run
	total   int64
	seq     int64
	closing bool
	last    HookRun

	kick chan struct{} // capacity 1
	stop chan struct{} // closed by Close once the drain time is over
	done chan struct{} // closed when the runner returned
}

// NewHooks starts the runner. With no Command it starts nothing.
func NewHooks(cfg HookConfig) *Hooks {
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultHookQueue
	}
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	if cfg.Output == nil {
		cfg.Output = os.Stderr
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	h := &Hooks{cfg: cfg, log: log, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if cfg.Command == "" {
		close(h.done)
		return h
	}
	go h.run()
	return h
}

// Configured reports whether there is a hook to run.
func (h *Hooks) Configured() bool { return h.cfg.Command != "" }

// Notify queues the hook for ev and returns at once. ev.Seq is set here.
// When the queue is full the oldest queued transition is dropped.
func (h *Hooks) Notify(ev HookEvent) {
	if h.cfg.Command == "" {
		return
	}
	h.mu.Lock()
	h.seq++
	ev.Seq = h.seq
	if h.closing {
		h.mu.Unlock()
		h.log.Warn("hook not run: shutting down", hookFields(ev)...)
		return
	}
	if len(h.queue) >= h.cfg.Queue {
		old := h.queue[0]
		h.queue = h.queue[1:]
		h.dropped++
		h.total++
		h.log.Warn("hook queue full: dropped the oldest transition", append(hookFields(old), zap.Int("queue", h.cfg.Queue))...)
	}
	h.queue = append(h.queue, ev)
	h.mu.Unlock()
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// Status reports the latest run and the queue.
func (h *Hooks) Status() HookStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	return HookStatus{Last: h.last, Queued: len(h.queue), Dropped: h.total}
}

// Close lets the runner finish the queued hooks for at most wait, then
// kills the running one and drops the rest (each logged), and returns once
// the runner has. Notify after Close only logs.
func (h *Hooks) Close(wait time.Duration) {
	h.mu.Lock()
	if h.closing || h.cfg.Command == "" {
		h.mu.Unlock()
		<-h.done
		return
	}
	h.closing = true
	h.mu.Unlock()
	select {
	case h.kick <- struct{}{}:
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-h.done:
		return
	case <-t.C:
	}
	close(h.stop)
	<-h.done
}

// next takes the oldest queued transition and how many were dropped before
// it; ok is false when the queue is empty.
func (h *Hooks) next() (ev HookEvent, dropped int, closing, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.queue) == 0 {
		return HookEvent{}, 0, h.closing, false
	}
	ev, dropped = h.queue[0], h.dropped
	h.queue, h.dropped = h.queue[1:], 0
	return ev, dropped, h.closing, true
}

// run is the runner: one hook at a time, in order. It locks its OS thread
// for good, as the Supervisor does: a hook's shell gets SIGKILL when the
// thread that forked it ends, and this one ends only with the runner.
func (h *Hooks) run() {
	runtime.LockOSThread()
	defer close(h.done)
	for {
		ev, dropped, closing, ok := h.next()
		if !ok {
			if closing {
				return
			}
			select {
			case <-h.kick:
			case <-h.stop:
				return
			}
			continue
		}
		select {
		case <-h.stop:
			h.log.Warn("hook not run: shutting down", hookFields(ev)...)
			continue // drains the queue, logging each
		default:
		}
		h.runOne(ev, dropped)
	}
}

// runOne runs the hook for ev and logs how it ended.
func (h *Hooks) runOne(ev HookEvent, dropped int) {
	ctx, cancel := context.WithCancel(context.Background())
	if h.cfg.Timeout > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), h.cfg.Timeout)
	}
	defer cancel()
	go func() { // the end of Close's drain kills the running hook
		select {
		case <-h.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	cmd := exec.Command("/bin/sh", "-c", h.cfg.Command)
	cmd.Env = setEnv(h.cfg.Env, hookEnv(h.cfg, ev, dropped)...)
	cmd.Stdout, cmd.Stderr = h.cfg.Output, h.cfg.Output
	began := time.Now()
	waitErr, killErr := runOnce(ctx, cmd, h.cfg.Jailer)
	took := time.Since(began)
	run := HookRun{Event: ev, Started: began, Took: took, Dropped: dropped, OK: waitErr == nil && ctx.Err() == nil}
	var exitErr *exec.ExitError
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		run.Exit = "timed out after " + h.cfg.Timeout.String()
	case ctx.Err() != nil:
		run.Exit = "killed: shutting down"
	case waitErr == nil:
		run.Exit = cmd.ProcessState.String()
	case errors.As(waitErr, &exitErr):
		run.Exit = exitErr.ProcessState.String()
	case cmd.ProcessState == nil:
		run.Exit = "start failed: " + waitErr.Error()
	default:
		run.Exit = waitErr.Error()
	}
	h.mu.Lock()
	h.last = run
	h.mu.Unlock()
	fields := append(hookFields(ev), zap.String("exit", run.Exit), zap.Duration("took", took), zap.Int("dropped", dropped))
	switch {
	case killErr != nil:
		h.log.Error("hook run: processes it left could not be killed", append(fields, zap.Error(killErr))...)
	case run.OK:
		h.log.Info("hook run", fields...)
	default:
		h.log.Warn("hook failed", fields...)
	}
}

func hookFields(ev HookEvent) []zap.Field {
	return []zap.Field{zap.String("from", ev.From), zap.String("to", ev.To), zap.Int64("term", ev.Term),
		zap.String("reason", ev.Reason), zap.Int64("seq", ev.Seq)}
}

// hookEnv is what a hook run adds to the environment.
func hookEnv(cfg HookConfig, ev HookEvent, dropped int) []string {
	return []string{"HANODE_NAME=" + cfg.Name, "HANODE_ROLE=" + cfg.Role, "HANODE_HA_ID=" + cfg.HAID,
		"HANODE_FROM=" + ev.From, "HANODE_TO=" + ev.To, "HANODE_TERM=" + strconv.FormatInt(ev.Term, 10),
		"HANODE_LEADER=" + ev.Leader, "HANODE_REASON=" + ev.Reason,
		"HANODE_SEQ=" + strconv.FormatInt(ev.Seq, 10), "HANODE_DROPPED=" + strconv.Itoa(dropped)}
}
