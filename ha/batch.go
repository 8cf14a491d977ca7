package ha

import (
	"context"
	"sync"
	"time"

	"github.com/hanode/hanode/ha/internal/core"
)

// Batching: the elections of one session (a process in several groups)
// send their writes (extensions, claims, releases, and the fenced writes
// within their groups: history, jobs, state; each a multi) together, as one
// multi: ZooKeeper logs and fsyncs one transaction instead of one per
// group, and answers one request. A fenced write goes only with writes
// fenced on the same connection, and only on it (Session.doIn).
//
// Why it changes nothing the core relies on:
//
//   - Every group's ops are its own multi's, unchanged, inside the batch;
//     a multi is all or nothing, so each group's ops still land together
//     or not at all, checked by their own versions. The groups of one
//     session are distinct (joinGroup), so no op of one group reads or
//     writes a znode of another.
//   - A batch that ZooKeeper refused (one op failed its check) applied
//     nothing. The group whose op failed gets that answer, exactly as if
//     it had been sent alone; the others are sent again without it. Each
//     group's ops are thus applied at most once. A batch whose outcome is
//     unknown (the connection was lost) is never sent again: every group in
//     it gets the unknown outcome, as it would alone.
//   - A batched write goes out later than asked, never earlier. The core
//     counts a lease from the moment it asked for the extension
//     (core.ActRequest.Extension), so a later send only makes its count
//     more conservative; every other write is a request whose premises
//     are its own versions, which do not depend on when it is sent.
//
// Extensions may wait up to the window for company: at 1,000 groups on one
// session, the leaders' extensions spread over R then leave in about R /
// window multis instead of one each. Every other write goes at once, or,
// while batchMaxFlying batches are in flight, with the next one (the way a
// database commits a group). With a single election on the session nothing
// waits.

// batchWindow is how long an extension may wait for others of the same
// session. It is a small part of the extension period (R = 2.33 s at the
// defaults), which leaves two more extensions before the lease is at risk.
const batchWindow = 100 * time.Millisecond

// batchMaxOps bounds the ops in one batch. ZooKeeper refuses a request
// above jute.maxbuffer (1 MB by default) by closing the connection, so a
// batch stays far below it (an election's multi is two to four ops of a
// few hundred bytes); and a large multi is slow to apply (its ops are
// checked and applied one after another, inside one transaction), so
// batches stay small and several fly at once instead.
const batchMaxOps = 128

// batchMaxFlying bounds the batches of one session in flight: ZooKeeper
// applies one session's requests in order, so more only queue there.
const batchMaxFlying = 4

// batcher gathers one session's election writes into multis.
type batcher struct {
	s *Session

	mu     sync.Mutex
	queue  []*batchItem
	urgent bool        // the queue holds a write that must not wait for the window
	timer  *time.Timer // armed while only extensions wait
	flying int         // batches in flight
	// lastOwn is when an election last asked for one of its own writes
	// that does not wait (a claim, a release, a rejoin): the session's
	// takeover traffic, which a write that can wait gives way to (quiet).
	lastOwn time.Time
	batches uint64 // multis sent for more than one election
	batched uint64 // election writes they carried
}

type batchItem struct {
	op    core.Op // an OpMulti
	epoch uint64  // a fenced write's connection (Session.doIn), 0 any
	done  chan batchReply
}

type batchReply struct {
	r     core.Result
	epoch uint64
}

// do sends op, an election's multi, in a batch when other elections of the
// session write too; extension says it may wait up to the window.
func (b *batcher) do(op core.Op, extension bool) (core.Result, uint64) {
	return b.doIn(0, op, extension)
}

// doIn is do for a fenced write (Session.doIn): sent only on connection
// epoch, in a batch with other writes fenced on it. Its ops must all be
// under its group's node, as an election's are.
func (b *batcher) doIn(epoch uint64, op core.Op, extension bool) (core.Result, uint64) {
	if !b.s.manyGroups() {
		var (
			r core.Result
			e uint64
		)
		if epoch != 0 {
			r, _, e = b.s.doIn(epoch, op)
		} else {
			r, _, e = b.s.do(op)
		}
		return r, e
	}
	it := &batchItem{op: op, epoch: epoch, done: make(chan batchReply, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, it)
	if !extension {
		b.urgent = true
		if epoch == 0 {
			b.lastOwn = time.Now()
		}
	}
	b.kickLocked()
	b.mu.Unlock()
	rep := <-it.done
	return rep.r, rep.epoch
}

// quietAfter and quietMost bound how long a write that can wait gives way
// to the session's takeover traffic (quiet).
const (
	quietAfter = 100 * time.Millisecond
	quietMost  = time.Second
)

// quiet returns once the session's elections have asked for none of their
// own writes that do not wait (claims, releases, rejoins) for quietAfter,
// or after quietMost, or when ctx ends; at once with a single election on
// the session. A write that only records (a takeover's history entry) waits
// for it first, so that in a mass failover of a process's many groups the
// takeovers are not queued behind their own records at ZooKeeper: a
// thousand groups' history entries are 2,000 ops, about as many as their
// claims. Waiting changes nothing the write relies on: it is fenced when it
// is built, after the wait.
func (b *batcher) quiet(ctx context.Context) {
	if !b.s.manyGroups() {
		return
	}
	most := time.Now().Add(quietMost)
	for {
		b.mu.Lock()
		until := b.lastOwn.Add(quietAfter)
		b.mu.Unlock()
		if most.Before(until) {
			until = most
		}
		wait := time.Until(until)
		if wait <= 0 {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// hurry sends the waiting extensions now: an election is about to stop,
// and its release waits for its extension's reply.
func (b *batcher) hurry() {
	b.mu.Lock()
	if len(b.queue) > 0 {
		b.urgent = true
		b.kickLocked()
	}
	b.mu.Unlock()
}

// kickLocked starts a batch when one may go: nothing in flight, and either
// an urgent write waits or the window has passed.
func (b *batcher) kickLocked() {
	if b.flying >= batchMaxFlying || len(b.queue) == 0 {
		return
	}
	if !b.urgent {
		if b.timer == nil {
			b.timer = time.AfterFunc(batchWindow, b.windowEnded)
		}
		return
	}
	b.startLocked()
}

func (b *batcher) windowEnded() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.timer = nil
	if len(b.queue) > 0 {
		b.urgent = true
	}
	b.kickLocked()
}

// startLocked takes the queue (up to batchMaxOps) and sends it.
func (b *batcher) startLocked() {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	// The first waiting write and those fenced on the same connection (or,
	// for the election's own, on none), in order, up to batchMaxOps.
	epoch, ops := b.queue[0].epoch, 0
	var items, rest []*batchItem
	for _, it := range b.queue {
		if it.epoch != epoch || len(items) > 0 && ops+len(it.op.Ops) > batchMaxOps {
			rest = append(rest, it)
			continue
		}
		ops += len(it.op.Ops)
		items = append(items, it)
	}
	b.queue = rest
	b.urgent = len(b.queue) > 0 // what is left went past its window already
	b.flying++
	go b.send(items)
}

// send sends items as one multi until each has its answer, then lets the
// next batch go.
func (b *batcher) send(items []*batchItem) {
	for len(items) > 0 {
		items = b.sendOnce(items)
	}
	b.mu.Lock()
	b.flying--
	b.kickLocked()
	b.mu.Unlock()
}

// sendOnce sends items as one multi and answers those it can: all of them,
// or, when ZooKeeper refused the batch, the one whose op failed. It
// returns the ones to send again.
func (b *batcher) sendOnce(items []*batchItem) []*batchItem {
	send := func(op core.Op) (core.Result, uint64) {
		if e := items[0].epoch; e != 0 {
			r, _, epoch := b.s.doIn(e, op)
			return r, epoch
		}
		r, _, epoch := b.s.do(op)
		return r, epoch
	}
	if len(items) == 1 {
		r, epoch := send(items[0].op)
		items[0].done <- batchReply{r, epoch}
		return nil
	}
	var all []core.Op
	for _, it := range items {
		all = append(all, it.op.Ops...)
	}
	r, epoch := send(core.Op{Kind: core.OpMulti, Ops: all})
	b.mu.Lock()
	b.batches++
	b.batched += uint64(len(items))
	b.mu.Unlock()
	if len(r.Multi) != len(all) {
		// No answer per op (lost, not sent, or refused whole): the same
		// outcome for every one, as each would have had alone.
		for _, it := range items {
			it.done <- batchReply{core.Result{Err: r.Err, Detail: r.Detail}, epoch}
		}
		return nil
	}
	failed := -1
	if r.Err != core.ErrNone {
		for i, m := range r.Multi {
			if m.Err != core.ErrNone {
				failed = i // ZooKeeper marks the ops before the failing one as not failed
				break
			}
		}
	}
	var again []*batchItem
	lo := 0
	for _, it := range items {
		hi := lo + len(it.op.Ops)
		switch {
		case r.Err == core.ErrNone:
			it.done <- batchReply{core.Result{Err: core.ErrNone, Multi: r.Multi[lo:hi:hi]}, epoch}
		case failed >= lo && failed < hi:
			it.done <- batchReply{core.Result{Err: r.Err, Detail: r.Detail, Multi: r.Multi[lo:hi:hi]}, epoch}
		case failed < 0:
			// Refused with no op marked: answer every one alike.
			it.done <- batchReply{core.Result{Err: r.Err, Detail: r.Detail, Multi: r.Multi[lo:hi:hi]}, epoch}
		default:
			again = append(again, it) // nothing of it applied; its ops did not fail
		}
		lo = hi
	}
	return again
}

// stats returns the batches sent and the election writes they carried.
func (b *batcher) stats() (batches, batched uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.batches, b.batched
}
