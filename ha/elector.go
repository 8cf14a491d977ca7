package ha

import (
	"context"
	"errors"
	"fmt"
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
	store atomic.Pointer[store] // replaced with conn; each op captures one at launch
	snap  atomic.Pointer[snapshot]

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

	// sessionSID is the session id last seen healthy, sessionSince when we
	// first saw it, and lastSession the last time the client had a session.
	sessionSID   int64
	sessionSince time.Time
	lastSession  time.Time
	// sawPred: in this membership we have seen a member below ours, so if we
	// lead it is because the server, with its history, removed that member.
	sawPred bool

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
	if err := e.connect(); err != nil {
		return err
	}
	defer func() { e.conn.Load().Close() }()
	defer close(e.done)
	e.lastSession = e.now()

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
			e.checkClient()
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

// connect opens a ZooKeeper client; its events reach the owner through onEvent.
func (e *Elector) connect() error {
	conn, _, err := zk.Connect(e.cfg.Servers, e.cfg.SessionTimeout,
		zk.WithLogger(zap.NewStdLog(e.log.Named("zk"))),
		zk.WithDialer(e.dialer.dial),
		zk.WithEventCallback(e.onEvent))
	if err != nil {
		return fmt.Errorf("ha: connect: %w", err)
	}
	st := newStore(conn)
	e.store.Store(&st)
	e.conn.Store(conn)
	return nil
}

// st is the store of the current client.
func (e *Elector) st() store { return *e.store.Load() }

// checkClient replaces a client that has had no session for longer than the
// session timeout. By then the server has surely expired our session, and a
// client that keeps retrying can be locked out for good: after ZooKeeper
// lost its data it refuses a client that has seen a newer zxid than its own.
func (e *Elector) checkClient() {
	old := e.conn.Load()
	if old.State() == zk.StateHasSession {
		e.lastSession = e.now()
		return
	}
	if e.now().Sub(e.lastSession) <= e.timeout() {
		return
	}
	e.log.Warn("no ZooKeeper session for longer than the session timeout; starting a fresh client",
		zap.Duration("without_session", e.now().Sub(e.lastSession)), zap.String("zk_state", old.State().String()))
	if e.joined {
		e.lose("no ZooKeeper session for longer than the session timeout")
	}
	if err := e.connect(); err != nil {
		e.log.Error("cannot start a ZooKeeper client", zap.Error(err))
		return
	}
	go old.Close() // may wait for a server that does not answer
	e.lastSession = e.now()
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
			// A server that accepts the connection and closes it before a
			// session is established has no quorum (or is starting); a
			// connection reset before any reply is a broken path.
			if e.connectedOnly && !e.dialer.lastReset() {
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
	if conn.State() == zk.StateHasSession && conn.SessionID() != e.sessionSID {
		e.sessionSID, e.sessionSince = conn.SessionID(), e.now()
	}
	if !e.joined && !e.opBusy && conn.State() == zk.StateHasSession {
		e.startJoin(conn.SessionID())
	}
	e.publish()
}
