package core

// The guard's release (issue 17): when the coordinator process has exited
// — proven by the kernel, not guessed from a closed pipe or from silence —
// and its duty guard has stopped the duty and confirmed it gone, the guard
// writes the release the holder would have written at a graceful stop. It
// takes its ticket from the holder: the release multi as of the holder's
// last acknowledged write, sent to the guard with every extension.
//
// The ticket checks more than a graceful release does: our member node at
// the version our last acknowledged write left (deleted in the same multi),
// and the leader record at the version our last write of it left. Any later
// write by the holder (an extension that was on its way when it died and
// landed after all) and any claim by another member changes one of them,
// so a ticket either releases the lease the dead holder last held — a
// lease whose holder will never act again and whose duty is stopped — or
// fails, and the group waits out the lease as for any crash (rule D).

import "time"

// GuardTicket is the release a duty guard may write for its holder once
// the holder's process has provably exited and the duty is stopped.
type GuardTicket struct {
	// Term is the lease's term.
	Term int64
	// Ops is the release: [delete our member node at its version, set the
	// leader record, released, at its version]; one multi.
	Ops []Op
}

// ReasonExited starts the reason a guard's release records (the history's
// cause for the next claim is CauseCrash).
const ReasonExited = "exited: the holder's process ended (killed or crashed); its duty guard stopped the duty and released"

// guardTicket is the ticket as of our last acknowledged write, ok false
// when a guard may not release for us: we hold no activated lease, or do
// not know our node's or the record's version for sure.
func (c *Core) guardTicket() (*GuardTicket, bool) {
	if c.role != roleHolder || !c.hold.activated || !c.own.sure || !c.rec.mineOK || c.rec.kind != RecOK ||
		c.rec.r.HolderNode != c.own.node || c.rec.r.State != RecActive {
		return nil, false
	}
	rec := c.rec.r
	rec.Term = max(rec.Term, c.view.seenTerm)
	// Since: when the guard releases is not known here; the holder's last
	// extension is within a lease of it.
	rec.State, rec.Previous, rec.Since, rec.Reason = RecReleased, nil, c.now.UTC().Truncate(time.Millisecond), ReasonExited
	return &GuardTicket{Term: c.hold.term, Ops: []Op{
		{Kind: OpDelete, Path: c.l.MemberNode(c.own.node), Version: c.own.ver},
		{Kind: OpSet, Path: c.l.LeaderNode(), Data: MustJSON(rec), Version: c.rec.mine},
	}}, true
}
