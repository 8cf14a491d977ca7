package ha

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"
)

// Config configures an Elector. Every field is required unless noted.
type Config struct {
	// Servers are the ZooKeeper servers, host:port each.
	Servers []string
	// Root is the znode under which hanode keeps its tree, chroot included
	// (e.g. "/hanode").
	Root string
	// Group is the HA_ID.
	Group string
	// Self is what this member publishes; Name, Role, Region and Host are
	// required.
	Self MemberInfo
	// SessionTimeout is the ZooKeeper session timeout asked for.
	SessionTimeout time.Duration
	// Margin is how long before the session could expire the lease ends; it
	// must exceed the time the duty needs to stop.
	Margin time.Duration
	// Logger receives every state change; nil means no logging. It should
	// already carry the node's name.
	Logger *zap.Logger
	// Callbacks connect the duty; both may be nil.
	Callbacks Callbacks
}

// Callbacks tell the duty when to run. Both run on the elector's owner
// goroutine, in order, never concurrently.
type Callbacks struct {
	// OnStartedLeading runs when this node becomes active, after its term
	// is committed. It must not block. ctx is cancelled when leadership
	// ends, just before OnStoppedLeading.
	OnStartedLeading func(ctx context.Context, term int64)
	// OnStoppedLeading runs when leadership ends for any reason (lease ran
	// out, session expired, node lost, shutdown) and must return only once
	// the duty has stopped, within the margin. It runs only after
	// OnStartedLeading.
	OnStoppedLeading func(reason string)
	// OnLeaseExtended runs whenever an active node's lease is set or
	// extended, with the time it has left. It must not block. A duty guard
	// in another process uses it to stop the duty on its own clock when the
	// extensions stop coming (this process froze, starved or died).
	OnLeaseExtended func(left time.Duration)
	// Fence, when set, runs before a new leader starts its duty whenever a
	// previous leader may have acted: the node stays standby until Fence
	// returns nil, and retries with backoff after an error. It runs on its
	// own goroutine; ctx ends when the node loses its membership.
	Fence func(ctx context.Context, req FenceRequest) error
}

// LeaderInfo identifies one leadership of a group.
type LeaderInfo struct {
	Name  string    `json:"name"`
	Host  string    `json:"host"`
	HTTP  string    `json:"http,omitempty"`
	Term  int64     `json:"term"`
	Since time.Time `json:"since"`
}

// FenceRequest asks to fence the previous leader before this node's term
// starts.
type FenceRequest struct {
	// Term is the term this node will lead in.
	Term int64
	// Previous is the last leader that may have run its duty.
	Previous LeaderInfo
}

// pendingFence is a committed but not yet active leadership.
type pendingFence struct {
	term    int64
	record  leaderRecord
	version int32
	target  leaderRecord
	fenced  bool
}

// Elector runs one node's membership of one HA group. Run is the only code
// that changes election state; State may be called from any goroutine.
type Elector struct {
	cfg    Config
	log    *zap.Logger
	layout layout
	now    func() time.Time
	dialer *negotiatedDialer

	// Shared with readers and op goroutines.
	conn  atomic.Pointer[zk.Conn]
	snap  atomic.Pointer[snapshot]
	store store // set once before any op starts

	wake    chan struct{} // session events pending
	evMu    sync.Mutex
	evQueue []zk.Event
	results chan func() // op results, run on the owner
	done    chan struct{}

	// Owner state: touched only by Run's goroutine.
	phase      Phase
	reason     string
	since      time.Time
	gen        uint64 // bumped whenever membership is lost; stale results are dropped
	joined     bool
	sid        int64 // session that owns our member node
	guid       string
	guidSID    int64
	own        memberNode
	ackSend    time.Time
	term       int64 // our term while active
	groupTerm  int64 // the group's term as last read
	seenTerm   int64
	leaderName string
	members    []Member
	infos      map[string]MemberInfo
	opBusy     bool // a join or elect is in flight
	electAgain bool
	renewBusy  bool
	renewCount int
	dutyCancel context.CancelFunc
	leaseTimer *time.Timer
	retryTimer *time.Timer
	backoff    time.Duration
	fatal      error

	fence        *pendingFence
	fenceBusy    bool
	fenceCancel  context.CancelFunc
	fenceTimer   *time.Timer
	fenceBackoff time.Duration

	// cause classifies why the session is unhealthy, from the events seen:
	// "disconnected", "expired" or "no quorum"; "" while healthy.
	cause         string
	connectedOnly bool // TCP connected since the last session, but no session yet
}

// snapshot is what the owner publishes after every change.
type snapshot struct {
	state   State
	ackSend time.Time
	cause   string
}

// NewElector checks cfg and returns an elector that has not started.
func NewElector(cfg Config) (*Elector, error) {
	var errs []error
	if len(cfg.Servers) == 0 {
		errs = append(errs, errors.New("no ZooKeeper servers"))
	}
	if cfg.Group == "" || cfg.Self.Name == "" || cfg.Self.Role == "" || cfg.Self.Host == "" {
		errs = append(errs, errors.New("group, name, role and host are required"))
	}
	if cfg.Margin <= 0 || cfg.Margin >= cfg.SessionTimeout {
		errs = append(errs, fmt.Errorf("margin %s must be positive and below the session timeout %s", cfg.Margin, cfg.SessionTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("ha: config: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	e := &Elector{
		cfg:     cfg,
		log:     log.With(zap.String("ha_id", cfg.Group)), // the caller's logger names the node
		layout:  layout{root: cfg.Root, group: cfg.Group},
		now:     time.Now,
		dialer:  &negotiatedDialer{},
		wake:    make(chan struct{}, 1),
		results: make(chan func(), 16),
		done:    make(chan struct{}),
		phase:   PhaseStarting,
		reason:  "connecting to ZooKeeper",
		infos:   map[string]MemberInfo{},
	}
	e.since = e.now()
	e.publish()
	return e, nil
}

// State returns the node's state evaluated against the clock now: an active
// or standby node whose lease ran out reports PhaseDisconnected at once,
// whether or not the owner has caught up.
func (e *Elector) State() State {
	s := e.snap.Load()
	st := s.state
	if c := e.conn.Load(); c != nil {
		zs := c.State()
		st.ZK = ZKStatus{Connected: zs == zk.StateHasSession, State: zs.String()}
		if id := c.SessionID(); id != 0 {
			st.ZK.SessionID = sessionHex(id)
		}
	}
	left := leaseLeft(s.ackSend, e.timeout(), e.cfg.Margin, e.now())
	if (st.Phase == PhaseActive || st.Phase == PhaseStandby) && left <= 0 {
		st.Phase, st.Reason = PhaseDisconnected, e.lapseReason(s.cause)
	}
	if st.Phase == PhaseDisconnected || st.Phase == PhaseStarting {
		st.Cause = s.cause
	}
	if st.Phase == PhaseActive {
		st.LeaseLeft = left
	}
	return st
}

// Run connects, joins the group and follows it until ctx ends; then it stops
// the duty, deletes the member node and closes the session, in that order.
// It returns nil after a shutdown, or a refusal (ErrNameInUse,
// ErrGroupMismatch) that makes further tries pointless.
func (e *Elector) Run(ctx context.Context) error {
	conn, _, err := zk.Connect(e.cfg.Servers, e.cfg.SessionTimeout,
		zk.WithLogger(zap.NewStdLog(e.log.Named("zk"))),
		zk.WithDialer(e.dialer.dial),
		zk.WithEventCallback(e.onEvent))
	if err != nil {
		return fmt.Errorf("ha: connect: %w", err)
	}
	e.store = newStore(conn)
	e.conn.Store(conn)
	defer conn.Close()
	defer close(e.done)

	e.leaseTimer = stoppedTimer()
	e.retryTimer = stoppedTimer()
	e.fenceTimer = stoppedTimer()
	tick := time.NewTimer(e.renewEvery())
	defer tick.Stop()
	e.reconcile()
	for {
		select {
		case <-ctx.Done():
			e.shutdown("shutdown")
			return nil
		case <-e.wake:
			e.reconcile()
		case f := <-e.results:
			f()
		case <-tick.C:
			tick.Reset(e.renewEvery())
			e.startRenew()
		case <-e.leaseTimer.C:
			e.checkLease()
		case <-e.retryTimer.C:
			e.retry()
		case <-e.fenceTimer.C:
			e.startFence()
		}
		if e.fatal != nil {
			e.shutdown("refused")
			return e.fatal
		}
	}
}

// onEvent runs on go-zookeeper's receive goroutine: queue and wake, never block.
func (e *Elector) onEvent(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	e.evMu.Lock()
	e.evQueue = append(e.evQueue, ev)
	e.evMu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// post hands an op's result to the owner; it gives up once Run has returned.
func (e *Elector) post(f func()) {
	select {
	case e.results <- f:
	case <-e.done:
	}
}

// reconcile compares our membership with the session we have now and joins
// when we have a healthy session and no member node.
func (e *Elector) reconcile() {
	e.evMu.Lock()
	evs := e.evQueue
	e.evQueue = nil
	e.evMu.Unlock()
	conn := e.conn.Load()
	for _, ev := range evs {
		lvl := zap.InfoLevel
		if ev.State == zk.StateConnecting {
			lvl = zap.DebugLevel
		}
		e.log.Log(lvl, "zookeeper session", zap.String("zk_state", ev.State.String()),
			zap.String("server", ev.Server), zapSession(sessionHex(conn.SessionID())))
		switch ev.State {
		case zk.StateHasSession:
			e.cause, e.connectedOnly = "", false
		case zk.StateConnected:
			e.connectedOnly = true
		case zk.StateExpired:
			e.cause = "expired"
		case zk.StateDisconnected:
			// A server that accepts the connection and drops it before a
			// session is established has no quorum (or is starting).
			if e.connectedOnly {
				e.cause = "no quorum"
			} else if e.cause != "expired" && e.cause != "no quorum" {
				e.cause = "disconnected"
			}
			e.connectedOnly = false
		}
		if ev.State == zk.StateExpired && e.joined {
			e.lose("session expired")
		}
	}
	if e.joined && conn.SessionID() != e.sid {
		e.lose("session expired")
	}
	if !e.joined && !e.opBusy && conn.State() == zk.StateHasSession {
		e.startJoin(conn.SessionID())
	}
	e.publish()
}

func (e *Elector) retry() {
	if e.joined {
		e.startElect()
	} else {
		e.reconcile()
	}
}

// retryLater backs off after a failed op (250 ms doubling to 2 s).
func (e *Elector) retryLater(what string, err error) {
	e.backoff = min(max(2*e.backoff, 250*time.Millisecond), 2*time.Second)
	e.log.Warn("zookeeper operation failed; retrying", zap.String("op", what), zap.Error(err),
		zap.Duration("in", e.backoff))
	e.retryTimer.Reset(e.backoff)
}

func (e *Elector) startJoin(sid int64) {
	if e.guid == "" || e.guidSID != sid {
		e.guid, e.guidSID = newGUID(), sid
	}
	e.opBusy = true
	gen, guid, self := e.gen, e.guid, e.cfg.Self
	self.SeenTerm = e.seenTerm
	go func() {
		res, err := e.join(sid, guid, self)
		e.post(func() { e.joinDone(gen, res, err) })
	}()
}

func (e *Elector) joinDone(gen uint64, res joinResult, err error) {
	e.opBusy = false
	switch {
	case gen != e.gen:
		e.reconcile()
	case IsRefusal(err):
		e.fatal = err
	case err != nil:
		e.retryLater("join", err)
	case res.sid != e.conn.Load().SessionID():
		e.retryLater("join", errors.New("session changed while joining"))
	default:
		e.joined, e.sid, e.own, e.backoff = true, res.sid, res.node, 0
		e.ackSend = res.ackSend
		e.log.Info("joined group", zap.String("node", res.node.Name), zap.Int64("seq", res.node.Seq),
			zapSession(sessionHex(res.sid)))
		// Every new member starts as a standby; only the election makes it active.
		e.transition(PhaseStandby, fmt.Sprintf("joined as seq %d", res.node.Seq))
		e.armLease()
		e.startElect()
	}
}

func (e *Elector) startElect() {
	if !e.joined {
		return
	}
	if e.opBusy {
		e.electAgain = true
		return
	}
	if e.fence != nil {
		return // a committed term waits for its fence; electing again would hide whom to fence
	}
	e.opBusy, e.electAgain = true, false
	gen, own, sid, known, seen := e.gen, e.own, e.sid, maps.Clone(e.infos), e.seenTerm
	go func() {
		res, err := e.elect(own, sid, known, seen, e.cfg.Callbacks.Fence != nil)
		e.post(func() { e.electDone(gen, res, err) })
	}()
}

func (e *Elector) electDone(gen uint64, res electResult, err error) {
	e.opBusy = false
	if gen != e.gen {
		e.reconcile()
		return
	}
	if err != nil {
		e.retryLater("elect", err)
		return
	}
	e.applyView(res.view)
	switch {
	case res.lost:
		e.lose("member node gone")
		e.reconcile()
	case res.leader && res.fence != nil:
		e.fence = &pendingFence{term: res.term, record: res.record, version: res.version, target: *res.fence}
		e.transition(PhaseStandby, fmt.Sprintf("term %d committed; fencing previous leader %s (term %d)",
			res.term, res.fence.Name, res.fence.Term))
		e.startFence()
	case res.leader:
		e.activated(res.term, res.ackSend, fmt.Sprintf("lowest member; term %d committed", res.term))
	case e.electAgain || res.again:
		e.startElect()
	default:
		if e.phase == PhaseActive {
			// Cannot happen: sequences only grow and our node still exists.
			panic(fmt.Sprintf("ha: active node %s is no longer the lowest member", e.own.Name))
		}
		e.transition(PhaseStandby, fmt.Sprintf("standby behind %s (seq %d)", nameOr(res.view.infos[res.pred.Name].Name, res.pred.Name), res.pred.Seq))
		go func() {
			select {
			case ev := <-res.watch:
				e.post(func() { e.predecessorChanged(gen, ev) })
			case <-e.done:
			}
		}()
	}
}

// predecessorChanged runs when the node we watch is deleted or the watch is
// dropped (session trouble): either way, look again.
func (e *Elector) predecessorChanged(gen uint64, ev zk.Event) {
	if gen != e.gen {
		return
	}
	e.log.Debug("predecessor changed", zap.String("event", ev.Type.String()), zap.String("node", ev.Path))
	if ev.Type == zk.EventNotWatching {
		e.reconcile()
		if !e.joined {
			return
		}
	}
	e.startElect()
}

func (e *Elector) startRenew() {
	if !e.joined || e.renewBusy {
		return
	}
	e.renewBusy = true
	e.renewCount++
	refresh := e.renewCount%4 == 0
	gen, own, sid, known := e.gen, e.own, e.sid, maps.Clone(e.infos)
	go func() {
		res, err := e.renew(own, sid, refresh, known)
		e.post(func() { e.renewDone(gen, res, err) })
	}()
}

func (e *Elector) renewDone(gen uint64, res renewResult, err error) {
	e.renewBusy = false
	switch {
	case gen != e.gen:
	case err != nil:
		// The lease runs out on its own clock; nothing to do but log.
		e.log.Debug("renew failed", zap.Error(err), zap.Duration("lease_left", e.leaseLeft()))
	case res.lost:
		e.lose("member node gone")
		e.reconcile()
	default:
		e.ackSend = later(e.ackSend, res.ackSend)
		if res.view != nil {
			e.applyView(*res.view)
		}
		switch {
		case e.phase == PhaseActive:
			e.armLease()
			e.extended()
		case e.phase == PhaseStandby:
			e.armLease()
		case e.fence != nil:
			e.transition(PhaseStandby, "lease regained; fencing still pending")
			e.armLease()
		default:
			e.startElect() // the lease lapsed but our node survived: stand again
		}
		e.publish()
	}
}

// checkLease runs when the lease timer fires.
func (e *Elector) checkLease() {
	if e.leaseLeft() > 0 {
		e.armLease()
		return
	}
	switch e.phase {
	case PhaseActive:
		e.stepDown(e.lapseReason(e.cause))
	case PhaseStandby:
		e.transition(PhaseDisconnected, e.lapseReason(e.cause))
	}
}

func (e *Elector) armLease() {
	if left := e.leaseLeft(); left > 0 {
		e.leaseTimer.Reset(left)
	}
}

// lose drops our membership: the session or our node is gone.
func (e *Elector) lose(reason string) {
	switch e.phase {
	case PhaseActive:
		e.stepDown(reason)
	case PhaseStandby:
		e.transition(PhaseDisconnected, reason)
	}
	e.gen++
	e.joined, e.sid, e.own, e.ackSend, e.guid = false, 0, memberNode{}, time.Time{}, ""
	e.electAgain = false
	e.leaseTimer.Stop()
	e.dropFence()
}

// activated takes a proven, committed term: active if the proof still gives
// a lease, else prove again.
func (e *Elector) activated(term int64, ackSend time.Time, reason string) {
	e.ackSend = later(e.ackSend, ackSend)
	if e.phase == PhaseActive {
		e.armLease() // already leading: the round only renewed the proof
		return
	}
	if e.conn.Load().SessionID() != e.sid || e.leaseLeft() <= 0 {
		e.startElect() // the proof came too late to lead on; stand again
		return
	}
	e.term = term
	e.becomeActive(reason)
}

// startFence runs the Fence callback for the pending term, off the owner.
func (e *Elector) startFence() {
	if e.fence == nil || e.fenceBusy || !e.joined {
		return
	}
	e.fenceBusy = true
	ctx, cancel := context.WithCancel(context.Background())
	e.fenceCancel = cancel
	gen, f := e.gen, *e.fence
	req := FenceRequest{Term: f.term, Previous: LeaderInfo{Name: f.target.Name, Host: f.target.Host,
		HTTP: f.target.HTTP, Term: f.target.Term, Since: f.target.Since}}
	e.log.Info("fencing previous leader", zap.String("previous", req.Previous.Name),
		zap.String("previous_host", req.Previous.Host), zap.Int64("previous_term", req.Previous.Term), zap.Int64("term", f.term))
	go func() {
		err := e.cfg.Callbacks.Fence(ctx, req)
		e.post(func() { e.fenceDone(gen, f.term, err) })
	}()
}

func (e *Elector) fenceDone(gen uint64, term int64, err error) {
	e.fenceBusy = false
	if gen != e.gen || e.fence == nil || e.fence.term != term {
		return
	}
	if err != nil {
		e.fenceBackoff = min(max(2*e.fenceBackoff, 500*time.Millisecond), 10*time.Second)
		e.log.Warn("fencing failed; staying standby", zap.Error(err), zap.Int64("term", term),
			zap.Duration("retry_in", e.fenceBackoff))
		e.fenceTimer.Reset(e.fenceBackoff)
		return
	}
	e.fenceBackoff = 0
	e.log.Info("previous leader fenced", zap.String("previous", e.fence.target.Name), zap.Int64("term", term))
	f := *e.fence
	e.opBusy = true
	own, sid := e.own, e.sid
	go func() {
		ack, lost, err := e.activate(own, sid, f.record, f.version)
		e.post(func() { e.activateDone(gen, f.term, ack, lost, err) })
	}()
}

func (e *Elector) activateDone(gen uint64, term int64, ack time.Time, lost bool, err error) {
	e.opBusy = false
	if gen != e.gen || e.fence == nil || e.fence.term != term {
		e.reconcile()
		return
	}
	switch {
	case err != nil:
		e.log.Warn("activation failed; fencing again", zap.Error(err))
		e.fenceTimer.Reset(500 * time.Millisecond)
	case lost:
		e.dropFence()
		e.startElect()
	default:
		e.dropFence()
		e.activated(term, ack, fmt.Sprintf("lowest member; previous leader fenced; term %d", term))
	}
}

func (e *Elector) dropFence() {
	if e.fenceCancel != nil {
		e.fenceCancel()
		e.fenceCancel = nil
	}
	e.fence = nil
	e.fenceTimer.Stop()
}

// extended tells a duty guard how long the lease has left.
func (e *Elector) extended() {
	if f := e.cfg.Callbacks.OnLeaseExtended; f != nil {
		f(e.leaseLeft())
	}
}

func (e *Elector) becomeActive(reason string) {
	e.seenTerm = max(e.seenTerm, e.term)
	e.groupTerm = e.term
	e.leaderName = e.cfg.Self.Name
	e.transition(PhaseActive, reason)
	ctx, cancel := context.WithCancel(context.Background())
	e.dutyCancel = cancel
	e.extended() // the guard learns the lease before the duty exists
	if f := e.cfg.Callbacks.OnStartedLeading; f != nil {
		f(ctx, e.term)
	}
	e.armLease()
}

// stepDown ends leadership: readers see it first, then the duty stops.
func (e *Elector) stepDown(reason string) {
	e.transition(PhaseDisconnected, reason)
	e.leaseTimer.Stop()
	if e.dutyCancel != nil {
		e.dutyCancel()
		e.dutyCancel = nil
	}
	start := e.now()
	if f := e.cfg.Callbacks.OnStoppedLeading; f != nil {
		f(reason)
	}
	e.log.Info("duty stopped", zap.Int64("term", e.term), zap.String("reason", reason),
		zap.Duration("took", e.now().Sub(start)), zap.Duration("lease_left", e.leaseLeft()))
}

// shutdown: stop the duty, then delete our nodes, then (in Run) close.
func (e *Elector) shutdown(reason string) {
	e.dropFence()
	if e.phase == PhaseActive {
		e.stepDown(reason)
	} else {
		e.transition(PhaseDisconnected, reason)
	}
	if !e.joined {
		return
	}
	own, name, sid := e.layout.member(e.own.Name), e.layout.name(e.cfg.Self.Name), e.sid
	done := make(chan error, 1)
	go func() {
		err := e.store.conn.Delete(own, -1)
		if ok, st, xerr := e.store.conn.Exists(name); xerr == nil && ok && st.EphemeralOwner == sid {
			_ = e.store.conn.Delete(name, st.Version)
		}
		done <- err
	}()
	select {
	case err := <-done:
		e.log.Info("left group", zap.String("node", e.own.Name), zap.Error(err))
	case <-time.After(2 * time.Second):
		e.log.Warn("left group without deleting the member node; its session will expire", zap.String("node", e.own.Name))
	}
}

// transition changes phase, logs it and publishes. Moves the state machine
// cannot make are bugs, and panic naming both ends.
func (e *Elector) transition(to Phase, reason string) {
	from := e.phase
	if from == to && reason == e.reason {
		return
	}
	if !allowed(from, to) {
		panic(fmt.Sprintf("ha: impossible transition %s -> %s (%s)", from, to, reason))
	}
	e.phase, e.reason = to, reason
	if from != to {
		e.since = e.now()
		e.log.Info("state change", zap.String("from", string(from)), zap.String("to", string(to)),
			zap.Int64("term", e.currentTerm()), zap.String("reason", reason), zap.Duration("lease_left", e.leaseLeft()))
	} else {
		e.log.Debug("state reason", zap.String("state", string(to)), zap.String("reason", reason))
	}
	e.publish()
}

// allowed lists the moves of the state machine. Starting is left once;
// active is reached only from a member that proved its node.
func allowed(from, to Phase) bool {
	switch from {
	case PhaseStarting:
		return to == PhaseStandby || to == PhaseDisconnected
	case PhaseStandby:
		return to == PhaseStandby || to == PhaseActive || to == PhaseDisconnected
	case PhaseActive:
		return to == PhaseDisconnected
	case PhaseDisconnected:
		return to == PhaseStandby || to == PhaseActive || to == PhaseDisconnected
	}
	return false
}

func (e *Elector) applyView(v view) {
	e.members, e.infos = v.members, v.infos
	e.groupTerm = max(e.groupTerm, v.leader.Term)
	e.seenTerm = max(e.seenTerm, v.leader.Term)
	leader := ""
	if len(v.members) > 0 {
		leader = v.members[0].Name
	}
	if leader != e.leaderName {
		e.log.Info("leader observed", zap.String("leader", leader), zap.Int64("term", e.groupTerm))
		e.leaderName = leader
	}
}

func (e *Elector) currentTerm() int64 {
	if e.phase == PhaseActive {
		return e.term
	}
	return e.groupTerm
}

func (e *Elector) publish() {
	e.snap.Store(&snapshot{
		state: State{
			Phase: e.phase, Reason: e.reason, Since: e.since, Term: e.currentTerm(),
			Leader: e.leaderName, Members: e.members,
		},
		ackSend: e.ackSend,
		cause:   e.cause,
	})
}

func (e *Elector) timeout() time.Duration {
	return effectiveTimeout(e.cfg.SessionTimeout, e.dialer.negotiated())
}

func (e *Elector) leaseLeft() time.Duration {
	return leaseLeft(e.ackSend, e.timeout(), e.cfg.Margin, e.now())
}

func (e *Elector) renewEvery() time.Duration { return renewInterval(e.timeout(), e.cfg.Margin) }

// lapseReason explains a lapsed lease, naming the cause when one is known.
func (e *Elector) lapseReason(cause string) string {
	if cause == "" {
		cause = "lease expired"
	}
	return fmt.Sprintf("%s: no acknowledgement from ZooKeeper for %s", cause, e.timeout()-e.cfg.Margin)
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func nameOr(name, node string) string {
	if name != "" {
		return name
	}
	return node
}
