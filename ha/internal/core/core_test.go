package core

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Table tests of the decision core at exact instants: a scripted ZooKeeper
// answers each request by hand, so each rule of rules.go is seen alone.
// (The simulator explores their interleavings.)

const (
	ctD = 4 * time.Second
	ctM = 1200 * time.Millisecond
)

var ctW = TakeoverWait(ctD)

// rig drives one core.
type rig struct {
	t    *testing.T
	c    *Core
	now  time.Time
	reqs []ActRequest // requests not yet answered, in order
	acts []Action     // every action, in order
	n    int          // guid counter
	// group, when set, is how a member's looks find the group record
	// (pause.go): every such read is answered with it at once. Nil: left
	// to the script.
	group *Result
}

func newRig(t *testing.T, name string) *rig { t.Helper(); return newWeakRig(t, name, 0) }

// newWeakRig is newRig on a core with deliberate defects (weaken.go).
func newWeakRig(t *testing.T, name string, w Weakening) *rig {
	t.Helper()
	r := &rig{t: t, now: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	c, err := New(Config{Root: "/h", Group: "g", Self: MemberInfo{Name: name, Role: "primary", Host: "host"},
		Lease: ctD, Margin: ctM, NewGUID: func() string { r.n++; return fmt.Sprintf("%032x", r.n) }, Weaken: w})
	if err != nil {
		t.Fatal(err)
	}
	r.c = c
	r.group = &Result{Data: MustJSON(groupRecord{HAID: "g", Role: "primary", LeaseMS: ctD.Milliseconds()})}
	return r
}

func (r *rig) step(ev Event) {
	for _, a := range r.c.Step(r.now, ev) {
		if n, ok := a.(ActNotice); ok && n.N.Level == "bug" {
			r.t.Fatal(n.N.Msg)
		}
		r.acts = append(r.acts, a)
		if q, ok := a.(ActRequest); ok {
			r.reqs = append(r.reqs, q)
		}
	}
	if r.group == nil || r.c.role == roleOut {
		return // a joining core's read of the group record is the script's
	}
	for i, q := range r.reqs {
		if q.Op.Kind == OpGet && q.Op.Path == "/h/groups/g" {
			r.reqs = append(r.reqs[:i], r.reqs[i+1:]...)
			r.answer(q, *r.group)
			return
		}
	}
}

// after moves the clock and ticks.
func (r *rig) after(d time.Duration) {
	r.now = r.now.Add(d)
	r.step(EvTick{})
}

// take removes and returns the first outstanding request of kind on a path
// ending in suffix; it fails the test if there is none.
func (r *rig) take(kind OpKind, suffix string) ActRequest {
	r.t.Helper()
	for i, q := range r.reqs {
		if q.Op.Kind == kind && strings.HasSuffix(q.Op.Path, suffix) {
			r.reqs = append(r.reqs[:i], r.reqs[i+1:]...)
			return q
		}
	}
	r.t.Fatalf("no %s request on *%s; outstanding: %v", kind, suffix, r.pending())
	return ActRequest{}
}

func (r *rig) pending() []string {
	var out []string
	for _, q := range r.reqs {
		out = append(out, q.Op.Kind.String()+" "+q.Op.Path)
	}
	return out
}

// answer replies to q on the current connection.
func (r *rig) answer(q ActRequest, res Result) {
	r.step(EvReply{ID: q.ID, Result: res, Epoch: r.c.sess.epoch})
}

// claimed reports whether a claim (a multi writing the leader record) is out.
func (r *rig) claim() (ActRequest, bool) {
	for i, q := range r.reqs {
		if q.Op.Kind == OpMulti {
			for _, o := range q.Op.Ops {
				if strings.HasSuffix(o.Path, "/leader") {
					r.reqs = append(r.reqs[:i], r.reqs[i+1:]...)
					return q, true
				}
			}
		}
	}
	return ActRequest{}, false
}

func (r *rig) started() (ActStartDuty, bool) {
	for _, a := range r.acts {
		if s, ok := a.(ActStartDuty); ok {
			return s, true
		}
	}
	return ActStartDuty{}, false
}

const ctGUIDSelf = "00000000000000000000000000000001"

func memberName(guid string, seq int) string { return fmt.Sprintf("_c_%s-m-%010d", guid, seq) }

// join walks a fresh core through session, group record and member create,
// and returns its member node name.
func (r *rig) join(seq int) string {
	r.t.Helper()
	r.step(EvSession{Up: true, ID: 7, Epoch: 1})
	r.answer(r.take(OpGet, "/groups/g"), Result{Data: MustJSON(groupRecord{HAID: "g", Role: "primary", LeaseMS: ctD.Milliseconds()})})
	c := r.take(OpCreate, "-m-")
	name := memberName(r.c.own.guid, seq)
	r.answer(c, Result{Path: "/h/groups/g/members/" + name})
	return name
}

// look answers a look: the listing (names, each ephemeral of session 7 for
// ours, 9 for others, with member data), then each read, then the record.
func (r *rig) look(names []string, rec []byte, recVer int32) {
	r.t.Helper()
	r.answer(r.take(OpChildren, "/members"), Result{Children: names})
	for _, n := range names {
		for i, q := range r.reqs {
			if q.Op.Kind == OpGet && strings.HasSuffix(q.Op.Path, "/"+n) && !q.Op.Watch {
				r.reqs = append(r.reqs[:i], r.reqs[i+1:]...)
				owner := int64(9)
				if n == r.c.own.node {
					owner = 7
				}
				r.answer(q, Result{Data: MustJSON(MemberInfo{Name: n, Role: "primary"}), Stat: Stat{EphemeralOwner: owner}})
				break
			}
		}
	}
	q := r.take(OpGet, "/leader")
	if rec == nil {
		r.answer(q, Result{Err: ErrNoNode})
	} else {
		r.answer(q, Result{Data: rec, Stat: Stat{Version: recVer}})
	}
}

// leaderOp is the op of a multi on the leader record.
func leaderOp(ops []Op) Op {
	for _, o := range ops {
		if strings.HasSuffix(o.Path, "/leader") {
			return o
		}
	}
	return Op{}
}

// isPauseCheck: o is a takeover claim's check of the group record (pause.go).
func isPauseCheck(o Op) bool { return o.Kind == OpCheck && strings.HasSuffix(o.Path, "/groups/g") }

func TestCoreFirstMemberOfAnEmptyGroupWaitsWBeforeClaiming(t *testing.T) {
	r := newRig(t, "a")
	own := r.join(0)
	r.look([]string{own}, nil, 0)
	if r.c.pub.phase != PhaseWaiting {
		t.Fatalf("phase %s, want waiting", r.c.pub.phase)
	}
	r.after(ctW - time.Millisecond)
	if _, ok := r.claim(); ok {
		t.Fatal("claimed before W: an earlier leader of a group ZooKeeper forgot may still act")
	}
	r.after(time.Millisecond)
	q, ok := r.claim()
	if !ok {
		t.Fatalf("no claim at W; outstanding %v", r.pending())
	}
	ops := q.Op.Ops
	if len(ops) != 3 || ops[0].Kind != OpSet || !strings.HasSuffix(ops[0].Path, own) || ops[0].Version != 0 ||
		ops[1].Kind != OpCreate || !strings.HasSuffix(ops[1].Path, "/leader") || !isPauseCheck(ops[2]) {
		t.Fatalf("claim %+v: want Set(own, 0), Create(leader) and Check(group)", ops)
	}
	rec, kind, _ := DecodeLeader(ops[1].Data)
	if kind != RecOK || rec.HolderNode != own || rec.Term < r.now.UnixMilli() {
		t.Fatalf("record %+v: want us as holder and a term seeded from the wall clock", rec)
	}
	sent := r.now
	r.answer(q, Result{Multi: []Result{{Stat: Stat{Version: 1}}, {}}})
	s, ok := r.started()
	if !ok || s.Term != rec.Term || !s.LeaseEnd.Equal(sent.Add(ctD-ctM)) {
		t.Fatalf("duty %+v, %v: want term %d, lease end send+D-M", s, ok, rec.Term)
	}
	if !r.c.Active(r.now) || r.c.Active(sent.Add(ctD-ctM)) {
		t.Fatal("active must hold exactly until send + D - M")
	}
}

// extension takes the holder's next extension: a multi writing its node at
// the version it last wrote and checking the record at its own last write.
func (r *rig) extension(own string, ver, recVer int32) ActRequest {
	r.t.Helper()
	for i, q := range r.reqs {
		if q.Op.Kind == OpMulti && len(q.Op.Ops) == 2 && q.Op.Ops[1].Kind == OpCheck {
			r.reqs = append(r.reqs[:i], r.reqs[i+1:]...)
			o := q.Op.Ops
			if o[0].Kind != OpSet || !strings.HasSuffix(o[0].Path, own) || o[0].Version != ver ||
				!strings.HasSuffix(o[1].Path, "/leader") || o[1].Version != recVer {
				r.t.Fatalf("extension %+v: want Set(own, %d), Check(leader, %d)", o, ver, recVer)
			}
			return q
		}
	}
	r.t.Fatalf("no extension out; outstanding: %v", r.pending())
	return ActRequest{}
}

func (r *rig) stopped() bool {
	for _, a := range r.acts {
		if _, ok := a.(ActStopDuty); ok {
			return true
		}
	}
	return false
}

// lead makes the rig's core the holder of a one-member group (rule C after
// W), its node at version 1, and returns its member node name.
func (r *rig) lead() string {
	r.t.Helper()
	own := r.join(0)
	r.look([]string{own}, nil, 0)
	r.after(ctW)
	q, ok := r.claim()
	if !ok {
		r.t.Fatalf("no claim at W; outstanding %v", r.pending())
	}
	r.answer(q, Result{Multi: []Result{{Stat: Stat{Version: 1}}, {}}})
	return own
}

func TestCoreHolderExtendsByWritingItsOwnNodeAndStopsWhenItCannot(t *testing.T) {
	r := newRig(t, "a")
	own := r.lead()
	every := ExtendEvery(ctD, ctM)
	r.after(every - time.Millisecond)
	for _, q := range r.reqs {
		if !q.Op.Watch { // a member's watch on its own node may be out
			t.Fatalf("requests before the extension is due: %v", r.pending())
		}
	}
	r.after(time.Millisecond)
	ext := r.extension(own, 1, 0)
	sent := r.now
	r.answer(ext, Result{Multi: []Result{{Stat: Stat{Version: 2}}, {}}})
	if got := r.c.leaseEnd(); !got.Equal(sent.Add(ctD - ctM)) {
		t.Fatalf("lease end %v, want the extension's send time + D - M", got)
	}
	// Someone wrote our node: the next extension fails; we stop at once.
	r.after(every)
	r.answer(r.extension(own, 2, 0), Result{Err: ErrBadVersion, Multi: []Result{{Err: ErrBadVersion}, {Err: ErrOther}}})
	if r.c.Active(r.now) || r.c.pub.phase == PhaseActive || !r.stopped() {
		t.Fatal("still active after our node was written by another client")
	}
}

// TestCoreHolderRewritesARecordAnotherClientWroteWithoutSteppingDown: the
// extension's check of the record fails; the holder reads it and rewrites
// it with its next write of its node, and never stops acting.
func TestCoreHolderRewritesARecordAnotherClientWroteWithoutSteppingDown(t *testing.T) {
	r := newRig(t, "a")
	own := r.lead()
	every := ExtendEvery(ctD, ctM)
	r.after(every)
	r.answer(r.extension(own, 1, 0), Result{Err: ErrBadVersion, Multi: []Result{{}, {Err: ErrBadVersion}}})
	r.answer(r.take(OpGet, "/leader"), Result{Data: []byte("garbage"), Stat: Stat{Version: 1}})
	var repair ActRequest
	for i, q := range r.reqs {
		if q.Op.Kind == OpMulti {
			repair = q
			r.reqs = append(r.reqs[:i], r.reqs[i+1:]...)
		}
	}
	if len(repair.Op.Ops) != 2 || repair.Op.Ops[0].Version != 1 || repair.Op.Ops[1].Kind != OpSet || repair.Op.Ops[1].Version != 1 {
		t.Fatalf("repair %+v: want Set(own, 1) and Set(leader, 1)", repair.Op.Ops)
	}
	r.answer(repair, Result{Multi: []Result{{Stat: Stat{Version: 2}}, {Stat: Stat{Version: 2}}}})
	if !r.c.Active(r.now) || r.stopped() {
		t.Fatal("the holder stopped acting over a record it could rewrite")
	}
	r.after(every)
	r.extension(own, 2, 2)
}

func TestCoreSecondMemberTakesOverAFrozenHolderWAfterItsLastExtension(t *testing.T) {
	r := newRig(t, "b")
	holder := memberName("0000000000000000000000000000000f", 0)
	own := r.join(1)
	rec := MustJSON(LeaderRecord{Term: 5, HolderNode: holder, Name: "a", State: RecActive})
	r.look([]string{holder, own}, rec, 3)
	w := r.take(OpGet, holder)
	if !w.Op.Watch {
		t.Fatal("the second member must watch the holder")
	}
	r.answer(w, Result{Data: MustJSON(MemberData{MemberInfo: MemberInfo{Name: "a", Role: "primary"}, LeaseTerm: 5}),
		Stat: Stat{Version: 4, EphemeralOwner: 9}})
	// The holder extends: the wait starts again from the new read.
	r.after(ctW / 2)
	r.step(EvWatch{ID: w.ID, Kind: WatchChanged, Epoch: r.c.sess.epoch})
	w2 := r.take(OpGet, holder)
	r.answer(w2, Result{Data: MustJSON(MemberInfo{Name: "a", Role: "primary"}), Stat: Stat{Version: 5, EphemeralOwner: 9}})
	read := r.now
	r.after(ctW - time.Millisecond)
	if _, ok := r.claim(); ok {
		t.Fatal("claimed within W of the holder's last extension")
	}
	r.after(time.Millisecond)
	q, ok := r.claim()
	if !ok {
		t.Fatalf("no claim W after the last extension; outstanding %v", r.pending())
	}
	ops := q.Op.Ops
	if len(ops) != 4 || ops[0].Kind != OpDelete || !strings.HasSuffix(ops[0].Path, holder) || ops[0].Version != 5 ||
		ops[2].Kind != OpSet || ops[2].Version != 3 || !isPauseCheck(ops[3]) {
		t.Fatalf("claim %+v: want Delete(holder, 5), Set(own), Set(leader, 3), Check(group)", ops)
	}
	if r.now.Sub(read) != ctW {
		t.Fatalf("claimed %s after the read, want W = %s", r.now.Sub(read), ctW)
	}
}

func TestCoreReleaseLetsTheNextClaimAtOnceButOnlyFromAMemberSeenBelow(t *testing.T) {
	for _, seen := range []bool{true, false} {
		t.Run(fmt.Sprintf("seen=%v", seen), func(t *testing.T) {
			r := newRig(t, "b")
			holder := memberName("0000000000000000000000000000000f", 0)
			own := r.join(1)
			released := MustJSON(LeaderRecord{Term: 5, HolderNode: holder, State: RecReleased})
			if seen {
				r.look([]string{holder, own}, MustJSON(LeaderRecord{Term: 5, HolderNode: holder, State: RecActive}), 3)
				r.answer(r.take(OpGet, holder), Result{Data: MustJSON(MemberInfo{Name: "a", Role: "p"}), Stat: Stat{Version: 1, EphemeralOwner: 9}})
				r.step(EvWatch{ID: r.c.pred.watch, Kind: WatchDeleted, Epoch: r.c.sess.epoch})
				// Next after the lowest: one read of the record, no look.
				r.answer(r.take(OpGet, "/leader"), Result{Data: released, Stat: Stat{Version: 4}})
			} else {
				// The record says the holder released; we are lowest now.
				r.look([]string{own}, released, 4)
			}
			q, ok := r.claim()
			if ok != seen {
				t.Fatalf("claimed at once = %v, want %v", ok, seen)
			}
			if !seen {
				r.after(ctW)
				if q, ok = r.claim(); !ok {
					t.Fatal("no claim after W")
				}
			}
			if q.Op.Ops[1].Version != 4 {
				t.Fatalf("claim writes the record at version %d, want 4", q.Op.Ops[1].Version)
			}
		})
	}
}

func TestCoreObservationsDoNotSurviveAReconnect(t *testing.T) {
	r := newRig(t, "b")
	holder := memberName("0000000000000000000000000000000f", 0)
	own := r.join(1)
	r.look([]string{holder, own}, MustJSON(LeaderRecord{Term: 5, HolderNode: holder, State: RecActive}), 3)
	w := r.take(OpGet, holder)
	r.answer(w, Result{Data: MustJSON(MemberInfo{Name: "a", Role: "p"}), Stat: Stat{Version: 1, EphemeralOwner: 9}})
	r.after(ctW - 100*time.Millisecond)
	// A reconnect to the same session: what we read before proves nothing.
	r.step(EvSession{Up: false, Epoch: 1})
	r.step(EvSession{Up: true, ID: 7, Epoch: 2})
	r.step(EvWatch{ID: w.ID, Kind: WatchDeleted, Epoch: r.c.sess.epoch})
	r.look([]string{own}, MustJSON(LeaderRecord{Term: 5, HolderNode: holder, State: RecActive}), 3)
	r.after(200 * time.Millisecond)
	if _, ok := r.claim(); ok {
		t.Fatal("claimed on an observation made before the reconnect")
	}
	r.after(ctW - 200*time.Millisecond)
	if _, ok := r.claim(); !ok {
		t.Fatal("no claim W after the first look of the new epoch")
	}
}

func TestCoreTermsSeedFromTheWallClockAndRefuseARecordThatCannotGrow(t *testing.T) {
	for _, c := range []struct {
		name   string
		rec    []byte
		claim  bool
		atLeat int64
	}{
		{"no record: the wall clock", nil, true, 0},
		{"a small term: the wall clock still", MustJSON(LeaderRecord{Term: 7, HolderNode: "x", State: RecActive}), true, 0},
		{"a term ahead of the clock: one more", MustJSON(LeaderRecord{Term: 1 << 50, HolderNode: "x", State: RecActive}), true, 1<<50 + 1},
		{"a term that cannot grow: refused", MustJSON(LeaderRecord{Term: MaxTerm, HolderNode: "x", State: RecActive}), false, 0},
		{"near int64's maximum, no holder: refused, not overwritten", []byte(`{"term": 9223372036854775800}`), false, 0},
		{"an unreadable record: overwritten", []byte("{not json"), true, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, "a")
			own := r.join(0)
			r.look([]string{own}, c.rec, 2)
			r.after(ctW)
			q, ok := r.claim()
			if ok != c.claim {
				t.Fatalf("claim = %v, want %v (snapshot %+v)", ok, c.claim, r.c.Snapshot())
			}
			if !ok {
				if p := r.c.Snapshot().Problem; !strings.Contains(p, "/h/groups/g/leader") {
					t.Fatalf("problem %q must name the record", p)
				}
				return
			}
			rec, _, _ := DecodeLeader(q.Op.Ops[1].Data)
			want := max(c.atLeat, r.now.UnixMilli())
			if rec.Term != want || rec.Term >= MaxTerm {
				t.Fatalf("term %d, want %d", rec.Term, want)
			}
		})
	}
}

func TestCoreForeignNodesAreIgnoredOrKeptInOrderButNeverTrusted(t *testing.T) {
	r := newRig(t, "b")
	own := r.join(5)
	persistent := memberName("0000000000000000000000000000000e", 0)
	signed := "_c_0000000000000000000000000000000d-m--000000001"
	garbage := memberName("0000000000000000000000000000000c", 1)
	r.answer(r.take(OpChildren, "/members"), Result{Children: []string{signed, persistent, garbage, own, "leader-junk"}})
	r.answer(r.take(OpGet, persistent), Result{Data: MustJSON(MemberInfo{Name: "forged", Role: "p"})})
	r.answer(r.take(OpGet, garbage), Result{Data: []byte("x"), Stat: Stat{EphemeralOwner: 9}})
	r.answer(r.take(OpGet, own), Result{Stat: Stat{EphemeralOwner: 7}})
	r.answer(r.take(OpGet, "/leader"), Result{Err: ErrNoNode})
	st := r.c.Snapshot()
	if r.c.view.position != 1 || len(st.Members) != 2 || len(st.Ignored) != 4 {
		t.Fatalf("position %d, members %+v, ignored %+v: want behind the ephemeral garbage node only",
			r.c.view.position, st.Members, st.Ignored)
	}
}

// TestCoreAMemberPublishingAnImpossibleTermDoesNotStopTheGroup: a member
// node whose seen_term is near the maximum (damaged, or written by hand) is
// not taken as a term to grow from.
func TestCoreAMemberPublishingAnImpossibleTermDoesNotStopTheGroup(t *testing.T) {
	r := newRig(t, "b")
	other := memberName("0000000000000000000000000000000f", 3)
	own := r.join(0)
	r.answer(r.take(OpChildren, "/members"), Result{Children: []string{own, other}})
	r.answer(r.take(OpGet, other), Result{Data: MustJSON(MemberInfo{Name: "a", Role: "p", SeenTerm: 1<<62 + 5}),
		Stat: Stat{EphemeralOwner: 9}})
	r.answer(r.take(OpGet, own), Result{Stat: Stat{EphemeralOwner: 7}})
	r.answer(r.take(OpGet, "/leader"), Result{Err: ErrNoNode})
	r.after(ctW)
	q, ok := r.claim()
	if !ok {
		t.Fatalf("no claim: %+v", r.c.Snapshot())
	}
	if rec, _, _ := DecodeLeader(q.Op.Ops[1].Data); rec.Term != r.now.UnixMilli() {
		t.Fatalf("term %d, want the wall clock %d", rec.Term, r.now.UnixMilli())
	}
}

// TestCoreStringPrintsTheWholeState: a failing seed shows every field of
// every part of the state, what follows a stop as values rather than
// addresses.
func TestCoreStringPrintsTheWholeState(t *testing.T) {
	r := newRig(t, "a")
	own := r.lead()
	r.step(EvResign{Reason: "test"}) // the duty is asked to stop: afterStop is set
	if !r.stopped() {
		t.Fatal("no stop asked")
	}
	s := r.c.String()
	for _, want := range []string{own, "role=member", "afterStop={write:1 leave:true then:{do:1 reason:rejoining after resigning"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks %q:\n%s", want, s)
		}
	}
	parts := reflect.ValueOf(*r.c)
	for i := 0; i < parts.NumField(); i++ {
		part := parts.Type().Field(i)
		if part.Type.Kind() != reflect.Struct || part.Name == "cfg" || part.Name == "l" || part.Name == "now" {
			continue
		}
		line := ""
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), part.Name+":") {
				line = l
			}
		}
		if line == "" {
			t.Errorf("String() has no line for part %s:\n%s", part.Name, s)
			continue
		}
		for j := 0; j < part.Type.NumField(); j++ {
			if f := part.Type.Field(j).Name; !strings.Contains(line, " "+f+"=") {
				t.Errorf("String() leaves out %s.%s:\n%s", part.Name, f, line)
			}
		}
	}
	if strings.Contains(s, "0xc0") || strings.Contains(s, "wall:") {
		t.Errorf("String() prints an address or a raw time:\n%s", s)
	}
}

// TestCoreMarksTheLeaderWithoutANewListing: a claim moves the group's
// leader with no new listing of the members; the published members mark
// the new leader at once, as Snapshot's Leader names it.
func TestCoreMarksTheLeaderWithoutANewListing(t *testing.T) {
	r := newRig(t, "a")
	own := r.join(0)
	r.look([]string{own}, nil, 0)
	if s := r.c.Snapshot(); len(s.Members) != 1 || s.Members[0].Leader || s.Leader != "" {
		t.Fatalf("before the claim: leader %q, members %+v", s.Leader, s.Members)
	}
	r.after(ctW)
	q, ok := r.claim()
	if !ok {
		t.Fatal("no claim at W")
	}
	r.answer(q, Result{Multi: []Result{{Stat: Stat{Version: 1}}, {}}})
	s := r.c.Snapshot()
	if s.Leader != "a" || len(s.Members) != 1 || !s.Members[0].Leader {
		t.Fatalf("after the claim: leader %q, members %+v; want a, marked", s.Leader, s.Members)
	}
}
