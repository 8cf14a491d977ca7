package ha

import (
	"context"
	"fmt"

	"github.com/hanode/hanode/ha/internal/core"
	"go.uber.org/zap"
)

// The face of an Election a user of etcd's concurrency package knows:
// Campaign, Resign, Observe and Leader. None changes the election's state
// by itself: they read what Run published (publish) or hand Run an event.

// Leader is the group's leader as this node sees it.
type Leader struct {
	// Name is the leader's name (the Name of its session), "" when this
	// node knows of none: it has not looked yet, or the last leader
	// released and nobody claimed since.
	Name string
	// Term is that leadership's term, the fencing token its StartDuty got.
	// When Name is "", it is the latest term this node knows (0: none).
	Term int64
}

func leaderOf(s *core.Snapshot) Leader { return Leader{Name: s.Leader, Term: s.Term} }

// Leader returns the group's leader as this node last saw it. It never
// blocks. It reports what this node heard, not a promise that the leader
// still acts: whether this node may act is what StartDuty and State say.
func (e *Election) Leader() Leader { return leaderOf(e.snap.Load()) }

// Campaign blocks until this node is active (State().Phase is
// PhaseActive: its claim is committed, any fence done, StartDuty called),
// until ctx ends (it returns ctx.Err()), or until the election ends (an
// error wrapping ErrElectionDone, and the refusal that ended it, if one
// did). It returns nil at once when the node is active already.
//
// Campaign does not join the group by itself: Run does, and Campaign waits
// for it, whether Run started before or after the call (without Run it
// waits for ctx). Ending ctx ends the wait, not the candidacy: unlike etcd's
// Campaign, which deletes its key, the node stays in line until Run's
// context ends. As with etcd, the leadership may end at any moment after
// Campaign returns: act under StartDuty's ctx, or read State.
func (e *Election) Campaign(ctx context.Context) error {
	for {
		changed := e.changes()
		if e.State().Phase == PhaseActive {
			return nil
		}
		select {
		case <-changed:
		case <-e.quit:
			return e.endErr()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// resignReq is a Resign waiting for Run: done closes once the membership
// node held when the resignation was fed is gone.
type resignReq struct {
	node string
	done chan struct{}
}

// Resign hands the leadership over, like etcd's Resign: this node stops its
// duty (StopDuty), releases the lease so that the next member claims at
// once, and rejoins the group at the back. It returns nil once that
// membership has ended (duty stopped, lease released; or, after an
// unconfirmed stop, left without a release), and at once when this node
// holds no lease or Run is not running. A node alone in its group leads
// again after it rejoins. Ending ctx ends the wait (ctx.Err()), not the
// resignation.
func (e *Election) Resign(ctx context.Context) error {
	if !e.started.Load() {
		return nil
	}
	r := resignReq{done: make(chan struct{})}
	select {
	case e.resigns <- r:
	case <-e.quit:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// resign feeds a Resign to the core (on Run's goroutine).
func (e *Election) resign(r resignReq) {
	if !e.core.Holder() {
		close(r.done)
		return
	}
	r.node = e.core.OwnNode()
	e.resigning = append(e.resigning, r)
	e.step(core.EvResign{Reason: "Election.Resign"})
}

// Observe returns a channel that receives the group's leader as this node
// sees it (Leader): first the current value, then every change, in order.
// It is closed when ctx ends or the election ends (Run returned). Values
// coalesce, as in etcd's Observe: a reader that falls behind receives the
// latest value, not every one in between, and never delays the election.
func (e *Election) Observe(ctx context.Context) <-chan Leader {
	out := make(chan Leader)
	go func() {
		defer close(out)
		var sent Leader
		first := true
		for {
			changed := e.changes()
			select {
			case <-e.quit:
				return
			default:
			}
			if cur := e.Leader(); first || cur != sent {
				select {
				case out <- cur:
					sent, first = cur, false
					continue
				case <-changed:
					continue // a newer value replaces the one not taken
				case <-ctx.Done():
					return
				case <-e.quit:
					return
				}
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			case <-e.quit:
				return
			}
		}
	}()
	return out
}

// changes returns a channel that is closed at the next change of the
// node's phase or of its leader.
func (e *Election) changes() <-chan struct{} {
	e.changeMu.Lock()
	defer e.changeMu.Unlock()
	return e.changed
}

// endErr is what Campaign returns once Run has returned.
func (e *Election) endErr() error {
	if e.doneErr != nil {
		return fmt.Errorf("%w: %w", ErrElectionDone, e.doneErr)
	}
	return ErrElectionDone
}

// publish stores the core's snapshot for readers on other goroutines, then
// tells those waiting: Campaign and Observe when the phase or the leader
// changed, LeaderChanged, and each Resign whose membership has ended. Run's
// goroutine only.
func (e *Election) publish() {
	snap := e.core.Snapshot()
	old := e.snap.Swap(&snap)
	l := leaderOf(&snap)
	if old.Phase != snap.Phase || leaderOf(old) != l {
		e.changeMu.Lock()
		close(e.changed)
		e.changed = make(chan struct{})
		e.changeMu.Unlock()
	}
	if l != e.lastLeader {
		e.lastLeader = l
		e.log.Info("group leader", zap.String("leader", l.Name), zap.Int64("term", l.Term))
		if cb := e.cfg.Callbacks.LeaderChanged; cb != nil {
			cb(l)
		}
	}
	if len(e.resigning) > 0 {
		own := e.core.OwnNode()
		waiting := e.resigning[:0]
		for _, r := range e.resigning {
			if own != r.node {
				close(r.done)
			} else {
				waiting = append(waiting, r)
			}
		}
		e.resigning = waiting
	}
}
