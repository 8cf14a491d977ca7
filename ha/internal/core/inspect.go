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

// String prints the core's whole state, part by part and field by field
// (TestCoreStringPrintsTheWholeState checks that no field is left out), for
// a failing seed.
func (c *Core) String() string {
	var w stateWriter
	w.part("core")
	w.f("group", c.cfg.Group).f("self", c.cfg.Self.Name).f("now", c.now).f("role", c.role).f("leaving", c.leaving).
		f("shutting", c.shutting).f("done", c.done)
	s := c.sess
	w.part("sess").f("up", s.up).f("id", SessionHex(s.id)).f("epoch", s.epoch)
	r := c.req
	w.part("req").f("nextID", r.nextID).f("pend", len(r.pend)).f("order", r.order)
	for _, id := range r.order {
		if p, ok := r.pend[id]; ok {
			w.f(fmt.Sprintf("#%d", id), fmt.Sprintf("{p:%d gen:%d epoch:%d sent:%s node:%s term:%d rule:%s look:%d leave:%v then:%+v}",
				p.p, p.gen, p.epoch, stamp(p.sent), p.node, p.term, p.rule, p.look, p.leave, p.then))
		}
	}
	o := c.own
	w.part("own").f("gen", o.gen).f("guid", o.guid).f("joining", o.joining).f("ensureAt", o.ensureAt).f("node", o.node).
		f("ver", o.ver).f("sure", o.sure).f("epoch", o.epoch).f("sent", o.sent).f("data", o.data).
		f("revalidate", o.revalidate).f("watch", o.watch).f("watchVer", o.watchVer).f("changedInClaim", o.changedInClaim).f("changedAt", o.changedAt).f("check", o.check).f("writes", o.writes).f("writeSeq", o.writeSeq)
	v := c.view
	lk := v.look
	w.part("view").f("look", fmt.Sprintf("{id:%d at:%s names:%d waiting:%d recDone:%v again:%v ownSeq:%d ownBusy:%v ownRead:%v outdated:%v}",
		lk.id, stamp(lk.at), len(lk.names), lk.waiting, lk.recDone, lk.again, lk.ownSeq, lk.ownBusy, lk.ownRead, lk.outdated)).
		f("lookDue", v.lookDue).f("lastLook", v.lastLook).f("lookAt", v.lookAt).f("members", len(v.members)).f("names", v.names).
		f("ignored", len(v.ignored)).f("infos", len(v.infos)).f("reread", v.reread).f("seenBelow", v.seenBelow).
		f("belowInfo", v.belowInfo).f("belowSeen", v.belowSeen).f("position", v.position).f("unreadable", v.unreadable).f("sweepable", v.sweepable).
		f("vacated", v.vacated).f("candSince", v.candSince).f("seenTerm", v.seenTerm).
		f("grp", fmt.Sprintf("{known:%v ver:%d paused:%v switchTo:%s watch:%d}", v.grp.known, v.grp.ver, v.grp.paused != nil,
			deref(v.grp.switchTo), v.grp.watch))
	rc := c.rec
	w.part("rec").f("r", fmt.Sprintf("{term:%d holder:%s name:%s state:%s}", rc.r.Term, rc.r.HolderNode, rc.r.Name, rc.r.State)).
		f("kind", rc.kind).f("ver", rc.ver).f("why", rc.why).f("maxed", rc.maxed).f("first", rc.first).
		f("firstOK", rc.firstOK).f("mine", rc.mine).f("mineOK", rc.mineOK).f("fixWatch", rc.fixWatch)
	p := c.pred
	w.part("pred").f("node", p.node).f("watch", p.watch).f("lowest", p.lowest).f("obs", p.obs).f("ver", p.ver).
		f("holds", p.holds).f("name", p.name).f("failed", p.failed).f("data", fmt.Sprintf("{name:%s leaseTerm:%d}", p.data.Name, p.data.LeaseTerm)).
		f("fastRead", p.fastRead).f("fastNode", p.fastNode)
	h := c.hold
	w.part("hold").f("term", h.term).f("leaseSend", h.leaseSend).f("extBusy", h.extBusy).f("extN", h.extN).
		f("extLost", h.extLost).f("repair", deref(h.repair)).f("activateDue", h.activateDue).f("releaseDue", deref(h.releaseDue)).
		f("activated", h.activated).f("duty", h.duty).f("claimBusy", h.claimBusy).
		f("claiming", fmt.Sprintf("{rule:%s term:%d fence:%v cands:%d seen:%s prev:%s/%s}", h.claiming.rule, h.claiming.rec.Term, h.claiming.fence,
			len(h.claiming.cands), stamp(h.claiming.seen), h.claiming.prev.Name, h.claiming.prev.State)).
		f("lookAfterClaim", h.lookAfterClaim).
		f("fence", fmt.Sprintf("{busy:%v tries:%d term:%d retryAt:%s backoff:%s}", h.fence.busy, h.fence.tries, h.fence.term, stamp(h.fence.retryAt), h.fence.backoff)).
		f("afterStop", deref(h.afterStop)).f("stopUnsure", h.stopUnsure).f("stopReason", h.stopReason)
	w.part("pace").f("retryAt", c.pace.retryAt).f("backoff", c.pace.backoff)
	cd := c.cand
	w.part("cand").f("unhealthy", cd.unhealthy).f("quitting", cd.quitting).f("better", cd.better).f("betterSince", cd.betterSince)
	u := c.pub
	w.part("pub").f("phase", u.phase).f("reason", u.reason).f("since", u.since).f("noticed", u.noticed)
	return w.b.String()
}

// stateWriter prints named parts of fields, one part per line.
type stateWriter struct{ b strings.Builder }

func (w *stateWriter) part(name string) *stateWriter {
	if w.b.Len() > 0 {
		w.b.WriteString("\n  ")
	}
	w.b.WriteString(name + ":")
	return w
}

func (w *stateWriter) f(name string, v any) *stateWriter {
	switch v := v.(type) {
	case time.Time:
		fmt.Fprintf(&w.b, " %s=%s", name, stamp(v))
	case []byte:
		fmt.Fprintf(&w.b, " %s=%s", name, Quote(v))
	default:
		fmt.Fprintf(&w.b, " %s=%+v", name, v)
	}
	return w
}

// stamp prints an instant of a node's clock to the microsecond, "-" zero.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format("15:04:05.000000")
}

// deref prints what p points to, "nil" for nothing.
func deref[T any](p *T) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprintf("%+v", *p)
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
