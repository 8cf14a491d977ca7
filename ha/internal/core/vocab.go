package core

import "time"

// The vocabulary between the pure core (core.go) and whatever performs its
// I/O: the real driver (election.go, over go-zookeeper) or the simulator
// (sim_test.go). The core emits Actions and consumes Events; nothing else
// crosses. Every ZooKeeper request the election makes is one Op.

// OpKind is a ZooKeeper request type.
type OpKind uint8

// The request types the core uses.
const (
	OpCreate OpKind = iota + 1
	OpDelete
	OpSet
	OpGet
	OpChildren
	OpCheck // only inside OpMulti
	OpMulti
)

var opNames = [...]string{"?", "create", "delete", "set", "get", "children", "check", "multi"}

func (k OpKind) String() string {
	if int(k) < len(opNames) {
		return opNames[k]
	}
	return "?"
}

// Op is one ZooKeeper request.
type Op struct {
	Kind      OpKind
	Path      string
	Data      []byte
	Version   int32 // Delete, Set, Check: -1 matches any version
	Ephemeral bool  // Create
	Sequence  bool  // Create
	// Watch sets a one-shot watch with the request (Get: data watch;
	// Children: child watch). It fires as one EvWatch carrying the
	// request's ID.
	Watch bool
	Ops   []Op // Multi: Create, Delete, Set and Check
}

// ErrKind classifies a request's failure. The core needs only these
// distinctions; the driver maps the client library's errors onto them.
type ErrKind uint8

// Request outcomes.
const (
	ErrNone       ErrKind = iota
	ErrNoNode             // the node (or a parent) does not exist
	ErrNodeExists         // create of an existing node
	ErrBadVersion         // a version check failed
	ErrNotEmpty           // delete of a node with children
	// ErrLost: the connection broke with the request outstanding; it may
	// or may not have been applied.
	ErrLost
	// ErrNotSent: the request was refused before it reached a server (no
	// connection, session expired, client closed): it had no effect.
	ErrNotSent
	ErrOther // anything else (bad arguments, no auth, ...): no effect
)

var errKindNames = [...]string{"ok", "no node", "node exists", "bad version", "not empty", "connection lost",
	"not sent", "error"}

func (e ErrKind) String() string {
	if int(e) < len(errKindNames) {
		return errKindNames[e]
	}
	return "?"
}

// Stat is the part of a znode's stat the core reads.
type Stat struct {
	Version        int32
	Cversion       int32
	EphemeralOwner int64
	Czxid          int64
	Mzxid          int64
}

// Result answers one Op.
type Result struct {
	Err      ErrKind
	Detail   string // the library's error text, for logs
	Path     string // Create: the created path
	Data     []byte
	Stat     Stat
	Children []string
	Multi    []Result // Multi: one per op (stat of each Set)
}

// Event is an input of the core.
type Event interface{ isEvent() }

// EvSession reports the ZooKeeper session: Up with its ID, or down. Epoch
// grows with every connection the client makes, so a reconnect to the same
// session shows as a new epoch: observations made on the old connection are
// dropped (see ha/doc.go, "Observations").
type EvSession struct {
	Up    bool
	ID    int64
	Epoch uint64
}

// EvReply is the outcome of the request with this ID. Epoch is the epoch
// of the connection that delivered it (the EvSession.Epoch of that
// connection), or 0 when the driver cannot tell which connection did (a
// reconnect raced the request): evidence counts only in the epoch that
// carried it, not the one the request was sent in (ha/doc.go, "Observations").
type EvReply struct {
	ID     uint64
	Result Result
	Epoch  uint64
}

// WatchKind is what made a watch fire.
type WatchKind uint8

// Watch outcomes.
const (
	WatchChanged  WatchKind = iota + 1 // data changed
	WatchDeleted                       // node deleted
	WatchChildren                      // children changed
	WatchCreated                       // node created
	WatchLost                          // the watch is gone (session trouble): look again
)

// EvWatch reports that the watch set by request ID fired. Epoch is the
// epoch of the connection that delivered it, 0 when unknown (see EvReply):
// a notification of another epoch only asks for a new look.
type EvWatch struct {
	ID    uint64
	Kind  WatchKind
	Epoch uint64
}

// EvTick wakes the core at or after its NextDeadline.
type EvTick struct{}

// EvDutyStopped answers an ActStopDuty: the duty has stopped, or, with
// Unconfirmed, its stop could not be confirmed (a process of it may still
// run: one stuck in the kernel past the kill's grace). Then the node writes
// no release, which would let a successor start at once; it only leaves,
// and the next leader waits out the lease as after a crash.
type EvDutyStopped struct{ Unconfirmed bool }

// EvDutyLost reports that the duty of Term died and could not be restarted
// (its guard gave up): the node must not stay active.
type EvDutyLost struct {
	Term   int64
	Reason string
}

// EvFenced is the outcome of ActFence for Term.
type EvFenced struct {
	Term int64
	Err  error
}

// EvShutdown asks the core to stop its duty, release and leave the group.
type EvShutdown struct{}

// EvResign asks a holder to hand over: stop its duty, release (so the next
// member claims at once) and rejoin at the back of the group. A member
// that does not hold the lease ignores it.
type EvResign struct{ Reason string }

// EvHealth reports the node's health check verdict (HEALTH_CMD after
// HEALTH_FAILURES failures or HEALTH_RECOVERIES successes): an unhealthy
// node leaves the line (a holder hands over first) and joins again at the
// back once healthy (policy.go).
type EvHealth struct {
	OK     bool
	Reason string
}

// EvClockStall reports that this node's monotonic clock, the one Step's now
// comes from, missed By of real time since the driver last read it (the
// wall or boot clock ran ahead of it: the host was paused or suspended, or
// the wall clock was stepped forward). The core treats its lease as lost
// (clock.go); the driver feeds it before the event whose step noticed
// it (clockwatch.go).
type EvClockStall struct{ By time.Duration }

func (EvSession) isEvent()     {}
func (EvHealth) isEvent()      {}
func (EvReply) isEvent()       {}
func (EvWatch) isEvent()       {}
func (EvTick) isEvent()        {}
func (EvDutyStopped) isEvent() {}
func (EvDutyLost) isEvent()    {}
func (EvFenced) isEvent()      {}
func (EvShutdown) isEvent()    {}
func (EvResign) isEvent()      {}
func (EvClockStall) isEvent()  {}

// Action is an output of the core, to be carried out in order.
type Action interface{ isAction() }

// ActRequest sends Op to ZooKeeper; its outcome comes back as EvReply{ID}.
type ActRequest struct {
	ID uint64
	Op Op
	// Extension marks a lease extension. Its lease counts from the moment
	// it was asked (the core's now), never from its send, so an executor
	// may hold it back briefly and send it with other elections' writes
	// in one multi: a later send only makes the holder's count of its
	// lease more conservative. Nothing else about it changes.
	Extension bool
}

// ActStartDuty starts the duty for Term. The duty must stop by itself if it
// hears nothing more by LeaseEnd (a duty guard enforces it).
type ActStartDuty struct {
	Term     int64
	LeaseEnd time.Time
	// Ticket is the release the duty guard may write once this process
	// has provably exited and the duty is stopped (guard.go); nil: none.
	Ticket *GuardTicket
}

// ActExtendDuty moves the duty's deadline to LeaseEnd, with the guard's
// new ticket (nil: none).
type ActExtendDuty struct {
	LeaseEnd time.Time
	Ticket   *GuardTicket
}

// ActStopDuty stops the duty; EvDutyStopped must follow once it has stopped.
type ActStopDuty struct{ Reason string }

// ActFence runs the fence for Req; EvFenced must follow.
type ActFence struct{ Req FenceRequest }

// ActCancelFence abandons a running fence (its EvFenced is ignored).
type ActCancelFence struct{}

// ActTransition reports a change of phase: one feed for logs, metrics,
// history and hooks.
type ActTransition struct{ T Transition }

// ActNotice reports something an operator should see: foreign or damaged
// data (naming the znode), a refusal to lead, a repair.
type ActNotice struct{ N Notice }

// ActDone ends the election: the duty has stopped and the member left (Err
// nil), or the group refused this node (Err is a refusal).
type ActDone struct{ Err error }

func (ActRequest) isAction()     {}
func (ActStartDuty) isAction()   {}
func (ActExtendDuty) isAction()  {}
func (ActStopDuty) isAction()    {}
func (ActFence) isAction()       {}
func (ActCancelFence) isAction() {}
func (ActTransition) isAction()  {}
func (ActNotice) isAction()      {}
func (ActDone) isAction()        {}

// Transition is one change of a node's phase.
type Transition struct {
	From, To Phase
	Term     int64
	Reason   string
	At       time.Time
	// Evidence, on a move to PhaseActive, is when this node observed what
	// its claim rests on, so At - Evidence is how long the takeover took
	// as this node saw it: rule D, the read of the silent leader's node at
	// the version it kept from then on (its last extension, seen here);
	// rule C, the last such read of a lowest member that then vanished,
	// else the first look that showed no member below; rule B, the read
	// of the release. Zero for rule A (our own lease) and on every other
	// transition. On this node's clock, like At.
	Evidence time.Time
	// Previous and Cause, on a move to PhaseActive, are the leader this
	// node took over from ("" none known) and why it could (HistoryCause:
	// "graceful", "crash takeover", ...); "" on every other transition.
	Previous, Cause string
}

// Notice is an operator-facing problem or repair.
type Notice struct {
	// Level is "info", "warn", "error" or "bug" (a broken internal rule:
	// logged as an error; the tests and the simulator fail on it).
	Level string
	Msg   string
	// Znode is the path concerned, "" if none.
	Znode string
	// Fix says how to repair it by hand, "" if hanode repairs it itself.
	Fix string
}
