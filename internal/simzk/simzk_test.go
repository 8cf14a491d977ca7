package simzk

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

const sec = time.Second

func newTestServer() *Server { return New(Config{}) } // tick 2 s, sessions 4 s..40 s

func mustApply(t *testing.T, s *Server, id int64, op Op, now time.Duration) (Result, []Event) {
	t.Helper()
	res, evs := s.Apply(id, op, now)
	if res.Err != nil && !(op.Kind == Exists && errors.Is(res.Err, zk.ErrNoNode)) {
		t.Fatalf("%v: %v", op, res.Err)
	}
	return res, evs
}

func ev(id int64, typ zk.EventType, path string) Event {
	return Event{Session: id, Type: typ, Path: path}
}

func TestNegotiateClampsToTicks(t *testing.T) {
	s := newTestServer()
	for _, tc := range []struct {
		name            string
		requested, want time.Duration
	}{
		{"below the minimum of 2 ticks", 1 * sec, 4 * sec},
		{"within bounds", 10 * sec, 10 * sec},
		{"above the maximum of 20 ticks", 60 * sec, 40 * sec},
		{"sub-millisecond part dropped", 10*sec + 700*time.Microsecond, 10 * sec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.Negotiate(tc.requested); got != tc.want {
				t.Errorf("Negotiate(%v) = %v, want %v", tc.requested, got, tc.want)
			}
			_, got := s.CreateSession(tc.requested, 0)
			if got != tc.want {
				t.Errorf("CreateSession(%v) negotiated %v, want %v", tc.requested, got, tc.want)
			}
		})
	}
}

func TestExpiryRoundsUpToNextTick(t *testing.T) {
	for _, tc := range []struct {
		name      string
		lastTouch time.Duration
		want      time.Duration // timeout 4 s, tick 2 s
	}{
		{"touch on a tick: a whole tick later than touch+timeout", 0, 6 * sec},
		{"just after a tick", 1 * time.Millisecond, 6 * sec},
		{"just before a tick", 2*sec - time.Millisecond, 6 * sec},
		{"on the next tick", 2 * sec, 8 * sec},
		{"mid tick", 3 * sec, 8 * sec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer()
			id, _ := s.CreateSession(4*sec, 0)
			if err := s.Touch(id, tc.lastTouch); err != nil {
				t.Fatal(err)
			}
			if at, ok := s.NextExpiry(); !ok || at != tc.want {
				t.Fatalf("NextExpiry = %v, %v; want %v", at, ok, tc.want)
			}
			if exp, _ := s.ExpireDue(tc.want - time.Nanosecond); len(exp) != 0 || !s.Alive(id) {
				t.Fatalf("expired %v before its expiry %v", exp, tc.want)
			}
			if exp, _ := s.ExpireDue(tc.want); !slices.Equal(exp, []int64{id}) || s.Alive(id) {
				t.Fatalf("ExpireDue(%v) = %v, want [%#x]", tc.want, exp, id)
			}
			if _, ok := s.NextExpiry(); ok {
				t.Fatal("NextExpiry reports an expiry with no session")
			}
		})
	}
}

func TestExpiryDeletesEphemeralsAndFiresOtherSessionsWatches(t *testing.T) {
	s := newTestServer()
	a, _ := s.CreateSession(4*sec, 0)
	b, _ := s.CreateSession(20*sec, 0)
	mustApply(t, s, a, Op{Kind: Create, Path: "/g"}, 0)
	mustApply(t, s, a, Op{Kind: Create, Path: "/g/m", Flags: zk.FlagEphemeral}, 0)
	mustApply(t, s, a, Op{Kind: Exists, Path: "/g/m", Watch: true}, 0) // a's own watch: dropped, no event
	mustApply(t, s, b, Op{Kind: GetData, Path: "/g/m", Watch: true}, 0)
	mustApply(t, s, b, Op{Kind: Children, Path: "/g", Watch: true}, 0)
	zxid := s.LastZxid()

	exp, evs := s.ExpireDue(6 * sec)
	if !slices.Equal(exp, []int64{a}) {
		t.Fatalf("expired %v, want [%#x]", exp, a)
	}
	want := []Event{ev(b, zk.EventNodeDeleted, "/g/m"), ev(b, zk.EventNodeChildrenChanged, "/g")}
	if !slices.Equal(evs, want) {
		t.Fatalf("events %v, want %v", evs, want)
	}
	if s.LastZxid() != zxid+1 {
		t.Errorf("expiry took zxid %d, want one transaction after %d", s.LastZxid(), zxid)
	}
	if _, st, _ := s.Get("/g"); st.NumChildren != 0 || st.Pzxid != zxid+1 {
		t.Errorf("parent after expiry: %+v", st)
	}
	if err := s.Touch(a, 6*sec); !errors.Is(err, zk.ErrSessionExpired) {
		t.Errorf("Touch of the expired session: %v", err)
	}
	if res, _ := s.Apply(a, Op{Kind: Create, Path: "/x"}, 6*sec); !errors.Is(res.Err, zk.ErrSessionExpired) {
		t.Errorf("Apply of the expired session: %v", res.Err)
	}
	if s.LastZxid() != zxid+1 {
		t.Error("a request of an expired session took a zxid")
	}
}

func TestApplyExpiresDueSessionsFirst(t *testing.T) {
	s := newTestServer()
	a, _ := s.CreateSession(4*sec, 0) // expires at 6 s
	b, _ := s.CreateSession(40*sec, 0)
	mustApply(t, s, a, Op{Kind: Create, Path: "/m", Flags: zk.FlagEphemeral}, 0)
	mustApply(t, s, b, Op{Kind: Exists, Path: "/m", Watch: true}, 0)

	// b's request at 7 s sees the tree after a's expiry at 6 s.
	res, evs := s.Apply(b, Op{Kind: Exists, Path: "/m", Watch: true}, 7*sec)
	if !errors.Is(res.Err, zk.ErrNoNode) {
		t.Fatalf("Exists after the owner's expiry: %v", res.Err)
	}
	if want := []Event{ev(b, zk.EventNodeDeleted, "/m")}; !slices.Equal(evs, want) {
		t.Fatalf("events %v, want %v", evs, want)
	}
	// ExpireDue reports the id, not the events again.
	exp, evs := s.ExpireDue(7 * sec)
	if !slices.Equal(exp, []int64{a}) || len(evs) != 0 {
		t.Fatalf("ExpireDue = %v, %v; want [%#x] and no events", exp, evs, a)
	}
	// Touch cannot return events: ExpireDue does.
	c, _ := s.CreateSession(4*sec, 7*sec)
	mustApply(t, s, c, Op{Kind: Create, Path: "/c", Flags: zk.FlagEphemeral}, 7*sec)
	mustApply(t, s, b, Op{Kind: Exists, Path: "/c", Watch: true}, 7*sec)
	if err := s.Touch(b, 20*sec); err != nil {
		t.Fatal(err)
	}
	exp, evs = s.ExpireDue(20 * sec)
	if !slices.Equal(exp, []int64{c}) || !slices.Equal(evs, []Event{ev(b, zk.EventNodeDeleted, "/c")}) {
		t.Fatalf("ExpireDue after Touch = %v, %v", exp, evs)
	}
}

func TestTimeGoingBackwardsPanics(t *testing.T) {
	s := newTestServer()
	id, _ := s.CreateSession(4*sec, 5*sec)
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	s.Apply(id, Op{Kind: Sync, Path: "/"}, 4*sec)
}

func TestCloseSession(t *testing.T) {
	s := newTestServer()
	a, _ := s.CreateSession(4*sec, 0)
	b, _ := s.CreateSession(4*sec, 0)
	mustApply(t, s, a, Op{Kind: Create, Path: "/e", Flags: zk.FlagEphemeral}, 0)
	mustApply(t, s, b, Op{Kind: Exists, Path: "/e", Watch: true}, 0)
	evs, err := s.CloseSession(a, sec)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Event{ev(b, zk.EventNodeDeleted, "/e")}; !slices.Equal(evs, want) {
		t.Fatalf("events %v, want %v", evs, want)
	}
	if s.Alive(a) {
		t.Fatal("closed session alive")
	}
	if _, err := s.CloseSession(a, sec); !errors.Is(err, zk.ErrSessionExpired) {
		t.Fatalf("second close: %v", err)
	}
}

func TestAnySessionMayDeleteOrOverwriteEphemerals(t *testing.T) {
	s := newTestServer()
	a, _ := s.CreateSession(4*sec, 0)
	b, _ := s.CreateSession(4*sec, 0)
	mustApply(t, s, a, Op{Kind: Create, Path: "/e", Flags: zk.FlagEphemeral}, 0)
	res, _ := mustApply(t, s, b, Op{Kind: SetData, Path: "/e", Data: []byte("b"), Version: 0}, 0)
	if res.Stat.EphemeralOwner != a || res.Stat.Version != 1 {
		t.Fatalf("stat after b's write: %+v", res.Stat)
	}
	mustApply(t, s, b, Op{Kind: Delete, Path: "/e", Version: -1}, 0)
	mustApply(t, s, b, Op{Kind: Create, Path: "/e", Flags: zk.FlagEphemeral}, 0)
	if _, err := s.CloseSession(a, 0); err != nil { // must not delete b's /e
		t.Fatal(err)
	}
	if _, st, ok := s.Get("/e"); !ok || st.EphemeralOwner != b {
		t.Fatalf("/e after a closed: %v %+v", ok, st)
	}
}

func TestStat(t *testing.T) {
	s := newTestServer()
	id, _ := s.CreateSession(4*sec, 0)
	mustApply(t, s, id, Op{Kind: Create, Path: "/p", Data: []byte("abc")}, 3*time.Millisecond)
	created := s.LastZxid()
	mustApply(t, s, id, Op{Kind: Create, Path: "/p/a"}, 4*time.Millisecond)
	mustApply(t, s, id, Op{Kind: Create, Path: "/p/b"}, 5*time.Millisecond)
	mustApply(t, s, id, Op{Kind: Delete, Path: "/p/a", Version: -1}, 6*time.Millisecond)
	del := s.LastZxid()
	mustApply(t, s, id, Op{Kind: SetData, Path: "/p", Data: []byte("abc"), Version: 0}, 9*time.Millisecond) // same data
	res, _ := mustApply(t, s, id, Op{Kind: SetData, Path: "/p", Data: []byte("abcd"), Version: -1}, 9*time.Millisecond)
	want := zk.Stat{
		Czxid: created, Mzxid: s.LastZxid(), Pzxid: del,
		Ctime: 3, Mtime: 9,
		Version:     2,
		Cversion:    3, // two creates and one delete
		DataLength:  4,
		NumChildren: 1,
	}
	if res.Stat != want {
		t.Fatalf("stat\n got %+v\nwant %+v", res.Stat, want)
	}
}

func TestFreshTree(t *testing.T) {
	s := newTestServer()
	want := []string{"/", "/zookeeper", "/zookeeper/config", "/zookeeper/quota"}
	if got := s.Paths(); !slices.Equal(got, want) {
		t.Fatalf("Paths() = %v, want %v", got, want)
	}
	for path, cversion := range map[string]int32{"/": -1, "/zookeeper": -2, "/zookeeper/quota": 0} {
		if _, st, _ := s.Get(path); st.Cversion != cversion {
			t.Errorf("%s: Cversion %d, want %d (as real ZooKeeper reports)", path, st.Cversion, cversion)
		}
	}
	if _, st, _ := s.Get("/zookeeper/config"); st.Aversion != -1 {
		t.Errorf("/zookeeper/config: Aversion %d, want -1", st.Aversion)
	}
}

func TestSequenceNumbers(t *testing.T) {
	s := newTestServer()
	id, _ := s.CreateSession(4*sec, 0)
	create := func(path string, flags int32) string {
		t.Helper()
		res, _ := mustApply(t, s, id, Op{Kind: Create, Path: path, Flags: flags}, 0)
		return res.Path
	}
	create("/p", 0)
	steps := []struct {
		do   func() string
		want string
	}{
		{func() string { return create("/p/n-", zk.FlagSequence) }, "/p/n-0000000000"},
		{func() string { return create("/p/x", 0) }, "/p/x"}, // any create counts
		{func() string { return create("/p/n-", zk.FlagSequence|zk.FlagEphemeral) }, "/p/n-0000000002"},
		{func() string {
			mustApply(t, s, id, Op{Kind: Delete, Path: "/p/n-0000000000", Version: -1}, 0)
			return create("/p/", zk.FlagSequence) // deletes do not count
		}, "/p/0000000003"},
		{func() string { // a failed create does not count either
			if r, _ := s.Apply(id, Op{Kind: Create, Path: "/p/x"}, 0); !errors.Is(r.Err, zk.ErrNodeExists) {
				t.Fatalf("duplicate create: %v", r.Err)
			}
			return create("/p/n-", zk.FlagSequence)
		}, "/p/n-0000000004"},
		{func() string { // the parent recreated: numbering restarts
			mustApply(t, s, id, Op{Kind: Multi, Ops: []Op{
				{Kind: Delete, Path: "/p/x", Version: -1},
				{Kind: Delete, Path: "/p/n-0000000002", Version: -1},
				{Kind: Delete, Path: "/p/0000000003", Version: -1},
				{Kind: Delete, Path: "/p/n-0000000004", Version: -1},
				{Kind: Delete, Path: "/p", Version: -1},
				{Kind: Create, Path: "/p"},
			}}, 0)
			return create("/p/n-", zk.FlagSequence)
		}, "/p/n-0000000000"},
	}
	for i, st := range steps {
		if got := st.do(); got != st.want {
			t.Fatalf("step %d: created %q, want %q", i, got, st.want)
		}
	}
}

func TestSequenceSuffix(t *testing.T) {
	for v, want := range map[int32]string{0: "0000000000", 42: "0000000042", 2147483647: "2147483647", -1: "-000000001", -2147483648: "-2147483648"} {
		if got := sequenceSuffix(v); got != want {
			t.Errorf("sequenceSuffix(%d) = %q, want %q (Java's %%010d)", v, got, want)
		}
	}
}

func TestWriteErrors(t *testing.T) {
	s := newTestServer()
	a, _ := s.CreateSession(4*sec, 0)
	mustApply(t, s, a, Op{Kind: Create, Path: "/p"}, 0)
	mustApply(t, s, a, Op{Kind: Create, Path: "/p/c"}, 0)
	mustApply(t, s, a, Op{Kind: Create, Path: "/e", Flags: zk.FlagEphemeral}, 0)
	for _, tc := range []struct {
		name    string
		op      Op
		want    error
		takesTx bool
	}{
		{"parent missing", Op{Kind: Create, Path: "/nope/x"}, zk.ErrNoNode, true},
		{"exists", Op{Kind: Create, Path: "/p"}, zk.ErrNodeExists, true},
		{"root exists", Op{Kind: Create, Path: "/"}, zk.ErrNodeExists, true},
		{"child of an ephemeral", Op{Kind: Create, Path: "/e/x"}, zk.ErrNoChildrenForEphemerals, true},
		{"client-side path check", Op{Kind: Create, Path: "/p/"}, zk.ErrInvalidPath, false},
		{"server-side path check", Op{Kind: Create, Path: "/p/\ue000"}, zk.ErrBadArguments, true},
		{"non-BMP character", Op{Kind: Create, Path: "/p/\U0001F600"}, zk.ErrBadArguments, true},
		{"TTL flag", Op{Kind: Create, Path: "/t", Flags: zk.FlagTTL}, zk.ErrInvalidFlags, false},
		{"version mismatch before not empty", Op{Kind: Delete, Path: "/p", Version: 3}, zk.ErrBadVersion, true},
		{"not empty", Op{Kind: Delete, Path: "/p", Version: -1}, zk.ErrNotEmpty, true},
		{"delete root", Op{Kind: Delete, Path: "/", Version: -1}, zk.ErrBadArguments, true},
		{"delete /zookeeper/quota", Op{Kind: Delete, Path: "/zookeeper/quota", Version: -1}, zk.ErrBadArguments, true},
		{"delete missing", Op{Kind: Delete, Path: "/q", Version: -1}, zk.ErrNoNode, true},
		{"set version mismatch", Op{Kind: SetData, Path: "/p", Version: 1}, zk.ErrBadVersion, true},
		{"set missing", Op{Kind: SetData, Path: "/q", Version: -1}, zk.ErrNoNode, true},
		{"check missing", Op{Kind: Check, Path: "/q", Version: -1}, zk.ErrNoNode, true},
		{"get missing", Op{Kind: GetData, Path: "/q"}, zk.ErrNoNode, false},
		{"get of an odd but valid-for-go path", Op{Kind: GetData, Path: "/\ue000"}, zk.ErrNoNode, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			zxid := s.LastZxid()
			res, evs := s.Apply(a, tc.op, 0)
			if !errors.Is(res.Err, tc.want) {
				t.Fatalf("%v: %v, want %v", tc.op, res.Err, tc.want)
			}
			if len(evs) != 0 {
				t.Errorf("a failed request fired %v", evs)
			}
			if took := s.LastZxid() != zxid; took != tc.takesTx {
				t.Errorf("took a zxid: %v, want %v", took, tc.takesTx)
			}
		})
	}
}

func TestMulti(t *testing.T) {
	t.Run("later ops see earlier ones and share one zxid", func(t *testing.T) {
		s := newTestServer()
		a, _ := s.CreateSession(4*sec, 0)
		res, _ := mustApply(t, s, a, Op{Kind: Multi, Ops: []Op{
			{Kind: Create, Path: "/p"},
			{Kind: Create, Path: "/p/c-", Flags: zk.FlagSequence},
			{Kind: SetData, Path: "/p", Data: []byte("x"), Version: 0},
			{Kind: Check, Path: "/p", Version: 1},
		}}, 0)
		if res.Multi[1].Path != "/p/c-0000000000" || res.Multi[2].Stat.Version != 1 {
			t.Fatalf("results %+v", res.Multi)
		}
		_, st, _ := s.Get("/p/c-0000000000")
		if _, pst, _ := s.Get("/p"); st.Czxid != s.LastZxid() || pst.Mzxid != s.LastZxid() {
			t.Fatal("ops of one multi have different zxids")
		}
	})
	t.Run("failure changes nothing and reports per op", func(t *testing.T) {
		s := newTestServer()
		a, _ := s.CreateSession(4*sec, 0)
		b, _ := s.CreateSession(4*sec, 0)
		mustApply(t, s, a, Op{Kind: Create, Path: "/p"}, 0)
		mustApply(t, s, b, Op{Kind: Exists, Path: "/p/x", Watch: true}, 0)
		before, zxid := s.Paths(), s.LastZxid()
		res, evs := s.Apply(a, Op{Kind: Multi, Ops: []Op{
			{Kind: Create, Path: "/p/x"},
			{Kind: Delete, Path: "/p/x", Version: -1},
			{Kind: Check, Path: "/p/x", Version: -1}, // deleted by the op before
			{Kind: Create, Path: "/p/y"},
		}}, 0)
		if !errors.Is(res.Err, zk.ErrNoNode) {
			t.Fatalf("multi error %v, want the failing op's ErrNoNode", res.Err)
		}
		wantErrs := []error{nil, nil, zk.ErrNoNode, ErrRuntimeInconsistency}
		for i, r := range res.Multi {
			if r.Err != wantErrs[i] || r.Path != "" {
				t.Errorf("op %d: %+v, want error %v", i, r, wantErrs[i])
			}
		}
		if len(evs) != 0 || !slices.Equal(s.Paths(), before) {
			t.Fatalf("failed multi changed the tree or fired %v", evs)
		}
		if s.LastZxid() != zxid+1 {
			t.Fatal("a failed multi must take a zxid")
		}
		// b's exist watch is still there.
		_, evs = mustApply(t, s, a, Op{Kind: Create, Path: "/p/x"}, 0)
		if want := []Event{ev(b, zk.EventNodeCreated, "/p/x")}; !slices.Equal(evs, want) {
			t.Fatalf("events %v, want %v", evs, want)
		}
	})
	t.Run("server-side path check inside a multi", func(t *testing.T) {
		s := newTestServer()
		a, _ := s.CreateSession(4*sec, 0)
		res, _ := s.Apply(a, Op{Kind: Multi, Ops: []Op{{Kind: Create, Path: "/p/"}}}, 0)
		if !errors.Is(res.Err, zk.ErrNoNode) {
			t.Fatalf("got %v, want ErrNoNode (the parent is looked up before the full path check)", res.Err)
		}
		mustApply(t, s, a, Op{Kind: Create, Path: "/p"}, 0)
		res, _ = s.Apply(a, Op{Kind: Multi, Ops: []Op{{Kind: Create, Path: "/p/"}}}, 0)
		if !errors.Is(res.Err, zk.ErrBadArguments) {
			t.Fatalf("got %v, want ErrBadArguments (go-zookeeper does not check multi paths)", res.Err)
		}
	})
	t.Run("empty multi takes a zxid", func(t *testing.T) {
		s := newTestServer()
		a, _ := s.CreateSession(4*sec, 0)
		zxid := s.LastZxid()
		res, _ := mustApply(t, s, a, Op{Kind: Multi}, 0)
		if len(res.Multi) != 0 || s.LastZxid() != zxid+1 {
			t.Fatalf("empty multi: %+v, zxid %d after %d", res, s.LastZxid(), zxid)
		}
	})
	t.Run("watch events follow the ops and each watch fires once", func(t *testing.T) {
		s := newTestServer()
		a, _ := s.CreateSession(4*sec, 0)
		w, _ := s.CreateSession(4*sec, 0)
		mustApply(t, s, a, Op{Kind: Create, Path: "/w"}, 0)
		mustApply(t, s, a, Op{Kind: Create, Path: "/w/x"}, 0)
		for _, op := range []Op{
			{Kind: GetData, Path: "/w/x", Watch: true},
			{Kind: Exists, Path: "/w/x", Watch: true}, // same table: one event
			{Kind: Children, Path: "/w/x", Watch: true},
			{Kind: Children, Path: "/w", Watch: true},
			{Kind: Exists, Path: "/w/y", Watch: true},
		} {
			mustApply(t, s, w, op, 0)
		}
		_, evs := mustApply(t, s, a, Op{Kind: Multi, Ops: []Op{
			{Kind: SetData, Path: "/w/x", Version: -1},
			{Kind: Delete, Path: "/w/x", Version: -1},
			{Kind: Create, Path: "/w/y"},
		}}, 0)
		want := []Event{
			ev(w, zk.EventNodeDataChanged, "/w/x"),
			ev(w, zk.EventNodeDeleted, "/w/x"), // the child watch
			ev(w, zk.EventNodeChildrenChanged, "/w"),
			ev(w, zk.EventNodeCreated, "/w/y"),
		}
		if !slices.Equal(evs, want) {
			t.Fatalf("events\n got %v\nwant %v", evs, want)
		}
	})
}

func TestDeleteFiresOneEventPerSession(t *testing.T) {
	s := newTestServer()
	a, _ := s.CreateSession(4*sec, 0)
	w, _ := s.CreateSession(4*sec, 0)
	mustApply(t, s, a, Op{Kind: Create, Path: "/n"}, 0)
	mustApply(t, s, w, Op{Kind: GetData, Path: "/n", Watch: true}, 0)
	mustApply(t, s, w, Op{Kind: Children, Path: "/n", Watch: true}, 0)
	mustApply(t, s, a, Op{Kind: Children, Path: "/n", Watch: true}, 0)
	mustApply(t, s, w, Op{Kind: Children, Path: "/", Watch: true}, 0)
	_, evs := mustApply(t, s, a, Op{Kind: Delete, Path: "/n", Version: -1}, 0)
	want := []Event{ev(w, zk.EventNodeDeleted, "/n"), ev(a, zk.EventNodeDeleted, "/n"), ev(w, zk.EventNodeChildrenChanged, "/")}
	if !slices.Equal(evs, want) {
		t.Fatalf("events %v, want %v", evs, want)
	}
	if d, c := s.Watches(w); len(d)+len(c) != 0 {
		t.Fatalf("watches left: %v %v", d, c)
	}
}

func TestWatchesOnMissingNodes(t *testing.T) {
	s := newTestServer()
	w, _ := s.CreateSession(4*sec, 0)
	for _, op := range []Op{
		{Kind: GetData, Path: "/m", Watch: true},  // ErrNoNode, no watch
		{Kind: Children, Path: "/m", Watch: true}, // ErrNoNode, no watch
		{Kind: Exists, Path: "/m", Watch: true},   // ErrNoNode, exist watch
	} {
		if res, _ := s.Apply(w, op, 0); !errors.Is(res.Err, zk.ErrNoNode) {
			t.Fatalf("%v: %v", op, res.Err)
		}
	}
	data, child := s.Watches(w)
	if !slices.Equal(data, []string{"/m"}) || len(child) != 0 {
		t.Fatalf("watches %v %v, want only the exist watch", data, child)
	}
}

func TestSetWatches(t *testing.T) {
	// A tree where /old was last changed before relZxid and /new after it.
	setup := func() (s *Server, id, rel int64) {
		s = newTestServer()
		id, _ = s.CreateSession(4*sec, 0)
		for _, p := range []string{"/old", "/old/c", "/new", "/new/c"} {
			mustApply(t, s, id, Op{Kind: Create, Path: p}, 0)
		}
		rel = s.LastZxid()
		mustApply(t, s, id, Op{Kind: SetData, Path: "/new", Version: -1}, 0)
		mustApply(t, s, id, Op{Kind: Create, Path: "/new/d"}, 0)
		return s, id, rel
	}
	for _, tc := range []struct {
		name                string
		data, exist, child  []string
		want                []Event // the session is filled in below
		wantData, wantChild []string
	}{
		{name: "data watch on a missing node", data: []string{"/gone"}, want: []Event{{Type: zk.EventNodeDeleted, Path: "/gone"}}},
		{name: "data watch on a node changed after relZxid", data: []string{"/new"}, want: []Event{{Type: zk.EventNodeDataChanged, Path: "/new"}}},
		{name: "data watch on an unchanged node", data: []string{"/old"}, wantData: []string{"/old"}},
		{name: "exist watch on a node that now exists", exist: []string{"/old"}, want: []Event{{Type: zk.EventNodeCreated, Path: "/old"}}},
		{name: "exist watch on a missing node", exist: []string{"/gone"}, wantData: []string{"/gone"}},
		{name: "child watch on a missing node", child: []string{"/gone"}, want: []Event{{Type: zk.EventNodeDeleted, Path: "/gone"}}},
		{name: "child watch on a node with new children", child: []string{"/new"}, want: []Event{{Type: zk.EventNodeChildrenChanged, Path: "/new"}}},
		{name: "child watch on unchanged children", child: []string{"/old"}, wantChild: []string{"/old"}},
		{
			name: "lists in order data, exist, child",
			data: []string{"/gone", "/old"}, exist: []string{"/new"}, child: []string{"/gone", "/old"},
			want: []Event{
				{Type: zk.EventNodeDeleted, Path: "/gone"},
				{Type: zk.EventNodeCreated, Path: "/new"},
				{Type: zk.EventNodeDeleted, Path: "/gone"},
			},
			wantData: []string{"/old"}, wantChild: []string{"/old"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, id, rel := setup()
			evs, err := s.SetWatches(id, rel, tc.data, tc.exist, tc.child, 0)
			if err != nil {
				t.Fatal(err)
			}
			want := slices.Clone(tc.want)
			for i := range want {
				want[i].Session = id
			}
			if !slices.Equal(evs, want) {
				t.Fatalf("events %v, want %v", evs, want)
			}
			data, child := s.Watches(id)
			if !slices.Equal(data, tc.wantData) || !slices.Equal(child, tc.wantChild) {
				t.Fatalf("registered data %v child %v, want %v %v", data, child, tc.wantData, tc.wantChild)
			}
		})
	}
	t.Run("expired session", func(t *testing.T) {
		s, id, rel := setup()
		s.ExpireDue(time.Minute)
		if _, err := s.SetWatches(id, rel, []string{"/old"}, nil, nil, time.Minute); !errors.Is(err, zk.ErrSessionExpired) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestDisconnectDropsWatchesOnly(t *testing.T) {
	s := newTestServer()
	a, _ := s.CreateSession(4*sec, 0)
	w, _ := s.CreateSession(4*sec, 0)
	mustApply(t, s, w, Op{Kind: Create, Path: "/e", Flags: zk.FlagEphemeral}, 0)
	mustApply(t, s, w, Op{Kind: Exists, Path: "/x", Watch: true}, 0)
	s.Disconnect(w)
	_, evs := mustApply(t, s, a, Op{Kind: Create, Path: "/x"}, 0)
	if len(evs) != 0 {
		t.Fatalf("a disconnected session got %v", evs)
	}
	if !s.Alive(w) || len(s.Ephemerals(w)) != 1 {
		t.Fatal("Disconnect ended the session")
	}
}

func TestCloseOrderIsJavaHashSetOrder(t *testing.T) {
	// Measured on ZooKeeper 3.8: a session that created /e/n0../e/n5 in that
	// order; its close deleted them in this order.
	s := newTestServer()
	a, _ := s.CreateSession(4*sec, 0)
	w, _ := s.CreateSession(4*sec, 0)
	mustApply(t, s, a, Op{Kind: Create, Path: "/e"}, 0)
	for _, n := range []string{"n0", "n1", "n2", "n3", "n4", "n5"} {
		mustApply(t, s, a, Op{Kind: Create, Path: "/e/" + n, Flags: zk.FlagEphemeral}, 0)
		mustApply(t, s, w, Op{Kind: Exists, Path: "/e/" + n, Watch: true}, 0)
	}
	evs, err := s.CloseSession(a, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.Path)
	}
	want := []string{"/e/n5", "/e/n1", "/e/n2", "/e/n3", "/e/n4", "/e/n0"}
	if !slices.Equal(got, want) {
		t.Fatalf("close order %v, want %v", got, want)
	}
}

func TestWipe(t *testing.T) {
	s := newTestServer()
	a, _ := s.CreateSession(4*sec, 0)
	mustApply(t, s, a, Op{Kind: Create, Path: "/p"}, 0)
	mustApply(t, s, a, Op{Kind: Exists, Path: "/q", Watch: true}, 0)
	s.Wipe()
	if got, want := s.Paths(), []string{"/", "/zookeeper", "/zookeeper/config", "/zookeeper/quota"}; !slices.Equal(got, want) {
		t.Fatalf("Paths() after Wipe = %v", got)
	}
	if s.LastZxid() != 0 || s.Alive(a) || len(s.Sessions()) != 0 {
		t.Fatalf("after Wipe: zxid %d, a alive %v, sessions %v", s.LastZxid(), s.Alive(a), s.Sessions())
	}
	if res, _ := s.Apply(a, Op{Kind: GetData, Path: "/"}, sec); !errors.Is(res.Err, zk.ErrSessionExpired) {
		t.Fatalf("old session after Wipe: %v", res.Err)
	}
	b, _ := s.CreateSession(4*sec, sec)
	if b == a {
		t.Fatal("Wipe reused a session id")
	}
	if _, evs := mustApply(t, s, b, Op{Kind: Create, Path: "/q"}, sec); len(evs) != 0 {
		t.Fatalf("a watch survived Wipe: %v", evs)
	}
	if s.LastZxid() != 2 {
		t.Fatalf("zxid %d after a session and a create on a wiped server, want 2", s.LastZxid())
	}
}

func TestSnapshotRestore(t *testing.T) {
	s := newTestServer()
	a, _ := s.CreateSession(4*sec, 0)
	b, _ := s.CreateSession(10*sec, 0)
	mustApply(t, s, a, Op{Kind: Create, Path: "/p", Data: []byte("v1")}, 0)
	mustApply(t, s, a, Op{Kind: Create, Path: "/p/m-", Flags: zk.FlagEphemeral | zk.FlagSequence}, 0)
	snap := s.Snapshot()
	zxid := s.LastZxid()
	paths := s.Paths()

	// Afterwards: a closes, c starts, data and tree change, b watches.
	c, _ := s.CreateSession(4*sec, sec)
	if _, err := s.CloseSession(a, sec); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, b, Op{Kind: SetData, Path: "/p", Data: []byte("v2"), Version: -1}, sec)
	mustApply(t, s, b, Op{Kind: Create, Path: "/p/m-", Flags: zk.FlagSequence}, sec)
	mustApply(t, s, b, Op{Kind: Exists, Path: "/p/x", Watch: true}, sec)

	for round := range 2 { // the snapshot stays usable
		now := time.Duration(3+round) * sec
		s.Restore(snap, now)
		if s.LastZxid() != zxid || !slices.Equal(s.Paths(), paths) {
			t.Fatalf("round %d: zxid %d paths %v, want %d %v", round, s.LastZxid(), s.Paths(), zxid, paths)
		}
		if data, _, _ := s.Get("/p"); string(data) != "v1" {
			t.Fatalf("round %d: data %q", round, data)
		}
		if !s.Alive(a) || !s.Alive(b) || s.Alive(c) {
			t.Fatalf("round %d: alive a=%v b=%v c=%v", round, s.Alive(a), s.Alive(b), s.Alive(c))
		}
		if at, _ := s.Expiry(a); at != s.roundUp(now+4*sec) {
			t.Fatalf("round %d: a expires at %v, want a fresh timeout from %v", round, at, now)
		}
		if got := s.Ephemerals(a); !slices.Equal(got, []string{"/p/m-0000000000"}) {
			t.Fatalf("round %d: a's ephemerals %v", round, got)
		}
		res, evs := mustApply(t, s, b, Op{Kind: Create, Path: "/p/m-", Flags: zk.FlagSequence}, now)
		if res.Path != "/p/m-0000000001" || len(evs) != 0 {
			t.Fatalf("round %d: created %s with events %v (watches must not survive)", round, res.Path, evs)
		}
		// a's ephemerals go with a, in the restored server too.
		if _, err := s.CloseSession(a, now); err != nil || len(s.Ephemerals(a)) != 0 {
			t.Fatalf("round %d: close a: %v", round, err)
		}
		if _, _, ok := s.Get("/p/m-0000000000"); ok {
			t.Fatalf("round %d: a's ephemeral outlived a", round)
		}
	}
}

func TestDeleteAll(t *testing.T) {
	s := newTestServer()
	a, _ := s.CreateSession(4*sec, 0)
	w, _ := s.CreateSession(4*sec, 0)
	for _, p := range []string{"/t", "/t/a", "/t/b", "/t/a/x"} {
		mustApply(t, s, a, Op{Kind: Create, Path: p}, 0)
	}
	mustApply(t, s, w, Op{Kind: Exists, Path: "/t", Watch: true}, 0)
	mustApply(t, s, w, Op{Kind: Children, Path: "/t/a", Watch: true}, 0)
	zxid := s.LastZxid()
	evs, err := s.DeleteAll(a, "/t", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{ev(w, zk.EventNodeChildrenChanged, "/t/a"), ev(w, zk.EventNodeDeleted, "/t")}
	if !slices.Equal(evs, want) {
		t.Fatalf("events %v, want %v (leaves first)", evs, want)
	}
	if _, _, ok := s.Get("/t"); ok || s.LastZxid() != zxid+1 {
		t.Fatalf("after DeleteAll: /t exists %v, zxid %d after %d (one multi)", ok, s.LastZxid(), zxid)
	}
	if _, err := s.DeleteAll(a, "/t", 0); !errors.Is(err, zk.ErrNoNode) {
		t.Fatalf("DeleteAll of a missing path: %v", err)
	}
}

func TestPathChecks(t *testing.T) {
	for _, tc := range []struct {
		path           string
		client, server bool
	}{
		{"/", true, true},
		{"/a/b", true, true},
		{"/a/", false, false},
		{"a", false, false},
		{"", false, false},
		{"//a", false, false},
		{"/a/./b", false, false},
		{"/a/../b", false, false},
		{"/a/.", false, false},
		{"/a/..", false, false},
		{"/.a", true, true},
		{"/..a", true, true},
		{"/a\x00", false, false},
		{"/a\x1f", false, false},
		{"/\u0085", false, false},
		{"/é", true, true},
		{"/\ue000", true, false},
		{"/\U0001F600", true, false},
		{"/\uf000", false, false},
		{"/\ufff0", false, false},
		{"/\xff", false, false}, // invalid UTF-8
	} {
		if got := clientPathOK(tc.path, false); got != tc.client {
			t.Errorf("clientPathOK(%q) = %v, want %v", tc.path, got, tc.client)
		}
		if got := serverPathOK(tc.path); got != tc.server {
			t.Errorf("serverPathOK(%q) = %v, want %v", tc.path, got, tc.server)
		}
	}
	if !clientPathOK("/a/", true) {
		t.Error("a sequential path may end with /")
	}
}

func TestRequestsGoZookeeperCannotSendPanic(t *testing.T) {
	for _, op := range []Op{
		{Kind: 0, Path: "/"},
		{Kind: Multi, Ops: []Op{{Kind: GetData, Path: "/"}}},
		{Kind: Multi, Ops: []Op{{Kind: Multi}}},
	} {
		t.Run(op.String(), func(t *testing.T) {
			s := newTestServer()
			id, _ := s.CreateSession(4*sec, 0)
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			s.Apply(id, op, 0)
		})
	}
}

func TestSnapshotRead(t *testing.T) {
	s := newTestServer()
	a, _ := s.CreateSession(4*sec, 0)
	mustApply(t, s, a, Op{Kind: Create, Path: "/p", Data: []byte("v1")}, 0)
	mustApply(t, s, a, Op{Kind: Create, Path: "/p/x"}, 0)
	mustApply(t, s, a, Op{Kind: Create, Path: "/p/x/deep"}, 0)
	mustApply(t, s, a, Op{Kind: Create, Path: "/p/y", Flags: zk.FlagEphemeral}, 0)
	mustApply(t, s, a, Op{Kind: Create, Path: "/q"}, 0)
	snap := s.Snapshot()
	ops := []Op{
		{Kind: GetData, Path: "/p"}, {Kind: GetData, Path: "/p/y"}, {Kind: Exists, Path: "/p/x"},
		{Kind: Children, Path: "/p"}, {Kind: Children, Path: "/"}, {Kind: Children, Path: "/p/x/deep"},
		{Kind: GetData, Path: "/nope"}, {Kind: Children, Path: "/nope"}, {Kind: GetData, Path: "bad"},
		{Kind: Sync, Path: "/p"},
	}
	want := make([]Result, len(ops))
	for i, op := range ops {
		want[i], _ = s.Apply(a, op, 0)
	}
	// The server moves on; the snapshot answers as the server did.
	mustApply(t, s, a, Op{Kind: SetData, Path: "/p", Data: []byte("v2"), Version: -1}, sec)
	mustApply(t, s, a, Op{Kind: Delete, Path: "/p/y", Version: -1}, sec)
	mustApply(t, s, a, Op{Kind: Create, Path: "/p/z"}, sec)
	for i, op := range ops {
		got := snap.Read(op)
		if !errors.Is(got.Err, want[i].Err) || string(got.Data) != string(want[i].Data) || got.Stat != want[i].Stat ||
			!slices.Equal(got.Children, want[i].Children) || got.Path != want[i].Path {
			t.Errorf("%v: snapshot read %+v, server read %+v", op, got, want[i])
		}
	}
	if data, st, ok := snap.Get("/p"); !ok || string(data) != "v1" || st.Version != 0 {
		t.Fatalf("snapshot Get(/p) = %q %+v %v", data, st, ok)
	}
	if _, _, ok := snap.Get("/p/z"); ok {
		t.Fatal("snapshot shows a node created after it")
	}
}
