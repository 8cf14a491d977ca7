package hatest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/internal/faultproxy"
)

// node is one member: its path to ZooKeeper lasts for the test, its life
// (session and election) from a start to a stop or kill.
type node struct {
	g       *Group
	name    string
	started time.Time // the process start it claims its name with, kept over restarts
	proxy   *faultproxy.Proxy
	log     *zap.Logger

	mu    sync.Mutex
	life  *life // nil when stopped or killed
	dying *life // a killed life whose election has not ended yet
}

// life is one run of a member: a session and an election on it.
type life struct {
	sess   *ha.Session
	el     *ha.Election
	cancel context.CancelFunc
	done   chan struct{} // closed once Run has returned and the session is closed

	mu   sync.Mutex
	duty *dutyRun // the duty running now, nil when none
}

// dutyRun is one run of the user's duty.
type dutyRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (n *node) state() ha.State {
	n.mu.Lock()
	l := n.life
	n.mu.Unlock()
	if l == nil {
		return ha.State{}
	}
	return l.el.State()
}

// resign hands this member's leadership over (Election.Resign), bounded
// by within.
func (n *node) resign(within time.Duration) error {
	n.mu.Lock()
	l := n.life
	n.mu.Unlock()
	if l == nil {
		return fmt.Errorf("%s is not running", n.name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	return l.el.Resign(ctx)
}

func (n *node) start() {
	t := n.g.t
	t.Helper()
	n.mu.Lock()
	if n.life != nil {
		n.mu.Unlock()
		t.Fatalf("hatest: Start(%q): it runs already", n.name)
	}
	dying := n.dying
	n.mu.Unlock()
	if dying != nil && !n.await(dying) {
		t.Fatalf("hatest: Start(%q): its killed election did not end within %s", n.name, n.g.cfg.WaitTimeout)
	}
	n.proxy.Heal()
	cfg := n.g.cfg
	sess, err := ha.OpenSession(ha.SessionConfig{
		Servers: []string{n.proxy.Addr()}, Root: n.g.root, Timeout: cfg.SessionTimeout,
		// One identity for every run of the member: a restarted member
		// takes its name back from its killed session ("an earlier session
		// of this process").
		Name: n.name, Host: "hatest", PID: os.Getpid(), Started: n.started, Logger: n.log,
	})
	if err != nil {
		t.Fatalf("hatest: start %s: %v", n.name, err)
	}
	l := &life{sess: sess, done: make(chan struct{})}
	l.el, err = ha.NewElection(sess, ha.ElectionConfig{
		Group: cfg.Group, Role: cfg.Role, Region: "world", Margin: cfg.Margin,
		Logger: n.log, Callbacks: n.callbacks(l),
	})
	if err != nil {
		sess.Close()
		t.Fatalf("hatest: start %s: %v", n.name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go func() {
		defer close(l.done)
		if err := l.el.Run(ctx); err != nil {
			n.g.t.Errorf("hatest: %s left the group: %v", n.name, err)
		}
		sess.Close()
	}()
	n.mu.Lock()
	n.life, n.dying = l, nil
	n.mu.Unlock()
}

// callbacks connect the election to the user's duty.
func (n *node) callbacks(l *life) ha.Callbacks {
	return ha.Callbacks{
		StartDuty: func(_ context.Context, term int64) { n.startDuty(l, term) },
		StopDuty:  func(reason string) error { return n.stopDuty(l) },
	}
}

// startDuty runs the duty of term in a goroutine of its own.
func (n *node) startDuty(l *life, term int64) {
	cfg := n.g.cfg
	ctx, cancel := context.WithCancel(context.Background())
	d := &dutyRun{cancel: cancel, done: make(chan struct{})}
	l.mu.Lock()
	l.duty = d
	l.mu.Unlock()
	n.g.dutyStarted(n.name, term)
	lead := Lead{Node: n.name, Group: cfg.Group, Role: cfg.Role, Term: term, StopWithin: cfg.Margin}
	go func() {
		defer close(d.done)
		defer n.g.dutyEnded(n.name)
		if err := cfg.Duty(ctx, lead); err != nil {
			n.g.t.Errorf("hatest: the duty of %s (term %d): %v", n.name, term, err)
		}
	}()
}

// errDutyStuck tells the election that the stop is not confirmed: it leaves
// without a release, as hanode does, so the next leader waits out the lease.
var errDutyStuck = errors.New("hatest: the duty did not return within the margin")

// stopDuty ends the running duty, if any, and waits for it within the
// margin. It is called by the election and by kill, whichever comes first.
func (n *node) stopDuty(l *life) error {
	l.mu.Lock()
	d := l.duty
	l.duty = nil
	l.mu.Unlock()
	if d == nil {
		return nil
	}
	d.cancel()
	timer := time.NewTimer(n.g.cfg.Margin)
	defer timer.Stop()
	select {
	case <-d.done:
		return nil
	case <-timer.C:
		n.g.t.Errorf("hatest: the duty of %s did not return within %s (the margin) after its context ended: "+
			"hanode would kill it, and it may have run beside the next leader's", n.name, n.g.cfg.Margin)
		return fmt.Errorf("%w (%s)", errDutyStuck, n.name)
	}
}

// kill crashes the member: no byte more reaches ZooKeeper, the duty stops
// at once, and the election is abandoned; it ends in the background.
func (n *node) kill() {
	n.mu.Lock()
	l := n.life
	n.life, n.dying = nil, l
	n.mu.Unlock()
	if l == nil {
		n.g.t.Fatalf("hatest: Kill(%q): it does not run", n.name)
	}
	n.proxy.Reset()
	_ = n.stopDuty(l)
	l.cancel()
}

// stop stops the member gracefully and waits until it has left.
func (n *node) stop() {
	n.mu.Lock()
	l := n.life
	n.life = nil
	n.mu.Unlock()
	if l == nil {
		n.g.t.Fatalf("hatest: Stop(%q): it does not run", n.name)
	}
	l.cancel()
	if !n.await(l) {
		n.g.t.Fatalf("hatest: Stop(%q): it did not leave within %s", n.name, n.g.cfg.WaitTimeout)
	}
}

// shutdown ends whatever runs of the member, for the test's cleanup.
func (n *node) shutdown() {
	n.mu.Lock()
	lives := []*life{n.life, n.dying}
	n.life, n.dying = nil, nil
	n.mu.Unlock()
	for _, l := range lives {
		if l == nil {
			continue
		}
		l.cancel()
		if !n.await(l) {
			n.g.t.Errorf("hatest: %s did not stop within %s", n.name, n.g.cfg.WaitTimeout)
		}
	}
}

// await waits, bounded, for a life's election to end.
func (n *node) await(l *life) bool {
	timer := time.NewTimer(n.g.cfg.WaitTimeout)
	defer timer.Stop()
	select {
	case <-l.done:
		return true
	case <-timer.C:
		return false
	}
}
