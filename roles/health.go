package roles

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"time"

	"go.uber.org/zap"
)

// HEALTH_CMD: health-gated candidacy. A node whose check fails
// HEALTH_FAILURES times in a row leaves its group's line (a leader hands
// over gracefully first, so that a healthy standby takes over) and joins
// again, at the back, after HEALTH_RECOVERIES passing checks in a row. The
// election acts on the verdict (ha.Election.SetHealth); Health only decides
// it, and tells it only when it flips.
//
// A node starts healthy: the verdict is "healthy" until HEALTH_FAILURES
// checks have failed, and the first check runs at once. Starting out of
// the line until checks pass would hold every restarted member, and a whole
// group restarted together, out of the election for HEALTH_RECOVERIES ×
// HEALTH_INTERVAL; the check exists to demote a node that turns bad (as
// keepalived's vrrp_script does without init_fail), and one that is bad
// from the start is demoted after HEALTH_FAILURES checks all the same.
// Status says "unknown" until the first check has ended, so that people
// are not told more than is known.
//
// A lost duty (ACTIVE_CMD failed ACTIVE_MAX_RESTARTS times within
// ACTIVE_RESTART_WINDOW, or its guard could not bring it back) is a failed
// check that makes the node unhealthy at once (Fail): the duty's own
// restart count already is a threshold of consecutive failures, and
// counting the loss as one of HEALTH_FAILURES would let the next passing
// HEALTH_CMD erase it, putting the node back in line to lead the same crash
// loop. It recovers after HEALTH_RECOVERIES checks that pass and started
// after the loss; with no HEALTH_CMD, after HEALTH_RECOVERIES ×
// HEALTH_INTERVAL with no further loss (each quiet interval counts as a
// passing check).

// The health states Status reports.
const (
	HealthUnknown   = "unknown"   // no check has ended yet (the verdict is healthy)
	HealthHealthy   = "healthy"   // in the line
	HealthUnhealthy = "unhealthy" // out of the line until it recovers
)

// DefaultHealthInterval is HealthConfig.Interval's default (HEALTH_INTERVAL's).
const DefaultHealthInterval = 10 * time.Second

// HealthConfig configures the health check of one node.
type HealthConfig struct {
	// Command is HEALTH_CMD, run via /bin/sh -c every Interval; exit status
	// 0 within Timeout passes. Empty: no command, and only Fail makes the
	// node unhealthy (it recovers after Recoveries quiet intervals).
	Command string
	// Interval is the time from the start of one check to the start of the
	// next (default DefaultHealthInterval).
	Interval time.Duration
	// Timeout bounds one check: past it the check's whole jail is killed
	// and the check counts as failed (0: Interval).
	Timeout time.Duration
	// Failures is how many failed checks in a row make the node unhealthy,
	// Recoveries how many passing ones in a row make it healthy again
	// (each at least 1).
	Failures, Recoveries int
	// Name, Role and HAID reach the command as HANODE_NAME, HANODE_ROLE and
	// HANODE_HA_ID.
	Name, Role, HAID string
	// Env is the base environment (os.Environ() when nil).
	Env []string
	// Output receives the command's stdout and stderr (nil: os.Stderr).
	Output io.Writer
	// Jailer keeps every process of a check together, so that none
	// outlives it (nil: its process group only).
	Jailer *Jailer
	// OnChange is told each flip of the verdict, in order, and nothing
	// else; it must not block (ha.Election.SetHealth does not).
	OnChange func(ok bool, reason string)
	Logger   *zap.Logger
}

// HealthStatus is a snapshot of a node's health.
type HealthStatus struct {
	// State is HealthUnknown, HealthHealthy or HealthUnhealthy.
	State string
	// Reason is why the node is unhealthy ("" otherwise).
	Reason string
	// Failures counts the failed checks in a row (a lost duty included),
	// Successes the passing ones since the last failure.
	Failures, Successes int
	// LastCheck is when the last check ended (zero: none yet), LastResult
	// how ("exit status 0", "timed out after 2s", "duty lost: ...").
	LastCheck  time.Time
	LastResult string
	// Command is whether HEALTH_CMD runs (else only lost duties count).
	Command bool
}

// healthCount is the verdict and the counts that decide it; pure.
type healthCount struct {
	failures, recoveries int // the thresholds
	unhealthy            bool
	reason               string
	failN, okN           int
	known                bool
	last                 string
	lastAt               time.Time
	gen                  int // bumped by every trip: a check begun before one does not count as passing
}

// pass records a passing check begun when gen was current; flip is true
// when the node is healthy again.
func (c *healthCount) pass(gen int, result string, now time.Time) (flip bool) {
	c.known, c.last, c.lastAt = true, result, now
	if gen != c.gen {
		return false // it ran across a lost duty: it says nothing after it
	}
	c.failN = 0
	c.okN++
	if c.unhealthy && c.okN >= c.recoveries {
		c.unhealthy, c.reason = false, ""
		return true
	}
	return false
}

// fail records a failed check; flip is true when it makes the node
// unhealthy.
func (c *healthCount) fail(result string, now time.Time) (flip bool) {
	c.known, c.last, c.lastAt = true, result, now
	c.okN = 0
	c.failN++
	if !c.unhealthy && c.failN >= c.failures {
		c.unhealthy = true
		times := "times"
		if c.failN == 1 {
			times = "time"
		}
		c.reason = fmt.Sprintf("HEALTH_CMD failed %d %s: %s", c.failN, times, result)
		return true
	}
	return false
}

// trip records a lost duty: unhealthy at once, whatever the counts.
func (c *healthCount) trip(reason string, now time.Time) (flip bool) {
	c.known, c.last, c.lastAt = true, "duty lost: "+reason, now
	c.gen++
	c.okN = 0
	c.failN++
	was := c.unhealthy
	c.unhealthy, c.reason = true, "duty lost: "+reason
	return !was
}

// Health runs HEALTH_CMD every Interval on a goroutine of its own and
// decides the node's health. Fail, Status and Close are safe for
// concurrent use and never wait for a check.
type Health struct {
	cfg HealthConfig
	log *zap.Logger

	mu    sync.Mutex
	count healthCount

	kick   chan struct{} // capacity 1: Fail happened
	stop   chan struct{} // closed by Close
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// NewHealth starts the runner: with a Command its first check at once.
func NewHealth(cfg HealthConfig) *Health {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultHealthInterval
	}
	if cfg.Timeout <= 0 || cfg.Timeout > cfg.Interval {
		cfg.Timeout = cfg.Interval
	}
	cfg.Failures, cfg.Recoveries = max(cfg.Failures, 1), max(cfg.Recoveries, 1)
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
	ctx, cancel := context.WithCancel(context.Background())
	h := &Health{cfg: cfg, log: log, count: healthCount{failures: cfg.Failures, recoveries: cfg.Recoveries},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	go h.run(ctx)
	return h
}

// Status reports the node's health now.
func (h *Health) Status() HealthStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.count
	st := HealthStatus{State: HealthHealthy, Reason: c.reason, Failures: c.failN, Successes: c.okN,
		LastCheck: c.lastAt, LastResult: c.last, Command: h.cfg.Command != ""}
	switch {
	case c.unhealthy:
		st.State = HealthUnhealthy
	case !c.known && h.cfg.Command != "":
		st.State = HealthUnknown
	}
	return st
}

// Fail counts a lost duty: the node is unhealthy at once (see above). It
// never blocks.
func (h *Health) Fail(reason string) {
	h.mu.Lock()
	flip := h.count.trip(reason, time.Now())
	h.logFlip(flip)
	if !flip {
		h.log.Warn("health: duty lost while unhealthy: recovery starts over", zap.String("reason", reason))
	}
	h.mu.Unlock()
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// Close stops the runner, killing a running check, and returns once it
// has returned. Fail after Close changes the verdict but tells nobody.
func (h *Health) Close() {
	h.once.Do(func() {
		close(h.stop)
		h.cancel()
	})
	<-h.done
}

// logFlip logs and reports a flip of the verdict; h.mu is held, so that
// flips reach OnChange in the order they happened.
func (h *Health) logFlip(flip bool) {
	if !flip {
		return
	}
	c := h.count
	select {
	case <-h.stop:
		return // closed: the election is gone
	default:
	}
	if c.unhealthy {
		h.log.Warn("health: unhealthy, leaving the line", zap.String("reason", c.reason), zap.Int("failures", c.failN))
	} else {
		h.log.Info("health: healthy again, joining at the back", zap.Int("successes", c.okN))
	}
	if f := h.cfg.OnChange; f != nil {
		f(!c.unhealthy, c.reason)
	}
}

// run is the runner. It locks its OS thread for good, as Hooks does: a
// check's shell gets SIGKILL when the thread that forked it ends, and this
// one ends only with the runner.
func (h *Health) run(ctx context.Context) {
	runtime.LockOSThread()
	defer close(h.done)
	timer := time.NewTimer(0) // with a command: the first check at once
	var tick <-chan time.Time
	if h.cfg.Command != "" {
		tick = timer.C
	} else {
		timer.Stop()
	}
	defer timer.Stop()
	armed := 0 // the gen a quiet interval was armed at (no command)
	for {
		select {
		case <-h.stop:
			return
		case <-h.kick:
			if h.cfg.Command == "" { // a lost duty: the quiet intervals start over
				h.mu.Lock()
				armed = h.count.gen
				h.mu.Unlock()
				timer.Reset(h.cfg.Interval)
				tick = timer.C
			}
			continue
		case <-tick:
		}
		if h.cfg.Command == "" {
			h.mu.Lock()
			if h.count.unhealthy && h.count.gen == armed {
				h.logFlip(h.count.pass(armed, fmt.Sprintf("no duty lost for %s", h.cfg.Interval), time.Now()))
			}
			still := h.count.unhealthy
			h.mu.Unlock()
			if still {
				timer.Reset(h.cfg.Interval)
			} else {
				tick = nil
			}
			continue
		}
		began := time.Now()
		h.check(ctx)
		timer.Reset(max(time.Until(began.Add(h.cfg.Interval)), 0))
	}
}

// check runs HEALTH_CMD once and counts its result.
func (h *Health) check(parent context.Context) {
	h.mu.Lock()
	gen := h.count.gen
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(parent, h.cfg.Timeout)
	defer cancel()
	cmd := exec.Command("/bin/sh", "-c", h.cfg.Command)
	cmd.Env = setEnv(h.cfg.Env, "HANODE_NAME="+h.cfg.Name, "HANODE_ROLE="+h.cfg.Role, "HANODE_HA_ID="+h.cfg.HAID)
	cmd.Stdout, cmd.Stderr = h.cfg.Output, h.cfg.Output
	began := time.Now()
	waitErr, killErr := runOnce(ctx, cmd, h.cfg.Jailer)
	took := time.Since(began)
	if parent.Err() != nil {
		return // Close: not a verdict on the node
	}
	ok := waitErr == nil && ctx.Err() == nil
	var result string
	var exitErr *exec.ExitError
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		result = "timed out after " + h.cfg.Timeout.String()
	case waitErr == nil:
		result = cmd.ProcessState.String()
	case errors.As(waitErr, &exitErr):
		result = exitErr.ProcessState.String()
	case cmd.ProcessState == nil:
		result = "start failed: " + waitErr.Error()
	default:
		result = waitErr.Error()
	}
	if killErr != nil {
		h.log.Error("health check: processes it left could not be killed", zap.Error(killErr))
	}
	now := time.Now()
	h.mu.Lock()
	before := h.count.failN
	var flip bool
	if ok {
		flip = h.count.pass(gen, result, now)
	} else {
		flip = h.count.fail(result, now)
	}
	failN, okN := h.count.failN, h.count.okN
	h.logFlip(flip)
	h.mu.Unlock()
	fields := []zap.Field{zap.String("result", result), zap.Duration("took", took), zap.Int("failures", failN),
		zap.Int("successes", okN)}
	switch {
	case !ok:
		h.log.Warn("health check failed", fields...)
	case before > 0:
		h.log.Info("health check passed", fields...)
	default:
		h.log.Debug("health check passed", fields...)
	}
}
