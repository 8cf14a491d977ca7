package ha

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap/zaptest"

	"github.com/hanode/hanode/ha/internal/core"
	"github.com/hanode/hanode/internal/faultproxy"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// Election tests run the real Session and Election against a real ZooKeeper
// server (tickTime 500 ms), each member with a session of its own, and
// sample every member's State every millisecond: two active at one sample
// fails the test.
const (
	testTimeout = 2 * time.Second
	testMargin  = 600 * time.Millisecond
)

// member is one in-process hanode under test.
type member struct {
	name    string
	sess    *Session
	el      *Election
	cancel  context.CancelFunc
	done    chan error
	running atomic.Bool
	starts  atomic.Int32
	stops   atomic.Int32
	terms   chan int64
}

type group struct {
	t       *testing.T
	servers []string
	root    string
	haID    string
	role    string
	timeout time.Duration
	fence   func(name string) func(context.Context, core.FenceRequest) error
	// fenceMaxTries is ElectionConfig.FenceMaxTries of members started next.
	fenceMaxTries int
	// leaderChanged, when set, hears the LeaderChanged calls of members
	// started next.
	leaderChanged func(member string, l Leader)
	// access is the Access of members started next (access_test.go).
	access Access
	// tickets, when set, hears the ReleaseTicket calls of members started
	// next (guardrelease_test.go).
	tickets func(member string, ticket []byte)

	mu      sync.Mutex
	members []*member
	overlap atomic.Int32
}

func newGroup(t *testing.T, addr string) *group {
	return &group{t: t, servers: []string{addr}, root: "/hanode", haID: "g-" + strings.ReplaceAll(t.Name(), "/", "-"),
		role: "primary", timeout: testTimeout}
}

// start launches a member. Run's result arrives on m.done.
func (g *group) start(name string) *member {
	g.t.Helper()
	return g.startOn(name, g.servers)
}

func (g *group) startOn(name string, servers []string) *member {
	g.t.Helper()
	m := &member{name: name, done: make(chan error, 1), terms: make(chan int64, 16)}
	log := zaptest.NewLogger(g.t).Named(name)
	sess, err := OpenSession(SessionConfig{Servers: servers, Root: g.root, Timeout: g.timeout, Name: name,
		ReserveName: true, Host: "test-host", PID: os.Getpid(), Started: time.Now(), Logger: log, Access: g.access})
	if err != nil {
		g.t.Fatal(err)
	}
	cfg := ElectionConfig{Group: g.haID, Role: g.role, Region: "world", Margin: testMargin, Logger: log, FenceMaxTries: g.fenceMaxTries,
		Callbacks: Callbacks{
			StartDuty: func(_ context.Context, term int64) {
				m.starts.Add(1)
				m.terms <- term
			},
			StopDuty: func(string) error { m.stops.Add(1); return nil },
		}}
	if g.fence != nil {
		cfg.Callbacks.Fence = g.fence(name)
	}
	if f := g.tickets; f != nil {
		cfg.Callbacks.ReleaseTicket = func(t []byte) { f(name, t) }
	}
	if f := g.leaderChanged; f != nil {
		cfg.Callbacks.LeaderChanged = func(l Leader) { f(name, l) }
	}
	el, err := NewElection(sess, cfg)
	if err != nil {
		g.t.Fatal(err)
	}
	m.sess, m.el = sess, el
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.running.Store(true)
	go func() {
		err := el.Run(ctx)
		sess.Close()
		m.done <- err
	}()
	g.mu.Lock()
	g.members = append(g.members, m)
	g.mu.Unlock()
	g.t.Cleanup(func() { m.stop(g.t) })
	return m
}

// stop shuts a member down gracefully and waits for Run to return.
func (m *member) stop(t *testing.T) error {
	t.Helper()
	if m.cancel == nil {
		return nil
	}
	m.cancel()
	m.cancel = nil
	defer m.running.Store(false)
	select {
	case err := <-m.done:
		return err
	case <-time.After(15 * time.Second):
		t.Fatalf("%s: Run did not return within 15s of cancel", m.name)
		return nil
	}
}

// watchOverlap samples every member's State every millisecond until the
// test ends and fails it if two were ever active at once.
func (g *group) watchOverlap() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	g.t.Cleanup(func() {
		cancel()
		<-done
		if n := g.overlap.Load(); n > 0 {
			g.t.Errorf("two members were active at once in %d samples", n)
		}
	})
	go func() {
		defer close(done)
		tk := time.NewTicker(time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
			if len(g.activeNames()) > 1 {
				g.overlap.Add(1)
			}
		}
	}()
}

func (g *group) activeNames() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, m := range g.members {
		if m.running.Load() && m.el.State().Active() {
			out = append(out, m.name)
		}
	}
	return out
}

// waitLeader waits until exactly one running member is active and every
// other running member is a standby, and returns the leader.
func (g *group) waitLeader(timeout time.Duration) *member {
	g.t.Helper()
	var leader *member
	testwait.For(g.t, timeout, "exactly one active member and the rest standby", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		leader = nil
		for _, m := range g.members {
			if !m.running.Load() {
				continue
			}
			switch st := m.el.State(); st.Phase {
			case PhaseActive:
				if leader != nil {
					return false
				}
				leader = m
			case PhaseStandby:
			default:
				return false
			}
		}
		return leader != nil
	})
	return leader
}

// admin is another ZooKeeper client: an operator's zkCli, a cleanup script.
func admin(t *testing.T, addr string) *zk.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := Dial(ctx, []string{addr}, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return conn
}

func (g *group) layout() core.Layout { return core.NewLayout(g.root, g.haID) }

// leaderNode returns the member node of m, read from ZooKeeper.
func (g *group) memberNodeOf(t *testing.T, conn *zk.Conn, m *member) string {
	t.Helper()
	children, _, err := conn.Children(g.layout().MembersDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range children {
		data, _, err := conn.Get(g.layout().MemberNode(c))
		if err != nil {
			continue
		}
		if d, _, ok := core.DecodeMember(data); ok && d.Name == m.name {
			return c
		}
	}
	t.Fatalf("no member node of %s", m.name)
	return ""
}

func TestThreeMembersElectExactlyOneLeader(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.watchOverlap()
	a, b, c := g.start("a"), g.start("b"), g.start("c")
	leader := g.waitLeader(20 * time.Second)
	st := leader.el.State()
	if st.Term < 1 || st.Leader != leader.name || st.LeaseLeft <= 0 {
		t.Fatalf("leader state %+v: want a term, itself as leader, a lease", st)
	}
	testwait.For(t, 10*time.Second, "every member to list all three and name the leader", func() bool {
		for _, m := range []*member{a, b, c} {
			if s := m.el.State(); len(s.Members) != 3 || s.Leader != leader.name {
				return false
			}
		}
		return true
	})
	if leader.starts.Load() != 1 {
		t.Fatalf("leader started its duty %d times", leader.starts.Load())
	}
}

// TestStandbyTakesOverAtOnceWhenTheLeaderReleases: a graceful stop writes a
// release after the duty stopped, and the next member claims without
// waiting; the old leader's process rejoins at the back.
func TestStandbyTakesOverAtOnceWhenTheLeaderReleases(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.watchOverlap()
	for _, name := range []string{"a", "b", "c"} {
		g.start(name)
	}
	first := g.waitLeader(20 * time.Second)
	term1 := first.el.State().Term
	stopped := time.Now()
	if err := first.stop(t); err != nil {
		t.Fatalf("Run returned %v after a graceful stop", err)
	}
	if first.stops.Load() != 1 {
		t.Fatalf("old leader stopped its duty %d times, want 1", first.stops.Load())
	}
	second := g.waitLeader(10 * time.Second)
	took := time.Since(stopped)
	t.Logf("takeover after a graceful stop: %s", took)
	if took > testTimeout/2 {
		t.Fatalf("takeover took %s: a release must not wait for the lease", took)
	}
	if second == first || second.el.State().Term <= term1 {
		t.Fatalf("new leader %s term %d, old term %d: terms must grow", second.name, second.el.State().Term, term1)
	}
	back := g.start(first.name + "-again")
	testwait.For(t, 10*time.Second, "the restarted member to be standby", func() bool {
		return back.el.State().Phase == PhaseStandby
	})
	if g.waitLeader(5*time.Second) != second {
		t.Fatal("leadership moved when a member rejoined")
	}
}

// TestSilentLeaderIsReplacedBeforeItsSessionExpires: a leader whose path
// to ZooKeeper is stalled stops extending; the next member claims W after
// the last extension it saw, deleting the silent node, without waiting for
// ZooKeeper to expire the session; the old leader stopped acting before.
func TestSilentLeaderIsReplacedBeforeItsSessionExpires(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.timeout = 4 * time.Second // a session long enough that its expiry is clearly later
	g.watchOverlap()
	p := faultproxy.Start(t, zkS.Addr)
	a := g.startOn("a", []string{p.Addr()})
	g.waitLeader(20 * time.Second)
	b := g.start("b")
	testwait.For(t, 10*time.Second, "b standby", func() bool { return b.el.State().Phase == PhaseStandby })
	if !a.el.State().Active() {
		t.Fatal("a should lead")
	}
	cut := time.Now()
	p.Stall()
	testwait.For(t, 10*time.Second, "b to take over", func() bool { return b.el.State().Active() })
	took := time.Since(cut)
	// b claims W after the last extension it saw, which came at most one
	// extension period before the cut: W - R <= took <= W (plus delays).
	w, r := core.TakeoverWait(g.timeout), core.ExtendEvery(g.timeout, testMargin)
	t.Logf("takeover of a silent leader: %s (session %s, W %s, R %s)", took, g.timeout, w, r)
	if took < w-r-100*time.Millisecond || took > w+500*time.Millisecond {
		t.Fatalf("takeover took %s, want within [W-R, W] = [%s, %s]", took, w-r, w)
	}
	if a.el.State().Active() {
		t.Fatal("a still active")
	}
	p.Heal()
	testwait.For(t, 20*time.Second, "a back as a standby", func() bool { return a.el.State().Phase == PhaseStandby })
}

// TestLeaderNodeDeletedByAnotherClient: an operator deletes the leader's
// member node. A vanished node proves nothing: the next member waits out
// the lease, the old leader stops at its next extension, and there is
// never an overlap.
func TestLeaderNodeDeletedByAnotherClient(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.watchOverlap()
	a, b := g.start("a"), g.start("b")
	first := g.waitLeader(20 * time.Second)
	conn := admin(t, zkS.Addr)
	node := g.memberNodeOf(t, conn, first)
	if err := conn.Delete(g.layout().MemberNode(node), -1); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	testwait.For(t, g.timeout, "the old leader to stop", func() bool { return !first.el.State().Active() })
	stopped := time.Since(deleted)
	second := g.waitLeader(3 * g.timeout)
	t.Logf("old leader stopped %s after the delete, a leader (%s) again after %s", stopped, second.name, time.Since(deleted))
	if stopped > core.ExtendEvery(g.timeout, testMargin)+500*time.Millisecond {
		t.Fatalf("the old leader went on %s after its node was deleted: it must stop at its next extension", stopped)
	}
	testwait.For(t, 3*g.timeout, "both members listed by both", func() bool {
		return len(a.el.State().Members) == 2 && len(b.el.State().Members) == 2
	})
}

// TestTreeDeletedWhileAGroupRuns: deleteall of the root. Every member
// rejoins; a leader returns only after the lease of the old one ended.
func TestTreeDeletedWhileAGroupRuns(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.watchOverlap()
	for _, name := range []string{"a", "b", "c"} {
		g.start(name)
	}
	old := g.waitLeader(20 * time.Second)
	term := old.el.State().Term
	conn := admin(t, zkS.Addr)
	deleteAll(t, conn, g.root)
	deleted := time.Now()
	testwait.For(t, 5*time.Second, "the old leader to stop", func() bool { return !old.el.State().Active() })
	l := g.waitLeader(4 * g.timeout)
	t.Logf("leader again %s after the tree was deleted", time.Since(deleted))
	if l.el.State().Term <= term {
		t.Fatalf("term %d after %d", l.el.State().Term, term)
	}
}

func deleteAll(t *testing.T, conn *zk.Conn, p string) {
	t.Helper()
	children, _, err := conn.Children(p)
	if errors.Is(err, zk.ErrNoNode) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range children {
		deleteAll(t, conn, p+"/"+c)
	}
	if err := conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrNotEmpty) {
		t.Fatal(err)
	}
	if errors.Is(err, zk.ErrNotEmpty) {
		deleteAll(t, conn, p) // a member rejoined meanwhile
	}
}

// TestDamagedAndForeignDataNeverLeaveAGroupStuck: an unreadable leader
// record and group record, and foreign nodes under members/ (persistent,
// names with a sign, ephemeral garbage): the group elects a leader past all
// of them and says what it ignores.
func TestDamagedAndForeignDataNeverLeaveAGroupStuck(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.watchOverlap()
	conn := admin(t, zkS.Addr)
	l := g.layout()
	if err := ensurePath(conn, l.MembersDir(), zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	mustSet := func(p string, data []byte) {
		if _, err := conn.Set(p, data, -1); err != nil {
			t.Fatal(err)
		}
	}
	mustCreate := func(p string, data []byte, flags int32) {
		if _, err := conn.Create(p, data, flags, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	mustSet(l.GroupNode(), []byte("garbage"))
	mustCreate(l.LeaderNode(), []byte(`{"term": 12, "holder": "`), 0)
	mustCreate(l.MemberNode("_c_"+strings.Repeat("0", 32)+"-m-0000000000"), core.MustJSON(core.MemberInfo{Name: "forged", Role: "primary"}), 0)
	mustCreate(l.MemberNode("_c_"+strings.Repeat("1", 32)+"-m--000000001"), []byte("x"), zk.FlagEphemeral)
	mustCreate(l.MemberNode("_c_"+strings.Repeat("2", 32)+"-m-"), []byte("not a member"), zk.FlagEphemeral|zk.FlagSequence)

	start := time.Now()
	a, b := g.start("a"), g.start("b")
	leader := g.waitLeader(2*core.TakeoverWait(g.timeout) + 2*g.timeout + 10*time.Second)
	t.Logf("leader %s %s after start, past every foreign node", leader.name, time.Since(start))
	st := a.el.State()
	if len(st.Ignored) == 0 {
		t.Fatalf("status lists nothing ignored: %+v", st)
	}
	for _, ig := range st.Ignored {
		t.Logf("ignored %s: %s", ig.Znode, ig.Reason)
	}
	_ = b
	groups, err := ReadCluster(conn, g.root)
	if err != nil {
		t.Fatalf("hanode status failed on damaged data: %v", err)
	}
	if len(groups) != 1 || groups[0].Leader != leader.name || groups[0].Role != "primary" {
		t.Fatalf("status = %+v", groups)
	}
}

func TestSecondProcessWithANameInUseIsRefused(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	holder := g.start("dup")
	g.waitLeader(20 * time.Second)
	second := g.start("dup")
	select {
	case err := <-second.done:
		second.cancel = nil
		second.running.Store(false)
		if !errors.Is(err, ErrNameInUse) {
			t.Fatalf("Run = %v, want ErrNameInUse", err)
		}
		t.Logf("refusal: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("a second process with the same name was not refused")
	}
	if !holder.el.State().Active() {
		t.Fatal("the holder must be unaffected by the refused duplicate")
	}
}

// TestNameDeletedByHandIsDefended: the reservation is deleted by another
// client; the holder claims it again at once, so a later process with the
// same name is refused, and the holder keeps running.
func TestNameDeletedByHandIsDefended(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	holder := g.start("dup")
	g.waitLeader(20 * time.Second)
	conn := admin(t, zkS.Addr)
	p := core.NewLayout(g.root, "").NameNode("dup")
	if err := conn.Delete(p, -1); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 5*time.Second, "the name reserved again", func() bool {
		ok, _, err := conn.Exists(p)
		return err == nil && ok
	})
	second := g.start("dup")
	select {
	case err := <-second.done:
		second.cancel = nil
		second.running.Store(false)
		if !errors.Is(err, ErrNameInUse) {
			t.Fatalf("Run = %v, want ErrNameInUse", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a second process with the same name was not refused")
	}
	if !holder.el.State().Active() {
		t.Fatalf("the holder lost its place: %+v", holder.el.State())
	}
	select {
	case err := <-holder.done:
		t.Fatalf("the holder exited: %v", err)
	default:
	}
}

func TestJoiningAGroupWithAnotherRoleOrLeaseIsRefused(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.start("p1")
	g.waitLeader(20 * time.Second)
	for _, c := range []struct {
		name    string
		role    string
		timeout time.Duration
	}{{"c1", "compute", testTimeout}, {"p2", "primary", 2 * testTimeout}} {
		g.role, g.timeout = c.role, c.timeout
		wrong := g.start(c.name)
		select {
		case err := <-wrong.done:
			wrong.cancel = nil
			wrong.running.Store(false)
			if !errors.Is(err, ErrGroupMismatch) {
				t.Fatalf("%s: Run = %v, want ErrGroupMismatch", c.name, err)
			}
			t.Logf("refusal: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatalf("%s was not refused", c.name)
		}
	}
}

// TestNoLeaderWhileZooKeeperIsDownAndOneWhenItReturns: the lease, not an
// event, ends leadership; a node started while ZooKeeper is down runs, is
// not active, and joins when ZooKeeper appears.
func TestNoLeaderWhileZooKeeperIsDownAndOneWhenItReturns(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.watchOverlap()
	a := g.start("a")
	g.start("b")
	g.waitLeader(20 * time.Second)

	zkS.Stop(t)
	down := time.Now()
	testwait.For(t, g.timeout+time.Second, "no member to be active once ZooKeeper is gone", func() bool {
		return len(g.activeNames()) == 0
	})
	t.Logf("leader stopped being active %s after ZooKeeper stopped", time.Since(down))
	if st := a.el.State(); st.Phase == PhaseActive || st.ZK.Connected {
		t.Fatalf("state while ZooKeeper is down: %+v", st)
	}
	late := g.start("late")
	if st := late.el.State(); st.Active() {
		t.Fatalf("a node started without ZooKeeper reports %s", st.Phase)
	}
	zkS.Restart(t)
	g.waitLeader(30 * time.Second)
	testwait.For(t, 10*time.Second, "all three members listed", func() bool {
		return len(late.el.State().Members) == 3
	})
}

// TestTermsGrowEvenAfterTheTreeIsLost: every round stops the whole group
// and deletes its tree; terms still grow (seeded from the wall clock).
func TestTermsGrowEvenAfterTheTreeIsLost(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.watchOverlap()
	conn := admin(t, zkS.Addr)
	var last int64
	for i := range 3 {
		g.start(fmt.Sprintf("n%d", i))
		g.start(fmt.Sprintf("m%d", i))
		l := g.waitLeader(20 * time.Second)
		if term := l.el.State().Term; term <= last {
			t.Fatalf("round %d: term %d after %d", i, term, last)
		} else {
			last = term
		}
		g.mu.Lock()
		members := append([]*member(nil), g.members...)
		g.mu.Unlock()
		for _, x := range members {
			x.stop(t)
		}
		deleteAll(t, conn, g.root)
	}
}

// TestSeveralElectionsShareOneSession: two processes, each one session
// holding a membership in three groups; each group has one leader.
func TestSeveralElectionsShareOneSession(t *testing.T) {
	zkS := zktest.Start(t)
	var els [2][3]*Election
	for p := range 2 {
		sess, err := OpenSession(SessionConfig{Servers: []string{zkS.Addr}, Root: "/hanode", Timeout: testTimeout,
			Name: fmt.Sprintf("proc%d", p), Host: "h", PID: os.Getpid(), Started: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		t.Cleanup(func() { cancel(); wg.Wait(); sess.Close() })
		for gi := range 3 {
			el, err := NewElection(sess, ElectionConfig{Group: fmt.Sprintf("shared-%d", gi), Role: "primary", Margin: testMargin})
			if err != nil {
				t.Fatal(err)
			}
			els[p][gi] = el
			wg.Add(1)
			go func() { defer wg.Done(); _ = el.Run(ctx) }()
		}
	}
	testwait.For(t, 20*time.Second, "one leader in each of the three groups", func() bool {
		for gi := range 3 {
			a, b := els[0][gi].State(), els[1][gi].State()
			if a.Active() == b.Active() || a.Phase != PhaseStandby && !a.Active() || b.Phase != PhaseStandby && !b.Active() {
				return false
			}
		}
		return true
	})
}

// TestFencedWriteFailsOnceTheLeaseMovedOn: a write fenced by the lease
// succeeds for the leader and fails for it once another member leads.
func TestFencedWriteFailsOnceTheLeaseMovedOn(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.start("a")
	g.start("b")
	leader := g.waitLeader(20 * time.Second)
	ctx := context.Background()
	kv := "/hanode-kv"
	if err := fenced(ctx, leader.el, core.Op{Kind: core.OpCreate, Path: kv, Data: []byte("1")}); err != nil {
		t.Fatalf("fenced write by the leader: %v", err)
	}
	var other *member
	for _, m := range g.members {
		if m != leader {
			other = m
		}
	}
	if err := fenced(ctx, other.el, core.Op{Kind: core.OpSet, Path: kv, Data: []byte("2"), Version: -1}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("fenced write by a standby = %v, want ErrNotLeader", err)
	}
	leader.stop(t)
	g.waitLeader(10 * time.Second)
	if err := fenced(ctx, leader.el, core.Op{Kind: core.OpSet, Path: kv, Data: []byte("3"), Version: -1}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("fenced write by the old leader = %v, want ErrNotLeader", err)
	}
}

func fenced(ctx context.Context, el *Election, ops ...Op) error {
	_, err := el.Fenced(ctx, func(int64) []Op { return ops })
	return err
}

// TestTransitionsReachEverySubscriberInOrder: the one feed of transitions.
func TestTransitionsReachEverySubscriberInOrder(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	a := g.start("a")
	feed, stop := a.el.Subscribe()
	defer stop()
	g.waitLeader(20 * time.Second)
	var seen []Phase
	for len(seen) == 0 || seen[len(seen)-1] != PhaseActive {
		select {
		case tr := <-feed:
			if len(seen) > 0 && tr.From != seen[len(seen)-1] {
				t.Fatalf("transition %+v does not continue from %s", tr, seen[len(seen)-1])
			}
			seen = append(seen, tr.To)
		case <-time.After(10 * time.Second):
			t.Fatalf("no transition to active in the feed; saw %v", seen)
		}
	}
	t.Logf("transitions: %v", seen)
}
