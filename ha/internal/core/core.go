package core

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Config configures one member's decision core.
type Config struct {
	// Root is the znode under which hanode keeps its tree, chroot included.
	Root string
	// Group is the HA_ID.
	Group string
	// Self is what this member publishes; Name, Role and Host are required.
	Self MemberInfo
	// Lease is the lease duration D every member of the group uses (the
	// group record holds it; a member with another value is refused).
	Lease time.Duration
	// Margin is how long before the end of the lease bound the holder stops
	// acting; it must cover stopping the duty (ha/doc.go).
	Margin time.Duration
	// Fencing makes a new leader ask for a fence (ActFence) before it acts
	// whenever a previous leader may have acted.
	Fencing bool
	// FenceMaxTries is how many failed fences in one term make the holder
	// step aside and rejoin at the back, so another member, whose fence
	// may work, gets its turn (0: retry for ever).
	FenceMaxTries int
	// Policy is the group's election policy: PolicyFirstCome ("" means
	// it) or PolicyPriority (policy.go). It is recorded in the group record;
	// a member with another is refused.
	Policy string
	// Preempt (PolicyPriority): a holder hands over gracefully to a member
	// with a better priority that has been in the group for PreemptDelay.
	Preempt      bool
	PreemptDelay time.Duration

	// NewGUID returns the 32-hex-digit guid of a member node (required:
	// the driver draws it from crypto/rand, the simulator from its seed).
	NewGUID func() string

	// Wall reads the Wall clock; nil takes the Wall reading of the time
	// Step is given (time.Now carries both). Only the simulator sets it: its
	// node clocks are one reading, and a paused host's monotonic clock
	// falls behind while its Wall clock is corrected.
	Wall func() time.Time

	// Weaken is a set of deliberate defects for the simulator's mutation
	// tests (weaken.go); zero in production.
	Weaken Weakening

	// UnsafeTrustVanish restores the rule hanode once had: a lowest
	// predecessor that vanished ended its lease, so its successor claims at
	// once. Only the simulator's test of itself sets it.
	UnsafeTrustVanish bool
}

// Validate reports every problem with cfg at once.
func (cfg Config) Validate() error {
	var errs []error
	if cfg.Root == "" || cfg.Root[0] != '/' || cfg.Root != "/" && cfg.Root[len(cfg.Root)-1] == '/' {
		errs = append(errs, fmt.Errorf("root %q must be an absolute znode path", cfg.Root))
	}
	if cfg.Group == "" {
		errs = append(errs, errors.New("group (HA_ID) is required"))
	}
	if cfg.Self.Name == "" || cfg.Self.Role == "" || cfg.Self.Host == "" {
		errs = append(errs, errors.New("name, role and host are required"))
	}
	if cfg.NewGUID == nil {
		errs = append(errs, errors.New("NewGUID is required"))
	}
	if cfg.Lease < MinLease {
		errs = append(errs, fmt.Errorf("lease %s is below the minimum %s", cfg.Lease, MinLease))
	}
	if cfg.Policy != "" && cfg.Policy != PolicyFirstCome && cfg.Policy != PolicyPriority {
		errs = append(errs, fmt.Errorf("policy %q must be %s or %s", cfg.Policy, PolicyFirstCome, PolicyPriority))
	}
	if cfg.Preempt && cfg.Policy != PolicyPriority {
		errs = append(errs, fmt.Errorf("preempt needs policy %s", PolicyPriority))
	}
	if cfg.PreemptDelay < 0 {
		errs = append(errs, fmt.Errorf("preempt delay %s is negative", cfg.PreemptDelay))
	}
	if cfg.Margin <= 0 || cfg.Margin >= cfg.Lease {
		errs = append(errs, fmt.Errorf("margin %s must be positive and below the lease %s", cfg.Margin, cfg.Lease))
	}
	return errors.Join(errs...)
}

// role is where the core stands in the election.
type role uint8

const (
	roleOut    role = iota // no member node: joining, or waiting for a session
	roleMember             // a member node, not holding the lease
	roleHolder             // holding the lease: fencing or active
)

var roleNames = [...]string{"out", "member", "holder"}

func (r role) String() string { return roleNames[r] }

// dutyState tracks the duty the core asked for.
type dutyState uint8

const (
	dutyOff dutyState = iota
	dutyOn
	dutyStopping // ActStopDuty sent, EvDutyStopped not yet seen
)

var dutyNames = [...]string{"off", "on", "stopping"}

func (d dutyState) String() string { return dutyNames[d] }

// Core is the election's decision core for one member of one group: a pure
// state machine. Step takes an event and the time on this node's monotonic
// clock and returns the actions to carry out; it starts no goroutine, does
// no I/O and reads no clock. Core is not safe for concurrent use: one owner
// steps it (the Election's goroutine, or the simulator).
//
// ha/doc.go states the rule the core implements; the comments on each claim
// (rule A to D in rules.go) say which part of the argument they rest on.
type Core struct {
	cfg   Config
	l     Layout
	wait  time.Duration // W, TakeoverWait(Lease)
	every time.Duration // R, ExtendEvery(Lease, Margin)

	now time.Time // of the Step under way
	out []Action  // the Step's actions

	role     role
	leaving  bool // shutdown asked
	shutting bool // shutdown under way
	done     bool // ActDone emitted

	sess sessionState // the ZooKeeper session as last reported
	req  requests     // outstanding requests
	own  membership   // our member node
	view groupView    // the group as last looked at
	rec  recordState  // the leader record as last read or written
	pred predecessor  // the member we watch (standby observations)
	hold holding      // the lease, the duty and the fence (holder)
	pace pacing       // retries after failures
	cand candidacy    // may we lead, and should someone else first (policy.go)
	pub  published    // what readers see
}

// sessionState is the session as last reported (EvSession).
type sessionState struct {
	up    bool
	id    int64
	epoch uint64 // grows with every connection: observations belong to one
}

// requests are the outstanding requests and what each is for.
type requests struct {
	nextID uint64
	pend   map[uint64]pending
	order  []uint64 // outstanding request ids, oldest first (some may be answered)
}

// membership is our member node: joining, and what our writes of it left.
type membership struct {
	gen      uint64 // bumped when membership is lost: replies of older generations are stale
	guid     string // of the membership being made or held
	joining  joinStage
	ensureAt int    // joinEnsure: index into Layout.Parents
	node     string // our member node's name, "" none
	ver      int32
	sure     bool // ver is what our last write left (no ambiguous write since)
	// epoch and sent are the epoch and send time of our last acknowledged
	// write of our node: the holder's proofs (rule A, release) rest on
	// them (ownProof).
	epoch uint64
	sent  time.Time
	// data is what our last acknowledged write of our node wrote (nil:
	// unknown). After a rollback a version alone proves little: another
	// client's write can bring our node back to the version we expect.
	data []byte
	// revalidate: a holder in a new epoch writes nothing (no extension,
	// no activation) until a look of this epoch has shown it the lowest
	// member with its node as it left it: ZooKeeper may have been restored
	// to a state in which another member is below it.
	revalidate bool
	watch      uint64 // a member's watch on its own node, 0 none
	// watchVer is the version the read that set watch found (-1: not
	// answered yet). When the watch fires while our claim is out,
	// changedInClaim holds and changedAt is that version: the claim's
	// reply settles whose write fired it (onClaimReply).
	watchVer, changedAt int32
	changedInClaim      bool
	check               bool   // the next look reads our node (it may have been written)
	writes              int    // writes of our node in flight: a look must not mistake them for another client's
	writeSeq            uint64 // writes of our node sent so far
}

// groupView is the group as our looks saw it.
type groupView struct {
	look     lookState
	lookDue  bool
	lastLook time.Time
	// lookAt: a look asked for a little later (lookSoon), zero none. A
	// change that only makes the view stale waits for it, off the path of
	// any handover.
	lookAt    time.Time
	members   []Member
	names     []string // the members' node names, in order
	ignored   []Ignored
	infos     map[string]nodeInfo
	reread    map[string]bool // known nodes that changed since: the next look reads them again
	seenBelow map[string]bool // members seen below us in this epoch (rule B)
	// belowInfo: who the members seen below us said they were, and the
	// highest term each published as holder, as last read; kept after
	// they are gone, and across reconnects (a name too many only fences
	// one more node), the latest belowKept of them (belowSeen: when each
	// was last seen): the members that may have acted, when the leader
	// record cannot say (fenceCandidates).
	belowInfo  map[string]LeaderInfo
	belowSeen  map[string]time.Time
	position   int        // our index among members, -1 unknown
	unreadable []unread   // nodes below us in the order whose data is not a member record
	sweepable  []unread   // those we may delete (no readable member below us)
	vacated    time.Time  // bound left by a lowest predecessor that vanished unchanged
	candSince  time.Time  // first look in this epoch showing us lowest (rule C)
	seenTerm   int64      // the highest term seen anywhere
	grp        groupState // the group record: pause (pause.go)
}

// recordState is the leader record as last read (or written by us).
type recordState struct {
	r     LeaderRecord
	kind  RecKind
	ver   int32
	why   string // why it is unusable (RecBad)
	maxed bool   // its term cannot grow: refuse to lead
	// first is the version of the first read of the record in this epoch
	// (-1: absent), firstOK whether there was one. Rule B takes a release
	// only at a later version: one written in this epoch's history. A
	// release read first after a reconnect may be one ZooKeeper restored
	// from a snapshot taken before a claim that rested on it, a claim the
	// rollback erased while its claimant still acts.
	first   int32
	firstOK bool
	// mine is the record's version after our last write of it; mineOK: it
	// is from this membership. Rule A trusts a record that names us only at
	// the version we left it: another client can write a record naming any
	// member (ha/doc.go, "Observations").
	mine     int32
	mineOK   bool
	fixWatch uint64 // a watch on a record we refuse to lead over, 0 none
}

// predecessor is the member we watch and what we observed of it (reset
// with every epoch, see ha/doc.go).
type predecessor struct {
	node   string // its node name
	watch  uint64 // its watch, 0 none
	lowest bool   // it was the lowest member when we started watching
	obs    time.Time
	ver    int32
	holds  bool   // its node, as last read, carries a lease (it extends it)
	name   string // the server name in its node, as last read
	failed bool   // a claim deleting it at ver failed: rule D waits for a new read
	// data: its node data as last read (zero: not a member record); rule
	// D's claim names it to the fence.
	data     MemberData
	fastRead uint64 // the record read after our lowest predecessor left, 0 none
	fastNode string // that predecessor
}

// holding is the lease, the duty and the fence.
type holding struct {
	term        int64
	leaseSend   time.Time // send time of the write the lease rests on
	extBusy     bool
	extN        int64
	extLost     []byte      // data of an extension whose outcome is unknown
	repair      *repairReq  // a rewrite of the leader record owed
	activateDue bool        // the fence succeeded: mark the record active next
	releaseDue  *releaseReq // a release or leave waiting for a write of our node in flight
	activated   bool        // past fencing: may act while the lease lasts
	duty        dutyState
	claimBusy   bool
	claiming    claimInfo
	// lookAfterClaim: a claim made without a look (the fast path after a
	// release) asks for one when it is answered.
	lookAfterClaim bool
	fence          fenceState
	afterStop      *afterStop // what to do once the duty has stopped, nil nothing
	stopUnsure     bool       // the last stop was not confirmed: the next release only leaves
	stopReason     string     // why the last stepDown happened: a release records it
}

// pacing spaces retries after failures.
type pacing struct {
	retryAt time.Time
	backoff time.Duration
}

// published is what readers see (Snapshot) and what operators were told.
type published struct {
	phase   Phase
	reason  string
	since   time.Time
	noticed map[string]bool // notices already emitted, by key
}

// nodeInfo is what a look learned about one node under members/.
type nodeInfo struct {
	version int32
	owner   int64 // the session that owns it
	data    MemberData
	ok      bool   // its data is a member record
	inOrder bool   // it takes part in the order (every ephemeral node with a member's name)
	why     string // why it is ignored, when !ok
	raw     []byte // our own node's data (checkOwn)
}

// New returns a core that has not started: the first events it needs
// are EvSession and EvTick.
func New(cfg Config) (*Core, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ha: config: %w", err)
	}
	c := &Core{
		cfg:   cfg,
		l:     Layout{root: cfg.Root, group: cfg.Group},
		wait:  TakeoverWait(cfg.Lease),
		every: ExtendEvery(cfg.Lease, cfg.Margin),
		req:   requests{pend: map[uint64]pending{}},
		view: groupView{infos: map[string]nodeInfo{}, reread: map[string]bool{}, seenBelow: map[string]bool{},
			belowInfo: map[string]LeaderInfo{}, belowSeen: map[string]time.Time{}, position: -1, seenTerm: cfg.Self.SeenTerm},
		pub: published{phase: PhaseStarting, reason: "connecting to ZooKeeper", noticed: map[string]bool{}},
	}
	if cfg.Weaken.has(WeakWait) {
		c.wait = c.wait * 99 / 100
	}
	return c, nil
}

// Step applies one event at time now (this node's monotonic clock) and
// returns the actions to carry out, in order. The returned slice is valid
// until the next call.
func (c *Core) Step(now time.Time, ev Event) []Action {
	c.now = now
	c.out = c.out[:0]
	if c.pub.since.IsZero() {
		c.pub.since = now
	}
	if c.done {
		return nil
	}
	switch ev := ev.(type) {
	case EvSession:
		c.onSession(ev)
	case EvReply:
		c.onReply(ev)
	case EvWatch:
		c.onWatch(ev)
	case EvTick:
	case EvDutyStopped:
		c.onDutyStopped(ev.Unconfirmed)
	case EvDutyLost:
		if ev.Term == c.hold.term {
			c.onDutyLost(ev.Reason)
		}
	case EvFenced:
		c.onFenced(ev)
	case EvShutdown:
		if !c.leaving {
			c.leaving = true
			c.pace.retryAt = time.Time{}
		}
	case EvClockStall:
		c.onClockStall(ev.By)
	case EvResign:
		c.onResign(ev.Reason)
	case EvHealth:
		c.onHealth(ev)
	}
	c.advance()
	c.markLeader()
	return c.out
}

// advance does whatever the state calls for at c.now: the one place that
// starts work, so no timer or flag armed earlier can act on a state that has
// moved on.
func (c *Core) advance() {
	if c.done {
		return
	}
	c.expireRequests()
	if len(c.req.order) > 64 && len(c.req.order) > 2*len(c.req.pend) {
		c.req.order = slices.DeleteFunc(c.req.order, func(id uint64) bool { _, ok := c.req.pend[id]; return !ok })
	}
	if c.role == roleHolder {
		c.checkLease()
	}
	if c.hold.duty == dutyStopping {
		return // nothing moves until the duty has stopped
	}
	if r := c.hold.releaseDue; r != nil {
		if c.own.writes > 0 || c.hold.extBusy {
			return // nothing moves until it is out
		}
		c.hold.releaseDue = nil
		if r.onlyLeave {
			c.leave(r.then)
		} else {
			c.release(r.stopped, r.leave, r.then)
		}
		return
	}
	if c.leaving {
		c.advanceShutdown()
		return
	}
	if !c.sess.up || c.now.Before(c.pace.retryAt) {
		return
	}
	switch c.role {
	case roleOut:
		if c.cand.unhealthy != "" && c.own.joining == joinStart {
			c.setPhase(PhaseUnhealthy, c.cand.unhealthy) // out until healthy again
			return
		}
		c.advanceJoin()
	case roleMember:
		c.advanceMember()
	case roleHolder:
		c.advanceHolder()
	}
}

// NextDeadline is when the core next needs an EvTick even if nothing else
// happens; ok is false when it needs none. It mirrors advance: a deadline
// here is one advance acts on.
func (c *Core) NextDeadline() (time.Time, bool) {
	var d time.Time
	at := func(t time.Time) {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	if c.done {
		return d, false
	}
	at(c.oldestRequest())
	if c.role == roleHolder && c.hold.duty != dutyStopping {
		at(c.leaseEnd())
	}
	if c.hold.duty == dutyStopping || c.leaving || !c.sess.up || c.hold.releaseDue != nil {
		return d, !d.IsZero()
	}
	if c.now.Before(c.pace.retryAt) {
		at(c.pace.retryAt)
		return d, true
	}
	relist := time.Time{}
	if !c.view.lastLook.IsZero() && c.view.look.id == 0 {
		relist = c.view.lastLook.Add(c.relistEvery())
	}
	if !c.view.lookAt.IsZero() && c.view.look.id == 0 && (relist.IsZero() || c.view.lookAt.Before(relist)) {
		relist = c.view.lookAt
	}
	switch c.role {
	case roleHolder:
		if c.own.revalidate {
			break // waits for its look's replies
		}
		if !c.hold.extBusy && c.own.writes == 0 {
			at(c.hold.leaseSend.Add(c.every))
		}
		if !c.hold.activated && !c.hold.fence.busy && !c.hold.activateDue {
			at(c.hold.fence.retryAt)
		}
		at(relist)
		at(c.preemptAt())
	case roleMember:
		at(c.claimAt())
		at(c.sweepAt())
		at(relist)
	}
	return d, !d.IsZero()
}

// relistEvery paces the safety-net look of a settled member: watches carry
// every change that matters to the election (our predecessor, our own node,
// the holder's record through its extensions), so this only refreshes what
// status shows of the members behind us. It is most of an idle group's
// reads, hence three leases.
//
// A holder that preempts (Preempt) lists every lease instead: a better
// member that joins is seen within a lease, so the hand-over comes within
// PreemptDelay plus a lease of its joining.
func (c *Core) relistEvery() time.Duration {
	if c.cfg.Preempt && c.role == roleHolder {
		return c.cfg.Lease
	}
	return 3 * c.cfg.Lease
}

// leaseEnd is when the holder stops acting: the send time of its last
// acknowledged write plus D minus M.
func (c *Core) leaseEnd() time.Time {
	if c.cfg.Weaken.has(WeakNoMargin) {
		return leaseEnd(c.hold.leaseSend, c.cfg.Lease, 0)
	}
	return leaseEnd(c.hold.leaseSend, c.cfg.Lease, c.cfg.Margin)
}

// Active reports whether the core may act as leader at now.
func (c *Core) Active(now time.Time) bool {
	return c.role == roleHolder && c.hold.activated && c.hold.duty == dutyOn && now.Before(c.leaseEnd())
}

// LeaseEnd is the end of the holder's lease ("" zero when it holds none).
func (c *Core) LeaseEnd() time.Time {
	if c.role != roleHolder || !c.hold.activated {
		return time.Time{}
	}
	return c.leaseEnd()
}

// Term is the term this node leads in, or the group's latest term it knows.
func (c *Core) Term() int64 {
	if c.role == roleHolder {
		return c.hold.term
	}
	return c.view.seenTerm
}

// FenceBasis is what makes a write fenced by our lease (Fence).
type FenceBasis struct {
	// Term is the term the write is fenced by.
	Term int64
	// Checks go first in the write's multi: our member node at the version
	// our last lease extension left (so a node whose lease was not extended
	// since, or whose member node ZooKeeper forgot and someone recreated,
	// cannot write) and the lease record at the version our last write of
	// it left (every claim by another node changes it). Nil when we do not
	// lead.
	Checks []Op
	// Epoch is the connection the checks hold for: the write must go out
	// on it, never on a later one (after a reconnect ZooKeeper may be a
	// restored state in which the same versions mean something else).
	Epoch uint64
	// Wait: we lead, but a write of our node is in flight or this epoch is
	// not revalidated yet; ask again shortly.
	Wait bool
}

// Fence returns the basis of a fenced write made now.
func (c *Core) Fence(now time.Time) FenceBasis {
	if !c.Active(now) || !c.rec.mineOK {
		return FenceBasis{}
	}
	if !c.own.sure || c.hold.extLost != nil || c.hold.extBusy || c.own.writes > 0 || c.own.revalidate {
		// A write of our node is in flight (an extension): the version
		// it leaves is not known yet, and a check at the one before it
		// would fail once it lands. Or we are in a new epoch and no look
		// has shown our node and the record as we left them: ZooKeeper
		// may have been restored to a state where the versions we know
		// mean something else (the holder writes nothing either).
		return FenceBasis{Term: c.hold.term, Wait: true}
	}
	if c.cfg.Weaken.has(WeakFenceTimeOnly) {
		return FenceBasis{Term: c.hold.term, Checks: []Op{}, Epoch: c.sess.epoch}
	}
	return FenceBasis{Term: c.hold.term, Epoch: c.sess.epoch, Checks: []Op{
		{Kind: OpCheck, Path: c.l.MemberNode(c.own.node), Version: c.own.ver},
		{Kind: OpCheck, Path: c.l.LeaderNode(), Version: c.rec.mine},
	}}
}

// DutyOff reports that no duty runs or is being stopped.
func (c *Core) DutyOff() bool { return c.hold.duty == dutyOff }

func (c *Core) emit(a Action) { c.out = append(c.out, a) }

// fail paces the next attempt after a failed request: 100 ms doubling to 2 s.
func (c *Core) fail() {
	c.pace.backoff = min(max(2*c.pace.backoff, 100*time.Millisecond), 2*time.Second)
	c.pace.retryAt = c.now.Add(c.pace.backoff)
}

func (c *Core) succeeded() { c.pace.backoff = 0 }
