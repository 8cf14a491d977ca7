package core

import (
	"fmt"
	"time"
)

// Switchover: an operator asks a member to lead next (hanode switchover).
// The group record names it; every member reads it with its looks (the
// watch on the group record tells them at once). Like preemption
// (policy.go) it moves no rule: the members ahead of the target step behind
// it, the holder hands over as Resign does, and the target, first in line
// when the release comes, claims by rule B. A target that is not a member
// that may lead is ignored, and so is a request older than switchoverTTL,
// so a target that died midway leaves the group to the usual rules.

// SwitchoverInfo is a switchover asked for (the group record's
// "switchover").
type SwitchoverInfo struct {
	// To is the target's server name.
	To string    `json:"to"`
	By string    `json:"by"`
	At time.Time `json:"at"`
}

// switchoverTTL is how long a switchover request stands: long enough for
// the steps (a look, the steps back, a release: well under a lease), short
// enough that a request whose target died does not linger.
func (c *Core) switchoverTTL() time.Duration { return 2*c.cfg.Lease + c.wait }

// switchTarget is the member a standing switchover names, "" none: a
// member in our last look that may lead.
func (c *Core) switchTarget() string {
	s := c.view.grp.switchTo
	if s == nil || s.To == "" || c.cfg.Weaken.has(WeakIgnoreSwitchover) {
		return ""
	}
	wall := c.now
	if c.cfg.Wall != nil {
		wall = c.cfg.Wall()
	}
	if wall.Sub(s.At) > c.switchoverTTL() {
		return "" // stale: its target never got there
	}
	if s.To == c.cfg.Self.Name {
		if !c.mayLead() {
			return ""
		}
		return s.To
	}
	for _, m := range c.view.members {
		if m.Name == s.To && canLead(m) {
			return s.To
		}
	}
	return ""
}

// switchoverYield names the target behind us in the line we should step
// behind, "" none.
func (c *Core) switchoverYield() string {
	t := c.switchTarget()
	if t == "" || t == c.cfg.Self.Name || c.view.position < 0 || c.view.position >= len(c.view.members) {
		return ""
	}
	for _, m := range c.view.members[c.view.position+1:] {
		if m.Name == t {
			return fmt.Sprintf("%s (switchover asked by %s)", t, c.view.grp.switchTo.By)
		}
	}
	return ""
}
