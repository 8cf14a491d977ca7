package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/hanode/hanode/conf"
	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/roles"
)

// Health-gated candidacy and the election policy (roles/health.go), wired
// to the election: the health runner's verdict goes to Election.SetHealth,
// a lost duty counts as a failed check, and the node's status shows its
// health, its candidacy and, out of the line, who leads the group.

// candidacyOf is the election policy part of the ElectionConfig.
func candidacyOf(cfg *conf.Config) ha.CandidacyState {
	policy := ha.PolicyFirstCome
	if cfg.ElectionPolicy == conf.PolicyPriority {
		policy = ha.PolicyPriority
	}
	return ha.CandidacyState{Policy: policy, Priority: cfg.Priority, Preempt: cfg.Preempt, PreemptDelay: cfg.PreemptDelay,
		NoFailover: cfg.NoFailover}
}

// newHealth makes the node's health runner, its verdict going to set; nil
// when there is nothing to check: no HEALTH_CMD, and no duty whose loss
// would count (ACTIVE_CMD, or STANDBY_CMD, whose stuck stop loses the
// duty). done closes the command's output once the runner has been closed.
func newHealth(cfg *conf.Config, jailer *roles.Jailer, set func(ok bool, reason string), log *zap.Logger) (
	h *roles.Health, done func(), err error) {
	if cfg.HealthCmd == "" && cfg.ActiveCmd == "" && cfg.StandbyCmd == "" {
		return nil, func() {}, nil
	}
	log = log.Named("health")
	hc := roles.HealthConfig{Command: cfg.HealthCmd, Interval: cfg.HealthInterval, Timeout: cfg.HealthTimeout,
		Failures: cfg.HealthFailures, Recoveries: cfg.HealthRecoveries, Name: cfg.Name, Role: cfg.Role, HAID: cfg.HAID,
		Env: childEnv(), Jailer: jailer, OnChange: set, Logger: log}
	done = func() {}
	if cfg.HealthCmd != "" {
		output, err := newChildLog(log, cfg.LogFormat, "output", os.Stderr)
		if err != nil {
			return nil, nil, err
		}
		hc.Output = output.w
		done = func() { output.Close(childLogDrain) }
	}
	return roles.NewHealth(hc), done, nil
}

// healthState is the runner's report as ha.State carries it.
func healthState(s roles.HealthStatus) *ha.HealthState {
	return &ha.HealthState{State: s.State, Reason: s.Reason, Failures: s.Failures, Successes: s.Successes,
		LastCheck: s.LastCheck, LastResult: s.LastResult, Command: s.Command}
}

// groupLookEvery is how often a node out of the line reads its group, and
// groupLookFresh how old a read may be and still be shown: a read every
// second costs 3 + (members) requests per unhealthy node, nothing while
// healthy.
const (
	groupLookEvery = time.Second
	groupLookFresh = 3 * time.Second
)

// groupLook is the group as a node out of the line last read it.
type groupLook struct {
	gs  ha.GroupStatus
	err error
	at  time.Time
}

// groupLooker reads the group while the node is unhealthy. Its election
// neither lists the members nor reads the leader record then, so what it
// last saw goes stale (it may name itself, or a leader long gone); the
// status must not wait for ZooKeeper, so the reads run here, at once on
// leaving the line and every groupLookEvery after, and State shows the
// latest.
type groupLooker struct {
	read func() (ha.GroupStatus, error)
	last atomic.Pointer[groupLook]
}

// follow reads the group while feed's latest transition is to unhealthy,
// until feed ends or ctx does.
func (g *groupLooker) follow(ctx context.Context, feed <-chan ha.Transition) {
	t := time.NewTicker(groupLookEvery)
	t.Stop()
	defer t.Stop()
	var tick <-chan time.Time
	for {
		select {
		case tr, ok := <-feed:
			if !ok {
				return
			}
			if tr.To != ha.PhaseUnhealthy {
				tick = nil
				g.last.Store(nil)
				continue
			}
			t.Reset(groupLookEvery)
			tick = t.C
		case <-tick:
		case <-ctx.Done():
			return
		}
		gs, err := g.read()
		g.last.Store(&groupLook{gs: gs, err: err, at: time.Now()})
	}
}

// fresh is the latest read, if recent enough to show.
func (g *groupLooker) fresh(now time.Time) (groupLook, bool) {
	l := g.last.Load()
	if l == nil || now.Sub(l.at) > groupLookFresh {
		return groupLook{}, false
	}
	return *l, true
}

// withHealth adds the health check, the candidacy and the leader note to
// the node's state; out of the line, the group's leader and members come
// from the latest read of the group.
type withHealth struct {
	src       ha.StateReader
	health    *roles.Health // nil: none
	candidacy ha.CandidacyState
	look      *groupLooker
}

func (w withHealth) State() ha.State {
	st := w.src.State()
	if w.health != nil {
		st.Health = healthState(w.health.Status())
	}
	c := w.candidacy
	st.Candidacy = &c
	var look *groupLook
	if st.Phase == ha.PhaseUnhealthy && w.look != nil {
		st.Leader, st.Members = "", nil // what the election last saw is stale
		if l, ok := w.look.fresh(time.Now()); ok {
			look = &l
			if l.err == nil {
				st.Leader, st.Members = l.gs.Leader, l.gs.Members
				if l.gs.Term > st.Term {
					st.Term = l.gs.Term
				}
			}
		}
	}
	if c.NoFailover && (st.Phase == ha.PhaseStandby || st.Phase == ha.PhaseWaiting) && !strings.Contains(st.Reason, "NOFAILOVER") {
		st.Reason += " (NOFAILOVER: this node never leads)"
	}
	if st.Leader != "" && (st.Phase == ha.PhaseStandby || st.Phase == ha.PhaseWaiting) && !listed(st.Members, st.Leader) &&
		!anyMayLead(st.Members) {
		// The leader record names a leader that is no member any more (it
		// crashed), and no member left may take over, so the record will
		// name it for good: it leads nothing.
		st.Leader = ""
	}
	st.LeaderNote = leaderNote(st, look)
	return st
}

// leaderNote says why st names no leader: the group has nobody who may
// lead, or someone is taking over, or (out of the line) the group could
// not be read. "" when st names a leader, or the node is not in a phase
// where it follows one.
func leaderNote(st ha.State, look *groupLook) string {
	if st.Leader != "" {
		return ""
	}
	switch st.Phase {
	case ha.PhaseUnhealthy:
		if look == nil {
			return "unknown: this node is out of the line and has not read the group yet"
		}
		if look.err != nil {
			return "unknown: this node is out of the line and could not read the group: " + look.err.Error()
		}
	case ha.PhaseStandby, ha.PhaseWaiting, ha.PhaseFencing:
	default:
		return ""
	}
	may, never := 0, 0
	for _, m := range st.Members {
		if m.NoFailover {
			never++
		} else {
			may++
		}
	}
	switch {
	case may > 0:
		return "no leader at the moment: a member is taking over"
	case never > 0:
		return fmt.Sprintf("no leader: every member that may lead is unhealthy or gone (%d NOFAILOVER %s never %s)",
			never, plural(never, "member", "members"), plural(never, "leads", "lead"))
	}
	return "no leader: every member unhealthy or gone"
}

// listed reports whether a member of ms is named name.
func listed(ms []ha.Member, name string) bool {
	for _, m := range ms {
		if m.Name == name {
			return true
		}
	}
	return false
}

// anyMayLead reports whether a member of ms may lead (is not NOFAILOVER).
func anyMayLead(ms []ha.Member) bool {
	for _, m := range ms {
		if !m.NoFailover {
			return true
		}
	}
	return false
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
