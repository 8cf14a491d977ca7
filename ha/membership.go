package ha

// Membership: joining, electing and renewing, each an op on its own
// goroutine whose result the owner applies here.

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"
)

func (e *Elector) retry() {
	if e.joined {
		e.startElect()
	} else {
		e.reconcile()
	}
}

// retryLater backs off after a failed op (250 ms doubling to 2 s).
func (e *Elector) retryLater(what string, err error) {
	e.backoff = min(max(2*e.backoff, 250*time.Millisecond), 2*time.Second)
	e.log.Warn("zookeeper operation failed; retrying", zap.String("op", what), zap.Error(err),
		zap.Duration("in", e.backoff))
	e.retryTimer.Reset(e.backoff)
}

func (e *Elector) startJoin(sid int64) {
	if e.guid == "" || e.guidSID != sid {
		e.guid, e.guidSID = newGUID(), sid
	}
	e.opBusy = true
	gen, guid, self, s := e.gen, e.guid, e.cfg.Self, e.st()
	self.SeenTerm = e.seenTerm
	go func() {
		res, err := e.join(s, sid, guid, self)
		e.post(func() { e.joinDone(gen, res, err) })
	}()
}

func (e *Elector) joinDone(gen uint64, res joinResult, err error) {
	e.opBusy = false
	switch {
	case gen != e.gen:
		e.reconcile()
	case IsRefusal(err):
		e.fatal = err
	case err != nil:
		e.retryLater("join", err)
	case res.sid != e.conn.Load().SessionID():
		e.retryLater("join", errors.New("session changed while joining"))
	default:
		e.joined, e.sid, e.own, e.backoff = true, res.sid, res.node, 0
		e.ackSend = res.ackSend
		e.log.Info("joined group", zap.String("node", res.node.Name), zap.Int64("seq", res.node.Seq),
			zapSession(sessionHex(res.sid)))
		// Every new member starts as a standby; only the election makes it active.
		e.transition(PhaseStandby, fmt.Sprintf("joined as seq %d", res.node.Seq))
		e.armLease()
		e.startElect()
	}
}

func (e *Elector) startElect() {
	if !e.joined {
		return
	}
	if e.opBusy {
		e.electAgain = true
		return
	}
	if e.fence != nil {
		return // a committed term waits for its fence; electing again would hide whom to fence
	}
	e.opBusy, e.electAgain = true, false
	gen, own, sid, known, seen, s := e.gen, e.own, e.sid, maps.Clone(e.infos), e.seenTerm, e.st()
	hold := e.mustHold() > 0
	go func() {
		res, err := e.elect(s, own, sid, known, seen, e.cfg.Callbacks.Fence != nil, hold)
		e.post(func() { e.electDone(gen, res, err) })
	}()
}

func (e *Elector) electDone(gen uint64, res electResult, err error) {
	e.opBusy = false
	if gen != e.gen {
		e.reconcile()
		return
	}
	if err != nil {
		e.retryLater("elect", err)
		return
	}
	e.applyView(res.view)
	if res.pred.Name != "" {
		e.sawPred = true
	}
	switch {
	case res.lost:
		e.lose("member node gone")
		e.reconcile()
	case res.leader && res.fence != nil:
		e.fence = &pendingFence{term: res.term, record: res.record, version: res.version, target: *res.fence}
		e.transition(PhaseStandby, fmt.Sprintf("term %d committed; fencing previous leader %s (term %d)",
			res.term, res.fence.Name, res.fence.Term))
		e.startFence()
	case res.leader:
		e.activated(res.term, res.ackSend, fmt.Sprintf("lowest member; term %d committed", res.term))
	case res.hold:
		wait := e.mustHold()
		e.transition(PhaseStandby, fmt.Sprintf("lowest member, first of its session: a leader from before this session "+
			"may still hold its lease; leading in %s", wait.Round(time.Millisecond)))
		e.retryTimer.Reset(max(wait, time.Millisecond))
	case e.electAgain || res.again:
		e.startElect()
	default:
		if e.phase == PhaseActive {
			// Cannot happen: sequences only grow and our node still exists.
			panic(fmt.Sprintf("ha: active node %s is no longer the lowest member", e.own.Name))
		}
		e.transition(PhaseStandby, fmt.Sprintf("standby behind %s (seq %d)", nameOr(res.view.infos[res.pred.Name].Name, res.pred.Name), res.pred.Seq))
		go func() {
			select {
			case ev := <-res.watch:
				e.post(func() { e.predecessorChanged(gen, ev) })
			case <-e.done:
			}
		}()
	}
}

// predecessorChanged runs when the node we watch is deleted or the watch is
// dropped (session trouble): either way, look again.
func (e *Elector) predecessorChanged(gen uint64, ev zk.Event) {
	if gen != e.gen {
		return
	}
	e.log.Debug("predecessor changed", zap.String("event", ev.Type.String()), zap.String("node", ev.Path))
	if ev.Type == zk.EventNotWatching {
		e.reconcile()
		if !e.joined {
			return
		}
	}
	e.startElect()
}

func (e *Elector) startRenew() {
	if !e.joined || e.renewBusy {
		return
	}
	e.renewBusy = true
	e.renewCount++
	refresh := e.renewCount%4 == 0
	gen, own, sid, known, s := e.gen, e.own, e.sid, maps.Clone(e.infos), e.st()
	go func() {
		res, err := e.renew(s, own, sid, refresh, known)
		e.post(func() { e.renewDone(gen, res, err) })
	}()
}

func (e *Elector) renewDone(gen uint64, res renewResult, err error) {
	e.renewBusy = false
	switch {
	case gen != e.gen:
	case err != nil:
		// The lease runs out on its own clock; nothing to do but log.
		e.log.Debug("renew failed", zap.Error(err), zap.Duration("lease_left", e.leaseLeft()))
	case res.lost:
		e.lose("member node gone")
		e.reconcile()
	default:
		e.ackSend = later(e.ackSend, res.ackSend)
		if res.view != nil {
			e.applyView(*res.view)
		}
		switch {
		case e.phase == PhaseActive:
			e.armLease()
			e.extended()
		case e.phase == PhaseStandby:
			e.armLease()
		case e.fence != nil:
			e.transition(PhaseStandby, "lease regained; fencing still pending")
			e.armLease()
		default:
			e.startElect() // the lease lapsed but our node survived: stand again
		}
		e.publish()
	}
}

// lose drops our membership: the session or our node is gone.
func (e *Elector) lose(reason string) {
	switch e.phase {
	case PhaseActive:
		e.stepDown(reason)
	case PhaseStandby:
		e.transition(PhaseDisconnected, reason)
	}
	e.gen++
	e.joined, e.sid, e.own, e.ackSend, e.guid = false, 0, memberNode{}, time.Time{}, ""
	e.electAgain, e.sawPred = false, false
	e.leaseTimer.Stop()
	e.dropFence()
}

// mustHold is how long this member must wait before it may lead without
// having seen a member below its own in this membership (the first member of
// an empty group, a whole group restarted, a tree ZooKeeper lost): until its
// session is one session timeout old, plus one renewal period. Every earlier
// leader's last acknowledged request was sent before this session existed,
// so by then its lease has ended and its duty has stopped, even if ZooKeeper
// forgot its session early (data loss). The extra period lets members that a
// data loss locked out replace their client (checkClient) and rejoin with the
// terms they have seen, so terms keep growing. Taking over by watching a
// predecessor vanish needs no wait: the server that removed it knew its
// session.
func (e *Elector) mustHold() time.Duration {
	if e.sawPred {
		return 0
	}
	since := e.sessionSince
	if e.sessionSID != e.sid || since.IsZero() {
		since = e.now() // not tracked: assume the session is new
	}
	return max(since.Add(e.timeout()+e.renewEvery()).Sub(e.now()), 0)
}

func (e *Elector) applyView(v view) {
	e.members, e.infos = v.members, v.infos
	e.groupTerm = max(e.groupTerm, v.leader.Term)
	e.seenTerm = max(e.seenTerm, v.leader.Term)
	leader := ""
	if len(v.members) > 0 {
		leader = v.members[0].Name
	}
	if leader != e.leaderName {
		e.log.Info("leader observed", zap.String("leader", leader), zap.Int64("term", e.groupTerm))
		e.leaderName = leader
	}
}
