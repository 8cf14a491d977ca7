package core

import (
	"fmt"
	"slices"
	"time"
)

// The claim rules: the one place that decides when this member may take the
// lease. ha/doc.go states the invariant; each rule below names the part of the
// argument it rests on. Choosing WHO should lead is position: the lowest
// member, or the second one when the lowest is a silent holder.

// claimRule is why a claim is allowed.
type claimRule uint8

const (
	ruleNone claimRule = iota
	// ruleA (A): the leader record still names us, at the version our
	// own last write of it left, and our node is as our last write left
	// it, that write acknowledged in this epoch (ownProof):
	// nobody claimed since, and our own duty has stopped. Re-claim at once
	// (a lapsed lease, a new term).
	ruleA
	// ruleB (B): the record says its holder released, and that
	// holder is a member we saw below us in this epoch: it stopped its duty
	// before the versioned release, and no claim happened since (every claim
	// writes the record; the claim below checks its version).
	ruleB
	// ruleC (C): we are the lowest member, and W has passed since the
	// first look in this epoch that showed it (or since we last read our
	// vanished lowest predecessor unchanged). Every earlier holder's node was
	// gone by then, so its last extension was sent before, and it can never
	// extend again.
	ruleC
	// ruleD (D): we are second, the lowest member is the holder, and
	// its node has stayed at the version we read W ago. The claim deletes it
	// with that version, so the holder's next extension fails for good.
	ruleD
)

// ruleNames are the rules' names: the one name code, logs, status, the
// simulator's coverage and ha/doc.go use for each.
var ruleNames = [...]string{"no rule", "rule A (own lease lapsed)", "rule B (leader released)", "rule C (no member below)",
	"rule D (silent leader)"}

// claimPoint is the coverage point of a claim by r; how tells rule B's two
// paths apart ("after a look", "fast path").
func claimPoint(r claimRule, how string) string {
	if how != "" {
		return "claim: " + r.String() + " " + how
	}
	return "claim: " + r.String()
}

func (r claimRule) String() string { return ruleNames[r] }

// recOurs: the record is as our own last write of it left it (rule A).
func (c *Core) recOurs() bool {
	return c.rec.mineOK && c.rec.ver == c.rec.mine || c.cfg.Weaken.has(WeakRuleAAnyVersion)
}

// releaseSeen: the record says its holder released, that holder is a
// member we saw below us in this epoch, and the release was written in
// this epoch's history: after our first read of the record in it (rule B).
func (c *Core) releaseSeen() bool {
	r := c.rec.r
	return c.rec.kind == RecOK && r.State == RecReleased && c.view.seenBelow[r.HolderNode] &&
		(c.rec.firstOK && c.rec.ver > c.rec.first || c.cfg.Weaken.has(WeakRuleBAnyRelease))
}

// pickRule returns the rule that will let us claim and from when; ok is
// false while no rule can apply from what we know.
func (c *Core) pickRule() (claimRule, time.Time, bool) {
	if c.role != roleMember || !c.sess.up || c.view.position < 0 || !c.own.sure || c.view.look.id != 0 || c.view.lookDue {
		return ruleNone, time.Time{}, false
	}
	if !c.mayLead() && !c.cfg.Weaken.has(WeakNoFailoverClaims) {
		return ruleNone, time.Time{}, false // NOFAILOVER, or unhealthy
	}
	if c.rec.maxed || c.nextTerm() >= MaxTerm {
		return ruleNone, time.Time{}, false // refused: see Snapshot.Problem
	}
	rec := c.rec.kind == RecOK
	if c.view.position == 0 && rec && c.rec.r.HolderNode == c.own.node && c.recOurs() && c.ownProof() {
		return ruleA, c.now, true
	}
	if c.paused() {
		return ruleNone, time.Time{}, false // no takeover while paused (pause.go)
	}
	switch {
	case c.view.position == 0 && rec && c.releaseSeen():
		return ruleB, c.now, true
	case c.view.position == 0 && !c.view.candSince.IsZero():
		return ruleC, c.view.candSince.Add(c.wait), true
	case c.view.position == 1 && c.pred.lowest && !c.pred.obs.IsZero() && c.pred.watch != 0 && !c.pred.failed:
		wait := c.wait
		if !c.pred.holds && recordHolder(c.rec.r, c.rec.kind) != c.pred.node {
			// The lowest member does not hold the lease (its node carries
			// none, and the record does not name it): it is waiting to claim
			// itself. Give it a full lease more before pushing it out. Only
			// liveness rests on this; W alone is safe.
			wait += c.cfg.Lease
		}
		return ruleD, c.pred.obs.Add(wait), true
	}
	return ruleNone, time.Time{}, false
}

// advanceMember keeps a member's view fresh and claims when a rule allows.
func (c *Core) advanceMember() {
	if c.view.look.id == 0 && (c.view.lookDue || c.lookSoonDue() || !c.view.lastLook.IsZero() && !c.now.Before(c.view.lastLook.Add(c.relistEvery()))) {
		c.startLook()
	}
	if c.memberBusy() {
		return
	}
	if c.view.position >= 0 && c.advanceCandidacy() {
		return
	}
	if c.view.position > 0 && c.pred.node != "" && c.pred.watch == 0 {
		c.watchPred()
	}
	if c.rec.maxed && c.view.position == 0 && c.rec.fixWatch == 0 {
		// Refusing to lead over a record whose term cannot grow: watch it,
		// so the operator's fix (deleting it) is seen at once.
		c.rec.fixWatch = c.request(pending{p: pRecFix}, Op{Kind: OpGet, Path: c.l.LeaderNode(), Watch: true})
	}
	if c.own.watch == 0 && c.view.position >= 0 {
		c.own.watch, c.own.watchVer = c.request(pending{p: pOwnWatch}, Op{Kind: OpGet, Path: c.l.MemberNode(c.own.node), Watch: true}), -1
	}
	if rule, at, ok := c.pickRule(); ok && !c.now.Before(at) {
		how := ""
		if rule == ruleB {
			how = "after a look"
		}
		cover(claimPoint(rule, how))
		c.claim(rule)
		return
	}
	if at := c.sweepAt(); !at.IsZero() && !c.now.Before(at) {
		c.sweep()
		return
	}
	c.setPhase(c.idlePhase(), c.standbyReason())
}

// memberBusy: something is in flight that any decision must wait for.
func (c *Core) memberBusy() bool {
	return c.view.look.id != 0 || c.hold.claimBusy || c.own.writes > 0 || c.hold.afterStop != nil || c.pred.fastRead != 0 ||
		c.cand.quitting
}

// sweepAt is when the unreadable nodes below us may be deleted (zero:
// none): nodes with a member's name whose data is not a member record,
// unchanged for W + D. A member sweeps its direct predecessor, and the
// lowest member whose data is readable sweeps every one below it; the member
// behind that one sweeps them too, a lease later, in case it never does (a
// foreign client's node can look like a member's). A live member would
// have rewritten its damaged node by then (it rejoins at its next look, and
// a holder at its next extension), so they are foreign or dead; deleting
// one at the version seen is rule D's argument: silent for W, it cannot be
// acting, and it can never write again.
func (c *Core) sweepAt() time.Time {
	if c.role != roleMember || c.memberBusy() || len(c.view.sweepable) == 0 {
		return time.Time{}
	}
	var first time.Time
	for _, u := range c.view.sweepable {
		if due := c.sweepDue(u); first.IsZero() || due.Before(first) {
			first = due
		}
	}
	return first
}

// sweep deletes the sweepable nodes that are due, each at its version.
func (c *Core) sweep() {
	keep := c.view.sweepable[:0]
	for _, u := range c.view.sweepable {
		if c.now.Before(c.sweepDue(u)) {
			keep = append(keep, u)
			continue
		}
		z := c.l.MemberNode(u.name)
		c.notice("swept:"+u.name, Notice{Level: "warn", Znode: z, Msg: fmt.Sprintf(
			"deleting %s: its data is not a member record and it has not changed for %s", z, c.now.Sub(u.at).Round(time.Millisecond))})
		c.request(pending{p: pCleanup, node: u.name}, Op{Kind: OpDelete, Path: z, Version: u.ver})
	}
	c.view.sweepable = keep
	c.wantLook()
}

// unread is a node in the order whose data is not a member record.
type unread struct {
	name string
	ver  int32
	at   time.Time // first seen at this version
	late bool      // we sweep it only if its own sweeper has not, a lease later
}

// sweepDue is when u may be deleted: unchanged for W + D, a lease more when
// another member should have swept it first.
func (c *Core) sweepDue(u unread) time.Time {
	d := c.wait + c.cfg.Lease
	if u.late {
		d += c.cfg.Lease
	}
	return u.at.Add(d)
}

// claimAt is when the next claim is due (zero: none).
func (c *Core) claimAt() time.Time {
	if c.memberBusy() {
		return time.Time{}
	}
	if _, at, ok := c.pickRule(); ok {
		return at
	}
	return time.Time{}
}

// nextTerm is the term of our next claim: above every term known (the
// record's, the members', our own), and at least the wall clock in
// milliseconds, so that after ZooKeeper lost everything terms still grow
// (ha/doc.go, "Terms").
func (c *Core) nextTerm() int64 {
	base := c.view.seenTerm
	if c.rec.kind == RecOK {
		base = max(base, c.rec.r.Term)
	}
	if base >= MaxTerm-1 {
		return MaxTerm
	}
	wall := c.now
	if c.cfg.Wall != nil {
		wall = c.cfg.Wall()
	}
	return max(base+1, wall.UnixMilli())
}

// fenceTarget says whom a claim by rule made now must fence: need is false
// when no previous leader may have acted (it released, or it was us).
// cands lists who may have acted: the previous leader, when the record
// names it (or the list a leader that died while fencing recorded); when
// the record cannot say (missing, unreadable, or fencing for an unknown
// leader), the members we know may have (fenceCandidates). Empty: nobody
// known.
func (c *Core) fenceTarget(rule claimRule) (cands []LeaderInfo, need bool) {
	if c.rec.kind != RecOK {
		return c.fenceCandidates(rule), true
	}
	r := c.rec.r
	switch {
	case r.State == RecReleased:
		return nil, false
	case r.HolderNode == c.own.node && r.State == RecActive:
		return nil, false // our own duty, which we know stopped
	case r.State == RecFencing && len(r.Candidates) > 0:
		return r.Candidates, true // the list it was to fence
	case r.State == RecFencing && r.Previous != nil:
		return []LeaderInfo{*r.Previous}, true // the one it was to fence
	case r.State == RecFencing:
		return c.fenceCandidates(rule), true // it did not know either
	}
	return []LeaderInfo{{Name: r.Name, Host: r.Host, HTTP: r.HTTP, Term: r.Term, Since: r.Since}}, true
}

// fenceCandidates names the members that may have acted when the leader
// record cannot say, from what we read of their nodes, lowest first. Rule
// D deletes the lowest member: when its node carries a lease, it is the
// last leader (it fenced whoever led before it when it claimed), and it
// alone is named. Otherwise every member seen below us in this epoch is
// (rule C: one of them may have held the lease, and each is gone now). A
// leader whose node was gone before we first looked, or whose data was not
// a member record, is named by nobody: the list can be short, and empty.
func (c *Core) fenceCandidates(rule claimRule) []LeaderInfo {
	var out []LeaderInfo
	if rule == ruleD && c.pred.data.Name != "" {
		d := c.pred.data
		out = append(out, LeaderInfo{Name: d.Name, Host: d.Host, HTTP: d.HTTP, Term: d.LeaseTerm})
		if c.pred.holds {
			return out
		}
	}
	names := make([]string, 0, len(c.view.belowInfo))
	for name := range c.view.belowInfo {
		if !(rule == ruleD && name == c.pred.node && len(out) > 0) {
			names = append(names, name)
		}
	}
	for _, m := range SortMembers(names) {
		out = append(out, c.view.belowInfo[m.Node])
	}
	return out
}

// noteBelow records what a member below us said it was (for
// fenceCandidates), keeping the highest lease term it published.
func (c *Core) noteBelow(node string, d MemberData) {
	li := LeaderInfo{Name: d.Name, Host: d.Host, HTTP: d.HTTP, Term: d.LeaseTerm}
	if old, ok := c.view.belowInfo[node]; ok {
		li.Term = max(li.Term, old.Term)
	}
	c.view.belowInfo[node] = li
	c.view.belowSeen[node] = c.now
}

// belowKept bounds the members seen below us that are remembered after
// they are gone (belowInfo): a fence names them all, so a long-lived member
// in a group whose members come and go keeps only the latest.
const belowKept = 64

// forgetBelow drops, beyond belowKept, the members seen below us longest
// ago that are not among names.
func (c *Core) forgetBelow(names []string) {
	for len(c.view.belowSeen) > belowKept {
		oldest, at := "", time.Time{}
		for node, seen := range c.view.belowSeen {
			if !slices.Contains(names, node) && (oldest == "" || seen.Before(at)) {
				oldest, at = node, seen
			}
		}
		if oldest == "" {
			return // every one is a member now
		}
		delete(c.view.belowSeen, oldest)
		delete(c.view.belowInfo, oldest)
	}
}

// claim writes the lease claim: one multi that (for rule D) deletes the
// silent holder at the version we watched, writes our own node at the
// version we know (it must still exist: we are still a member) and writes
// the leader record at the version we read (create it if absent).
func (c *Core) claim(rule claimRule) {
	cands, need := c.fenceTarget(rule)
	fence := c.cfg.Fencing && need
	term := c.nextTerm()
	rec := LeaderRecord{Term: term, HolderNode: c.own.node, Name: c.cfg.Self.Name, Host: c.cfg.Self.Host,
		HTTP: c.cfg.Self.HTTP, Session: SessionHex(c.sess.id), Since: c.now.UTC(), State: RecActive}
	if fence {
		// Whom to fence, for the next leader should we die fencing: the
		// first in Previous (all an older hanode reads), the whole list
		// when there are more.
		rec.State = RecFencing
		if len(cands) > 0 {
			first := cands[0]
			rec.Previous = &first
		}
		if len(cands) > 1 {
			rec.Candidates = cands
		}
	}
	data := c.holderData(term, 1)
	var ops []Op
	if rule == ruleD {
		ops = append(ops, Op{Kind: OpDelete, Path: c.l.MemberNode(c.pred.node), Version: c.pred.ver})
	}
	ops = append(ops, Op{Kind: OpSet, Path: c.l.MemberNode(c.own.node), Data: data, Version: c.own.ver})
	if c.rec.kind == RecAbsent {
		ops = append(ops, Op{Kind: OpCreate, Path: c.l.LeaderNode(), Data: MustJSON(rec)})
	} else {
		ops = append(ops, Op{Kind: OpSet, Path: c.l.LeaderNode(), Data: MustJSON(rec), Version: c.rec.ver})
	}
	if check, ok := c.pauseCheck(); ok && rule != ruleA {
		// Last, so the ops' indices above stay as the replies expect:
		// a pause written meanwhile makes the takeover fail.
		ops = append(ops, check)
	}
	c.hold.claimBusy = true
	c.own.writes++
	c.own.writeSeq++
	prev := LeaderRecord{}
	if c.rec.kind == RecOK {
		prev = c.rec.r
	}
	c.hold.claiming = claimInfo{rule: rule, rec: rec, data: data, fence: fence, cands: cands, seen: c.evidence(rule), prev: prev, ownVer: c.own.ver}
	c.request(pending{p: pClaim, rule: rule, term: term, data: data}, Op{Kind: OpMulti, Ops: ops})
	c.setPhase(PhaseWaiting, fmt.Sprintf("claiming term %d: %s", term, rule))
}

// claimInfo is the claim in flight.
type claimInfo struct {
	rule  claimRule
	rec   LeaderRecord
	data  []byte
	fence bool
	cands []LeaderInfo // whom to fence: FenceRequest.Candidates
	seen  time.Time    // Transition.Evidence of the activation it leads to
	// prev is the record the claim replaces (its Name "" when there was
	// none, or it was unreadable): Transition.Previous and Cause.
	prev LeaderRecord
	// ownVer is the version of our node the claim's write expects.
	ownVer int32
}

// evidence is when we observed what a claim by rule rests on: it times
// the takeover (Transition.Evidence) and decides nothing.
func (c *Core) evidence(rule claimRule) time.Time {
	switch rule {
	case ruleB:
		return c.now // the release was read in this step
	case ruleC:
		return c.view.candSince
	case ruleD:
		return c.pred.obs
	}
	return time.Time{}
}

// standbyReason explains a member's position.
func (c *Core) standbyReason() string {
	if c.cfg.Self.NoFailover {
		return "never leads (NOFAILOVER)"
	}
	if c.paused() {
		return c.pauseReason()
	}
	if c.view.position == 0 {
		rule, at, ok := c.pickRule()
		switch {
		case c.rec.maxed || c.nextTerm() >= MaxTerm:
			return "lowest member; refusing to lead: the leader record's term cannot grow"
		case ok && rule == ruleC:
			return fmt.Sprintf("lowest member; an earlier leader may still hold its lease: claiming in %s",
				max(at.Sub(c.now), 0).Round(time.Millisecond))
		case ok:
			return "lowest member: " + rule.String()
		}
		return "lowest member"
	}
	if c.view.position > 0 && c.view.position-1 < len(c.view.members) {
		p := c.view.members[c.view.position-1]
		return fmt.Sprintf("standby behind %s (seq %d)", p.Name, p.Seq)
	}
	return "standby"
}
