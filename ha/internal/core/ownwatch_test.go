package core

import (
	"testing"
)

// The own-node watch of a standby fires when its own claim writes its node,
// and ZooKeeper tells the watch before it answers the claim. Taking that
// notification for another client's write cost every takeover a look (a
// listing and three reads: a thousand looks in a mass handover of a
// thousand groups). The claim's reply settles it (claimFiredOwnWatch).

// ownWatchClaim brings a lone member to its rule-C claim with its own-node
// watch set; armed answers the watch's read at version 0 first (the
// version the claim expects). It returns the claim and the watch.
func ownWatchClaim(t *testing.T, armed bool) (*rig, ActRequest, ActRequest, string) {
	t.Helper()
	r := newRig(t, "a")
	own := r.join(0)
	r.look([]string{own}, nil, 0)
	w, ok := r.takeGet(own, true)
	if !ok {
		t.Fatalf("no watch on our own node; outstanding %v", r.pending())
	}
	if armed {
		r.answer(w, Result{Stat: Stat{Version: 0, EphemeralOwner: 7}})
	}
	r.after(ctW)
	q, ok := r.claim()
	if !ok {
		t.Fatalf("no claim at W; outstanding %v", r.pending())
	}
	if v := q.Op.Ops[0].Version; v != 0 {
		t.Fatalf("the claim writes our node at version %d, want 0", v)
	}
	if !armed {
		// The unanswered read timed out meanwhile and was sent again: the
		// watch now is that one's, and it is left unanswered.
		if w, ok = r.takeGet(own, true); !ok || w.ID != r.c.own.watch {
			t.Fatalf("no watch on our own node out; outstanding %v", r.pending())
		}
	}
	return r, q, w, own
}

func (r *rig) fire(w ActRequest, kind WatchKind) {
	r.step(EvWatch{ID: w.ID, Kind: kind, Epoch: r.c.sess.epoch})
}

func (r *rig) looking() bool {
	_, ok := r.find(OpChildren, "/members")
	return ok
}

func TestCoreOwnWatchFiredByTheClaimCostsNoLook(t *testing.T) {
	r, q, w, _ := ownWatchClaim(t, true)
	r.fire(w, WatchChanged)
	if r.looking() {
		t.Fatal("a look started before the claim's reply could say whose write fired the watch")
	}
	r.answer(q, Result{Multi: []Result{{Stat: Stat{Version: 1}}, {}}})
	if _, ok := r.started(); !ok {
		t.Fatal("no duty after the claim")
	}
	r.step(EvTick{})
	if r.looking() || r.c.view.lookDue || r.c.own.check {
		t.Fatalf("the new holder looks after its own claim fired its watch; outstanding %v", r.pending())
	}
}

// What is not settled by the claim's reply is looked at, reading our node,
// as the watch alone would have had us do.
func TestCoreOwnWatchDuringAClaimLooksUnlessTheClaimSettlesIt(t *testing.T) {
	ok := Result{Multi: []Result{{Stat: Stat{Version: 1}}, {}}}
	for _, tc := range []struct {
		name  string
		armed bool      // the watch's read answered before the notification
		kind  WatchKind // the notification
		reply Result    // the claim's
	}{
		// The watch's read had not been answered: we cannot say which
		// version it was set on.
		{"watch set at a version not known", false, WatchChanged, ok},
		// The node was deleted: never our claim's doing.
		{"deleted", true, WatchDeleted, ok},
		// The claim failed on the record, not on our node: its write of
		// our node did not happen, so someone else's did.
		{"claim refused on the record", true, WatchChanged, Result{Err: ErrBadVersion, Multi: []Result{{Err: ErrOther}, {Err: ErrNodeExists}}}},
		// The outcome is unknown.
		{"claim lost", true, WatchChanged, Result{Err: ErrLost}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, q, w, _ := ownWatchClaim(t, tc.armed)
			r.fire(w, tc.kind)
			r.answer(q, tc.reply)
			r.step(EvTick{})
			if !r.looking() {
				t.Fatalf("no look; outstanding %v", r.pending())
			}
			if !r.c.own.check && !r.c.view.look.ownRead {
				t.Fatal("the look does not read our node")
			}
		})
	}
}

// A notification told on another connection than the one the claim was
// answered on proves nothing: the look happens.
func TestCoreOwnWatchAcrossAReconnectIsLookedAt(t *testing.T) {
	r, q, w, _ := ownWatchClaim(t, true)
	r.fire(w, WatchChanged)
	r.step(EvSession{Up: false, Epoch: 1})
	r.step(EvSession{Up: true, ID: 7, Epoch: 2})
	r.answer(q, Result{Multi: []Result{{Stat: Stat{Version: 1}}, {}}})
	r.step(EvTick{})
	if !r.looking() {
		t.Fatalf("no look after a reconnect; outstanding %v", r.pending())
	}
}
