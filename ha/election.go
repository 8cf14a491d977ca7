package ha

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hanode/hanode/ha/internal/core"
	"github.com/hanode/hanode/internal/clockwatch"
	"go.uber.org/zap"
)

// ElectionConfig configures an Election. Every field is required unless
// noted.
type ElectionConfig struct {
	// Group is the HA group's id (hanode's HA_ID): the members of one group
	// elect one leader among themselves.
	Group string
	// Role is recorded with the group: a member with another role is
	// refused (ErrGroupMismatch). Region and HTTP (optional) are published
	// with the member, for status; the name, host, pid and start time come
	// from the session.
	Role   string
	Region string
	HTTP   string
	// Margin is how long before the lease bound the node stops acting; it
	// must exceed the time the duty needs to stop (StopDuty).
	Margin time.Duration
	// FenceMaxTries is how many failed Fence calls in one term make this
	// node step aside and rejoin at the back, so that another member may
	// fence and lead (optional; 0: retry for ever).
	FenceMaxTries int
	// Policy is the group's election policy (optional): PolicyFirstCome
	// (the default, "") or PolicyPriority. Every member of a group must use
	// the same (ErrGroupMismatch otherwise).
	Policy string
	// Priority orders who should lead under PolicyPriority: lower is
	// preferred (optional; 0). Members with a worse priority step behind a
	// better one; the holder keeps the lease unless Preempt.
	Priority int
	// Preempt (PolicyPriority only): the holder hands over gracefully
	// (as Resign) to a member with a better priority once it has been in
	// the group for PreemptDelay.
	Preempt      bool
	PreemptDelay time.Duration
	// NoFailover: this node joins, follows and serves reads, but never
	// leads.
	NoFailover bool
	// Callbacks connect the duty (optional).
	Callbacks Callbacks
	// Logger receives every state change; nil means none. It should
	// already carry the node's name.
	Logger *zap.Logger
}

// Callbacks connect the duty: the work only the leader may do. Their names
// differ from client-go's LeaderCallbacks on purpose, because the contract
// does too (the table in the package documentation compares them).
// StartDuty, StopDuty, LeaseExtended and LeaderChanged run on the election's
// goroutine, in order, never concurrently; StopDuty must return within
// Margin, the others at once: while one runs, the election neither extends
// the lease nor hears ZooKeeper. Fence runs on a goroutine of its own.
// Every field may be nil.
type Callbacks struct {
	// StartDuty runs when this node becomes active, after its claim is
	// committed (and any fence done), with the term: a fencing token that
	// grows with every leadership of the group. It must not block: start
	// the work in a goroutine of your own. (Unlike client-go's
	// OnStartedLeading, which client-go runs in its own goroutine and
	// which may run for the whole leadership.) ctx is cancelled when the
	// leadership ends, just before StopDuty.
	StartDuty func(ctx context.Context, term int64)
	// StopDuty runs when the leadership ends for any reason (lease ran out,
	// membership lost, Resign, shutdown), and only after StartDuty: a node
	// that never led never sees it (client-go's OnStoppedLeading runs
	// whenever Run returns). It must return only once the duty has
	// stopped, within Margin: nothing it started may still act. A non-nil
	// error says the stop is unconfirmed (some of the duty may still run):
	// the node then leaves without releasing the lease, so the next leader
	// waits the lease out, as after a crash, instead of starting at once.
	StopDuty func(reason string) error
	// LeaseExtended runs whenever an active node's lease is set or
	// extended, with its end on this process's monotonic clock; the first
	// call comes just before StartDuty. A duty guard in another process
	// uses it to stop the duty on its own clock when the extensions stop
	// coming (this process froze, starved or died). Must not block.
	LeaseExtended func(until time.Time)
	// ReleaseTicket runs with every LeaseExtended with what a duty guard
	// in another process needs to release the lease itself once this
	// process has provably exited and the duty is stopped (nil: it may
	// not; see ReleaseAfterExit). The ticket holds ZooKeeper credentials
	// derived from the shared secret: pass it only to a process of the
	// same user, over a pipe. Must not block.
	ReleaseTicket func(ticket []byte)
	// LeaderChanged runs whenever the group's leader, as this node sees
	// it, changes (its name or its term; see Leader): client-go's
	// OnNewLeader, but on the election's goroutine, so it must not block.
	// It is for information, like Observe: whether this node may act is
	// StartDuty's and State's to say.
	LeaderChanged func(Leader)
	// Fence, when set, runs before a new leader starts its duty whenever a
	// previous leader may have acted: the node stays in PhaseFencing until
	// Fence returns nil, and retries with backoff after an error. ctx ends
	// when the node loses its claim.
	Fence func(ctx context.Context, req FenceRequest) error
}

// Election runs this process's membership of one HA group on a Session. Run
// is the only code that changes its state, and runs once; State, Leader,
// Campaign, Resign and Observe may be called from any goroutine.
type Election struct {
	s    *Session
	cfg  ElectionConfig
	log  *zap.Logger
	core *core.Core

	snap   atomic.Pointer[core.Snapshot]
	events chan core.Event
	quit   chan struct{} // closed when Run returns; doneErr is set by then
	local  []core.Event  // events the owner raised itself, handled before others

	dutyCancel  context.CancelFunc
	fenceCancel context.CancelFunc
	doneErr     error
	finished    bool
	started     atomic.Bool // Run was called

	feedMu sync.Mutex
	feeds  map[chan core.Transition]struct{}
	fenced chan fencedReq

	// Campaign, Resign, Observe and LeaderChanged (campaign.go).
	resigns    chan resignReq
	resigning  []resignReq // owned by Run: waiting for the membership to end
	lastLeader Leader      // owned by Run: the value LeaderChanged last saw
	changeMu   sync.Mutex
	changed    chan struct{} // closed (and replaced) when phase or leader change

	healthMu   sync.Mutex
	health     *core.EvHealth // the latest verdict Run has not taken
	healthKick chan struct{}  // one pending kick for Run

	clock     *clockWatch                        // Run's detector of a stalled monotonic clock
	clockLast atomic.Pointer[clockwatch.Reading] // its last reading, for State

	kv *stateArea // the group's state area (kv.go), followed while Run runs
}

// NewElection checks cfg and returns an election on s that has not started.
func NewElection(s *Session, cfg ElectionConfig) (*Election, error) {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	self := MemberInfo{Name: s.cfg.Name, Role: cfg.Role, Region: cfg.Region, Host: s.cfg.Host, HTTP: cfg.HTTP,
		PID: s.cfg.PID, Started: s.cfg.Started, Priority: cfg.Priority, NoFailover: cfg.NoFailover}
	c, err := core.New(core.Config{Root: s.cfg.Root, Group: cfg.Group, Self: self, Lease: s.cfg.Timeout,
		Margin: cfg.Margin, NewGUID: newGUID, Fencing: cfg.Callbacks.Fence != nil, FenceMaxTries: cfg.FenceMaxTries,
		Policy: cfg.Policy, Preempt: cfg.Preempt, PreemptDelay: cfg.PreemptDelay})
	if err != nil {
		return nil, err
	}
	e := &Election{s: s, cfg: cfg, log: log.With(zap.String("ha_id", cfg.Group)), core: c,
		events: make(chan core.Event, 64), quit: make(chan struct{}), feeds: map[chan core.Transition]struct{}{},
		fenced: make(chan fencedReq), resigns: make(chan resignReq), changed: make(chan struct{}),
		healthKick: make(chan struct{}, 1)}
	e.clock = newClockWatch(cfg.Margin)
	e.kv = newStateArea(e)
	snap := c.Snapshot()
	e.snap.Store(&snap)
	return e, nil
}

// State returns the node's state evaluated against the clock now: an active
// node whose lease ran out reports so at once, whether or not Run has
// caught up (a process resumed from a pause never answers from a stale flag).
func (e *Election) State() State {
	s := e.snap.Load()
	now := time.Now()
	st := State{Phase: s.Phase, Reason: s.Reason, Since: s.Since, Term: s.Term, Leader: s.Leader,
		Members: s.Members, Ignored: s.Ignored, Problem: s.Problem, ZK: e.s.ZK(), Paused: s.Paused}
	if st.Phase == PhaseActive {
		if by := e.stalledSince(); by > 0 {
			st.Phase, st.Reason = PhaseDisconnected, stallReason(by)
		} else if left := s.LeaseEnd.Sub(now); left > 0 {
			st.LeaseLeft = left
		} else {
			st.Phase, st.Reason = PhaseDisconnected, "lease expired: no acknowledged extension in time"
		}
	}
	if st.Phase != PhaseActive {
		st.Cause = e.s.status().cause
	}
	return st
}

// Subscribe returns a feed of every transition from now on, in order, and
// a function that ends the subscription. The feed never drops: a slow
// reader delays nobody but itself (transitions queue for it).
func (e *Election) Subscribe() (<-chan Transition, func()) {
	in := make(chan core.Transition, 16)
	out := make(chan core.Transition)
	stop := make(chan struct{})
	e.feedMu.Lock()
	e.feeds[in] = struct{}{}
	e.feedMu.Unlock()
	go func() {
		defer close(out)
		var q []core.Transition
		for {
			var send chan core.Transition
			var head core.Transition
			if len(q) > 0 {
				send, head = out, q[0]
			}
			select {
			case t := <-in:
				q = append(q, t)
			case send <- head:
				q = q[1:]
			case <-stop:
				return
			}
		}
	}()
	var once sync.Once
	return out, func() {
		once.Do(func() {
			e.feedMu.Lock()
			delete(e.feeds, in)
			e.feedMu.Unlock()
			close(stop)
		})
	}
}

// ErrNotLeader refuses a fenced write from a node that does not lead.
var ErrNotLeader = errors.New("ha: not the leader")

type fencedReq struct {
	reply chan fenceReply
}

type fenceReply = core.FenceBasis

// inGroup reports whether every op of op (a multi) is on a znode of this
// election's group: only such a write joins other groups' in a batch, whose
// ops are then on distinct znodes (batch.go).
func (e *Election) inGroup(op core.Op) bool {
	prefix := core.NewLayout(e.s.cfg.Root, e.cfg.Group).GroupNode() + "/"
	for _, o := range op.Ops {
		if !strings.HasPrefix(o.Path, prefix) {
			return false
		}
	}
	return true
}

// Fenced makes one term-fenced write: build's ops, in one ZooKeeper multi
// after checks that succeed only while this node still holds the group's
// lease (our member node at the version our last lease extension left, the
// lease record as our last write of it left it; see Core.Fence). build gets
// the term the write is fenced by, to record it in what it writes; it may
// be called again, with the then current term, when a lease extension
// raced the write. Ops may be Create, Delete, Set and Check. Fenced returns
// the term the write landed in, ErrNotLeader (wrapped) when this node does
// not lead or its lease moved on, ErrOutcomeUnknown (wrapped) when the
// connection broke with the write outstanding, or another error when one of
// build's ops failed (ZooKeeper applied none of them).
func (e *Election) Fenced(ctx context.Context, build func(term int64) []Op) (int64, error) {
	term, _, err := e.fencedWrite(ctx, build)
	return term, err
}

// fencedWrite is Fenced, with ZooKeeper's answer to the write that landed.
func (e *Election) fencedWrite(ctx context.Context, build func(term int64) []Op) (int64, core.Result, error) {
	for {
		f, err := e.fenceOf(ctx)
		if err != nil {
			return 0, core.Result{}, err
		}
		if f.Wait {
			// An extension is in flight (our member node's next version is
			// not known yet), or a look of a new epoch is: either is
			// answered within a round trip.
			if err := fenceRetryPause(ctx); err != nil {
				return 0, core.Result{}, err
			}
			continue
		}
		ops := build(f.Term)
		op := core.Op{Kind: core.OpMulti, Ops: append(f.Checks, ops...)}
		var r core.Result
		if e.inGroup(op) {
			r, _ = e.s.batch.doIn(f.Epoch, op, false) // with the other groups' writes (batch.go)
		} else {
			r, _, _ = e.s.doIn(f.Epoch, op)
		}
		if r.Err == core.ErrNone {
			return f.Term, r, nil
		}
		if r.Err == core.ErrNotSent {
			// No session now, or not the connection the checks were taken
			// on: nothing reached ZooKeeper. Ask the core again, after a
			// pause (it may say we still lead while the session is away).
			if err := fenceRetryPause(ctx); err != nil {
				return 0, core.Result{}, err
			}
			continue
		}
		i, _ := core.FailedOp(r)
		if i == 0 && r.Multi[0].Err == core.ErrBadVersion {
			// Our member node moved on: an extension landed first, or our
			// lease did. Ask the core which.
			if g, err := e.fenceOf(ctx); err == nil && (g.Wait || g.Checks[0].Version != f.Checks[0].Version) {
				continue
			}
		}
		if i >= 0 && i < len(f.Checks) {
			return 0, r, fmt.Errorf("%w: the lease moved on (%s)", ErrNotLeader, r.Multi[i].Detail)
		}
		if r.Err == core.ErrLost {
			return 0, r, fmt.Errorf("%w: %s", ErrOutcomeUnknown, r.Detail)
		}
		return 0, r, fmt.Errorf("ha: fenced write: %s", r.Detail)
	}
}

// fenceRetryPause waits before Fenced asks the core again: ctx's error if
// it ends first.
func fenceRetryPause(ctx context.Context) error {
	t := time.NewTimer(5 * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fenceOf asks Run for the term and checks of a fenced write.
func (e *Election) fenceOf(ctx context.Context) (fenceReply, error) {
	req := fencedReq{reply: make(chan fenceReply, 1)}
	select {
	case e.fenced <- req:
	case <-ctx.Done():
		return fenceReply{}, ctx.Err()
	case <-e.quit:
		return fenceReply{}, ErrNotLeader
	}
	var f fenceReply
	select {
	case f = <-req.reply:
	case <-ctx.Done():
		return fenceReply{}, ctx.Err()
	}
	if f.Checks == nil && !f.Wait {
		return fenceReply{}, ErrNotLeader
	}
	return f, nil
}

// SetHealth tells the election the verdict of this node's health check
// (roles.Health decides it from HEALTH_CMD): an unhealthy node leaves the
// line, a leader handing over gracefully first, and joins again at the back
// once healthy. It never blocks; the latest verdict wins.
func (e *Election) SetHealth(ok bool, reason string) {
	e.healthMu.Lock()
	e.health = &core.EvHealth{OK: ok, Reason: reason}
	e.healthMu.Unlock()
	select {
	case e.healthKick <- struct{}{}:
	default: // Run has a kick pending: it reads the latest verdict
	}
}

// takeHealth is the verdict SetHealth left since Run last took one.
func (e *Election) takeHealth() (core.EvHealth, bool) {
	e.healthMu.Lock()
	defer e.healthMu.Unlock()
	h := e.health
	e.health = nil
	if h == nil {
		return core.EvHealth{}, false
	}
	return *h, true
}

// DutyLost tells the election that the duty of term died and could not be
// kept running: the node hands over to another member. It never blocks.
func (e *Election) DutyLost(term int64, reason string) {
	go func() {
		select {
		case e.events <- core.EvDutyLost{Term: term, Reason: reason}:
		case <-e.quit:
		}
	}()
}

// shutdownBound limits how long Run waits, once the duty has stopped, for
// the release to be written before it gives up (the next leader then waits
// for the lease instead).
const shutdownBound = 3 * time.Second

// Run joins the group and follows it until ctx ends or the session ends;
// then it stops the duty, releases the lease if it holds it, and leaves.
// It returns nil after a shutdown, or a refusal (ErrNameInUse,
// ErrGroupMismatch) that makes further tries pointless.
//
// An Election runs once: a second call, concurrent or later, returns
// ErrRunOnce at once and changes nothing; to join again, make a new
// Election. A session takes part in a group once at a time: Run returns
// ErrAlreadyMember while another Election of the same group runs on it.
func (e *Election) Run(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return ErrRunOnce
	}
	defer close(e.quit)
	if !e.s.joinGroup(e.cfg.Group) {
		e.doneErr = fmt.Errorf("%w: %s", ErrAlreadyMember, e.cfg.Group)
		return e.doneErr
	}
	defer e.s.leaveGroup(e.cfg.Group)
	defer e.kv.start()() // the state area is followed while Run runs
	// The group's history hears of every takeover of ours (history.go).
	histFeed, histStop := e.Subscribe()
	histCtx, histCancel := context.WithCancel(context.Background())
	defer func() { histCancel(); histStop() }()
	go e.recordHistory(histCtx, histFeed)
	notify, unsub := e.s.subscribe()
	defer unsub()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	clockTick := time.NewTicker(clockCheckEvery(e.cfg.Margin))
	defer clockTick.Stop()
	var giveUp <-chan time.Time
	shutdown := ctx.Done()
	sessionDone := e.s.Done()
	e.step(e.sessionEvent())
	for !e.finished {
		if len(e.local) > 0 {
			ev := e.local[0]
			e.local = e.local[1:]
			e.step(ev)
			continue
		}
		timer.Reset(e.untilDeadline())
		select {
		case <-shutdown:
			shutdown = nil
			e.s.batch.hurry() // the release waits for a waiting extension's reply
			e.step(core.EvShutdown{})
		case <-sessionDone:
			sessionDone = nil
			e.step(core.EvShutdown{})
			if err := e.s.Err(); err != nil {
				e.doneErr = err
			}
		case <-notify:
			e.step(e.sessionEvent())
		case ev := <-e.events:
			e.step(ev)
		case <-timer.C:
			e.step(core.EvTick{})
		case <-clockTick.C:
			e.checkClock()
		case req := <-e.fenced:
			e.checkClock()
			req.reply <- e.core.Fence(time.Now())
		case r := <-e.resigns:
			e.s.batch.hurry()
			e.resign(r)
		case <-e.healthKick:
			if h, ok := e.takeHealth(); ok {
				e.step(h)
			}
		case <-giveUp:
			e.log.Warn("left the group without releasing: ZooKeeper did not answer in time")
			e.finished = true
		}
		if shutdown == nil && giveUp == nil && e.core.DutyOff() {
			giveUp = time.After(shutdownBound)
		}
	}
	if e.fenceCancel != nil {
		e.fenceCancel()
	}
	if e.dutyCancel != nil { // cannot happen: the core stops the duty before it finishes
		e.dutyCancel()
	}
	for _, r := range e.resigning {
		close(r.done) // no longer a member, let alone the leader
	}
	e.resigning = nil
	return e.doneErr
}

func (e *Election) sessionEvent() core.Event {
	st := e.s.status()
	return core.EvSession{Up: st.up, ID: st.id, Epoch: st.epoch}
}

func (e *Election) untilDeadline() time.Duration {
	d, ok := e.core.NextDeadline()
	if !ok {
		return time.Hour
	}
	return max(time.Until(d), 0)
}

// step feeds one event to the core and carries out its actions.
func (e *Election) step(ev core.Event) {
	now := time.Now()
	e.noticeStall(now) // a stalled clock first: EvClockStall
	acts := e.core.Step(now, ev)
	for _, a := range acts {
		e.execute(a)
	}
	e.publish()
}

func (e *Election) post(ev core.Event) {
	select {
	case e.events <- ev:
	case <-e.quit:
	}
}

func (e *Election) execute(a core.Action) {
	cb := e.cfg.Callbacks
	switch a := a.(type) {
	case core.ActRequest:
		go func() {
			var (
				r     core.Result
				ch    <-chan zk.Event
				epoch uint64
			)
			if a.Op.Kind == core.OpMulti { // the election's writes: batched with other groups' (batch.go)
				r, epoch = e.s.batch.do(a.Op, a.Extension)
			} else {
				r, ch, epoch = e.s.do(a.Op)
			}
			e.post(core.EvReply{ID: a.ID, Result: r, Epoch: epoch})
			if ch != nil {
				select {
				case ev := <-ch:
					e.s.watches.Add(1)
					e.post(core.EvWatch{ID: a.ID, Kind: watchKind(ev), Epoch: e.s.deliveredOn(epoch)})
				case <-e.quit:
				}
			}
		}()
	case core.ActStartDuty:
		ctx, cancel := context.WithCancel(context.Background())
		e.dutyCancel = cancel
		if cb.LeaseExtended != nil {
			cb.LeaseExtended(a.LeaseEnd) // the guard learns the lease before the duty exists
		}
		if cb.ReleaseTicket != nil {
			cb.ReleaseTicket(e.encodeTicket(a.Ticket))
		}
		if cb.StartDuty != nil {
			cb.StartDuty(ctx, a.Term)
		}
	case core.ActExtendDuty:
		if cb.LeaseExtended != nil {
			cb.LeaseExtended(a.LeaseEnd)
		}
		if cb.ReleaseTicket != nil {
			cb.ReleaseTicket(e.encodeTicket(a.Ticket))
		}
	case core.ActStopDuty:
		e.stopDuty(a.Reason)
	case core.ActFence:
		e.fence(a.Req)
	case core.ActCancelFence:
		if e.fenceCancel != nil {
			e.fenceCancel()
			e.fenceCancel = nil
		}
	case core.ActTransition:
		e.transition(a.T)
	case core.ActNotice:
		e.notice(a.N)
	case core.ActDone:
		if a.Err != nil {
			e.doneErr = a.Err
		}
		e.finished = true
	}
}

// stopDuty stops the duty (StopDuty) and tells the core whether the stop
// was confirmed.
func (e *Election) stopDuty(reason string) {
	cb := e.cfg.Callbacks
	if e.dutyCancel != nil {
		e.dutyCancel()
		e.dutyCancel = nil
	}
	start := time.Now()
	var err error
	if cb.StopDuty != nil {
		err = cb.StopDuty(reason)
	}
	if err != nil {
		e.log.Error("duty stop not confirmed; leaving without a release, the next leader waits out the lease",
			zap.Int64("term", e.core.Term()), zap.String("reason", reason), zap.Duration("took", time.Since(start)), zap.Error(err))
	} else {
		e.log.Info("duty stopped", zap.Int64("term", e.core.Term()), zap.String("reason", reason),
			zap.Duration("took", time.Since(start)))
	}
	e.local = append(e.local, core.EvDutyStopped{Unconfirmed: err != nil})
}

// fence runs Callbacks.Fence for req on a goroutine of its own.
func (e *Election) fence(req core.FenceRequest) {
	cb := e.cfg.Callbacks
	ctx, cancel := context.WithCancel(context.Background())
	e.fenceCancel = cancel
	p := req.Previous
	cands := make([]string, len(req.Candidates))
	for i, m := range req.Candidates {
		cands[i] = fmt.Sprintf("%s@%s (term %d)", m.Name, m.Host, m.Term)
	}
	e.log.Info("fencing previous leader", zap.String("previous", p.Name), zap.String("previous_host", p.Host),
		zap.Int64("previous_term", p.Term), zap.Bool("previous_known", req.PreviousKnown),
		zap.Strings("candidates", cands), zap.Int64("term", req.Term))
	go func() {
		var err error
		if cb.Fence != nil {
			err = cb.Fence(ctx, req)
		}
		e.post(core.EvFenced{Term: req.Term, Err: err})
	}()
}

// transition logs a phase change and feeds every subscriber.
func (e *Election) transition(t core.Transition) {
	e.log.Info("state change", zap.String("from", string(t.From)), zap.String("to", string(t.To)),
		zap.Int64("term", t.Term), zap.String("reason", t.Reason))
	e.feedMu.Lock()
	for ch := range e.feeds {
		ch <- t // buffered; the subscriber's goroutine queues without bound
	}
	e.feedMu.Unlock()
}

// notice logs a core notice at its level.
func (e *Election) notice(n core.Notice) {
	fields := []zap.Field{zap.String("znode", n.Znode)}
	if n.Fix != "" {
		fields = append(fields, zap.String("fix", n.Fix))
	}
	switch n.Level {
	case "error", "bug":
		e.log.Error(n.Msg, fields...)
	case "warn":
		e.log.Warn(n.Msg, fields...)
	default:
		e.log.Info(n.Msg, fields...)
	}
}

// newGUID returns the 32 hex digits that name this election's member node.
func newGUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("ha: crypto/rand: " + err.Error()) // never fails on Linux
	}
	return hex.EncodeToString(b[:])
}
