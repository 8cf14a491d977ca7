package core

import (
	"strings"
	"testing"
	"time"
)

// TestCoreAFailedSilentClaimKeepsItsBound: the second member claims by rule
// D (the holder silent for W) and the claim fails (the record changed, or
// the holder's node vanished as its session expired), with the holder's
// deletion notified before or after the reply. The holder's node vanished
// unchanged since we read it, so its last extension precedes that read:
// the next claim must come at once, not W after the next look.
func TestCoreAFailedSilentClaimKeepsItsBound(t *testing.T) {
	for _, tc := range []struct {
		name         string
		failedOp     int  // 0: the delete of the holder's node; 2: the record
		watchFirst   bool // the deletion notified before the claim's reply
		holderInLook bool // the look after the failure still lists the holder
		// afterListing: the deletion notified after the next look's listing
		// (which still lists the holder) and before that look's reads.
		afterListing bool
	}{
		{"record changed, deletion after the next listing", 2, false, true, true},
		{"holder's node gone, deletion after the next listing", 0, false, true, true},
		{"record changed, deletion after the reply, holder still listed", 2, false, true, false},
		{"record changed, deletion after the reply, holder gone", 2, false, false, false},
		{"record changed, deletion before the reply", 2, true, false, false},
		{"holder's node gone, deletion before the reply", 0, true, false, false},
		{"holder's node gone, deletion after the reply", 0, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, "b")
			holder := memberName("0000000000000000000000000000000f", 0)
			own := r.join(1)
			rec := MustJSON(LeaderRecord{Term: 5, HolderNode: holder, Name: "a", State: RecActive})
			r.look([]string{holder, own}, rec, 3)
			w := r.take(OpGet, holder)
			r.answer(w, Result{Data: MustJSON(MemberData{MemberInfo: MemberInfo{Name: "a", Role: "primary"}, LeaseTerm: 5}),
				Stat: Stat{Version: 4, EphemeralOwner: 9}})
			r.after(ctW)
			q, ok := r.claim()
			if !ok {
				t.Fatalf("no claim W after the read; outstanding %v", r.pending())
			}
			multi := []Result{{}, {}, {}}
			multi[tc.failedOp] = Result{Err: ErrBadVersion}
			if tc.failedOp == 0 {
				multi[0] = Result{Err: ErrNoNode}
			}
			fail := Result{Err: multi[tc.failedOp].Err, Multi: multi}
			if tc.watchFirst {
				r.step(EvWatch{ID: w.ID, Kind: WatchDeleted, Epoch: r.c.sess.epoch})
				r.answer(q, fail)
			} else {
				r.answer(q, fail)
				if !tc.afterListing {
					r.step(EvWatch{ID: w.ID, Kind: WatchDeleted, Epoch: r.c.sess.epoch})
				}
			}
			notified := !tc.afterListing
			failedAt := r.now
			// Answer whatever is asked: reads of the record (now at version
			// 4: the holder's activation), listings with or without the holder.
			rec4 := MustJSON(LeaderRecord{Term: 5, HolderNode: holder, Name: "a", State: RecActive})
			for i := 0; i < 50; i++ {
				if _, ok := r.claim(); ok {
					if d := r.now.Sub(failedAt); d > 100*time.Millisecond {
						t.Fatalf("claimed again %v after the failed claim, want at once", d)
					}
					return
				}
				if len(r.reqs) == 0 {
					r.after(10 * time.Millisecond)
					continue
				}
				q := r.reqs[0]
				r.reqs = r.reqs[1:]
				switch {
				case q.Op.Kind == OpChildren:
					names := []string{own}
					if tc.holderInLook && i < 3 {
						names = []string{holder, own}
					}
					r.answer(q, Result{Children: names})
					if !notified {
						r.step(EvWatch{ID: w.ID, Kind: WatchDeleted, Epoch: r.c.sess.epoch})
						notified = true
					}
				case q.Op.Kind == OpGet && len(q.Op.Path) > 7 && q.Op.Path[len(q.Op.Path)-7:] == "/leader":
					r.answer(q, Result{Data: rec4, Stat: Stat{Version: 4}})
				case q.Op.Kind == OpGet && q.Op.Path[len(q.Op.Path)-len(own):] == own:
					r.answer(q, Result{Data: MustJSON(MemberData{MemberInfo: MemberInfo{Name: "b", Role: "primary"}}), Stat: Stat{Version: 0, EphemeralOwner: 7}})
				case q.Op.Kind == OpGet:
					if tc.holderInLook && i < 3 {
						r.answer(q, Result{Data: MustJSON(MemberData{MemberInfo: MemberInfo{Name: "a", Role: "primary"}, LeaseTerm: 5}),
							Stat: Stat{Version: 4, EphemeralOwner: 9}})
					} else {
						r.answer(q, Result{Err: ErrNoNode})
					}
				default:
					t.Fatalf("unexpected request %v", q.Op)
				}
			}
			t.Fatalf("no claim within %v of the failed claim; phase %s; outstanding %v", r.now.Sub(failedAt), r.c.pub.phase, r.pending())
		})
	}
}

// TestCoreAnImpossibleTransitionIsReportedNotPanicked: a move the rule
// cannot make (a bug) is a "bug" notice naming both ends, not a crash of
// the process, and it does not make the node active: Active rests on the
// role, the duty and the lease, never on the phase.
func TestCoreAnImpossibleTransitionIsReportedNotPanicked(t *testing.T) {
	c, err := New(Config{Root: "/h", Group: "g", Self: MemberInfo{Name: "a", Role: "primary", Host: "host"},
		Lease: ctD, Margin: ctM, NewGUID: func() string { return "00000000000000000000000000000001" }})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	c.now = now
	c.setPhase(PhaseActive, "a bug")
	var bug string
	for _, a := range c.out {
		if n, ok := a.(ActNotice); ok && n.N.Level == "bug" {
			bug = n.N.Msg
		}
	}
	if !strings.Contains(bug, "impossible transition starting -> active") {
		t.Fatalf("bug notice %q, want one naming starting -> active", bug)
	}
	if c.Active(now) {
		t.Fatal("a wrong phase made the node active")
	}
}

// TestCoreAForeignMemberLookalikeDoesNotStopTheSweep: under members/ an
// ephemeral node with garbage data (unreadable) sits below an ephemeral
// node whose data looks like a member's but whose owner is not hanode (it
// never sweeps, never claims). The member behind the lookalike sweeps the
// unreadable node itself, a lease after its proper sweeper was due, so the
// group does not wait on a foreign client for as long as that client lives.
// (Found by the simulator, seed 59587.)
func TestCoreAForeignMemberLookalikeDoesNotStopTheSweep(t *testing.T) {
	r := newRig(t, "b")
	garbage := memberName("22222222222222222222222222222222", 6)
	lookalike := memberName("22222222222222222222222222222222", 8)
	own := r.join(9)
	// serve answers every outstanding request as the unchanging tree would,
	// and returns the version of a delete of the garbage node, -1 if none.
	serve := func() int32 {
		swept := int32(-1)
		for n := 0; len(r.reqs) > 0; n++ {
			if n > 50 {
				t.Fatalf("requests without end: %v", r.pending())
			}
			q := r.reqs[0]
			r.reqs = r.reqs[1:]
			switch {
			case q.Op.Kind == OpDelete && strings.HasSuffix(q.Op.Path, garbage):
				swept = q.Op.Version
				r.answer(q, Result{})
				return swept
			case q.Op.Kind == OpChildren:
				r.answer(q, Result{Children: []string{garbage, lookalike, own}})
			case strings.HasSuffix(q.Op.Path, garbage):
				r.answer(q, Result{Data: []byte("not json"), Stat: Stat{Version: 3, EphemeralOwner: 11}})
			case strings.HasSuffix(q.Op.Path, lookalike):
				r.answer(q, Result{Data: MustJSON(MemberData{MemberInfo: MemberInfo{Name: "x", Role: "primary"}}),
					Stat: Stat{Version: 0, EphemeralOwner: 11}})
			case strings.HasSuffix(q.Op.Path, own):
				r.answer(q, Result{Data: MustJSON(MemberData{MemberInfo: MemberInfo{Name: "b", Role: "primary"}}), Stat: Stat{EphemeralOwner: 7}})
			case strings.HasSuffix(q.Op.Path, "/leader"):
				r.answer(q, Result{Err: ErrNoNode})
			default:
				t.Fatalf("unexpected request %v", q.Op)
			}
		}
		return swept
	}
	seen := r.now
	if v := serve(); v >= 0 {
		t.Fatal("swept at once")
	}
	due := seen.Add(ctW + 2*ctD) // W + D, and a lease more: the lookalike should have swept it
	for r.now.Before(due.Add(-10 * time.Millisecond)) {
		r.after(10 * time.Millisecond)
		if v := serve(); v >= 0 {
			t.Fatalf("swept %v after it was first seen, before its own sweeper's turn was over (%v)", r.now.Sub(seen), due.Sub(seen))
		}
	}
	for i := 0; i < 20; i++ {
		r.after(10 * time.Millisecond)
		if v := serve(); v >= 0 {
			if v != 3 {
				t.Fatalf("swept at version %d, want 3 (the version seen)", v)
			}
			return
		}
	}
	t.Fatalf("the unreadable node was not swept by %v after it was first seen", r.now.Sub(seen))
}
