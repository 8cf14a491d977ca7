package ha

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/ha/internal/core"
	"github.com/hanode/hanode/internal/faultproxy"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// fenceLog records Fence calls and lets a test decide their outcome.
type fenceLog struct {
	mu    sync.Mutex
	calls []fenceCall
	fail  map[string]bool // member name -> its Fence fails
}

type fenceCall struct {
	by  string
	req core.FenceRequest
}

func (f *fenceLog) fenceFor(name string) func(context.Context, core.FenceRequest) error {
	return func(_ context.Context, req core.FenceRequest) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls = append(f.calls, fenceCall{by: name, req: req})
		if f.fail[name] {
			return errors.New("fence device unreachable")
		}
		return nil
	}
}

func (f *fenceLog) setFail(name string, fail bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[name] = fail
}

func (f *fenceLog) callsBy(name string) []core.FenceRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []core.FenceRequest
	for _, c := range f.calls {
		if c.by == name {
			out = append(out, c.req)
		}
	}
	return out
}

// crash ends a member as a crash does: its session closes under it, so it
// cannot release; its duty callbacks still stop (as the duty guard would).
func (m *member) crash(t *testing.T) {
	t.Helper()
	m.sess.Close()
	m.stop(t)
}

// TestNewLeaderFencesThePreviousLeaderBeforeActing: the first leader of an
// empty group fences an unknown predecessor (nobody can tell whether one
// acted before ZooKeeper lost its data); after a crash the new leader fences
// the old one by name, host and term, and acts only once that succeeded;
// after a release nobody is fenced.
func TestNewLeaderFencesThePreviousLeaderBeforeActing(t *testing.T) {
	zkS := zktest.Start(t)
	fl := &fenceLog{fail: map[string]bool{}}
	g := newGroup(t, zkS.Addr)
	g.fence = fl.fenceFor
	g.watchOverlap()
	a := g.start("a")
	g.waitLeader(20 * time.Second)
	if calls := fl.callsBy("a"); len(calls) != 1 || calls[0].PreviousKnown {
		t.Fatalf("the first leader fenced %+v; want one call with the previous leader unknown", calls)
	}
	b := g.start("b")
	testwait.For(t, 10*time.Second, "b standby", func() bool { return b.el.State().Phase == PhaseStandby })

	fl.setFail("b", true)
	termA := a.el.State().Term
	a.crash(t)
	testwait.For(t, 10*time.Second, "b to try fencing a twice", func() bool { return len(fl.callsBy("b")) >= 2 })
	if st := b.el.State(); st.Active() || b.starts.Load() != 0 || st.Phase != PhaseFencing {
		t.Fatalf("b is %s (duty starts %d) while its fence fails", st.Phase, b.starts.Load())
	}
	req := fl.callsBy("b")[0]
	if !req.PreviousKnown || req.Previous.Name != "a" || req.Previous.Host != "test-host" || req.Previous.Term != termA ||
		req.Term <= termA {
		t.Fatalf("fence request %+v: want previous a at term %d and a larger term", req, termA)
	}
	fl.setFail("b", false)
	testwait.For(t, 20*time.Second, "b active once fencing succeeds", func() bool { return b.el.State().Active() })
	if got := b.el.State().Term; got != req.Term {
		t.Fatalf("b leads in term %d, fenced for term %d", got, req.Term)
	}

	c := g.start("c")
	testwait.For(t, 10*time.Second, "c standby", func() bool { return c.el.State().Phase == PhaseStandby })
	b.stop(t)
	testwait.For(t, 10*time.Second, "c active", func() bool { return c.el.State().Active() })
	if calls := fl.callsBy("c"); len(calls) != 0 {
		t.Fatalf("c fenced %+v after b released", calls)
	}
}

// TestFencingTargetSurvivesALeaderThatDiedWhileFencing: b claims and dies
// before its fence succeeds, so b never acted; c must fence a (the last
// leader that may have acted), not b.
func TestFencingTargetSurvivesALeaderThatDiedWhileFencing(t *testing.T) {
	zkS := zktest.Start(t)
	fl := &fenceLog{fail: map[string]bool{"b": true}}
	g := newGroup(t, zkS.Addr)
	g.fence = fl.fenceFor
	g.watchOverlap()
	a := g.start("a")
	g.waitLeader(20 * time.Second)
	b := g.start("b")
	testwait.For(t, 10*time.Second, "b standby", func() bool { return b.el.State().Phase == PhaseStandby })
	c := g.start("c")
	testwait.For(t, 10*time.Second, "c standby", func() bool { return c.el.State().Phase == PhaseStandby })
	termA := a.el.State().Term

	a.crash(t)
	testwait.For(t, 10*time.Second, "b to try fencing a", func() bool { return len(fl.callsBy("b")) >= 1 })
	b.stop(t) // gracefully, but it never acted: it must not release over a
	testwait.For(t, 20*time.Second, "c active", func() bool { return c.el.State().Active() })
	calls := fl.callsBy("c")
	if len(calls) == 0 || !calls[0].PreviousKnown || calls[0].Previous.Name != "a" || calls[0].Previous.Term != termA {
		t.Fatalf("c fenced %+v; want a (term %d): b never acted", calls, termA)
	}
	if b.starts.Load() != 0 {
		t.Fatal("b started its duty without fencing")
	}
}

// TestFencingNamesASilentLeaderWhoseRecordWasDeleted (fencing names who may have acted): a
// leads, its path to ZooKeeper stalls, and another client deletes the
// leader record. b takes a's lease by rule D (a silent for W) with no record
// to say who led, and still fences a by name, host and term: it read them
// from a's node, which its claim deletes.
func TestFencingNamesASilentLeaderWhoseRecordWasDeleted(t *testing.T) {
	zkS := zktest.Start(t)
	fl := &fenceLog{fail: map[string]bool{}}
	g := newGroup(t, zkS.Addr)
	g.timeout = 4 * time.Second // the session outlives W: b pushes a out by rule D
	g.fence = fl.fenceFor
	g.watchOverlap()
	p := faultproxy.Start(t, zkS.Addr)
	a := g.startOn("a", []string{p.Addr()})
	g.waitLeader(20 * time.Second)
	b := g.start("b")
	testwait.For(t, 10*time.Second, "b standby", func() bool { return b.el.State().Phase == PhaseStandby })
	termA := a.el.State().Term

	p.Stall()
	conn := admin(t, zkS.Addr)
	if err := conn.Delete(g.layout().LeaderNode(), -1); err != nil {
		t.Fatalf("delete the leader record: %v", err)
	}
	testwait.For(t, 20*time.Second, "b active", func() bool { return b.el.State().Active() })
	calls := fl.callsBy("b")
	if len(calls) == 0 {
		t.Fatal("b leads without fencing")
	}
	req := calls[0]
	want := core.LeaderInfo{Name: "a", Host: "test-host", Term: termA}
	if !req.PreviousKnown || req.Previous != want || len(req.Candidates) != 1 || req.Candidates[0] != want {
		t.Fatalf("b fenced %+v; want a (host test-host, term %d) alone", req, termA)
	}
}

// TestFenceThatKeepsFailingStepsAside: a leader whose fence fails
// FenceMaxTries times steps aside and rejoins at the back; the next
// member, whose fence works, fences the same previous leader and leads.
// Nobody acts before a fence succeeded.
func TestFenceThatKeepsFailingStepsAside(t *testing.T) {
	zkS := zktest.Start(t)
	fl := &fenceLog{fail: map[string]bool{}}
	g := newGroup(t, zkS.Addr)
	g.fence = fl.fenceFor
	g.fenceMaxTries = 2
	g.watchOverlap()
	a := g.start("a")
	g.waitLeader(20 * time.Second)
	fl.setFail("b", true)
	b := g.start("b")
	testwait.For(t, 10*time.Second, "b standby", func() bool { return b.el.State().Phase == PhaseStandby })
	c := g.start("c")
	testwait.For(t, 10*time.Second, "c standby", func() bool { return c.el.State().Phase == PhaseStandby })
	termA := a.el.State().Term

	a.crash(t)
	testwait.For(t, 30*time.Second, "c to lead after b stepped aside", func() bool { return c.el.State().Active() })
	if n := len(fl.callsBy("b")); n != 2 {
		t.Errorf("b fenced %d times, want FenceMaxTries = 2", n)
	}
	if b.starts.Load() != 0 {
		t.Errorf("b started its duty %d times without a fence", b.starts.Load())
	}
	calls := fl.callsBy("c")
	if len(calls) != 1 || calls[0].Previous.Name != "a" || calls[0].Previous.Term != termA {
		t.Fatalf("c fenced %+v; want a at term %d, as b was to", calls, termA)
	}
	if st := b.el.State(); st.Phase != PhaseStandby {
		t.Errorf("b is %s after stepping aside, want standby", st.Phase)
	}
}
