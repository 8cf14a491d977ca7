package main

import (
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/hanode/hanode/conf"
	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/roles"
)

// NOTIFY_CMD and STANDBY_CMD (roles/hooks.go, roles/standby.go), wired to
// the election: both follow its transitions through a Subscribe feed of
// their own, so neither can slow the election or another subscriber.

// newHooks makes NOTIFY_CMD's runner, its output logged as the duty's is
// (LOG_FORMAT=json: one entry per line). done closes the output once the
// runner has been closed. With no NOTIFY_CMD the runner does nothing.
func newHooks(cfg *conf.Config, jailer *roles.Jailer, log *zap.Logger) (h *roles.Hooks, done func(), err error) {
	log = log.Named("notify")
	if cfg.NotifyCmd == "" {
		return roles.NewHooks(roles.HookConfig{}), func() {}, nil
	}
	output, err := newChildLog(log, cfg.LogFormat, "output", os.Stderr)
	if err != nil {
		return nil, nil, err
	}
	h = roles.NewHooks(roles.HookConfig{Command: cfg.NotifyCmd, Timeout: cfg.NotifyTimeout,
		Name: cfg.Name, Role: cfg.Role, HAID: cfg.HAID, Env: childEnv(), Output: output.w, Jailer: jailer, Logger: log})
	return h, func() { output.Close(childLogDrain) }, nil
}

// followHooks queues a hook for every transition of feed until it ends or
// brings the node to stopped (the last transition there is), then closes
// followed. leader names the group's leader as the node knows it now; on
// a move to active the leader is this node (self), whatever was published.
func followHooks(feed <-chan ha.Transition, h *roles.Hooks, self string, leader func() string, followed chan<- struct{}) {
	defer close(followed)
	for t := range feed {
		l := leader()
		if t.To == ha.PhaseActive {
			l = self
		}
		h.Notify(roles.HookEvent{From: string(t.From), To: string(t.To), Term: t.Term, Leader: l, Reason: t.Reason, At: t.At})
		if t.To == ha.PhaseStopped {
			return
		}
	}
}

// hookDrain bounds how long a node that is shutting down waits for the
// transitions' hooks still queued (the last one is "stopped"): one
// NOTIFY_TIMEOUT, after which the running hook is killed and the rest
// dropped, each logged.
func hookDrain(cfg *conf.Config) time.Duration { return cfg.NotifyTimeout }

// newStandby makes STANDBY_CMD's runner and the gate in front of duty, its
// output logged as the duty's is; nil when there is no STANDBY_CMD. lost
// is the election's DutyLost. done closes the output.
func newStandby(cfg *conf.Config, jailer *roles.Jailer, duty roles.Duty, lost func(int64, string), log *zap.Logger) (
	s *roles.Standby, done func(), err error) {
	if cfg.StandbyCmd == "" {
		return nil, func() {}, nil
	}
	log = log.Named("standby")
	stdout, stderr, err := childLogs(log, cfg.LogFormat)
	if err != nil {
		return nil, nil, err
	}
	s = roles.NewStandby(roles.StandbyConfig{
		Command: roles.SupervisorConfig{Command: cfg.StandbyCmd, StopTimeout: cfg.StandbyStopTimeout,
			Name: cfg.Name, Role: cfg.Role, HAID: cfg.HAID, Env: childEnv(), Stdout: stdout.w, Stderr: stderr.w,
			Jailer: jailer, Logger: log},
		Duty: duty, OnDutyLost: lost, Logger: log,
	})
	return s, func() { stdout.Close(childLogDrain); stderr.Close(childLogDrain) }, nil
}

// followStandby tells the gate, for every transition of feed, whether the
// node is a standby now.
func followStandby(feed <-chan ha.Transition, s *roles.Standby) {
	for t := range feed {
		s.SetStandby(t.To == ha.PhaseStandby, t.Term)
	}
}

// gatedDuty is the duty behind STANDBY_CMD's gate: Start and Stop go
// through the gate, lease extensions straight to the duty's guard.
type gatedDuty struct {
	gate  *roles.Standby
	inner leaseDuty
}

func (g gatedDuty) Start(term int64)               { g.gate.Start(term) }
func (g gatedDuty) Stop(reason string) error       { return g.gate.Stop(reason) }
func (g gatedDuty) ExtendUntil(deadline time.Time) { g.inner.ExtendUntil(deadline) }
func (g gatedDuty) SetTicket(ticket []byte)        { g.inner.SetTicket(ticket) }

// withHooks adds STANDBY_CMD's state and the last NOTIFY_CMD run to the
// node's state: no "ok" while STANDBY_CMD may run (ha.State.Active).
type withHooks struct {
	src     ha.StateReader
	standby *roles.Standby // nil: none
	hooks   *roles.Hooks
}

func (w withHooks) State() ha.State {
	st := w.src.State()
	if w.standby != nil {
		s := w.standby.Status()
		st.Standby = &ha.StandbyState{State: s.State, Restarts: s.Restarts, LastExit: s.LastExit, LastExitAt: s.LastExitAt,
			Held: s.Held, Problem: s.Problem}
	}
	if w.hooks.Configured() {
		h := w.hooks.Status()
		st.Hook = &ha.HookState{From: h.Last.Event.From, To: h.Last.Event.To, Term: h.Last.Event.Term, Exit: h.Last.Exit,
			OK: h.Last.OK, At: h.Last.Started, Took: h.Last.Took, Queued: h.Queued, Dropped: h.Dropped}
	}
	return st
}
