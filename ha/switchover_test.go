package ha

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// TestSwitchoverHandsOverToTheTargetWithoutOverlap: a switchover to the
// member at the back of the line (the others step behind it, the leader
// hands over) and one to "the next" both end with the target leading, no
// two actives at any moment, and the history naming the switchover;
// switchovers that cannot be made are refused with why.
func TestSwitchoverHandsOverToTheTargetWithoutOverlap(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.start("a")
	g.start("b")
	g.start("c")
	g.watchOverlap()
	leader := g.waitLeader(20 * time.Second)
	testwait.For(t, 10*time.Second, "the leader to list all three members", func() bool {
		return len(leader.el.State().Members) == 3
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	for _, bad := range []string{leader.name, "nope"} {
		if _, err := leader.el.Switchover(ctx, bad); !errors.Is(err, ErrSwitchoverRefused) {
			t.Errorf("switchover to %q = %v, want refused", bad, err)
		}
	}
	members := leader.el.State().Members
	back := members[len(members)-1].Name
	start := time.Now()
	got, err := leader.el.Switchover(ctx, back)
	if err != nil || got != back {
		t.Fatalf("switchover to %s = %q, %v", back, got, err)
	}
	t.Logf("switchover to %s (at the back of the line): %v", back, time.Since(start).Round(time.Millisecond))
	var target *member
	for _, m := range g.members {
		if m.name == back {
			target = m
		}
	}
	testwait.For(t, 10*time.Second, back+" to be active", func() bool { return target.el.State().Active() })

	start = time.Now()
	next, err := target.el.Switchover(ctx, "")
	if err != nil || next == back {
		t.Fatalf("switchover to the next = %q, %v", next, err)
	}
	t.Logf("switchover to the next (%s): %v", next, time.Since(start).Round(time.Millisecond))
	testwait.For(t, 10*time.Second, "two switchovers in the history", func() bool {
		h, err := target.el.History(0)
		n := 0
		for _, e := range h {
			if e.Cause == CauseSwitchover {
				n++
			}
		}
		return err == nil && n == 2
	})
	if g.overlap.Load() != 0 {
		t.Fatal("two actives at once during a switchover")
	}
}
