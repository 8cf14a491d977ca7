package core

import (
	"fmt"
	"time"
)

// The core's side of requests: what each outstanding request was for, and
// the dispatch of replies, watches and session changes.

// purpose says what a reply means to the core.
type purpose uint8

const (
	pGroupGet     purpose = iota + 1 // read the group record
	pEnsure                          // create a missing parent
	pGroupRepair                     // overwrite an unusable group record
	pCreate                          // create our member node
	pFind                            // list members to find our node after a lost create
	pLookChildren                    // a look: list members
	pLookGet                         // a look: one member's data
	pLookRec                         // a look: the leader record
	pPredWatch                       // read and watch the predecessor
	pRecRead                         // read the leader record another client wrote (holder)
	pClaim                           // claim the lease
	pExtend                          // extend the lease (write our node)
	pResync                          // read our node after an ambiguous write
	pActivate                        // mark the leader record active after fencing
	pRepair                          // rewrite a damaged leader record (holder)
	pRelease                         // release the lease
	pLeave                           // delete our member node
	pCleanup                         // delete a leftover node of our session
	pOwnWatch                        // read and watch our own node (member)
	pFastRec                         // read the record after our lowest predecessor left
	pRecFix                          // watch a record we refuse to lead over, for its fix
	pLookGroup                       // a look: the group record (pause), with a watch
)

// pending is an outstanding request.
type pending struct {
	p     purpose
	gen   uint64
	epoch uint64
	sent  time.Time
	node  string // the member node concerned, if any
	data  []byte // what a write wrote
	term  int64
	rule  claimRule
	look  uint64    // the look this read belongs to
	leave bool      // pRelease: our node is deleted too
	then  afterDone // pLeave, pRelease: what follows
}

// request emits op and remembers what it is for.
func (c *Core) request(p pending, op Op) uint64 {
	c.req.nextID++
	id := c.req.nextID
	p.gen, p.epoch, p.sent = c.own.gen, c.sess.epoch, c.now
	c.req.pend[id] = p
	c.req.order = append(c.req.order, id)
	c.emit(ActRequest{ID: id, Op: op, Extension: p.p == pExtend})
	return id
}

// requestTimeout: a request unanswered this long is given up as lost (its
// outcome unknown), so nothing waits forever on a server that answers pings
// but not it. A reply that comes later is dropped.
func (c *Core) requestTimeout() time.Duration { return c.cfg.Lease }

// expireRequests gives up the requests older than requestTimeout.
func (c *Core) expireRequests() {
	for len(c.req.order) > 0 {
		id := c.req.order[0]
		p, ok := c.req.pend[id]
		if !ok {
			c.req.order = c.req.order[1:]
			continue
		}
		if c.now.Sub(p.sent) < c.requestTimeout() {
			return
		}
		c.req.order = c.req.order[1:]
		c.onReply(EvReply{ID: id, Result: Result{Err: ErrLost, Detail: "no answer within " + c.requestTimeout().String()}})
	}
}

// oldestRequest is when the oldest outstanding request times out.
func (c *Core) oldestRequest() time.Time {
	for _, id := range c.req.order {
		if p, ok := c.req.pend[id]; ok {
			return p.sent.Add(c.requestTimeout())
		}
	}
	return time.Time{}
}

func (c *Core) onReply(ev EvReply) {
	p, ok := c.req.pend[ev.ID]
	if !ok {
		return
	}
	delete(c.req.pend, ev.ID)
	// From here on p.epoch is the epoch of the connection that delivered
	// the reply, not the one we sent it in: a request queued across a
	// reconnect is answered by the new connection, possibly before the
	// session's notice of it reaches us.
	if c.cfg.Weaken.has(WeakReplyEpochOnly) {
		p.epoch = ev.Epoch
	} else if !c.cfg.Weaken.has(WeakEpochAtSend) && p.epoch != ev.Epoch {
		// Sent on one connection, answered on another (queued across a
		// reconnect): it may have been applied after a rollback that
		// erased what others did meanwhile, so it proves nothing; its
		// outcome is still taken (versions).
		p.epoch = 0
	}
	r := ev.Result
	switch p.p {
	case pGroupGet, pEnsure, pGroupRepair, pCreate, pFind:
		c.onJoinReply(p, r)
	case pLookChildren, pLookGet, pLookRec, pLookGroup:
		c.onLookReply(ev.ID, p, r)
	case pPredWatch:
		c.onPredRead(ev.ID, p, r)
	case pRecRead:
		c.onRecRead(p, r)
	case pClaim:
		c.onClaimReply(p, r)
	case pExtend:
		c.onExtendReply(p, r)
	case pResync:
		c.onResync(p, r)
	case pActivate:
		c.onActivateReply(p, r)
	case pRepair:
		c.onRepairReply(p, r)
	case pRelease, pLeave:
		c.onLeaveReply(p, r)
	case pRecFix:
		if ev.ID == c.rec.fixWatch && (r.Err != ErrNone || c.stale(p)) {
			c.rec.fixWatch = 0
			c.wantLook() // gone already, or unreadable: look again
		}
	case pFastRec:
		c.onFastRec(ev.ID, p, r)
	case pCleanup:
		if r.Err == ErrBadVersion && !c.stale(p) {
			// The node changed since we read it: looks do not read a node
			// they know, so mark it to be read again, or the sweep would
			// try the same stale version for ever.
			c.view.reread[p.node] = true
			c.wantLook()
		}
	case pOwnWatch:
		if !c.stale(p) && ev.ID == c.own.watch {
			switch r.Err {
			case ErrNone:
				if c.current(p.epoch) {
					c.own.watchVer = r.Stat.Version
				}
			case ErrNoNode:
				c.own.watch = 0
				c.wantLook() // the look finds it gone
			default:
				c.own.watch = 0
			}
		}
	}
}

func (c *Core) onWatch(ev EvWatch) {
	if !c.current(ev.Epoch) && ev.Kind != WatchLost && !c.cfg.Weaken.has(WeakEpochAtSend) {
		// Delivered by another connection than the one our observations
		// belong to (or we cannot tell): it proves nothing, it only says
		// something changed. Treated as a lost watch: look again.
		ev.Kind = WatchLost
	}
	switch {
	case ev.ID == 0:
	case ev.ID == c.pred.watch:
		c.pred.watch = 0
		c.onPredWatch(ev.Kind)
	case ev.ID == c.rec.fixWatch:
		c.rec.fixWatch = 0
		c.wantLook()
	case ev.ID == c.view.grp.watch:
		// Paused or resumed (or rewritten): read it now.
		c.view.grp.watch = 0
		c.lookWanted()
	case ev.ID == c.own.watch:
		c.own.watch = 0
		if ev.Kind == WatchChanged && c.hold.claimBusy {
			// Most likely our claim's own write, told before its reply:
			// the reply settles it (onClaimReply).
			c.own.changedInClaim, c.own.changedAt = true, c.own.watchVer
			return
		}
		// Someone deleted or wrote our node (a standby's node changes only
		// by our claim): look now, reading it, rather than at the next relist.
		c.own.check = true
		c.wantLook()
	}
}

// onSession applies a session report. A new session id ends the membership
// (our node belonged to the old session); a new epoch, even of the same
// session, drops every observation made on the old connection.
func (c *Core) onSession(ev EvSession) {
	if ev.Epoch != c.sess.epoch {
		c.sess.epoch = ev.Epoch
		c.newEpoch()
	}
	if !ev.Up {
		if c.sess.up {
			c.sess.up = false
			if !c.Active(c.now) && c.pub.phase != PhaseStopped {
				c.setPhase(PhaseDisconnected, "no ZooKeeper session")
			}
		}
		return
	}
	if c.role != roleOut && ev.ID != c.sess.id {
		c.sess.up = true // lose() reports the phase with a session
		c.lose(fmt.Sprintf("ZooKeeper session %s ended; now %s", SessionHex(c.sess.id), SessionHex(ev.ID)))
	}
	c.sess.up, c.sess.id = true, ev.ID
	if c.own.guid == "" {
		c.own.guid = c.cfg.NewGUID()
	}
	c.pace.retryAt, c.pace.backoff = time.Time{}, 0
	if c.role != roleOut {
		c.wantLook()
		if !c.Active(c.now) && c.pub.phase == PhaseDisconnected {
			c.setPhase(c.idlePhase(), "ZooKeeper session back")
		}
	}
}

// current reports whether epoch is the connection our observations belong
// to. 0 (unknown) never is.
func (c *Core) current(epoch uint64) bool { return epoch != 0 && epoch == c.sess.epoch }

// newEpoch forgets what was observed on the previous connection: after a
// reconnect the server may be another one, or one restored from an older
// snapshot, so a version or absence seen before proves nothing now.
func (c *Core) newEpoch() {
	c.own.check = c.role != roleOut
	c.own.revalidate = c.role == roleHolder && !c.cfg.Weaken.has(WeakNoRevalidate)
	if c.cfg.Weaken.has(WeakKeepAcrossEpochs) {
		c.lookWanted()
		return
	}
	c.pred.watch, c.pred.obs, c.pred.lowest = 0, time.Time{}, false
	c.own.watch, c.rec.fixWatch, c.own.changedInClaim = 0, 0, false
	c.view.grp = groupState{} // read again, in this epoch
	c.view.vacated, c.view.candSince = time.Time{}, time.Time{}
	clear(c.view.seenBelow)
	c.rec.firstOK = false
	c.view.look = lookState{}
	c.lookWanted()
}

// lose ends the membership: our node is gone or belongs to a dead session.
func (c *Core) lose(reason string) {
	if c.role == roleHolder {
		cover("stop: membership lost")
		c.stepDown(reason, afterStop{})
	}
	if r := c.hold.releaseDue; r != nil {
		// Our node is gone: nothing left to release or delete.
		c.hold.releaseDue = nil
		defer c.runAfter(r.then)
	}
	c.own.gen++
	c.role = roleOut
	// A new guid for every membership: a member node's name is never used
	// twice, even when the tree is recreated and sequences start again, so
	// nothing proved with an old node applies to a new one.
	c.own.guid = c.cfg.NewGUID()
	c.own.node, c.own.sure, c.own.epoch, c.own.sent, c.own.data = "", false, 0, time.Time{}, nil
	c.own.revalidate = false
	c.view.position, c.pred.node, c.pred.watch, c.own.watch, c.rec.fixWatch = -1, "", 0, 0, 0
	c.own.changedInClaim = false
	c.rec.mineOK = false
	c.pred.obs, c.view.vacated, c.view.candSince = time.Time{}, time.Time{}, time.Time{}
	clear(c.view.seenBelow)
	clear(c.view.belowInfo)
	clear(c.view.belowSeen)
	c.view.look = lookState{}
	c.hold.claimBusy, c.hold.extBusy = false, false
	c.own.joining = joinStart
	c.cand.quitting = false
	if !c.Active(c.now) && c.pub.phase != PhaseStopped {
		c.setPhase(c.idlePhase(), reason)
	}
}

// stale reports whether a reply belongs to a membership that has ended.
func (c *Core) stale(p pending) bool { return p.gen != c.own.gen }
