package core

import (
	"strings"
	"testing"
	"time"
)

// TestCorePausedGroupTakesNothingOverUntilResumed: with the group record
// paused, the lowest member of a group whose leader is gone does not claim,
// however long it waits, and says why; the resume, seen through the watch
// on the group record, lets it claim at once (W has long passed), and the
// claim checks the group record at the version read unpaused.
func TestCorePausedGroupTakesNothingOverUntilResumed(t *testing.T) {
	r := newRig(t, "a")
	paused := &PauseInfo{By: "ops-1", At: r.now, Reason: "upgrade"}
	r.group = &Result{Data: MustJSON(groupRecord{HAID: "g", Role: "primary", LeaseMS: ctD.Milliseconds(), Paused: paused}),
		Stat: Stat{Version: 4}}
	own := r.join(0)
	r.look([]string{own}, nil, 0)
	r.after(3 * ctW)
	if q, ok := r.claim(); ok {
		t.Fatalf("claimed while paused: %+v", q.Op.Ops)
	}
	if st := r.c.Snapshot(); st.Phase != PhaseStandby || !strings.Contains(st.Reason, "group paused by ops-1") ||
		st.Paused == nil || st.Paused.By != "ops-1" {
		t.Fatalf("paused member's snapshot %+v: want standby, saying who paused", st)
	}

	// The resume: the watch set with the look fires, the record is read
	// again, now unpaused at version 5.
	var watch uint64
	for _, a := range r.acts {
		if q, ok := a.(ActRequest); ok && q.Op.Path == "/h/groups/g" && q.Op.Watch {
			watch = q.ID
		}
	}
	if watch == 0 {
		t.Fatal("no watch on the group record")
	}
	r.group = &Result{Data: MustJSON(groupRecord{HAID: "g", Role: "primary", LeaseMS: ctD.Milliseconds()}), Stat: Stat{Version: 5}}
	r.step(EvWatch{ID: watch, Kind: WatchChanged, Epoch: r.c.sess.epoch})
	var q ActRequest
	ok := false
	for i := 0; i < 4 && !ok; i++ { // the looks asked for meanwhile, then the one the watch asked for
		r.look([]string{own}, nil, 0)
		r.after(time.Millisecond)
		q, ok = r.claim()
	}
	if !ok {
		t.Fatalf("no claim after the resume; phase %s (%s), outstanding %v", r.c.pub.phase, r.c.pub.reason, r.pending())
	}
	last := q.Op.Ops[len(q.Op.Ops)-1]
	if !isPauseCheck(last) || last.Version != 5 {
		t.Fatalf("claim's last op %+v: want Check(group record, 5)", last)
	}
}
