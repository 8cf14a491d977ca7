package ha

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// cycleNode is a member of the test group that also follows the cycle and
// records every new cycle it hears of (OnCycle).
type cycleNode struct {
	*member
	cyc  *Cycle
	stop func()

	mu     sync.Mutex
	got    []CycleInfo
	missed int64
}

func startCycleNode(g *group, name string, interval time.Duration) *cycleNode {
	g.t.Helper()
	n := &cycleNode{member: g.start(name)}
	cyc, err := NewCycle(n.sess, CycleConfig{Interval: interval, Election: n.el, Logger: zaptest.NewLogger(g.t).Named(name),
		OnCycle: func(c CycleInfo, skipped int64) {
			n.mu.Lock()
			defer n.mu.Unlock()
			n.got, n.missed = append(n.got, c), n.missed+skipped
		}})
	if err != nil {
		g.t.Fatal(err)
	}
	n.cyc = cyc
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = cyc.Run(ctx) }()
	var once sync.Once
	n.stop = func() { once.Do(func() { cancel(); <-done }) }
	g.t.Cleanup(n.stop) // before the member's own cleanup, registered earlier
	return n
}

func (n *cycleNode) record() ([]CycleInfo, int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.got), n.missed
}

func (n *cycleNode) current() int64 {
	c, _ := n.cyc.Current()
	return c.N
}

// waitCycles waits until every node has seen cycle at least n.
func waitCycles(t *testing.T, timeout time.Duration, n int64, nodes ...*cycleNode) {
	t.Helper()
	testwait.For(t, timeout, fmt.Sprintf("every node to see cycle %d", n), func() bool {
		for _, x := range nodes {
			if x.current() < n {
				return false
			}
		}
		return true
	})
}

func highest(nodes ...*cycleNode) int64 {
	var h int64
	for _, x := range nodes {
		h = max(h, x.current())
	}
	return h
}

// checkCycles fails the test unless every node's cycles grow one at a time
// or with a reported gap, the cycles all nodes saw together run from 1 to
// the highest with none missing, and consecutive starts are at least
// interval apart.
func checkCycles(t *testing.T, interval time.Duration, nodes ...*cycleNode) {
	t.Helper()
	all := map[int64]CycleInfo{}
	var top int64
	for _, x := range nodes {
		got, missed := x.record()
		var gaps int64
		for i, c := range got {
			if i > 0 && c.N <= got[i-1].N {
				t.Errorf("%s: cycle %d after %d", x.name, c.N, got[i-1].N)
			}
			if i > 0 && c.N > got[i-1].N+1 {
				gaps += c.N - got[i-1].N - 1
			}
			if prev, ok := all[c.N]; ok && prev != c {
				t.Errorf("cycle %d seen twice with different records: %+v and %+v", c.N, prev, c)
			}
			all[c.N] = c
			top = max(top, c.N)
		}
		if gaps != missed {
			t.Errorf("%s: %d cycles missing from its record, %d reported missed", x.name, gaps, missed)
		}
		t.Logf("%s: %d cycles heard, %d missed", x.name, len(got), missed)
	}
	for n := int64(1); n <= top; n++ {
		c, ok := all[n]
		if !ok {
			t.Errorf("cycle %d: no node saw it (a gap in the counter)", n)
			continue
		}
		if p, ok := all[n-1]; ok && c.Started.Sub(p.Started) < interval {
			t.Errorf("cycles %d and %d started %s apart, below the interval %s", n-1, n, c.Started.Sub(p.Started), interval)
		}
	}
}

func (g *group) cycleNodeOf(nodes []*cycleNode, m *member) *cycleNode {
	for _, x := range nodes {
		if x.member == m {
			return x
		}
	}
	g.t.Fatalf("%s is not a cycle node", m.name)
	return nil
}

// TestCycleHasNoGapOrRepeatAcrossFailoversAndZooKeeperRestarts: a group of
// three advances the cycle every 300 ms through ten failovers (eight
// resignations, two leaders stopped and replaced) and two restarts of
// ZooKeeper; every cycle is seen, none twice, and starts keep their
// distance.
func TestCycleHasNoGapOrRepeatAcrossFailoversAndZooKeeperRestarts(t *testing.T) {
	const interval = 300 * time.Millisecond
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.watchOverlap()
	nodes := []*cycleNode{startCycleNode(g, "a", interval), startCycleNode(g, "b", interval), startCycleNode(g, "c", interval)}
	live := slices.Clone(nodes)
	waitCycles(t, 30*time.Second, 3, live...)
	ctx := context.Background()
	for i := range 10 {
		if i == 3 || i == 7 {
			zkS.Restart(t)
			t.Logf("ZooKeeper restarted; cycle %d", highest(live...))
			waitCycles(t, 30*time.Second, highest(live...)+2, live...)
		}
		leader := g.cycleNodeOf(live, g.waitLeader(20*time.Second))
		before := highest(live...)
		if i == 4 || i == 9 {
			_ = leader.member.stop(t)
			leader.stop()
			live = slices.DeleteFunc(live, func(x *cycleNode) bool { return x == leader })
			fresh := startCycleNode(g, fmt.Sprintf("n%d", i), interval)
			nodes, live = append(nodes, fresh), append(live, fresh)
		} else if err := leader.el.Resign(ctx); err != nil {
			t.Fatalf("resign %s: %v", leader.name, err)
		}
		next := g.waitLeader(20 * time.Second)
		if next == leader.member {
			t.Fatalf("failover %d: %s still leads", i, leader.name)
		}
		waitCycles(t, 30*time.Second, before+3, live...)
		t.Logf("failover %d: %s -> %s, cycle %d", i, leader.name, next.name, highest(live...))
	}

	// A standby cannot advance: its write is fenced out.
	leader := g.waitLeader(20 * time.Second)
	for _, x := range live {
		if x.member == leader {
			continue
		}
		x.cyc.mu.Lock()
		seen, epoch := x.cyc.seen, x.cyc.epoch
		x.cyc.mu.Unlock()
		n, _, _ := nextCycle(seen, interval, time.Now())
		if err := x.cyc.write(ctx, seen, epoch, n); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("standby %s advancing the cycle: %v, want ErrNotLeader", x.name, err)
		}
	}
	for _, x := range nodes {
		x.stop()
	}
	checkCycles(t, interval, nodes...)
}

// TestCycleContinuesAboveWhatWasSeenWhenZooKeeperLosesItsData: ZooKeeper
// restarted empty; the group leads again and the counter goes on from the
// highest cycle its members saw, not from 1.
func TestCycleContinuesAboveWhatWasSeenWhenZooKeeperLosesItsData(t *testing.T) {
	const interval = 300 * time.Millisecond
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.watchOverlap()
	nodes := []*cycleNode{startCycleNode(g, "a", interval), startCycleNode(g, "b", interval)}
	waitCycles(t, 30*time.Second, 3, nodes...)
	zkS.RestartWiped(t)
	before := highest(nodes...)
	waitCycles(t, 60*time.Second, before+3, nodes...)
	for _, x := range nodes {
		x.stop()
	}
	checkCycles(t, interval, nodes...)
}

// TestCycleRepairsDamagedOrLoweredData: a foreign client writes garbage,
// then a lower cycle; the leader reports each and overwrites it with the
// next cycle above the highest seen.
func TestCycleRepairsDamagedOrLoweredData(t *testing.T) {
	const interval = 300 * time.Millisecond
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	nodes := []*cycleNode{startCycleNode(g, "a", interval), startCycleNode(g, "b", interval)}
	waitCycles(t, 30*time.Second, 3, nodes...)
	conn := admin(t, zkS.Addr)
	p := cyclePath(g.root)
	for _, data := range [][]byte{[]byte("not json"), encodeCycle(CycleInfo{N: 1, Started: time.Now().UTC(), By: "intruder"})} {
		before := highest(nodes...)
		if _, err := conn.Set(p, data, -1); err != nil {
			t.Fatal(err)
		}
		waitCycles(t, 10*time.Second, before+2, nodes...)
	}
	for _, x := range nodes {
		x.stop()
	}
	checkCycles(t, interval, nodes...)
}

// TestCycleWaitReturnsTheNextCycle: Wait blocks until a cycle above after
// and ends with its context.
func TestCycleWaitReturnsTheNextCycle(t *testing.T) {
	const interval = 300 * time.Millisecond
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	a := startCycleNode(g, "a", interval)
	waitCycles(t, 30*time.Second, 1, a)
	cur, _ := a.cyc.Current()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	next, ok := a.cyc.Wait(ctx, cur.N)
	if !ok || next.N <= cur.N {
		t.Fatalf("Wait(%d) = %+v, %v", cur.N, next, ok)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if c, ok := a.cyc.Wait(short, next.N+1000); ok || c.N < next.N {
		t.Fatalf("Wait for a far cycle = %+v, %v; want the current one and false", c, ok)
	}
}
