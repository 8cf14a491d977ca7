package core

import (
	"testing"
	"time"
)

// activation returns the rig's transition to PhaseActive; it fails the test
// if there is none.
func (r *rig) activation() Transition {
	r.t.Helper()
	for _, a := range r.acts {
		if tr, ok := a.(ActTransition); ok && tr.T.To == PhaseActive {
			return tr.T
		}
	}
	r.t.Fatal("no transition to active")
	return Transition{}
}

// TestCoreActivationCarriesWhenTheClaimsEvidenceWasSeen: the transition to
// active dates what the claim rested on (Transition.Evidence), so that
// metrics time a takeover from the previous leader's last extension as
// this node saw it, not from the claim, which comes W later.
func TestCoreActivationCarriesWhenTheClaimsEvidenceWasSeen(t *testing.T) {
	t.Run("rule D: the last read of the silent leader's node", func(t *testing.T) {
		r := newRig(t, "b")
		holder := memberName("0000000000000000000000000000000f", 0)
		own := r.join(1)
		r.look([]string{holder, own}, MustJSON(LeaderRecord{Term: 5, HolderNode: holder, Name: "a", State: RecActive}), 3)
		w := r.take(OpGet, holder)
		r.answer(w, Result{Data: MustJSON(MemberData{MemberInfo: MemberInfo{Name: "a", Role: "primary"}, LeaseTerm: 5}),
			Stat: Stat{Version: 4, EphemeralOwner: 9}})
		r.after(time.Second)
		r.step(EvWatch{ID: w.ID, Kind: WatchChanged, Epoch: r.c.sess.epoch}) // an extension
		r.answer(r.take(OpGet, holder), Result{Data: MustJSON(MemberData{MemberInfo: MemberInfo{Name: "a", Role: "primary"}, LeaseTerm: 5}),
			Stat: Stat{Version: 5, EphemeralOwner: 9}})
		last := r.now
		r.after(ctW)
		q, ok := r.claim()
		if !ok {
			t.Fatalf("no claim W after the last extension; outstanding %v", r.pending())
		}
		r.after(3 * time.Millisecond)
		r.answer(q, Result{Multi: []Result{{}, {Stat: Stat{Version: 1}}, {Stat: Stat{Version: 4}}}})
		a := r.activation()
		if !a.Evidence.Equal(last) || a.At.Sub(a.Evidence) != ctW+3*time.Millisecond {
			t.Fatalf("evidence %s, at %s: want the last read %s, and W + 3ms before the activation", stamp(a.Evidence), stamp(a.At), stamp(last))
		}
	})
	t.Run("rule C: the first look that showed no member below", func(t *testing.T) {
		r := newRig(t, "a")
		own := r.join(0)
		r.look([]string{own}, nil, 0)
		looked := r.now
		r.after(ctW)
		q, ok := r.claim()
		if !ok {
			t.Fatalf("no claim at W; outstanding %v", r.pending())
		}
		r.answer(q, Result{Multi: []Result{{Stat: Stat{Version: 1}}, {}}})
		if a := r.activation(); !a.Evidence.Equal(looked) {
			t.Fatalf("evidence %s, want the look at %s", stamp(a.Evidence), stamp(looked))
		}
	})
	t.Run("rule B: the read of the release", func(t *testing.T) {
		r := newRig(t, "b")
		holder := memberName("0000000000000000000000000000000f", 0)
		own := r.join(1)
		r.look([]string{holder, own}, MustJSON(LeaderRecord{Term: 5, HolderNode: holder, State: RecActive}), 3)
		r.answer(r.take(OpGet, holder), Result{Data: MustJSON(MemberInfo{Name: "a", Role: "p"}), Stat: Stat{Version: 1, EphemeralOwner: 9}})
		r.after(time.Second)
		r.step(EvWatch{ID: r.c.pred.watch, Kind: WatchDeleted, Epoch: r.c.sess.epoch})
		r.answer(r.take(OpGet, "/leader"), Result{Data: MustJSON(LeaderRecord{Term: 5, HolderNode: holder, State: RecReleased}),
			Stat: Stat{Version: 4}})
		read := r.now
		q, ok := r.claim()
		if !ok {
			t.Fatalf("no claim after the release; outstanding %v", r.pending())
		}
		r.after(2 * time.Millisecond)
		r.answer(q, Result{Multi: []Result{{Stat: Stat{Version: 1}}, {Stat: Stat{Version: 5}}}})
		if a := r.activation(); !a.Evidence.Equal(read) {
			t.Fatalf("evidence %s, want the read of the release at %s", stamp(a.Evidence), stamp(read))
		}
	})
}
