package ha

import (
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/ha/internal/core"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// Tests of the etcd-shaped API (campaign.go), the single-use Run and the
// session without a name reservation. The ZooKeeper ones use election_test.go's
// group; the others need no server.

// TestResignHandsOverAndCampaignReturnsOnTheTakeover: Campaign returns once
// the node is active (at once when it is already); a standby's Resign
// changes nothing; the leader's Resign returns once its duty stopped and its
// lease is released, the next member's Campaign returns without waiting
// for the lease, and the resigner is back in line as a standby.
func TestResignHandsOverAndCampaignReturnsOnTheTakeover(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.watchOverlap()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := g.start("a")
	if err := a.el.Campaign(ctx); err != nil {
		t.Fatalf("a's Campaign = %v", err)
	}
	if !a.el.State().Active() || a.starts.Load() != 1 {
		t.Fatalf("Campaign returned, but a is %s with %d duty starts", a.el.State().Phase, a.starts.Load())
	}
	if err := a.el.Campaign(ctx); err != nil {
		t.Fatalf("Campaign of an active node = %v, want nil at once", err)
	}
	b := g.start("b")
	testwait.For(t, 10*time.Second, "b a standby that sees a lead", func() bool {
		return b.el.State().Phase == PhaseStandby && b.el.Leader().Name == "a"
	})
	if err := b.el.Resign(ctx); err != nil {
		t.Fatalf("a standby's Resign = %v, want nil", err)
	}
	won := make(chan error, 1)
	go func() { won <- b.el.Campaign(ctx) }()
	if g.waitLeader(5*time.Second) != a {
		t.Fatal("a standby's Resign moved the leadership")
	}
	term := a.el.Leader().Term

	resigned := time.Now()
	if err := a.el.Resign(ctx); err != nil {
		t.Fatalf("the leader's Resign = %v", err)
	}
	if a.el.State().Active() || a.stops.Load() != 1 {
		t.Fatalf("Resign returned, but a is %s with %d duty stops", a.el.State().Phase, a.stops.Load())
	}
	select {
	case err := <-won:
		if err != nil {
			t.Fatalf("b's Campaign = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b's Campaign did not return after a resigned")
	}
	took := time.Since(resigned)
	t.Logf("handover by Resign: %s", took)
	if took > testTimeout/2 {
		t.Fatalf("handover took %s: a resignation releases, nobody waits for the lease", took)
	}
	if l := b.el.Leader(); l.Name != "b" || l.Term <= term {
		t.Fatalf("b's Leader = %+v after a's term %d", l, term)
	}
	testwait.For(t, 10*time.Second, "a back in line as a standby", func() bool {
		return a.el.State().Phase == PhaseStandby && a.el.Leader().Name == "b"
	})
	if g.waitLeader(5*time.Second) != b || a.starts.Load() != 1 {
		t.Fatal("the resigner took the lease back")
	}
}

// TestObserveAndLeaderChangedFollowTheLeader: Observe gives the current
// leader at once, then each change in order (a subsequence of what
// LeaderChanged saw: Observe coalesces, LeaderChanged does not), and closes
// when its context ends or the election ends.
func TestObserveAndLeaderChangedFollowTheLeader(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	var mu sync.Mutex
	changes := map[string][]Leader{}
	g.leaderChanged = func(m string, l Leader) {
		mu.Lock()
		changes[m] = append(changes[m], l)
		mu.Unlock()
	}
	changesOf := func(m string) []Leader {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(changes[m])
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := g.start("a")
	if err := a.el.Campaign(ctx); err != nil {
		t.Fatal(err)
	}
	b := g.start("b")
	testwait.For(t, 10*time.Second, "b a standby", func() bool { return b.el.State().Phase == PhaseStandby })
	c := g.start("c") // behind b: it observes a, then b
	testwait.For(t, 20*time.Second, "c a standby that knows a leads", func() bool {
		return c.el.State().Phase == PhaseStandby && c.el.Leader().Name == "a"
	})

	obsCtx, stopObs := context.WithCancel(ctx)
	feed := c.el.Observe(obsCtx)
	var seen []Leader
	receive := func(what string) (Leader, bool) {
		t.Helper()
		select {
		case l, ok := <-feed:
			if ok {
				seen = append(seen, l)
			}
			return l, ok
		case <-time.After(10 * time.Second):
			t.Fatalf("nothing from Observe within 10s, waiting for %s; saw %+v", what, seen)
			return Leader{}, false
		}
	}
	if l, _ := receive("the current leader"); l.Name != "a" {
		t.Fatalf("Observe's first value %+v, want a (the current leader)", l)
	}
	if err := a.el.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	for l, _ := receive("b"); l.Name != "b"; l, _ = receive("b") {
	}
	final := c.el.Leader()
	testwait.For(t, 5*time.Second, "c's LeaderChanged to reach b", func() bool {
		got := changesOf("c")
		return len(got) > 0 && got[len(got)-1] == final
	})
	if !isSubsequence(seen, changesOf("c")) {
		t.Fatalf("Observe gave %+v, not in the order of LeaderChanged's %+v", seen, changesOf("c"))
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].Term < seen[i-1].Term {
			t.Fatalf("terms went back: %+v", seen)
		}
	}
	// a, now at the back, may learn it only at its next listing.
	testwait.For(t, 4*g.timeout+5*time.Second, "a's and b's LeaderChanged to reach b", func() bool {
		for _, m := range []string{"a", "b"} {
			if got := changesOf(m); len(got) == 0 || got[len(got)-1] != final {
				return false
			}
		}
		return true
	})
	t.Logf("Observe: %+v; LeaderChanged: %+v", seen, changesOf("c"))

	stopObs()
	waitClosed(t, feed, "Observe's channel after its context ended")
	feed = c.el.Observe(ctx)
	if l, _ := receive("the current leader"); l != c.el.Leader() {
		t.Fatalf("a new Observe's first value %+v, want %+v", l, c.el.Leader())
	}
	if err := c.stop(t); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, feed, "Observe's channel after the election ended")
}

func isSubsequence(sub, of []Leader) bool {
	i := 0
	for _, l := range of {
		if i < len(sub) && sub[i] == l {
			i++
		}
	}
	return i == len(sub)
}

func waitClosed(t *testing.T, ch <-chan Leader, what string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("%s did not close within 10s", what)
		}
	}
}

// TestCampaignEndsWithTheElection: a Campaign waiting on an election that
// the group refuses returns the refusal, wrapped in ErrElectionDone.
func TestCampaignEndsWithTheElection(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.start("p1")
	g.waitLeader(20 * time.Second)
	g.role = "compute"
	wrong := g.start("c1")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := wrong.el.Campaign(ctx)
	if !errors.Is(err, ErrElectionDone) || !errors.Is(err, ErrGroupMismatch) {
		t.Fatalf("Campaign = %v, want ErrElectionDone and ErrGroupMismatch", err)
	}
	t.Logf("Campaign: %v", err)
	if err := wrong.stop(t); !errors.Is(err, ErrGroupMismatch) {
		t.Fatalf("Run = %v, want ErrGroupMismatch", err)
	}
}

// nowhere opens a session to a port nobody serves: enough for what an
// Election does before it has a ZooKeeper session.
func nowhere(t *testing.T) *Session {
	t.Helper()
	sess, err := OpenSession(SessionConfig{Servers: []string{"127.0.0.1:1"}, Root: "/hanode", Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sess.Close)
	return sess
}

func newTestElection(t *testing.T, sess *Session, group string) *Election {
	t.Helper()
	el, err := NewElection(sess, ElectionConfig{Group: group, Role: "primary", Margin: testMargin})
	if err != nil {
		t.Fatal(err)
	}
	return el
}

// TestRunRunsOnceAndASessionIsOneMemberOfAGroup: of concurrent Run calls
// one runs and the others return ErrRunOnce at once, as does a Run after
// it returned; a second Election of the same group on the session is
// refused with ErrAlreadyMember while the first runs, and runs once it has
// returned. Resign and Campaign on elections that do not run return at once
// or with their context. No ZooKeeper: none of it needs a session.
func TestRunRunsOnceAndASessionIsOneMemberOfAGroup(t *testing.T) {
	sess := nowhere(t)
	el := newTestElection(t, sess, "g")
	if err := el.Resign(context.Background()); err != nil {
		t.Fatalf("Resign before Run = %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan error, 3)
	for range 3 {
		go func() { results <- el.Run(ctx) }()
	}
	for range 2 {
		select {
		case err := <-results:
			if !errors.Is(err, ErrRunOnce) {
				t.Fatalf("a concurrent Run = %v, want ErrRunOnce", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a concurrent Run did not return at once")
		}
	}
	other := newTestElection(t, sess, "g")
	if err := other.Run(ctx); !errors.Is(err, ErrAlreadyMember) {
		t.Fatalf("a second member of the group on the session: Run = %v, want ErrAlreadyMember", err)
	}
	if err := other.Campaign(ctx); !errors.Is(err, ErrElectionDone) || !errors.Is(err, ErrAlreadyMember) {
		t.Fatalf("Campaign of a refused election = %v, want ErrElectionDone and ErrAlreadyMember", err)
	}
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if err := el.Campaign(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Campaign without ZooKeeper = %v, want the context's error", err)
	}
	if err := el.Resign(ctx); err != nil {
		t.Fatalf("Resign of a node that does not lead = %v, want nil", err)
	}
	cancel()
	select {
	case err := <-results:
		if err != nil {
			t.Fatalf("Run = %v after its context ended", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of its context's end")
	}
	if err := el.Run(context.Background()); !errors.Is(err, ErrRunOnce) {
		t.Fatalf("Run after Run returned = %v, want ErrRunOnce", err)
	}
	if err := el.Campaign(context.Background()); !errors.Is(err, ErrElectionDone) {
		t.Fatalf("Campaign after Run returned = %v, want ErrElectionDone", err)
	}

	again := newTestElection(t, sess, "g")
	ctx2, cancel2 := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- again.Run(ctx2) }()
	cancel2()
	if err := <-done; err != nil {
		t.Fatalf("a new Election of the group, once the first returned: Run = %v", err)
	}
}

// TestSessionWithoutANameReservation: a session opened with nothing but the
// servers, the root and the timeout names itself after the host and the
// process, reserves nothing, and serves elections; two such sessions of one
// process share the default name and are not refused.
func TestSessionWithoutANameReservation(t *testing.T) {
	if _, err := OpenSession(SessionConfig{Servers: []string{"127.0.0.1:1"}, Root: "/x", Timeout: testTimeout,
		ReserveName: true}); err == nil {
		t.Fatal("OpenSession reserves a name it was not given")
	}
	zkS := zktest.Start(t)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	want := host + "-" + strconv.Itoa(os.Getpid())
	var els []*Election
	for range 2 {
		sess, err := OpenSession(SessionConfig{Servers: []string{zkS.Addr}, Root: "/lib", Timeout: testTimeout})
		if err != nil {
			t.Fatal(err)
		}
		if sess.Name() != want {
			t.Fatalf("default name %q, want %q", sess.Name(), want)
		}
		el := newTestElection(t, sess, "lib")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- el.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run = %v", err)
			}
			sess.Close()
		})
		els = append(els, el)
	}
	testwait.For(t, 20*time.Second, "one active member and one standby, both naming the leader", func() bool {
		a, b := els[0].State(), els[1].State()
		return a.Active() != b.Active() && (a.Active() || a.Phase == PhaseStandby) && (b.Active() || b.Phase == PhaseStandby) &&
			els[0].Leader().Name == want && els[1].Leader().Name == want
	})
	for _, el := range els {
		if l := el.Leader(); l.Term < 1 {
			t.Fatalf("Leader = %+v, want a term", l)
		}
	}
	conn := admin(t, zkS.Addr)
	if ok, _, err := conn.Exists(core.NewLayout("/lib", "").NamesDir()); err != nil || ok {
		t.Fatalf("names/ exists (%v, %v): a session without ReserveName reserved a name", ok, err)
	}
}
