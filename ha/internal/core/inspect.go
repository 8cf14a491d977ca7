package core

import (
	"fmt"
	"strings"
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
	if c.own.node == "" {
		return ""
	}
	return c.l.MemberNode(c.own.node)
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

// String prints the core's whole state, part by part, for a failing seed.
func (c *Core) String() string {
	h := c.hold
	h.repair, h.releaseDue, h.afterStop = nil, nil, nil // printed below, not as addresses
	var b strings.Builder
	fmt.Fprintf(&b, "core %s/%s %s: role=%s leaving=%v shutting=%v done=%v now=%s\n", c.cfg.Group, c.cfg.Self.Name,
		c.pub.phase, c.role, c.leaving, c.shutting, c.done, c.now.Format("15:04:05.000000"))
	fmt.Fprintf(&b, "  sess %+v\n  req  %+v\n  own  %+v\n  view %+v\n  rec  %+v\n  pred %+v\n  hold %+v\n",
		c.sess, c.req, c.own, c.view, c.rec, c.pred, h)
	if r := c.hold.repair; r != nil {
		fmt.Fprintf(&b, "  hold.repair %+v\n", *r)
	}
	if r := c.hold.releaseDue; r != nil {
		fmt.Fprintf(&b, "  hold.releaseDue %+v\n", *r)
	}
	if a := c.hold.afterStop; a != nil {
		fmt.Fprintf(&b, "  hold.afterStop %+v\n", *a)
	}
	fmt.Fprintf(&b, "  pace %+v\n  pub  %+v", c.pace, c.pub)
	return b.String()
}

// Written is the versions our last writes left our member node and the
// leader record at: what the core expects to find.
func (c *Core) Written() (own, record int32) { return c.own.ver, c.rec.mine }

// LeaseFrom is, for a holder, the send time of the write its lease rests
// on (on this node's clock) and its term; zero when it holds none.
func (c *Core) LeaseFrom() (sent time.Time, term int64) {
	if c.role != roleHolder {
		return time.Time{}, 0
	}
	return c.hold.leaseSend, c.hold.term
}
