package ha

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hanode/hanode/ha/internal/core"
	"go.uber.org/zap"
)

// SessionConfig configures a Session. Every field is required unless noted.
type SessionConfig struct {
	// Servers are the ZooKeeper servers, host:port each.
	Servers []string
	// Root is the znode under which hanode keeps its tree, chroot included.
	Root string
	// Timeout is the ZooKeeper session timeout asked for; it is also the
	// lease duration of every election on the session.
	Timeout time.Duration
	// Name names this process to the others: every election on the session
	// publishes it, and it is what Leader reports (optional: default
	// "<Host>-<PID>"; required with ReserveName).
	Name string
	// ReserveName makes the session reserve Name for this process
	// (names/<Name>, defended for the session's life) before any of its
	// elections may join, so that no two live processes use one name: of
	// two, the one that started later is refused with ErrNameInUse. hanode run reserves its NAME;
	// a library user who only wants an election need not.
	ReserveName bool
	// Host, PID and Started identify the process (optional: default the
	// host name, os.Getpid() and the time of OpenSession).
	Host    string
	PID     int
	Started time.Time
	// ACL applies to every znode created; nil means open (world:anyone),
	// or, with Access.Secrets, the secrets' digest ACL (set one or the
	// other).
	ACL []zk.ACL
	// Access is how the session authenticates and protects the tree (shared
	// secrets) and whether it dials with TLS (optional: open, plain TCP).
	Access Access
	// Logger receives session events; nil means none.
	Logger *zap.Logger
	// ObserveRequest, when set, is told of every request an election sends:
	// its type (create, delete, set, get, children or multi) and how long
	// the client took to answer, failures included. It runs on the sending
	// goroutine and must not block. Metrics time requests through it.
	ObserveRequest func(op string, took time.Duration)
}

// Session is one process's presence in ZooKeeper: it owns the client (and
// replaces it when it has had no session for a session timeout), reserves
// and defends the server name if asked to, and serves any number of
// elections, of different groups, over one connection. Elections see it
// through sessionStatus and do.
type Session struct {
	cfg    SessionConfig
	log    *zap.Logger
	dialer *negotiatedDialer
	l      core.Layout

	conn atomic.Pointer[zk.Conn]
	stat atomic.Pointer[sessionStatus]
	zks  atomic.Pointer[ZKStatus] // for status readers: computed on each state change

	requests, writes, watches, replacements atomic.Uint64

	wake chan struct{}
	quit chan struct{}
	done chan struct{}
	err  error // set before done closes

	mu     sync.Mutex
	subs   map[chan struct{}]struct{}
	groups map[string]bool // groups an election runs in (joinGroup)

	batch *batcher // the elections' writes, together (batch.go)

	// Owned by the session goroutine.
	epoch        uint64
	lastSession  time.Time
	nameSID      int64 // session in which the name is reserved
	nameBusy     bool
	nameWatchSID int64
	cause        string
	connOnly     bool
	events       chan func()
	// Access (access.go): the client whose credentials were added and the
	// one whose access was proved; the tree is converted once.
	authAdded, authConn *zk.Conn
	authBusy, converted bool
}

// sessionStatus is what elections read.
type sessionStatus struct {
	up    bool // a session exists and the name is reserved in it (if asked)
	id    int64
	epoch uint64
	cause string // why not up: "disconnected", "expired", "no quorum"
}

// OpenSession checks cfg and starts connecting in the background; it does
// not wait for ZooKeeper. Close it when done.
func OpenSession(cfg SessionConfig) (*Session, error) {
	var errs []error
	if len(cfg.Servers) == 0 {
		errs = append(errs, errors.New("no ZooKeeper servers"))
	}
	if cfg.Root == "" || cfg.Root[0] != '/' {
		errs = append(errs, fmt.Errorf("root %q must be an absolute znode path", cfg.Root))
	}
	if cfg.ReserveName && cfg.Name == "" {
		errs = append(errs, errors.New("a name is required to reserve it"))
	}
	if cfg.Timeout < MinLease {
		errs = append(errs, fmt.Errorf("session timeout %s is below %s", cfg.Timeout, MinLease))
	}
	if err := cfg.Access.check(); err != nil {
		errs = append(errs, err)
	}
	if cfg.ACL != nil && len(cfg.Access.Secrets) > 0 {
		errs = append(errs, errors.New("ACL and Access.Secrets are exclusive: the secrets make the ACL"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("ha: session: %w", err)
	}
	cfg = withDefaults(cfg)
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	s := &Session{
		cfg: cfg, log: log, dialer: &negotiatedDialer{tls: cfg.Access.TLS, log: log}, l: core.NewLayout(cfg.Root, ""),
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		subs: map[chan struct{}]struct{}{}, groups: map[string]bool{}, events: make(chan func(), 64),
	}
	s.batch = &batcher{s: s}
	s.stat.Store(&sessionStatus{cause: "connecting"})
	if err := s.connect(); err != nil {
		return nil, err
	}
	s.updateZK()
	go s.run()
	return s, nil
}

// withDefaults fills in SessionConfig's optional fields.
func withDefaults(cfg SessionConfig) SessionConfig {
	if cfg.ACL == nil {
		cfg.ACL = cfg.Access.acl()
	}
	if cfg.ACL == nil {
		cfg.ACL = zk.WorldACL(zk.PermAll)
	}
	if cfg.Host == "" {
		cfg.Host, _ = os.Hostname()
		if cfg.Host == "" {
			cfg.Host = "localhost"
		}
	}
	if cfg.PID == 0 {
		cfg.PID = os.Getpid()
	}
	if cfg.Started.IsZero() {
		cfg.Started = time.Now()
	}
	if cfg.Name == "" {
		cfg.Name = cfg.Host + "-" + strconv.Itoa(cfg.PID)
	}
	return cfg
}

// Name is the name this process publishes (SessionConfig.Name, or its
// default).
func (s *Session) Name() string { return s.cfg.Name }

// Done is closed when the session has ended for good: after Close, or when
// the cluster refused it (Err says why).
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is why the session ended: nil after Close, or a refusal
// (ErrNameInUse, only with ReserveName). Valid once Done is closed.
func (s *Session) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Close ends the session: the client is closed, so ZooKeeper deletes its
// ephemeral nodes at once. Elections on it must have finished first.
func (s *Session) Close() {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	<-s.done
}

// Timeout is the session timeout asked for.
func (s *Session) Timeout() time.Duration { return s.cfg.Timeout }

// ZK describes the client's state for status. It allocates nothing: the
// ping endpoints read it on every request.
func (s *Session) ZK() ZKStatus {
	if st := s.zks.Load(); st != nil {
		return *st
	}
	return ZKStatus{State: zk.StateDisconnected.String()}
}

func (s *Session) updateZK() {
	c := s.conn.Load()
	zs := c.State()
	st := ZKStatus{Connected: zs == zk.StateHasSession, State: zs.String()}
	if id := c.SessionID(); id != 0 {
		st.SessionID = core.SessionHex(id)
	}
	s.zks.Store(&st)
}

// SessionStats counts what a session asked of ZooKeeper.
type SessionStats struct {
	Requests    uint64 // every request, reads and writes
	Writes      uint64 // creates, deletes, sets and multis
	WatchEvents uint64 // watch notifications delivered to elections
	// Replacements counts clients replaced after a session timeout
	// without a session (checkClient).
	Replacements uint64
	// Batches counts the multis that carried the writes of several
	// elections (batch.go), and Batched those writes: each batch is one
	// of Requests and of Writes.
	Batches, Batched uint64
}

// Stats returns the session's counters so far.
func (s *Session) Stats() SessionStats {
	st := SessionStats{Requests: s.requests.Load(), Writes: s.writes.Load(), WatchEvents: s.watches.Load(),
		Replacements: s.replacements.Load()}
	st.Batches, st.Batched = s.batch.stats()
	return st
}

func (s *Session) status() sessionStatus { return *s.stat.Load() }

// subscribe returns a channel that receives a value whenever the status
// may have changed.
func (s *Session) subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}
}

func (s *Session) publish(st sessionStatus) {
	s.stat.Store(&st)
	s.mu.Lock()
	for ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	s.mu.Unlock()
}

// joinGroup marks group as taken by an election on this session; false if
// another election of it runs here. Two members of one group on one
// session would take each other's member node for a leftover of their own
// and delete it.
func (s *Session) joinGroup(group string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.groups[group] {
		return false
	}
	s.groups[group] = true
	return true
}

// manyGroups reports whether elections of more than one group run on the
// session: only then do their writes wait for each other (batch.go).
func (s *Session) manyGroups() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.groups) > 1
}

// leaveGroup undoes joinGroup once the election has left the group.
func (s *Session) leaveGroup(group string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.groups, group)
}

// do performs op on the current client; it fails fast (ErrNotSent) without
// a session, rather than wait in the client's queue for a later connection
// or session, where its premises no longer hold.
//
// epoch is the epoch of the connection that delivered the reply: the one
// current when the request was sent, if no other was dialed before the
// reply came; 0 (unknown) otherwise.
func (s *Session) do(op core.Op) (r core.Result, watch <-chan zk.Event, epoch uint64) {
	conn := s.conn.Load()
	if conn.State() != zk.StateHasSession {
		return core.Result{Err: core.ErrNotSent, Detail: errNoSession.Error()}, nil, 0
	}
	s.requests.Add(1)
	switch op.Kind {
	case core.OpCreate, core.OpDelete, core.OpSet, core.OpMulti:
		s.writes.Add(1)
	}
	before := s.dialer.dials.Load()
	start := time.Now()
	r, watch = do(conn, s.cfg.ACL, op)
	if f := s.cfg.ObserveRequest; f != nil {
		f(op.Kind.String(), time.Since(start))
	}
	if s.dialer.dials.Load() == before {
		epoch = before
	}
	return r, watch, epoch
}

// doIn is do for a request whose premises hold on connection epoch only
// (a fenced write's checks): refused, ErrNotSent, when another connection
// was dialed since. (A freeze between this test and the request reaching
// go-zookeeper's queue still lets it out on the next connection of the same
// session; ha/doc.go, "Fenced writes", says what that leaves.)
func (s *Session) doIn(epoch uint64, op core.Op) (core.Result, <-chan zk.Event, uint64) {
	if s.dialer.dials.Load() != epoch {
		return core.Result{Err: core.ErrNotSent, Detail: "the connection the write was fenced on has been replaced"}, nil, 0
	}
	return s.do(op)
}

// deliveredOn is the epoch of a watch notification received now, set by a
// request answered in epoch: that one if no connection was dialed since,
// else 0 (unknown: it may come from a later connection's re-set watches).
func (s *Session) deliveredOn(epoch uint64) uint64 {
	if s.dialer.dials.Load() == epoch {
		return epoch
	}
	return 0
}

// connect starts a new client; its events reach the session goroutine.
func (s *Session) connect() error {
	conn, _, err := zk.Connect(s.cfg.Servers, s.cfg.Timeout,
		zk.WithLogger(zkLogger(s.log)),
		zk.WithDialer(s.dialer.dial),
		zk.WithEventCallback(s.onEvent))
	if err != nil {
		return fmt.Errorf("ha: connect: %w", err)
	}
	s.conn.Store(conn)
	return nil
}

// onEvent runs on go-zookeeper's receive goroutine: wake, never block.
func (s *Session) onEvent(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	// go-zookeeper reports a new session from the goroutine that dialed
	// the connection, before it carries any request: the latest dial is
	// the connection that has the session.
	conn := s.dialer.dials.Load()
	s.post(func() { s.onState(ev, conn) })
}

func (s *Session) post(f func()) {
	select {
	case s.events <- f:
	case <-s.done:
	}
}

func (s *Session) run() {
	tick := time.NewTicker(s.cfg.Timeout / 4)
	defer tick.Stop()
	s.lastSession = time.Now()
	defer close(s.done)
	defer func() { s.conn.Load().Close() }()
	for {
		select {
		case <-s.quit:
			s.publish(sessionStatus{epoch: s.epoch, cause: "closed"})
			return
		case f := <-s.events:
			f()
		case <-tick.C:
			s.checkClient()
		}
		if s.err != nil {
			s.publish(sessionStatus{epoch: s.epoch, cause: "refused"})
			return
		}
	}
}

// onState follows the client's state. Every StateHasSession is a new
// connection: a new epoch (doc.go, "Observations"), numbered by the
// connection (dialNo), so that replies and watches can be stamped with the
// connection that delivered them (do).
func (s *Session) onState(ev zk.Event, dialNo uint64) {
	conn := s.conn.Load()
	lvl := zap.InfoLevel
	if ev.State == zk.StateConnecting {
		lvl = zap.DebugLevel
	}
	s.log.Log(lvl, "zookeeper session", zap.String("zk_state", ev.State.String()),
		zap.String("server", ev.Server), zapSession(core.SessionHex(conn.SessionID())))
	switch ev.State {
	case zk.StateHasSession:
		s.epoch = dialNo
		s.cause, s.connOnly = "", false
		s.lastSession = time.Now()
	case zk.StateConnected:
		s.connOnly = true
	case zk.StateExpired:
		s.cause = "expired"
	case zk.StateDisconnected:
		// A server that accepts the connection and closes it before a
		// session is established has no quorum (or is starting); a reset
		// or a connect request never answered is a broken path.
		if s.connOnly && s.dialer.lastClosedByServer() {
			s.cause = "no quorum"
		} else if s.cause != "expired" && s.cause != "no quorum" {
			s.cause = "disconnected"
		}
		s.connOnly = false
	}
	s.refresh()
}

// refresh publishes the status, reserving the name first in a new session
// (with ReserveName).
func (s *Session) refresh() {
	s.updateZK()
	conn := s.conn.Load()
	id := conn.SessionID()
	if conn.State() != zk.StateHasSession {
		s.publish(sessionStatus{epoch: s.epoch, cause: s.orCause("disconnected")})
		return
	}
	if s.authConn != conn {
		// Before anything else on a new client: its credentials, proved.
		s.publish(sessionStatus{epoch: s.epoch, cause: "authenticating"})
		s.authenticate(conn)
		return
	}
	if s.cfg.ReserveName && s.nameSID != id {
		s.publish(sessionStatus{epoch: s.epoch, cause: "reserving name"})
		s.reserveName(conn, id)
		return
	}
	s.publish(sessionStatus{up: true, id: id, epoch: s.epoch})
}

func (s *Session) orCause(def string) string {
	if s.cause != "" {
		return s.cause
	}
	return def
}

// checkClient replaces a client that has had no session for longer than the
// session timeout. By then the server has surely expired our session, and a
// client that keeps retrying can be locked out for good: after ZooKeeper
// lost its data it refuses a client that has seen a newer zxid than its own.
func (s *Session) checkClient() {
	old := s.conn.Load()
	if old.State() == zk.StateHasSession {
		s.lastSession = time.Now()
		return
	}
	if time.Since(s.lastSession) <= s.cfg.Timeout {
		return
	}
	s.log.Warn("no ZooKeeper session for longer than the session timeout; starting a fresh client",
		zap.Duration("without_session", time.Since(s.lastSession)), zap.String("zk_state", old.State().String()))
	s.dialer.closeAll() // the old client's sockets: it must not linger in a handshake
	if err := s.connect(); err != nil {
		s.log.Error("cannot start a ZooKeeper client", zap.Error(err))
		return
	}
	go old.Close() // may wait for a server that does not answer
	s.replacements.Add(1)
	s.lastSession = time.Now()
	s.epoch = 0 // no connection's: nothing observed before counts, nothing matches until a new session
	s.refresh()
}

// Negotiated is the session timeout the server last granted (0: not yet).
func (s *Session) Negotiated() time.Duration { return s.dialer.negotiated() }
