package core

import (
	"fmt"
	"time"
)

// Candidacy: which members may lead, and which of them should. None of it
// touches the claim rules (rules.go), so none of it can make two leaders:
// a member that should not lead never claims, and one that should lead
// before another gets there by the others stepping out of its way — each by
// deleting its own member node and joining again at the back (a leave), or,
// for the holder, by the graceful hand-over of EvResign (stop, release,
// rejoin). Both are things any member may do at any moment under the rules.
// Preference is liveness; the rules stay the one safety argument
// (ha/doc.go, "Who leads").

// Election policies (ELECTION_POLICY), recorded in the group record: every
// member of a group must use the same one.
const (
	// PolicyFirstCome: the member that joined first leads; no preemption
	// (NetSpyGlass). The default.
	PolicyFirstCome = "first-come"
	// PolicyPriority: the member with the lowest MemberInfo.Priority that
	// may lead should lead; members with a worse one step behind it, and
	// with Config.Preempt a holder hands over to a better member that
	// joins.
	PolicyPriority = "priority"
)

// policyName spells a recorded policy for people.
func policyName(p string) string {
	if p == "" {
		return PolicyFirstCome
	}
	return p
}

// candidacy is whether this member may lead now and what it is doing about
// members that should lead before it.
type candidacy struct {
	// unhealthy is why the health check fails ("" healthy): the node
	// leaves the line (a holder hands over first) and stays out until it
	// is healthy again (EvHealth).
	unhealthy string
	// quitting: a leave of ours to step out of the line (unhealthy, or
	// yielding to a better member) is under way: the member waits for it
	// (memberBusy); its reply, or its expiry, ends the membership (lose
	// clears it).
	quitting bool
	// better is the member a holder would hand over to (PolicyPriority
	// with Preempt), "" none; betterSince is when it was first seen.
	better      string
	betterSince time.Time
}

// onHealth records the health check's verdict; advance acts on it.
func (c *Core) onHealth(ev EvHealth) {
	if ev.OK {
		if c.cand.unhealthy != "" {
			cover("candidacy: health recovered")
			c.cand.unhealthy = ""
			if c.role == roleOut && !c.leaving {
				c.setPhase(c.idlePhase(), "health check passing again: joining at the back")
			}
		}
		return
	}
	if c.role == roleHolder && c.cfg.Weaken.has(WeakHolderIgnoresHealth) {
		return
	}
	reason := "health check failing"
	if ev.Reason != "" {
		reason += ": " + ev.Reason
	}
	if c.cand.unhealthy == "" {
		cover("candidacy: health failing")
	}
	c.cand.unhealthy = reason
	switch {
	case c.role == roleHolder:
		// At once, whatever else is under way: not one more moment of
		// acting once the node is known unhealthy.
		c.advanceHolderCandidacy()
	case c.role == roleOut && !c.leaving && c.pub.phase != PhaseStopped:
		c.setPhase(PhaseUnhealthy, reason)
	}
}

// mayLead: this member may claim the lease at all (NOFAILOVER members and
// unhealthy ones never do).
func (c *Core) mayLead() bool {
	return !c.cfg.Self.NoFailover && c.cand.unhealthy == ""
}

// canLead: what a member published says it may lead (a readable member
// record, without NoFailover). Unhealthy members are not members.
func canLead(m Member) bool { return m.Role != "" && !m.NoFailover }

// prefers: under c's policy, member a should lead before member b.
func (c *Core) prefers(a, b MemberInfo) bool {
	return c.cfg.Policy == PolicyPriority && a.Priority < b.Priority
}

// yieldTo names a member behind us that should lead before us, "" none:
// one that may lead when we may not, or (PolicyPriority) one with a better
// priority. Stepping to the back for it sorts the line: the best member
// never steps back, so the steps end.
func (c *Core) yieldTo() string {
	if c.view.position < 0 || c.view.position >= len(c.view.members) {
		return ""
	}
	for _, m := range c.view.members[c.view.position+1:] {
		if !canLead(m) {
			continue
		}
		if c.cfg.Self.NoFailover || c.prefers(m.MemberInfo, c.cfg.Self) {
			return fmt.Sprintf("%s (priority %d)", m.Name, m.Priority)
		}
	}
	return ""
}

// quitLine takes a member out of the line: it releases the lease first
// when the record still names it (its duty stopped), else just leaves;
// then it joins again at the back (or, unhealthy, stays out: advance).
func (c *Core) quitLine(reason string) {
	c.cand.quitting = true
	then := afterDone{do: doRejoin, reason: reason}
	r := c.rec.r
	if st, ok := c.stoppedProof(); ok && c.rec.kind == RecOK && r.HolderNode == c.own.node && r.State == RecActive {
		c.release(st, true, then)
		return
	}
	c.leave(then)
}

// advanceCandidacy steps a member out of the line when it should not be
// in it (unhealthy) or should be further back (behind a switchover's target,
// or yielding to a better member; a switchover's target does not yield);
// true when it did.
func (c *Core) advanceCandidacy() bool {
	if c.cand.unhealthy != "" {
		cover("candidacy: unhealthy member leaves the line")
		c.quitLine(c.cand.unhealthy)
		return true
	}
	if to := c.switchoverYield(); to != "" {
		cover("switchover: member steps behind the target")
		c.quitLine("stepped behind " + to)
		return true
	}
	if to := c.yieldTo(); to != "" && c.switchTarget() != c.cfg.Self.Name {
		cover("candidacy: member steps behind a better one")
		c.quitLine("stepped behind " + to)
		return true
	}
	return false
}

// advanceHolderCandidacy hands the lease over when this holder should not
// hold it: unhealthy, a switchover names another member, or (Preempt) a
// better member has been waiting for PreemptDelay. True when it did.
func (c *Core) advanceHolderCandidacy() bool {
	if c.hold.duty == dutyStopping || c.leaving {
		return false
	}
	if c.cand.unhealthy != "" {
		then := afterDone{do: doRejoin, reason: c.cand.unhealthy}
		if !c.hold.activated {
			// Never acted: leave the record as it is (fencing, naming whom
			// the next leader must fence), as a shutdown does.
			cover("stop: unhealthy while fencing")
			c.stepDown(c.cand.unhealthy, afterStop{write: writeLeave, then: then})
			return true
		}
		cover("stop: unhealthy")
		cover("release asked: unhealthy")
		c.stepDown(c.cand.unhealthy, afterStop{write: writeRelease, leave: true, then: then})
		return true
	}
	if t := c.switchTarget(); t != "" && t != c.cfg.Self.Name && c.hold.activated && c.hold.duty == dutyOn {
		cover("switchover: holder hands over")
		c.onResign("switchover to " + t + " asked by " + c.view.grp.switchTo.By)
		return true
	}
	if !c.cfg.Preempt || !c.hold.activated || c.hold.duty != dutyOn || c.paused() {
		c.cand.better = ""
		return false
	}
	better := ""
	for i, m := range c.view.members {
		if i != c.view.position && canLead(m) && c.prefers(m.MemberInfo, c.cfg.Self) {
			better = fmt.Sprintf("%s (priority %d, this node %d)", m.Name, m.Priority, c.cfg.Self.Priority)
			break
		}
	}
	if better != c.cand.better {
		c.cand.better, c.cand.betterSince = better, c.now
	}
	if better == "" || c.now.Before(c.preemptAt()) {
		return false
	}
	cover("candidacy: holder hands over to a better member")
	c.onResign("preempted by " + better)
	return true
}

// preemptAt is when a holder hands over to the better member it saw (zero:
// none).
func (c *Core) preemptAt() time.Time {
	if c.cand.better == "" {
		return time.Time{}
	}
	return c.cand.betterSince.Add(c.cfg.PreemptDelay)
}
