package bench

// The in-process fleet: G groups × 3 members on one ZooKeeper, members run
// through hanode's public API as three simulated processes: one ha.Session
// each, holding one ha.Election in every group.

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/internal/testwait"
)

// hanode's defaults (conf): ZK_SESSION_TIMEOUT 10 s, LEASE_MARGIN 30% of it.
const (
	scaleSessionTimeout = 10 * time.Second
	scaleMargin         = 3 * time.Second
	scaleTickMs         = 2000 // ZooKeeper's own default tickTime
	scaleProcs          = 3    // simulated processes = members per group
)

// scaleW is W = D(1+ρ)/(1−ρ) for D = 10 s and ρ = 1% (ha.takeoverWait),
// rounded up to the millisecond: how long a brand-new group's first leader
// waits by design.
var scaleW = func() time.Duration {
	d, rho := float64(scaleSessionTimeout), ha.DriftAllowance
	w := time.Duration(d * (1 + rho) / (1 - rho))
	return (w + time.Millisecond - 1).Truncate(time.Millisecond)
}()

// scaleR is R = (D − M)/3, the holder's extension period.
const scaleR = (scaleSessionTimeout - scaleMargin) / 3

// membership is one member of one group.
type membership struct {
	proc, group int
	el          *ha.Election
	cancel      context.CancelFunc
	done        chan error
	running     atomic.Bool
	// Times (unix ns, 0 = never) recorded by the callbacks, which run on
	// the election's goroutine at the moment the core decides.
	started   atomic.Int64 // last StartDuty
	stopCall  atomic.Int64 // last StopDuty call
	starts    atomic.Int32
	stops     atomic.Int32
	lastTerm  atomic.Int64
	stoppedAt atomic.Int64 // Run returned

	// With fleet.subscribe: every transition from Subscribe, in order.
	mu    sync.Mutex
	trans []ha.Transition
}

// transitions returns the transitions seen so far.
func (m *membership) transitions() []ha.Transition {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.trans)
}

// fleet is G groups × 3 members.
type fleet struct {
	t         testing.TB
	sessions  [scaleProcs]*ha.Session
	members   [][scaleProcs]*membership // [group][proc]
	subscribe bool                      // record every membership's transitions
	wg        sync.WaitGroup
}

func scaleGroupID(g int) string { return fmt.Sprintf("g%04d", g) }

// openFleet opens the three sessions, session p to addrs[p], and waits
// until each is connected.
func openFleet(t testing.TB, addrs [scaleProcs]string, root string, groups int, subscribe bool) *fleet {
	t.Helper()
	f := &fleet{t: t, members: make([][scaleProcs]*membership, groups), subscribe: subscribe}
	for p := range scaleProcs {
		s, err := ha.OpenSession(ha.SessionConfig{Servers: []string{addrs[p]}, Root: root, Timeout: scaleSessionTimeout,
			Name: fmt.Sprintf("proc%d", p), ReserveName: true, Host: "bench", PID: os.Getpid(), Started: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		f.sessions[p] = s
	}
	t.Cleanup(f.close)
	testwait.Every(t, 30*time.Second, 20*time.Millisecond, "three ZooKeeper sessions", func() bool {
		for _, s := range f.sessions {
			if !s.ZK().Connected {
				return false
			}
		}
		return true
	})
	return f
}

// start creates every election and runs it; it does not wait.
func (f *fleet) start() {
	for g := range f.members {
		for p := range scaleProcs {
			f.members[g][p] = f.run(g, p)
		}
	}
}

func (f *fleet) run(g, p int) *membership {
	m := &membership{proc: p, group: g, done: make(chan error, 1)}
	el, err := ha.NewElection(f.sessions[p], ha.ElectionConfig{Group: scaleGroupID(g), Role: "primary",
		Region: "world", Margin: scaleMargin, Callbacks: ha.Callbacks{
			StartDuty: func(_ context.Context, term int64) {
				m.started.Store(time.Now().UnixNano())
				m.lastTerm.Store(term)
				m.starts.Add(1)
			},
			StopDuty: func(string) error {
				m.stopCall.Store(time.Now().UnixNano())
				m.stops.Add(1)
				return nil
			},
		}})
	if err != nil {
		f.t.Fatal(err)
	}
	m.el = el
	if f.subscribe {
		feed, stop := el.Subscribe()
		f.t.Cleanup(stop)
		go func() {
			for tr := range feed {
				m.mu.Lock()
				m.trans = append(m.trans, tr)
				m.mu.Unlock()
			}
		}()
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.running.Store(true)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		err := el.Run(ctx)
		m.stoppedAt.Store(time.Now().UnixNano())
		m.running.Store(false)
		m.done <- err
	}()
	return m
}

// close stops every election (bounded), then the sessions.
func (f *fleet) close() {
	for _, g := range f.members {
		for _, m := range g {
			if m != nil {
				m.cancel()
			}
		}
	}
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	tm := time.NewTimer(60 * time.Second)
	defer tm.Stop()
	select {
	case <-done:
	case <-tm.C:
		f.t.Errorf("fleet: elections still running 60 s after cancel")
	}
	for _, s := range f.sessions {
		if s != nil {
			s.Close()
		}
	}
}

// unsettled returns the number of groups that do not have exactly one
// active member with every other running member a standby.
func (f *fleet) unsettled() int {
	n := 0
	for _, g := range f.members {
		active, ok := 0, true
		for _, m := range g {
			if !m.running.Load() {
				continue
			}
			switch st := m.el.State(); st.Phase {
			case ha.PhaseActive:
				active++
			case ha.PhaseStandby:
			default:
				ok = false
			}
		}
		if !ok || active != 1 {
			n++
		}
	}
	return n
}

// leaders returns each group's active member (nil if none).
func (f *fleet) leaders() []*membership {
	out := make([]*membership, len(f.members))
	for gi, g := range f.members {
		for _, m := range g {
			if m.running.Load() && m.el.State().Active() {
				out[gi] = m
			}
		}
	}
	return out
}

// stats sums the three sessions' counters.
func (f *fleet) stats() ha.SessionStats {
	var s ha.SessionStats
	for _, ss := range f.sessions {
		x := ss.Stats()
		s.Requests += x.Requests
		s.Writes += x.Writes
		s.WatchEvents += x.WatchEvents
	}
	return s
}

// waitDone waits at most timeout for m's Run to return and returns its
// error, or an error saying it did not return.
func waitDone(m *membership, timeout time.Duration) error {
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	select {
	case err := <-m.done:
		if err != nil {
			return fmt.Errorf("Run returned %w", err)
		}
		return nil
	case <-tm.C:
		return fmt.Errorf("Run did not return within %v", timeout)
	}
}

// recvBounded receives from ch, for at most timeout.
func recvBounded[T any](ch <-chan T, timeout time.Duration) (T, error) {
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	select {
	case v := <-ch:
		return v, nil
	case <-tm.C:
		var zero T
		return zero, fmt.Errorf("nothing within %v", timeout)
	}
}
