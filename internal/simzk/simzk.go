// Package simzk is a deterministic in-memory model of a standalone ZooKeeper
// 3.8 server, the server inside hanode's simulator.
//
// A Server is synchronous and single-threaded: it starts no goroutine, reads
// no clock and draws no random number. Every method that can depend on time
// takes now, the simulation's time since its start, and now must never go
// backwards. Requests execute atomically at the server; the caller models the
// network (what a client sent, what reached the server, which replies and
// watch events were delivered and when).
//
// Faithfulness is the point: conformance_test.go runs the same seeded scripts
// against a real ZooKeeper 3.8 server and this model and compares every reply
// and every watch event. The behaviours it pins down, several of them
// surprising, are:
//
//   - Every write request consumes a zxid, including one that fails (a
//     NodeExists create, a BadVersion delete, a failed or empty multi), and so
//     do session creation, close and expiry. Reads, Sync and SetWatches do not.
//   - A node stores the number of children ever created (the sequence number
//     source), and reports Cversion = 2*created - NumChildren, which counts
//     creates plus deletes while children are only ever deleted once. So
//     deleting children raises the reported Cversion but not the next sequence
//     number; the fresh tree reports Cversion -1 on "/" and -2 on "/zookeeper".
//   - A failed multi answers ErrorResult OK (nil) for the ops before the
//     failing one, the failing op's error, and RUNTIMEINCONSISTENCY
//     (ErrRuntimeInconsistency) for the ops after it; go-zookeeper returns the
//     failing op's error from Multi.
//   - Watch events of one transaction are delivered in the order the
//     transaction changed the tree: per created node NodeCreated then the
//     parent's NodeChildrenChanged, per deleted node NodeDeleted (data and
//     child watchers, each session once) then the parent's
//     NodeChildrenChanged. A watch is consumed by the first event, so in one
//     multi SetData then Delete of a node gives a GetData watcher only
//     NodeDataChanged, and a child watcher of that node NodeDeleted.
//   - Closing or expiring a session deletes its ephemerals in the iteration
//     order of Java's HashSet of their paths (a clone of it), not in creation
//     order; the model reproduces that order.
//   - A session expires at the first tick boundary strictly after its last
//     packet plus its negotiated timeout (ZooKeeper's ExpiryQueue), and the
//     requested timeout is clamped to [MinSessionTimeout, MaxSessionTimeout].
//
// Not modelled: ACLs and authentication (every node has the open ACL,
// Aversion stays 0), container and TTL nodes, quotas, persistent and
// recursive watches, the 1 MB request limit, reconfig, and the exact
// iteration order of Children (the model answers in creation order, which
// real ZooKeeper does not promise; callers must sort).
package simzk

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-zookeeper/zk"
)

// ErrRuntimeInconsistency is the error of the ops after the failing op of a
// failed multi. go-zookeeper has no sentinel for ZooKeeper's code -2 and
// returns fmt.Errorf("unknown error: -2"); this error has the same text, so
// compare it with errors.Is against this value in the model and by message
// against a real server.
var ErrRuntimeInconsistency = errors.New("unknown error: -2")

// Kind is the type of a request.
type Kind uint8

// Request kinds.
const (
	// Create creates Path with Data. Flags: zk.FlagEphemeral,
	// zk.FlagSequence, both, or 0.
	Create Kind = iota + 1
	// Delete deletes Path if its version matches Version (-1: any).
	Delete
	// SetData replaces Path's data if its version matches Version (-1: any).
	SetData
	// GetData reads Path's data and stat; Watch sets a data watch if the node
	// exists.
	GetData
	// Exists reads Path's stat; Watch sets a data watch whether or not the
	// node exists (an exist watch when it does not).
	Exists
	// Children lists Path's children; Watch sets a child watch if the node
	// exists.
	Children
	// Check fails unless Path exists with version Version (-1: any version).
	// Meant for Multi; go-zookeeper cannot send it alone.
	Check
	// Sync answers Path; it touches the session and changes nothing.
	Sync
	// Multi runs Ops (Create, Delete, SetData, Check) atomically.
	Multi
)

var kindNames = [...]string{"Invalid", "Create", "Delete", "SetData", "GetData", "Exists", "Children", "Check", "Sync", "Multi"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Op is one ZooKeeper request.
type Op struct {
	Kind    Kind
	Path    string
	Data    []byte // Create, SetData; copied by the server
	Version int32  // Delete, SetData, Check: -1 matches any version
	Flags   int32  // Create: zk.FlagEphemeral, zk.FlagSequence, both, or 0
	Watch   bool   // GetData, Exists: data/exist watch; Children: child watch
	Ops     []Op   // Multi only: Create, Delete, SetData, Check
}

func (o Op) String() string {
	switch o.Kind {
	case Create:
		return fmt.Sprintf("Create(%q, %q, flags=%d)", o.Path, o.Data, o.Flags)
	case Delete, Check:
		return fmt.Sprintf("%v(%q, v=%d)", o.Kind, o.Path, o.Version)
	case SetData:
		return fmt.Sprintf("SetData(%q, %q, v=%d)", o.Path, o.Data, o.Version)
	case GetData, Exists, Children:
		return fmt.Sprintf("%v(%q, watch=%v)", o.Kind, o.Path, o.Watch)
	case Multi:
		s := "Multi["
		for i, sub := range o.Ops {
			if i > 0 {
				s += ", "
			}
			s += sub.String()
		}
		return s + "]"
	default:
		return fmt.Sprintf("%v(%q)", o.Kind, o.Path)
	}
}

// Result is the server's answer to one Op, shaped like what go-zookeeper
// returns.
type Result struct {
	// Err is nil or one of go-zookeeper's error values (zk.ErrNoNode,
	// zk.ErrNodeExists, zk.ErrBadVersion, zk.ErrNotEmpty,
	// zk.ErrNoChildrenForEphemerals, zk.ErrBadArguments,
	// zk.ErrSessionExpired, ...) or ErrRuntimeInconsistency. A path that
	// go-zookeeper rejects before sending gives zk.ErrInvalidPath (and the
	// request never reaches the server: no touch, no zxid); the server's own
	// path check gives zk.ErrBadArguments. Exists on a missing node gives
	// zk.ErrNoNode, which go-zookeeper's Exists reports as (false, nil).
	Err error
	// Path is the created path (with the sequence suffix) of Create, and the
	// path of Sync.
	Path string
	// Data is GetData's data. It aliases the server's copy: do not modify it.
	Data []byte
	// Stat is the node's stat after GetData, Exists, Children and SetData,
	// zero otherwise (go-zookeeper's Create and Delete return none). Ctime and
	// Mtime are the model's now in milliseconds.
	Stat zk.Stat
	// Children are Children's names, in creation order. Real ZooKeeper uses
	// an arbitrary order: never rely on it.
	Children []string
	// Multi holds one result per op of a Multi. After a failure: nil for the
	// ops before the failing one, its error, then ErrRuntimeInconsistency.
	Multi []Result
}

// Event is a watch notification for one session.
type Event struct {
	Session int64
	Type    zk.EventType
	Path    string
}

func (e Event) String() string {
	return fmt.Sprintf("%#x %v %s", e.Session, e.Type, e.Path)
}

// Config configures a Server. The zero value gives ZooKeeper's defaults.
type Config struct {
	// Tick is ZooKeeper's tickTime: sessions expire on multiples of it.
	// Default 2 s.
	Tick time.Duration
	// MinSessionTimeout is the smallest negotiated session timeout.
	// Default 2 ticks.
	MinSessionTimeout time.Duration
	// MaxSessionTimeout is the largest negotiated session timeout.
	// Default 20 ticks.
	MaxSessionTimeout time.Duration
}

// firstSessionID is the first session id, shaped like a server with myid 1.
const firstSessionID = int64(1) << 56

// noExpiry is later than any expiry.
const noExpiry = time.Duration(1<<63 - 1)

type session struct {
	id      int64
	timeout time.Duration
	expiry  time.Duration // a tick boundary
	// eph lists the session's ephemeral nodes; ephCap is the capacity of
	// ZooKeeper's HashSet of their paths, which never shrinks (0 until the
	// first ephemeral). Both decide the order in which close deletes them.
	eph    []*node
	ephCap int
}

// Server is the model of one ZooKeeper server. It is not safe for concurrent
// use.
type Server struct {
	cfg Config

	nodes    map[string]*node
	zxid     int64
	sessions map[int64]*session
	nextID   int64  // next session id; never reset, so ids are never reused
	ephSeq   uint64 // insertion counter of ephemeral sets
	now      time.Duration
	// lowExpiry is at or before every session's expiry (touches only move
	// expiries later), so advance skips the scan until now reaches it.
	lowExpiry time.Duration

	dataW  map[string][]int64 // data and exist watches: path -> sessions
	childW map[string][]int64 // child watches: path -> sessions

	// Expirations processed by calls that cannot return them, kept for the
	// next ExpireDue.
	pendingExpired []int64
	pendingEvents  []Event

	// Scratch space reused by writes.
	recs  []rec
	paths []string
}

// New returns a server with an empty tree ("/" and "/zookeeper" with its
// "quota" and "config" children), no sessions and zxid 0.
func New(cfg Config) *Server {
	if cfg.Tick <= 0 {
		cfg.Tick = 2 * time.Second
	}
	if cfg.MinSessionTimeout <= 0 {
		cfg.MinSessionTimeout = 2 * cfg.Tick
	}
	if cfg.MaxSessionTimeout <= 0 {
		cfg.MaxSessionTimeout = 20 * cfg.Tick
	}
	s := &Server{cfg: cfg, nextID: firstSessionID}
	s.reset()
	return s
}

// Config returns the server's configuration with defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// reset empties the tree, sessions, watches and zxid.
func (s *Server) reset() {
	s.nodes = make(map[string]*node)
	s.sessions = make(map[int64]*session)
	s.dataW = make(map[string][]int64)
	s.childW = make(map[string][]int64)
	s.zxid = 0
	s.lowExpiry = noExpiry
	s.pendingExpired, s.pendingEvents = nil, nil
	root := &node{path: "/"}
	s.nodes["/"] = root
	zkNode := s.addSystemNode(root, "/zookeeper")
	s.addSystemNode(zkNode, "/zookeeper/quota")
	cfg := s.addSystemNode(zkNode, "/zookeeper/config")
	cfg.aversion = -1 // ZooKeeper sets its read-only ACL with version -1
}

func (s *Server) addSystemNode(parent *node, path string) *node {
	n := &node{path: path, name: path[len(parent.path):], parent: parent}
	if parent.path != "/" {
		n.name = n.name[1:]
	}
	parent.children = append(parent.children, n)
	s.nodes[path] = n
	return n
}

// advance records now, panicking if time went backwards, and expires the
// sessions due at now. It returns the expiry events.
func (s *Server) advance(now time.Duration) []Event {
	if now < s.now {
		panic(fmt.Sprintf("simzk: time went backwards: %v after %v", now, s.now))
	}
	s.now = now
	if now < s.lowExpiry {
		return nil
	}
	ids, evs := s.expireDue(now, nil)
	s.pendingExpired = append(s.pendingExpired, ids...)
	return evs
}

// LastZxid is the zxid of the last transaction, which the server sends in
// every reply header (go-zookeeper keeps it for SetWatches).
func (s *Server) LastZxid() int64 { return s.zxid }

// Now is the latest time the server was given.
func (s *Server) Now() time.Duration { return s.now }

// ---- sessions ----

// roundUp is ZooKeeper's ExpiryQueue.roundToNextInterval: the first tick
// boundary strictly after t.
func (s *Server) roundUp(t time.Duration) time.Duration {
	return (t/s.cfg.Tick + 1) * s.cfg.Tick
}

// Negotiate returns the session timeout the server grants for requested:
// requested in whole milliseconds, clamped to [MinSessionTimeout,
// MaxSessionTimeout].
func (s *Server) Negotiate(requested time.Duration) time.Duration {
	t := requested.Truncate(time.Millisecond)
	return min(max(t, s.cfg.MinSessionTimeout), s.cfg.MaxSessionTimeout)
}

// CreateSession creates a session (a createSession transaction) and returns
// its id and negotiated timeout. It expires at the first tick boundary after
// now plus that timeout unless touched.
func (s *Server) CreateSession(requested time.Duration, now time.Duration) (id int64, negotiated time.Duration) {
	s.pendingEvents = append(s.pendingEvents, s.advance(now)...)
	negotiated = s.Negotiate(requested)
	id = s.nextID
	s.nextID++
	s.zxid++
	ss := &session{id: id, timeout: negotiated, expiry: s.roundUp(now + negotiated)}
	s.sessions[id] = ss
	s.lowExpiry = min(s.lowExpiry, ss.expiry)
	return id, negotiated
}

// Touch records a packet from the session (a request or a ping) at now,
// moving its expiry to the first tick boundary after now plus its timeout.
// It returns zk.ErrSessionExpired if the session is unknown or expired.
// Expirations due at now are processed first; their events are returned by
// the next ExpireDue.
func (s *Server) Touch(id int64, now time.Duration) error {
	s.pendingEvents = append(s.pendingEvents, s.advance(now)...)
	return s.touch(id, now)
}

func (s *Server) touch(id int64, now time.Duration) error {
	ss := s.sessions[id]
	if ss == nil {
		return zk.ErrSessionExpired
	}
	ss.expiry = s.roundUp(now + ss.timeout)
	return nil
}

// Alive reports whether the session exists (was created and has not been
// closed or expired).
func (s *Server) Alive(id int64) bool { return s.sessions[id] != nil }

// Expiry returns the instant at which the session expires unless touched.
func (s *Server) Expiry(id int64) (time.Duration, bool) {
	ss := s.sessions[id]
	if ss == nil {
		return 0, false
	}
	return ss.expiry, true
}

// Sessions returns the ids of the live sessions, ascending.
func (s *Server) Sessions() []int64 {
	ids := make([]int64, 0, len(s.sessions))
	for id := range s.sessions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// CloseSession is the client's Close(): a closeSession transaction that
// deletes the session's ephemerals, firing other sessions' watches. The
// closing session itself gets no events (real ZooKeeper may still send it
// some just before its close reply). It returns zk.ErrSessionExpired if the
// session is unknown or expired. Events of expirations due at now come first.
func (s *Server) CloseSession(id int64, now time.Duration) ([]Event, error) {
	evs := s.advance(now)
	if s.sessions[id] == nil {
		return evs, zk.ErrSessionExpired
	}
	return s.killSession(id, evs), nil
}

// Disconnect records that the session's connection closed while the session
// lives on: the server forgets the session's watches, which go-zookeeper
// re-registers with SetWatches when it reconnects.
func (s *Server) Disconnect(id int64) { s.dropWatches(id) }

// NextExpiry returns the earliest instant at which some session expires.
func (s *Server) NextExpiry() (time.Duration, bool) {
	var first time.Duration
	found := false
	for _, ss := range s.sessions {
		if !found || ss.expiry < first {
			first, found = ss.expiry, true
		}
	}
	return first, found
}

// ExpireDue runs ZooKeeper's session tracker up to now: every session whose
// expiry is at or before now is closed (deleting its ephemerals and firing
// other sessions' watches) in order of expiry, then session id. It also
// returns the expirations and events that earlier calls processed but could
// not return (Touch, CreateSession), and the ids expired by calls that
// returned only the events (Apply, SetWatches, CloseSession).
func (s *Server) ExpireDue(now time.Duration) (expired []int64, events []Event) {
	evs := s.advance(now)
	expired, s.pendingExpired = s.pendingExpired, nil
	events, s.pendingEvents = s.pendingEvents, nil
	return expired, append(events, evs...)
}

// expireDue closes the sessions due at now and appends their events to evs.
func (s *Server) expireDue(now time.Duration, evs []Event) ([]int64, []Event) {
	var due []*session
	s.lowExpiry = noExpiry
	for _, ss := range s.sessions {
		if ss.expiry <= now {
			due = append(due, ss)
		} else {
			s.lowExpiry = min(s.lowExpiry, ss.expiry)
		}
	}
	if len(due) == 0 {
		return nil, evs
	}
	slices.SortFunc(due, func(a, b *session) int {
		if a.expiry != b.expiry {
			return cmp.Compare(a.expiry, b.expiry)
		}
		return cmp.Compare(a.id, b.id)
	})
	ids := make([]int64, len(due))
	for i, ss := range due {
		ids[i] = ss.id
		evs = s.killSession(ss.id, evs)
	}
	return ids, evs
}

// killSession is a closeSession transaction: the session's watches go first
// (it gets no events), then its ephemerals in ZooKeeper's order.
func (s *Server) killSession(id int64, evs []Event) []Event {
	ss := s.sessions[id]
	s.zxid++
	s.dropWatches(id)
	for _, n := range closeOrder(ss) {
		evs = s.deleteNode(n, s.zxid, evs)
	}
	delete(s.sessions, id)
	return evs
}
