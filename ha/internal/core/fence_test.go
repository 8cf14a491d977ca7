package core

import (
	"fmt"
	"path"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// fenceTree is the ZooKeeper tree a fencing test's core sees: the member
// nodes listed (in order), each other member's data, and the leader record
// (nil: missing).
type fenceTree struct {
	names   []string
	data    map[string]MemberData
	rec     []byte
	watches map[string]uint64 // node -> the watch set by a read of it
}

// serve answers every outstanding request from the tree and returns the
// claim (a multi) when one goes out.
func (r *rig) serve(tr *fenceTree, self MemberData) (ActRequest, bool) {
	r.t.Helper()
	for n := 0; len(r.reqs) > 0; n++ {
		if n > 100 {
			r.t.Fatalf("requests without end: %v", r.pending())
		}
		q := r.reqs[0]
		r.reqs = r.reqs[1:]
		node := path.Base(q.Op.Path)
		switch {
		case q.Op.Kind == OpMulti:
			return q, true
		case q.Op.Kind == OpChildren:
			r.answer(q, Result{Children: tr.names})
		case q.Op.Kind == OpGet && strings.HasSuffix(q.Op.Path, "/leader"):
			if tr.rec == nil {
				r.answer(q, Result{Err: ErrNoNode})
			} else {
				r.answer(q, Result{Data: tr.rec, Stat: Stat{Version: 3}})
			}
		case q.Op.Kind == OpGet && node == r.c.own.node:
			r.answer(q, Result{Data: MustJSON(self), Stat: Stat{EphemeralOwner: 7}})
		case q.Op.Kind == OpGet:
			d, ok := tr.data[node]
			if !ok || !containsName(tr.names, node) {
				r.answer(q, Result{Err: ErrNoNode})
				continue
			}
			if q.Op.Watch {
				tr.watches[node] = q.ID
			}
			r.answer(q, Result{Data: MustJSON(d), Stat: Stat{Version: 4, EphemeralOwner: 9}})
		case q.Op.Kind == OpDelete:
			r.answer(q, Result{})
		default:
			r.t.Fatalf("unexpected request %v", q.Op)
		}
	}
	return ActRequest{}, false
}

// remove takes nodes out of the tree, firing their watches.
func (r *rig) remove(tr *fenceTree, nodes ...string) {
	for _, n := range nodes {
		tr.names = without(tr.names, n)
		if id, ok := tr.watches[n]; ok {
			delete(tr.watches, n)
			r.step(EvWatch{ID: id, Kind: WatchDeleted})
		}
	}
}

// TestCoreFenceNamesWhoMayHaveActed (fencing names who may have acted): with FENCE_CMD set,
// the fence request names whoever may have acted. The record names the
// previous leader: it alone, as before. The record missing: a rule D claim
// names the member it deletes (server name, host, HTTP address, the lease
// term its node published); a rule C claim names every member seen below
// us; nothing known: PreviousKnown is false and nobody is named. The
// fencing record the claim writes keeps the list for a next leader.
func TestCoreFenceNamesWhoMayHaveActed(t *testing.T) {
	a := memberName("0000000000000000000000000000000a", 0)
	b := memberName("0000000000000000000000000000000b", 1)
	infoA := LeaderInfo{Name: "a", Host: "host-a", HTTP: "a:8080", Term: 5}
	infoB := LeaderInfo{Name: "b", Host: "host-b", HTTP: "b:8080"}
	dataA := MemberData{MemberInfo: MemberInfo{Name: "a", Role: "primary", Host: "host-a", HTTP: "a:8080"}, LeaseTerm: 5}
	dataB := MemberData{MemberInfo: MemberInfo{Name: "b", Role: "primary", Host: "host-b", HTTP: "b:8080"}}
	since := time.Date(2026, 11, 30, 11, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		below []string      // members below us at first (our seq follows)
		rec   *LeaderRecord // nil: missing
		gone  bool          // the members below vanish after the first look (rule C)
		// reconnect: a new connection before they vanish, whose first
		// look comes after (CI's TestFencingNamesASilentLeaderWhoseRecordWasDeleted
		// once saw no candidate: a reconnect forgot them)
		reconnect bool
		idle      bool // a's node carries no lease
		rule      claimRule
		want      []LeaderInfo
	}{
		{name: "rule D, record missing: the deleted member", below: []string{a}, rule: ruleD,
			want: []LeaderInfo{infoA}},
		{name: "rule D, record missing, the lowest holds no lease: it still", below: []string{a}, rule: ruleD, idle: true,
			want: []LeaderInfo{{Name: "a", Host: "host-a", HTTP: "a:8080"}}},
		{name: "rule D, record fencing for an unknown leader: the deleted member", below: []string{a}, rule: ruleD,
			rec:  &LeaderRecord{Term: 5, HolderNode: a, Name: "a", Host: "host-a", State: RecFencing, Since: since},
			want: []LeaderInfo{infoA}},
		{name: "rule D, record names the leader: it, from the record", below: []string{a}, rule: ruleD,
			rec:  &LeaderRecord{Term: 6, HolderNode: a, Name: "a", Host: "rec-host", HTTP: "rec:1", State: RecActive, Since: since},
			want: []LeaderInfo{{Name: "a", Host: "rec-host", HTTP: "rec:1", Term: 6, Since: since}}},
		{name: "rule D, record fencing with a list: the list", below: []string{a}, rule: ruleD,
			rec: &LeaderRecord{Term: 6, HolderNode: a, Name: "a", Host: "host-a", State: RecFencing, Since: since,
				Previous: &infoB, Candidates: []LeaderInfo{infoB, infoA}},
			want: []LeaderInfo{infoB, infoA}},
		{name: "rule C, record missing: every member seen below", below: []string{a, b}, gone: true, rule: ruleC,
			want: []LeaderInfo{infoA, infoB}},
		{name: "rule C, record missing, a reconnect between: every member seen below", below: []string{a, b}, gone: true,
			reconnect: true, rule: ruleC, want: []LeaderInfo{infoA, infoB}},
		{name: "rule C, nothing known", rule: ruleC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, "c")
			r.c.cfg.Fencing = true
			self := MemberData{MemberInfo: MemberInfo{Name: "c", Role: "primary", Host: "host"}}
			own := r.join(len(tc.below))
			tr := &fenceTree{names: append(append([]string(nil), tc.below...), own),
				data: map[string]MemberData{a: dataA, b: dataB}, watches: map[string]uint64{}}
			if tc.rec != nil {
				tr.rec = MustJSON(*tc.rec)
			}
			if tc.idle {
				d := dataA
				d.LeaseTerm = 0
				tr.data[a] = d
			}
			if _, ok := r.serve(tr, self); ok {
				t.Fatal("claimed at once")
			}
			if tc.reconnect {
				r.step(EvSession{Up: false, Epoch: 1})
				r.step(EvSession{Up: true, ID: 7, Epoch: 2})
				tr.watches = map[string]uint64{} // set on the old connection
			}
			if tc.gone {
				r.remove(tr, tc.below...)
			}
			var q ActRequest
			for i := 0; ; i++ {
				if i > 400 {
					t.Fatalf("no claim by %v; phase %s (%s)", 400*50*time.Millisecond, r.c.pub.phase, r.c.pub.reason)
				}
				var ok bool
				if q, ok = r.serve(tr, self); ok {
					break
				}
				r.after(50 * time.Millisecond)
			}
			if r.c.hold.claiming.rule != tc.rule {
				t.Fatalf("claimed by %s, want %s", r.c.hold.claiming.rule, tc.rule)
			}
			ops := q.Op.Ops
			wrote, _, _ := DecodeLeader(leaderOp(ops).Data)
			if wrote.State != RecFencing {
				t.Fatalf("claim wrote state %q, want fencing", wrote.State)
			}
			switch {
			case len(tc.want) == 0 && (wrote.Previous != nil || wrote.Candidates != nil):
				t.Errorf("claim's record names %+v, %+v; want nobody", wrote.Previous, wrote.Candidates)
			case len(tc.want) > 0 && (wrote.Previous == nil || *wrote.Previous != tc.want[0]):
				t.Errorf("claim's record has Previous %+v, want %+v", wrote.Previous, tc.want[0])
			case len(tc.want) > 1 && !reflect.DeepEqual(wrote.Candidates, tc.want):
				t.Errorf("claim's record has Candidates %+v, want %+v", wrote.Candidates, tc.want)
			}
			multi := make([]Result, len(ops))
			for i := range multi {
				multi[i] = Result{Stat: Stat{Version: 1}}
			}
			r.answer(q, Result{Multi: multi})
			var req *FenceRequest
			for _, act := range r.acts {
				if f, ok := act.(ActFence); ok {
					req = &f.Req
				}
			}
			if req == nil {
				t.Fatalf("no fence asked for; phase %s (%s)", r.c.pub.phase, r.c.pub.reason)
			}
			if req.PreviousKnown != (len(tc.want) > 0) || len(req.Candidates) != len(tc.want) ||
				len(tc.want) > 0 && (!reflect.DeepEqual(req.Candidates, tc.want) || req.Previous != tc.want[0]) ||
				len(tc.want) == 0 && req.Previous != (LeaderInfo{}) {
				t.Fatalf("fence request %+v, want candidates %+v", *req, tc.want)
			}
		})
	}
}

// TestCoreFenceRecordDecodesOldAndNew: a fencing record without the
// candidates list (written by an older hanode) still reads, and one with it
// round-trips.
func TestCoreFenceRecordDecodesOldAndNew(t *testing.T) {
	old := []byte(`{"term":7,"holder":"x","name":"a","host":"h","session":"0x1","since":"2026-11-30T12:00:00Z",` +
		`"state":"fencing","previous":{"name":"p","host":"ph","term":6,"since":"2026-11-30T11:00:00Z"}}`)
	rec, kind, why := DecodeLeader(old)
	if kind != RecOK || rec.Previous == nil || rec.Previous.Name != "p" || rec.Candidates != nil {
		t.Fatalf("old record: %+v, %v (%s)", rec, kind, why)
	}
	rec.Candidates = []LeaderInfo{{Name: "p", Host: "ph", Term: 6}, {Name: "q", Host: "qh"}}
	back, kind, why := DecodeLeader(MustJSON(rec))
	if kind != RecOK || !reflect.DeepEqual(back.Candidates, rec.Candidates) {
		t.Fatalf("new record: %+v, %v (%s)", back, kind, why)
	}
	if s := string(MustJSON(LeaderInfo{Name: "q"})); strings.Contains(s, "since") {
		t.Errorf("a candidate without a leadership start encodes as %s, want no since", s)
	}
}

// TestCoreForgetsOnlyTheOldestGoneMembersBeyondTheBound: the members seen
// below us are remembered after they are gone (a fence names them) and
// across reconnects, at most belowKept of them: the ones seen longest ago
// and no longer listed go first; a listed member is never forgotten.
func TestCoreForgetsOnlyTheOldestGoneMembersBeyondTheBound(t *testing.T) {
	r := newRig(t, "z")
	var listed []string
	for i := range belowKept + 6 {
		node := memberName(fmt.Sprintf("%032x", i+100), i)
		r.c.noteBelow(node, MemberData{MemberInfo: MemberInfo{Name: node, Role: "primary"}})
		if i < 3 || i >= belowKept+3 {
			listed = append(listed, node) // the three oldest and the three newest are still members
		}
		r.c.now = r.c.now.Add(time.Millisecond)
	}
	r.c.forgetBelow(listed)
	if n := len(r.c.view.belowInfo); n != belowKept || len(r.c.view.belowSeen) != belowKept {
		t.Fatalf("%d remembered (%d times), want %d", n, len(r.c.view.belowSeen), belowKept)
	}
	for i := range belowKept + 6 {
		node := memberName(fmt.Sprintf("%032x", i+100), i)
		_, kept := r.c.view.belowInfo[node]
		if want := i < 3 || i >= 9; kept != want {
			t.Errorf("member %d kept %v, want %v (listed: %v)", i, kept, want, slices.Contains(listed, node))
		}
	}
}
