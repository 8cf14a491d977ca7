package core

import (
	"fmt"
	"time"
)

// What a test or the simulator may ask a core beyond what it publishes
// (Snapshot): its standing and its next claim, to check the invariant and
// explain a failing seed.

// Holder reports whether the core holds the group's lease: its claim is
// committed (fencing or active).
func (c *Core) Holder() bool { return c.role == roleHolder }

// Member reports whether the core has a member node and does not hold the
// lease.
func (c *Core) Member() bool { return c.role == roleMember }

// OwnNode is the path of the core's member node, "" when it has none.
func (c *Core) OwnNode() string {
	if c.own.Node == "" {
		return ""
	}
	return c.l.MemberNode(c.own.Node)
}

// LeaseBound is when the holder must stop acting by its last acknowledged
// write (activated or not); zero when it holds no lease.
func (c *Core) LeaseBound() time.Time {
	if c.role != roleHolder {
		return time.Time{}
	}
	return c.leaseEnd()
}

// NextClaim names the rule that will let this member claim and from when;
// ok is false while no rule applies.
func (c *Core) NextClaim() (rule string, at time.Time, ok bool) {
	r, at, ok := c.pickRule()
	return r.String(), at, ok
}

// String prints the core's state, for a failing seed.
func (c *Core) String() string {
	return fmt.Sprintf("role=%d phase=%s up=%v sid=%s epoch=%d own=%s ownVer=%d sure=%v ownEpoch=%d pos=%d pred=%s predWatch=%d predObs=%v "+
		"candSince=%v look=%d lookDue=%v lastLook=%v claimBusy=%v ownWrites=%d extBusy=%v leaseSend=%v activated=%v duty=%d "+
		"recKind=%d recVer=%d recMine=%d retryAt=%v fence=%+v afterStop=%v leaving=%v shutting=%v",
		c.role, c.phase, c.up, SessionHex(c.sid), c.epoch, c.own.Node, c.ownVer, c.ownSure, c.ownEpoch, c.position, c.pred,
		c.predWatch, c.predObs, c.candSince, c.look.id, c.lookDue, c.lastLook, c.claimBusy, c.ownWrites, c.extBusy,
		c.leaseSend, c.activated, c.duty, c.recKind, c.recVer, c.recMine, c.retryAt, c.fence, c.afterStop != nil,
		c.leaving, c.shutting)
}

// Written is the versions our last writes left our member node and the
// leader record at: what the core expects to find.
func (c *Core) Written() (own, record int32) { return c.ownVer, c.recMine }

// LeaseFrom is, for a holder, the send time of the write its lease rests
// on (on this node's clock) and its term; zero when it holds none.
func (c *Core) LeaseFrom() (sent time.Time, term int64) {
	if c.role != roleHolder {
		return time.Time{}, 0
	}
	return c.leaseSend, c.term
}
