package ha

import (
	"context"
	"testing"
	"time"

	"github.com/hanode/hanode/ha/internal/core"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// TestPausedGroupIsNotTakenOverUntilResumed: a standby pauses the group;
// every member sees it; the leader then stops (it releases: rule B would
// let the next claim at once) and nobody takes over for three leases; the
// resume brings a leader within W. No two actives at any moment.
func TestPausedGroupIsNotTakenOverUntilResumed(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.start("a")
	g.start("b")
	g.start("c")
	g.watchOverlap()
	leader := g.waitLeader(20 * time.Second)
	var standby *member
	for _, m := range g.members {
		if m != leader {
			standby = m
			break
		}
	}
	ctx := context.Background()
	if err := standby.el.Pause(ctx, "maintenance"); err != nil {
		t.Fatalf("pause: %v", err)
	}
	testwait.For(t, 10*time.Second, "every member to see the pause", func() bool {
		for _, m := range g.members {
			if p := m.el.State().Paused; p == nil || p.By != standby.name || p.Reason != "maintenance" {
				return false
			}
		}
		return true
	})
	if !leader.el.State().Active() {
		t.Fatal("the leader stopped leading when the group was paused")
	}
	if err := leader.stop(t); err != nil {
		t.Fatal(err)
	}
	// Nothing must happen for three leases: there is no condition to wait
	// for, only the absence of a takeover to watch.
	if err := testwait.Poll(3*g.timeout, 5*time.Millisecond, func() bool { return len(g.activeNames()) > 0 }); err == nil {
		t.Fatalf("%v took over a paused group", g.activeNames())
	}
	for _, m := range g.members {
		if m != leader && m.el.State().Phase == PhaseWaiting {
			t.Errorf("%s is waiting to claim in a paused group: %s", m.name, m.el.State().Reason)
		}
	}
	resumed := time.Now()
	if err := standby.el.Resume(ctx); err != nil {
		t.Fatalf("resume: %v", err)
	}
	next := g.waitLeader(core.TakeoverWait(g.timeout) + 2*time.Second)
	t.Logf("%s leads %v after the resume", next.name, time.Since(resumed).Round(time.Millisecond))
	if next.el.State().Paused != nil {
		t.Error("the new leader still reports the group paused")
	}
}
