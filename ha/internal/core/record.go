package core

// The leader record while we hold it: rewriting it after another client
// wrote it, fencing the previous leader and marking the record active.

import (
	"fmt"
	"time"
)

// LeaderInfo identifies one leadership of a group.
type LeaderInfo struct {
	Name  string    `json:"name"`
	Host  string    `json:"host"`
	HTTP  string    `json:"http,omitempty"`
	Term  int64     `json:"term"`
	Since time.Time `json:"since,omitzero"`
}

// FenceRequest asks to fence the previous leader before this node's term
// starts.
type FenceRequest struct {
	// Term is the term this node will lead in.
	Term int64
	// Previous is the last leader that may have run its duty, when known:
	// the one the leader record names, or else Candidates[0].
	Previous LeaderInfo
	// PreviousKnown is false when nobody at all is known: a previous leader
	// may have acted, but neither the leader record nor the members this
	// node saw say which. It is true whenever Candidates is not empty.
	PreviousKnown bool
	// Candidates are the members that may have acted, Previous first. When
	// the leader record names the previous leader, it alone. When the
	// record was missing or unreadable, the members this node read that may
	// have held the lease (Term: the last lease term each published, 0 for
	// none): the silent lowest member a rule D claim deletes, or every
	// member seen below this one since it connected. That list may miss a
	// leader whose node was gone before this node first looked.
	Candidates []LeaderInfo
}

type fenceState struct {
	busy    bool
	tries   int // failed fences in this term
	term    int64
	req     FenceRequest
	retryAt time.Time
	backoff time.Duration
}

// onRecRead decides what to do with a leader record another client wrote
// (an extension's check of it failed).
func (c *Core) onRecRead(p pending, r Result) {
	c.hold.extBusy = false
	if c.stale(p) || c.role != roleHolder {
		return
	}
	z := c.l.LeaderNode()
	switch r.Err {
	case ErrNone:
	case ErrNoNode:
		c.notice("rec-gone", Notice{Level: "warn", Znode: z, Msg: fmt.Sprintf("leader record %s was deleted; rewriting it", z)})
		c.hold.repair = &repairReq{version: -1}
		return
	default:
		c.fail()
		return
	}
	rec, kind, why := DecodeLeader(r.Data)
	if kind == RecOK && rec.HolderNode == c.own.node && rec.Term == c.hold.term {
		// Ours after all: a write of ours whose reply we lost applied.
		c.rec.mine, c.rec.ver, c.rec.r = r.Stat.Version, r.Stat.Version, rec
		if rec.State == RecActive && !c.hold.activated && c.hold.activateDue {
			c.hold.activated, c.hold.activateDue = true, false
			c.hold.fence = fenceState{}
		}
		return
	}
	if rec.Term >= MaxTerm {
		// A term that cannot grow: neither follow nor overwrite it. Stop,
		// and leave the record for the operator (setRecord says how).
		c.setRecord(r)
		cover("stop: record term cannot grow")
		c.stepDown("leader record overwritten with a term that cannot grow", afterStop{})
		return
	}
	if kind == RecOK && rec.Term > c.hold.term {
		// Someone recorded a higher term: ours must not look older than it.
		// Hand over to ourselves: stop, release above that term, re-claim.
		c.notice("rec-foreign", Notice{Level: "warn", Znode: z, Msg: fmt.Sprintf(
			"leader record %s was overwritten by another client with term %d (ours %d); stepping down to lead above it", z, rec.Term, c.hold.term)})
		c.view.seenTerm = max(c.view.seenTerm, rec.Term)
		c.rec.ver = r.Stat.Version
		cover("stop: record with a higher term")
		cover("release asked: record with a higher term")
		c.stepDown("leader record overwritten with a higher term", afterStop{write: writeRelease,
			then: afterDone{forget: "rec-foreign"}})
		return
	}
	if kind != RecOK {
		why = "not a leader record: " + why
	} else {
		why = fmt.Sprintf("names %s in term %d", rec.Name, rec.Term)
	}
	c.notice("rec-foreign", Notice{Level: "warn", Znode: z, Msg: fmt.Sprintf(
		"leader record %s was overwritten by another client (%s); rewriting it", z, why)})
	c.hold.repair = &repairReq{version: r.Stat.Version}
}

// repairReq is a rewrite of the leader record the holder owes: it goes out
// as the next extension (one write of our node at a time).
type repairReq struct{ version int32 } // -1: create it

// repairRecord rewrites the leader record with our claim (version -1:
// create it), together with an extension, which proves we still hold. It
// takes the extension's place: never two writes of our node at once.
func (c *Core) repairRecord(version int32) {
	c.hold.repair = nil
	rec := c.rec.r
	if rec.HolderNode != c.own.node {
		rec = LeaderRecord{Term: c.hold.term, HolderNode: c.own.node, Name: c.cfg.Self.Name, Host: c.cfg.Self.Host,
			HTTP: c.cfg.Self.HTTP, Session: SessionHex(c.sess.id), Since: c.now.UTC(), State: RecActive}
	}
	if !c.hold.activated {
		rec.State = RecFencing
	}
	rc := Op{Kind: OpSet, Path: c.l.LeaderNode(), Data: MustJSON(rec), Version: version}
	if version < 0 {
		rc = Op{Kind: OpCreate, Path: c.l.LeaderNode(), Data: MustJSON(rec)}
	}
	c.writeOwn(pending{p: pRepair}, rc)
}

func (c *Core) onRepairReply(p pending, r Result) {
	if c.ownWriteDone(p, r) {
		c.rec.mine = r.Multi[1].Stat.Version
		c.rec.ver = c.rec.mine
		c.forget("rec-gone")
		c.forget("rec-foreign")
	}
}

func (c *Core) startFence() {
	c.hold.fence.busy = true
	c.emit(ActFence{Req: c.hold.fence.req})
}

func (c *Core) cancelFence() {
	if c.hold.fence.busy {
		c.emit(ActCancelFence{})
	}
	c.hold.fence = fenceState{}
}

func (c *Core) onFenced(ev EvFenced) {
	if !c.hold.fence.busy || ev.Term != c.hold.fence.term || c.role != roleHolder || c.hold.activated {
		return
	}
	c.hold.fence.busy = false
	if ev.Err != nil {
		c.hold.fence.tries++
		if limit := c.cfg.FenceMaxTries; limit > 0 && c.hold.fence.tries >= limit {
			c.fenceGaveUp(ev.Err)
			return
		}
		c.hold.fence.backoff = min(max(2*c.hold.fence.backoff, 500*time.Millisecond), 10*time.Second)
		c.hold.fence.retryAt = c.now.Add(c.hold.fence.backoff)
		c.setPhase(c.idlePhase(), fmt.Sprintf("fencing failed (%v); retrying in %s", ev.Err, c.hold.fence.backoff))
		return
	}
	// Mark the record active before acting, so a later leader fences us:
	// as the next write of our node (advanceHolder).
	c.hold.activateDue = true
}

// fenceGaveUp: FENCE_CMD failed FenceMaxTries times in this term. The duty
// never started here; step aside and rejoin at the back, so that another
// member, whose fence may work, claims next. The record stays as our claim
// left it (fencing, naming whom to fence), so whoever claims next fences
// the same previous leader: nothing here counts as a release.
func (c *Core) fenceGaveUp(err error) {
	reason := fmt.Sprintf("fencing failed %d times in term %d (last: %v); stepping aside so another member may fence and lead",
		c.hold.fence.tries, c.hold.term, err)
	c.notice("fence-gave-up", Notice{Level: "error", Msg: reason})
	cover("stop: fence gave up")
	c.stepDown(reason, afterStop{write: writeRelease, leave: true,
		then: afterDone{do: doRejoin, reason: "rejoining after fencing failed", forget: "fence-gave-up"}})
}

// activate writes the record active (and extends, proving we still hold).
func (c *Core) activate() {
	rec := c.rec.r
	rec.State, rec.Previous, rec.Candidates = RecActive, nil, nil
	c.writeOwn(pending{p: pActivate, term: c.hold.term}, Op{Kind: OpSet, Path: c.l.LeaderNode(), Data: MustJSON(rec), Version: c.rec.mine})
}

func (c *Core) onActivateReply(p pending, r Result) {
	c.own.writes--
	c.hold.extBusy = false
	if c.stale(p) || c.role != roleHolder || p.term != c.hold.term || c.hold.activated {
		return
	}
	if r.Err != ErrNone {
		// If a lost activation applied, the resync and then the record's
		// read (its check fails) say so before we write it again.
		c.ownWriteFailed(p, r)
		return
	}
	c.own.ver, c.rec.mine = r.Multi[0].Stat.Version, r.Multi[1].Stat.Version
	c.rec.ver = c.rec.mine
	c.extended(p)
	c.rec.r.State, c.rec.r.Previous, c.rec.r.Candidates = RecActive, nil, nil
	c.hold.activated, c.hold.activateDue = true, false
	c.hold.fence = fenceState{}
}
