package core

// What the core shows: its phase and the transitions between phases, the
// snapshot readers see, notices for operators.

import (
	"fmt"
	"time"
)

// Snapshot is what the core publishes for readers (State).
type Snapshot struct {
	Phase    Phase
	Reason   string
	Since    time.Time
	Term     int64
	Leader   string
	LeaseEnd time.Time // zero unless active
	Members  []Member
	Ignored  []Ignored
	Problem  string
	// Paused is the group's pause as this member last read it (nil: not
	// paused, or not known).
	Paused *PauseInfo
}

// Snapshot returns the core's published state. Members and Ignored are
// shared with the core until its next Step; copy them to keep them.
func (c *Core) Snapshot() Snapshot {
	s := Snapshot{Phase: c.pub.phase, Reason: c.pub.reason, Since: c.pub.since, Term: c.Term(), Members: c.view.members,
		Ignored: c.view.ignored}
	if c.rec.maxed {
		s.Problem = fmt.Sprintf("refusing to lead: leader record %s holds term %d, which cannot grow; stop every member, "+
			"then delete it", c.l.LeaderNode(), c.rec.r.Term)
	}
	if c.Active(c.now) {
		s.LeaseEnd = c.leaseEnd()
	}
	_, s.Leader = c.leader()
	s.Paused = c.view.grp.paused
	return s
}

// leader names the member this core takes for the group's leader: its
// member node and server name ("" when none). The one place that decides
// it, for Snapshot's Leader and the members' Leader marks alike: this node
// while it holds the lease; the lowest member when its own node, read at
// its last extension, says it holds; else whom the leader record names
// (recordHolder, the rule every reader of a group uses).
func (c *Core) leader() (node, name string) {
	switch {
	case c.role == roleHolder:
		return c.own.node, c.cfg.Self.Name
	case c.role == roleMember && c.view.position == 1 && c.pred.lowest && c.pred.holds && c.pred.name != "":
		return c.pred.node, c.pred.name
	}
	if n := recordHolder(c.rec.r, c.rec.kind); n != "" {
		return n, c.rec.r.Name
	}
	return "", ""
}

// markLeader keeps the members' Leader marks on leader(), after every
// Step: a claim, a release or a record read moves the leader without a
// new listing. The slice is rebuilt only when the mark moves (snapshots
// keep the old one).
func (c *Core) markLeader() {
	node, _ := c.leader()
	ok := true
	for i, m := range c.view.members {
		if i < len(c.view.names) && m.Leader != (node != "" && c.view.names[i] == node) {
			ok = false
			break
		}
	}
	if ok {
		return
	}
	marked := make([]Member, len(c.view.members))
	for i, m := range c.view.members {
		m.Leader = i < len(c.view.names) && node != "" && c.view.names[i] == node
		marked[i] = m
	}
	c.view.members = marked
}

// setPhase changes phase and reason, and emits the transition when the phase
// changes. Moves the rule cannot make are bugs: reported as a "bug" notice
// naming both ends (tests and the simulator fail on it), not a panic. The
// phase is what the node reports; whether it may act (Active) rests on the
// role, the duty and the lease alone, so a wrong phase never makes it act.
func (c *Core) setPhase(to Phase, reason string) {
	from := c.pub.phase
	if from == to && reason == c.pub.reason {
		return
	}
	if from != to && !allowed(from, to) {
		c.bug(fmt.Sprintf("impossible transition %s -> %s (%s)", from, to, reason))
	}
	c.pub.reason = reason
	if from == to {
		return
	}
	c.pub.phase, c.pub.since = to, c.now
	t := Transition{From: from, To: to, Term: c.Term(), Reason: reason, At: c.now}
	if to == PhaseActive {
		t.Evidence = c.hold.claiming.seen // active is entered only after a claim
		t.Previous, t.Cause = c.hold.claiming.prev.Name, historyCause(c.hold.claiming.rule, c.hold.claiming.prev)
	}
	c.emit(ActTransition{T: t})
}

// allowed lists the moves between phases. Active is entered only from
// waiting or fencing (a claim) and left for anything but fencing.
func allowed(from, to Phase) bool {
	switch to {
	case PhaseActive:
		return from == PhaseWaiting || from == PhaseFencing
	case PhaseStarting:
		return false
	case PhaseFencing:
		return from == PhaseWaiting || from == PhaseDisconnected
	}
	return from != PhaseStopped
}

// idlePhase is the phase of a node that is not acting: disconnected
// without a session, fencing while it holds a claim it has not acted on,
// else standby or waiting by position.
func (c *Core) idlePhase() Phase {
	switch {
	case !c.sess.up:
		return PhaseDisconnected
	case c.role == roleHolder && !c.hold.activated:
		return PhaseFencing
	case c.role == roleOut && c.cand.unhealthy != "":
		return PhaseUnhealthy
	case c.role == roleOut:
		if c.pub.phase == PhaseStarting {
			return PhaseStarting
		}
		return PhaseStandby
	case c.view.position == 0 && c.mayLead() && !c.paused():
		return PhaseWaiting
	}
	return PhaseStandby
}

// notice emits n once per key until forget(key).
func (c *Core) notice(key string, n Notice) {
	if c.pub.noticed[key] {
		return
	}
	c.pub.noticed[key] = true
	c.emit(ActNotice{N: n})
}

func (c *Core) forget(key string) { delete(c.pub.noticed, key) }

// bug reports a broken internal rule. Production logs it as an error and
// carries on safely; every test of the core fails on it.
func (c *Core) bug(msg string) {
	c.emit(ActNotice{N: Notice{Level: "bug", Msg: "ha: bug: " + msg + "; please report it"}})
}
