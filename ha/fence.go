package ha

// Fencing: a committed term whose previous leader may have acted waits for
// Callbacks.Fence, then marks the record active and proves its node.

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// LeaderInfo identifies one leadership of a group.
type LeaderInfo struct {
	Name  string    `json:"name"`
	Host  string    `json:"host"`
	HTTP  string    `json:"http,omitempty"`
	Term  int64     `json:"term"`
	Since time.Time `json:"since"`
}

// FenceRequest asks to fence the previous leader before this node's term
// starts.
type FenceRequest struct {
	// Term is the term this node will lead in.
	Term int64
	// Previous is the last leader that may have run its duty.
	Previous LeaderInfo
}

// pendingFence is a committed but not yet active leadership.
type pendingFence struct {
	term    int64
	record  leaderRecord
	version int32
	target  leaderRecord
}

// activated takes a proven, committed term: active if the proof still gives
// a lease, else prove again.
func (e *Elector) activated(term int64, ackSend time.Time, reason string) {
	e.ackSend = later(e.ackSend, ackSend)
	if e.phase == PhaseActive {
		e.armLease() // already leading: the round only renewed the proof
		return
	}
	if e.conn.Load().SessionID() != e.sid || e.leaseLeft() <= 0 {
		e.startElect() // the proof came too late to lead on; stand again
		return
	}
	e.term = term
	e.becomeActive(reason)
}

// startFence runs the Fence callback for the pending term, off the owner.
func (e *Elector) startFence() {
	if e.fence == nil || e.fenceBusy || !e.joined {
		return
	}
	e.fenceBusy = true
	ctx, cancel := context.WithCancel(context.Background())
	e.fenceCancel = cancel
	gen, f := e.gen, *e.fence
	req := FenceRequest{Term: f.term, Previous: LeaderInfo{Name: f.target.Name, Host: f.target.Host,
		HTTP: f.target.HTTP, Term: f.target.Term, Since: f.target.Since}}
	e.log.Info("fencing previous leader", zap.String("previous", req.Previous.Name),
		zap.String("previous_host", req.Previous.Host), zap.Int64("previous_term", req.Previous.Term), zap.Int64("term", f.term))
	go func() {
		err := e.cfg.Callbacks.Fence(ctx, req)
		e.post(func() { e.fenceDone(gen, f.term, err) })
	}()
}

func (e *Elector) fenceDone(gen uint64, term int64, err error) {
	e.fenceBusy = false
	if gen != e.gen || e.fence == nil || e.fence.term != term {
		return
	}
	if err != nil {
		e.fenceBackoff = min(max(2*e.fenceBackoff, 500*time.Millisecond), 10*time.Second)
		e.log.Warn("fencing failed; staying standby", zap.Error(err), zap.Int64("term", term),
			zap.Duration("retry_in", e.fenceBackoff))
		e.fenceTimer.Reset(e.fenceBackoff)
		return
	}
	e.fenceBackoff = 0
	e.log.Info("previous leader fenced", zap.String("previous", e.fence.target.Name), zap.Int64("term", term))
	f := *e.fence
	e.opBusy = true
	own, sid, s := e.own, e.sid, e.st()
	go func() {
		ack, lost, err := e.activate(s, own, sid, f.record, f.version)
		e.post(func() { e.activateDone(gen, f.term, ack, lost, err) })
	}()
}

func (e *Elector) activateDone(gen uint64, term int64, ack time.Time, lost bool, err error) {
	e.opBusy = false
	if gen != e.gen || e.fence == nil || e.fence.term != term {
		e.reconcile()
		return
	}
	switch {
	case err != nil:
		e.log.Warn("activation failed; fencing again", zap.Error(err))
		e.fenceTimer.Reset(500 * time.Millisecond)
	case lost:
		e.dropFence()
		e.startElect()
	default:
		e.dropFence()
		e.activated(term, ack, fmt.Sprintf("lowest member; previous leader fenced; term %d", term))
	}
}

func (e *Elector) dropFence() {
	if e.fenceCancel != nil {
		e.fenceCancel()
		e.fenceCancel = nil
	}
	e.fence = nil
	e.fenceTimer.Stop()
}

// extended tells a duty guard how long the lease has left.
func (e *Elector) extended() {
	if f := e.cfg.Callbacks.OnLeaseExtended; f != nil {
		f(e.leaseLeft())
	}
}
