package ha

// The state machine: phases, the lease timer, taking and giving up
// leadership, and what the owner publishes to readers.

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// checkLease runs when the lease timer fires.
func (e *Elector) checkLease() {
	if e.leaseLeft() > 0 {
		e.armLease()
		return
	}
	switch e.phase {
	case PhaseActive:
		e.stepDown(e.lapseReason(e.cause))
	case PhaseStandby:
		e.transition(PhaseDisconnected, e.lapseReason(e.cause))
	}
}

func (e *Elector) armLease() {
	if left := e.leaseLeft(); left > 0 {
		e.leaseTimer.Reset(left)
	}
}

func (e *Elector) becomeActive(reason string) {
	e.seenTerm = max(e.seenTerm, e.term)
	e.groupTerm = e.term
	e.leaderName = e.cfg.Self.Name
	e.transition(PhaseActive, reason)
	ctx, cancel := context.WithCancel(context.Background())
	e.dutyCancel = cancel
	e.extended() // the guard learns the lease before the duty exists
	if f := e.cfg.Callbacks.OnStartedLeading; f != nil {
		f(ctx, e.term)
	}
	e.armLease()
}

// stepDown ends leadership: readers see it first, then the duty stops.
func (e *Elector) stepDown(reason string) {
	e.transition(PhaseDisconnected, reason)
	e.leaseTimer.Stop()
	if e.dutyCancel != nil {
		e.dutyCancel()
		e.dutyCancel = nil
	}
	start := e.now()
	if f := e.cfg.Callbacks.OnStoppedLeading; f != nil {
		f(reason)
	}
	e.log.Info("duty stopped", zap.Int64("term", e.term), zap.String("reason", reason),
		zap.Duration("took", e.now().Sub(start)), zap.Duration("lease_left", e.leaseLeft()))
}

// shutdown: stop the duty, then delete our nodes, then (in Run) close.
func (e *Elector) shutdown(reason string) {
	e.dropFence()
	if e.phase == PhaseActive {
		e.stepDown(reason)
	} else {
		e.transition(PhaseDisconnected, reason)
	}
	if !e.joined {
		return
	}
	own, name, sid := e.layout.member(e.own.Name), e.layout.name(e.cfg.Self.Name), e.sid
	done := make(chan error, 1)
	go func() {
		s := e.st()
		err := s.conn.Delete(own, -1)
		if ok, st, xerr := s.conn.Exists(name); xerr == nil && ok && st.EphemeralOwner == sid {
			_ = s.conn.Delete(name, st.Version)
		}
		done <- err
	}()
	select {
	case err := <-done:
		e.log.Info("left group", zap.String("node", e.own.Name), zap.Error(err))
	case <-time.After(2 * time.Second):
		e.log.Warn("left group without deleting the member node; its session will expire", zap.String("node", e.own.Name))
	}
}

// transition changes phase, logs it and publishes. Moves the state machine
// cannot make are bugs, and panic naming both ends.
func (e *Elector) transition(to Phase, reason string) {
	from := e.phase
	if from == to && reason == e.reason {
		return
	}
	if !allowed(from, to) {
		panic(fmt.Sprintf("ha: impossible transition %s -> %s (%s)", from, to, reason))
	}
	e.phase, e.reason = to, reason
	if from != to {
		e.since = e.now()
		e.log.Info("state change", zap.String("from", string(from)), zap.String("to", string(to)),
			zap.Int64("term", e.currentTerm()), zap.String("reason", reason), zap.Duration("lease_left", e.leaseLeft()))
	} else {
		e.log.Debug("state reason", zap.String("state", string(to)), zap.String("reason", reason))
	}
	e.publish()
}

// allowed lists the moves of the state machine. Starting is left once;
// active is reached only from a member that proved its node.
func allowed(from, to Phase) bool {
	switch from {
	case PhaseStarting:
		return to == PhaseStandby || to == PhaseDisconnected
	case PhaseStandby:
		return to == PhaseStandby || to == PhaseActive || to == PhaseDisconnected
	case PhaseActive:
		return to == PhaseDisconnected
	case PhaseDisconnected:
		return to == PhaseStandby || to == PhaseActive || to == PhaseDisconnected
	}
	return false
}

func (e *Elector) currentTerm() int64 {
	if e.phase == PhaseActive {
		return e.term
	}
	return e.groupTerm
}

func (e *Elector) publish() {
	e.snap.Store(&snapshot{
		state: State{
			Phase: e.phase, Reason: e.reason, Since: e.since, Term: e.currentTerm(),
			Leader: e.leaderName, Members: e.members,
		},
		ackSend: e.ackSend,
		cause:   e.cause,
	})
}

func (e *Elector) timeout() time.Duration {
	return effectiveTimeout(e.cfg.SessionTimeout, e.dialer.negotiated())
}

func (e *Elector) leaseLeft() time.Duration {
	return leaseLeft(e.ackSend, e.timeout(), e.cfg.Margin, e.now())
}

func (e *Elector) renewEvery() time.Duration { return renewInterval(e.timeout(), e.cfg.Margin) }

// lapseReason explains a lapsed lease, naming the cause when one is known.
func (e *Elector) lapseReason(cause string) string {
	if cause == "" {
		cause = "lease expired"
	}
	return fmt.Sprintf("%s: no acknowledgement from ZooKeeper for %s", cause, e.timeout()-e.cfg.Margin)
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func nameOr(name, node string) string {
	if name != "" {
		return name
	}
	return node
}
