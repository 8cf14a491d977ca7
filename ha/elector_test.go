package ha

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/hanode/hanode/internal/zktest"
)

// Election tests run against a real ZooKeeper server. Sessions are 4 s (the
// harness runs ZooKeeper with tickTime 2000 so it honours that).
const (
	testTimeout = 4 * time.Second
	testMargin  = 1200 * time.Millisecond
)

// node is one in-process member under test.
type node struct {
	name    string
	el      *Elector
	cancel  context.CancelFunc
	done    chan error
	running atomic.Bool // read by the overlap sampler
	starts  atomic.Int32
	stops   atomic.Int32
}

type group struct {
	t       *testing.T
	servers []string
	haID    string
	role    string
	fence   func(name string) func(context.Context, FenceRequest) error // per-member Fence; nil: none

	mu      sync.Mutex
	nodes   []*node
	overlap atomic.Int32 // moments at which two nodes reported active
}

func newGroup(t *testing.T, addr string) *group {
	return &group{t: t, servers: []string{addr}, haID: "g-" + t.Name(), role: "primary"}
}

// start launches a member. It fails the test only on construction errors;
// Run's result arrives on n.done.
func (g *group) start(name string) *node {
	g.t.Helper()
	n := &node{name: name, done: make(chan error, 1)}
	cfg := Config{
		Servers: g.servers, Root: "/hanode", Group: g.haID,
		Self:           MemberInfo{Name: name, Role: g.role, Region: "world", Host: "test-host", PID: os.Getpid(), Started: time.Now()},
		SessionTimeout: testTimeout, Margin: testMargin,
		Logger: zaptest.NewLogger(g.t).Named(name),
		Callbacks: Callbacks{
			OnStartedLeading: func(context.Context, int64) { n.starts.Add(1) },
			OnStoppedLeading: func(string) { n.stops.Add(1) },
		},
	}
	if g.fence != nil {
		cfg.Callbacks.Fence = g.fence(name)
	}
	el, err := NewElector(cfg)
	if err != nil {
		g.t.Fatal(err)
	}
	n.el = el
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.running.Store(true)
	go func() { n.done <- el.Run(ctx) }()
	g.mu.Lock()
	g.nodes = append(g.nodes, n)
	g.mu.Unlock()
	g.t.Cleanup(func() { n.stop(g.t) })
	return n
}

// stop shuts a member down gracefully and waits for Run to return.
func (n *node) stop(t *testing.T) error {
	t.Helper()
	if n.cancel == nil {
		return nil
	}
	n.cancel()
	n.cancel = nil
	defer n.running.Store(false)
	select {
	case err := <-n.done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: Run did not return within 10s of cancel", n.name)
		return nil
	}
}

// watchOverlap samples every member's State every millisecond until the test
// ends and counts moments with more than one active member.
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
	for _, n := range g.nodes {
		if n.running.Load() && n.el.State().Active() {
			out = append(out, n.name)
		}
	}
	return out
}

// waitFor polls cond every 5 ms until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	tk := time.NewTicker(5 * time.Millisecond)
	defer tk.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-tk.C:
		}
	}
}

// waitLeader waits until exactly one running member is active and every
// other running member is standby, and returns the leader.
func (g *group) waitLeader(timeout time.Duration) *node {
	g.t.Helper()
	var leader *node
	waitFor(g.t, timeout, "exactly one active member and the rest standby", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		leader = nil
		for _, n := range g.nodes {
			if !n.running.Load() {
				continue
			}
			switch st := n.el.State(); st.Phase {
			case PhaseActive:
				if leader != nil {
					return false
				}
				leader = n
			case PhaseStandby:
			default:
				return false
			}
		}
		return leader != nil
	})
	return leader
}

func TestThreeMembersElectExactlyOneLeader(t *testing.T) {
	zk := zktest.Start(t)
	g := newGroup(t, zk.Addr)
	g.watchOverlap()
	a := g.start("a")
	b := g.start("b")
	c := g.start("c")
	leader := g.waitLeader(20 * time.Second)
	st := leader.el.State()
	if st.Term < 1 || st.Leader != leader.name || st.LeaseLeft <= 0 {
		t.Fatalf("leader state %+v: want term >= 1, itself as leader, a lease", st)
	}
	waitFor(t, 10*time.Second, "every member to list all three", func() bool {
		for _, n := range []*node{a, b, c} {
			if len(n.el.State().Members) != 3 || n.el.State().Leader != leader.name {
				return false
			}
		}
		return true
	})
	if leader.starts.Load() != 1 {
		t.Fatalf("leader started its duty %d times", leader.starts.Load())
	}
}

// TestStandbyTakesOverWhenLeaderCloses: a graceful stop hands over at once,
// with a larger term, and the old leader does not return.
func TestStandbyTakesOverWhenLeaderCloses(t *testing.T) {
	zk := zktest.Start(t)
	g := newGroup(t, zk.Addr)
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
	t.Logf("takeover after graceful stop: %s", time.Since(stopped))
	if second == first || second.el.State().Term <= term1 {
		t.Fatalf("new leader %s term %d, old term %d: terms must grow", second.name, second.el.State().Term, term1)
	}

	// A restarted member joins at the back: it does not take leadership back.
	back := g.start(first.name + "-again")
	waitFor(t, 10*time.Second, "the restarted member to be standby", func() bool {
		return back.el.State().Phase == PhaseStandby
	})
	if g.waitLeader(5*time.Second) != second {
		t.Fatal("leadership moved when a member rejoined")
	}
}

func TestSecondProcessWithANameInUseIsRefused(t *testing.T) {
	zk := zktest.Start(t)
	g := newGroup(t, zk.Addr)
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

func TestJoiningAGroupWithAnotherRoleIsRefused(t *testing.T) {
	zk := zktest.Start(t)
	g := newGroup(t, zk.Addr)
	g.start("p1")
	g.waitLeader(20 * time.Second)
	g.role = "compute"
	wrong := g.start("c1")
	select {
	case err := <-wrong.done:
		wrong.cancel = nil
		wrong.running.Store(false)
		if !errors.Is(err, ErrGroupMismatch) {
			t.Fatalf("Run = %v, want ErrGroupMismatch", err)
		}
		t.Logf("refusal: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("a member with another role was not refused")
	}
}

// TestNoLeaderWhileZooKeeperIsDownAndOneWhenItReturns: the lease, not an
// event, ends leadership; a node started while ZooKeeper is down runs, is
// not active, and joins when ZooKeeper appears.
func TestNoLeaderWhileZooKeeperIsDownAndOneWhenItReturns(t *testing.T) {
	zk := zktest.Start(t)
	g := newGroup(t, zk.Addr)
	g.watchOverlap()
	a := g.start("a")
	g.start("b")
	g.waitLeader(20 * time.Second)

	zk.Stop(t)
	down := time.Now()
	waitFor(t, testTimeout+time.Second, "no member to be active once ZooKeeper is gone", func() bool {
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

	zk.Restart(t)
	g.waitLeader(30 * time.Second)
	waitFor(t, 10*time.Second, "all three members listed", func() bool {
		return len(late.el.State().Members) == 3
	})
}

func TestLeaderRecordKeepsTermsGrowing(t *testing.T) {
	zk := zktest.Start(t)
	g := newGroup(t, zk.Addr)
	g.watchOverlap()
	var last int64
	for i := range 4 {
		g.start(fmt.Sprintf("n%d", i))
		g.start(fmt.Sprintf("m%d", i))
		l := g.waitLeader(20 * time.Second)
		if term := l.el.State().Term; term <= last {
			t.Fatalf("round %d: term %d after %d", i, term, last)
		} else {
			last = term
		}
		// Stop every member: the next round starts an empty group again.
		g.mu.Lock()
		nodes := append([]*node(nil), g.nodes...)
		g.mu.Unlock()
		for _, x := range nodes {
			x.stop(t)
		}
	}
}
