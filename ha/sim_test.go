package ha

import (
	"container/heap"
	"flag"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hanode/hanode/ha/internal/core"
	"github.com/hanode/hanode/internal/simzk"
)

// The deterministic simulator (doc.go, "Structure"): several cores, each in
// a simulated process with its own clock rate, its own ZooKeeper client (as
// go-zookeeper and Session behave) and its duty guard, against a simulated
// ZooKeeper server (internal/simzk), on one virtual clock, with seeded
// faults: partitions, slow paths, freezes, kills, restarts, graceful stops,
// other clients deleting or overwriting any node, the tree deleted, data
// loss, rollback to an older snapshot, server restarts. After every step it
// checks the invariant: never two nodes whose lease says active at one
// instant, never two duties at once, terms strictly increasing from one
// duty to the next, every duty stopped before its lease bound. After the
// faults heal it checks liveness: one leader within simSettle.
//
// A failing seed replays exactly:
//
//	go test ./ha -run 'TestSimulation$' -sim.seed=N -v

var (
	simSeed  = flag.Int64("sim.seed", 0, "run only this simulation seed, with its trace")
	simRuns  = flag.Int("sim.runs", 0, "number of seeded scenarios (default: 10000, 600 under -race)")
	simFirst = flag.Int64("sim.first", 1, "first seed")
)

type faultKind int

const (
	fPartition faultKind = iota
	fSlow
	fFreeze
	fKill
	fStop
	fDeleteMember
	fDeleteHolder
	fGarbageMember
	fGarbageRecord
	fDeleteRecord
	fGarbageGroup
	fForeignNodes
	fDeleteTree
	fDeleteMembers
	fDataLoss
	fRollback
	fServerRestart
	fServerDown
	fMaxTerm
	fSensitiveLook
	fValidRecord
	fCopyMember
	fRollbackAtClaim
	fTakeoverRollback
	fReleaseRollback
	fHostPause
	fDutyLost
	fForgedLowMember
	fResign
	fUnhealthy       // the node's health check fails for a while (sim_candidacy_test.go)
	fPause           // an operator pauses the group for a while (sim_pause_test.go)
	fSwitchover      // an operator asks a member to lead (sim_pause_test.go)
	fLaggingFollower // replicated only (sim_ensemble_test.go), from here on
	fEnsembleElection
	fSessionMove
	nFaultKinds
)

var faultNames = [...]string{"partition", "slow", "freeze", "kill", "stop", "delete-member", "delete-holder",
	"garbage-member", "garbage-record", "delete-record", "garbage-group", "foreign-nodes", "delete-tree",
	"delete-members", "data-loss", "rollback", "server-restart", "server-down", "max-term",
	"sensitive-look", "valid-record", "copy-member", "rollback-at-claim", "takeover-rollback", "release-rollback", "host-pause", "duty-lost", "forged-low-member", "resign", "unhealthy", "pause", "switchover",
	"lagging-follower", "ensemble-election", "session-move"}

func (k faultKind) String() string { return faultNames[k] }

type simConfig struct {
	seed      int64
	nodes     int
	lease     time.Duration
	margin    time.Duration
	stopMax   time.Duration // a duty stops within this (< margin)
	tick      time.Duration // ZooKeeper's tickTime
	faults    int
	faultEnd  time.Duration // faults start before this
	settle    time.Duration // liveness bound after the faults healed
	netBase   time.Duration
	netJitter time.Duration
	requeue   float64 // share of requests a break leaves in the client's queue
	fenceFail float64
	fencing   bool
	drift     float64 // clock rates within 1±drift
	kinds     []faultKind
	broken    bool // the old rule: a vanished predecessor ended its lease

	// Adversarial timing (sim_adversary_test.go).
	extremeClocks bool           // rates at ±DriftAllowance, flipping during the run
	stopFull      bool           // every duty stop takes its whole allowance (M, on its clock)
	stopOver      time.Duration  // a duty stop takes M plus this (the simulator's own mutation test)
	weaken        core.Weakening // deliberate defects of the core (mutation tests)

	replicated bool // a ZooKeeper ensemble, not one server (sim_ensemble_test.go)
	// fenceMaxTries: failed fences after which a holder steps aside (0: never).
	fenceMaxTries int

	cand simCandidacy // election policy, priorities, never-lead nodes (sim_candidacy_test.go)

	// The guard's release after a proven exit (sim_guard_test.go), and
	// its deliberate breaks: a silent coordinator taken for dead, a
	// release before the duty's stop, a release sent after the lease.
	guardRelease, guardNoProof, guardEarly, guardLate bool

	hist histConfig // the history's limit, and the writer's weakenings (sim_history_test.go)
}

// randomConfig draws a scenario from a seed.
func randomConfig(seed int64) simConfig {
	rng := rand.New(rand.NewSource(seed))
	lease := []time.Duration{2 * time.Second, 4 * time.Second, 4 * time.Second, 10 * time.Second}[rng.Intn(4)]
	cfg := simConfig{
		seed:      seed,
		nodes:     2 + rng.Intn(4),
		lease:     lease,
		margin:    lease * 3 / 10,
		tick:      []time.Duration{500 * time.Millisecond, 2 * time.Second}[rng.Intn(2)],
		faults:    3 + rng.Intn(8),
		netBase:   time.Duration(50+rng.Intn(500)) * time.Microsecond,
		netJitter: time.Duration(1+rng.Intn(3)) * time.Millisecond,
		requeue:   0.2,
		fenceFail: []float64{0, 0, 0.3}[rng.Intn(3)],
		fencing:   rng.Intn(3) == 0,
		drift:     0.009,
	}
	cfg.stopMax = cfg.margin * 2 / 3
	cfg.faultEnd = 10 * lease
	// Drawn from their own stream, so that the draws above stay as they were.
	adv := rand.New(rand.NewSource(seed ^ 0x5eed_ad5e))
	cfg.extremeClocks = adv.Intn(2) == 0
	cfg.stopFull = adv.Intn(2) == 0
	cfg.fenceMaxTries = []int{0, 2, 3}[adv.Intn(3)]
	cfg.cand = randomCandidacy(seed, cfg.nodes, lease)
	cfg.settle = simSettle(cfg)
	cfg.replicated = replicatedSeed(seed)
	cfg.guardRelease = rand.New(rand.NewSource(seed^0x6a4d_0e1f)).Intn(4) != 0
	cfg.hist = randomHistConfig(seed)
	return cfg
}

// simSettle is the liveness bound: once every fault has healed, one node
// leads within it. The worst case found by the runs is a lowest member
// left over by a dead session (its node stays until ZooKeeper expires it:
// D plus a tick) in front of a second that must first wait W + D for it,
// then the wait of the rule that applies.
func simSettle(cfg simConfig) time.Duration {
	d := 4*cfg.lease + 2*cfg.tick + 5*time.Second
	if cfg.fencing && cfg.fenceFail > 0 {
		d += 10 * time.Second // a fence that failed until the heal retries after its backoff (at most 10 s)
	}
	return d + cfg.cand.settle(cfg.lease)
}

type simEvent struct {
	at  time.Duration
	seq uint64
	f   func()
}

type simQueue []simEvent

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	return q[i].at < q[j].at || q[i].at == q[j].at && q[i].seq < q[j].seq
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(simEvent)) }
func (q *simQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type sim struct {
	cfg      simConfig
	rng      *rand.Rand
	now      time.Duration
	seq      uint64
	q        simQueue
	zk       *simzk.Server
	nodes    []*simNode
	inflight map[*simNode]map[uint64]*flight
	adv      int64
	zkDown   bool
	ens      *ensemble // the replicated ensemble, nil for one server
	snaps    []*simzk.Snapshot
	expiryAt time.Duration
	root     string
	group    string

	verbose bool
	fail    string
	trace   []string
	// failState is every core's state at the first violation.
	failState string
	traceAt   int
	maxTerm   int64
	healAt    time.Duration
	leaderAt  time.Duration
	end       time.Duration
	steps     int
	fences    int
	duties    int
	log       []string // fault log
	claims    map[string]int

	fixPlanned    bool // an operator deletes a record whose term cannot grow once the faults end
	resumePlanned bool // an operator resumes a paused group once the faults end (sim_pause_test.go)

	fenced         simFenced  // the fenced writes applied (sim_fenced_test.go)
	hist           simHistory // the history's writes (sim_history_test.go)
	plan           advPlan    // armed sensitive-point faults (sim_adversary_test.go)
	resumeOverlaps int        // duties started while an older one was paused with its host
	serverGen      int        // bumped when the server stops: its connections die with it

	grng        *rand.Rand    // the guard's draws (sim_guard_test.go)
	onServing   []func()      // run once the server serves again after an outage
	fencedGuard simGuardStats // the guards' releases
}

func newSim(cfg simConfig) *sim {
	s := &sim{cfg: cfg, rng: rand.New(rand.NewSource(cfg.seed)), root: "/hanode", group: "g",
		zk:       simzk.New(simzk.Config{Tick: cfg.tick}),
		inflight: map[*simNode]map[uint64]*flight{}, trace: make([]string, 0, 400), claims: map[string]int{}}
	for i := 0; i < cfg.nodes; i++ {
		n := &simNode{s: s, idx: i, name: fmt.Sprintf("n%d", i+1), watches: map[string][]uint64{},
			// Wall clocks within 100 ms of each other (doc.go, "Terms"
			// assumes less than W); rates within the drift allowance.
			offset: time.Duration(s.rng.Int63n(int64(100 * time.Millisecond))),
			rate:   1 + (2*s.rng.Float64()-1)*cfg.drift}
		s.nodes = append(s.nodes, n)
	}
	s.adv, _ = s.zk.CreateSession(time.Minute, 0)
	if cfg.replicated {
		s.ens = newEnsemble(s)
	}
	return s
}

func (s *sim) at(t time.Duration, f func()) {
	s.seq++
	heap.Push(&s.q, simEvent{at: max(t, s.now), seq: s.seq, f: f})
}

// dur draws a duration in [lo, hi].
func (s *sim) dur(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.rng.Int63n(int64(hi-lo)+1))
}

func (s *sim) tracef(format string, args ...any) {
	line := fmt.Sprintf("%9.3fs ", s.now.Seconds()) + fmt.Sprintf(format, args...)
	if s.verbose {
		fmt.Println(line)
	}
	if len(s.trace) < cap(s.trace) {
		s.trace = append(s.trace, line)
	} else {
		s.trace[s.traceAt] = line
		s.traceAt = (s.traceAt + 1) % len(s.trace)
	}
}

func (s *sim) violate(format string, args ...any) {
	if s.fail == "" {
		s.fail = fmt.Sprintf("at %.3fs: ", s.now.Seconds()) + fmt.Sprintf(format, args...)
		s.tracef("VIOLATION: %s", s.fail)
		s.failState = s.cores()
	}
}

// cores prints every running node's whole core state.
func (s *sim) cores() string {
	var out []string
	for _, n := range s.nodes {
		if n.core != nil {
			out = append(out, n.core.String())
		}
	}
	return strings.Join(out, "\n")
}

func (s *sim) tail() string {
	out := append(append([]string(nil), s.trace[s.traceAt:]...), s.trace[:s.traceAt]...)
	return strings.Join(out, "\n")
}

// run plays the scenario; it returns the first violation, "" if none.
func (s *sim) run() string {
	for _, n := range s.nodes {
		s.start(n, s.dur(0, 500*time.Millisecond))
	}
	if s.cfg.extremeClocks {
		s.adversarialClocks()
	}
	s.at(time.Second, s.takeSnapshot)
	s.scheduleFaults()
	s.end = s.healAt + s.cfg.settle
	s.at(s.end, func() {})
	for s.q.Len() > 0 && s.fail == "" {
		e := heap.Pop(&s.q).(simEvent)
		if e.at > s.end {
			break
		}
		s.now = e.at
		e.f()
		s.steps++
		if s.steps > 5_000_000 {
			s.violate("runaway: %d steps", s.steps)
		}
	}
	if s.fail == "" {
		s.now = s.end
		s.checkHistory()
	}
	if s.fail == "" {
		switch active := s.active(); {
		case s.leaderAt == 0 || len(active) != 1:
			var states []string
			for _, n := range s.nodes {
				if n.core != nil {
					d, ok := n.core.NextDeadline()
					rule, at, rok := n.core.NextClaim()
					states = append(states, fmt.Sprintf("%s: next %v %v rule %v %v %v frozen %v: %s", n.name, d.Sub(n.local(s.now)), ok,
						rule, at.Sub(n.local(s.now)), rok, n.frozen > s.now, n.core.String()))
				}
			}
			states = append(states, "zk: "+strings.Join(s.zk.Paths(), " "))
			s.violate("liveness: %d active nodes %s after the faults healed at %.3fs\n%s", len(active), s.settle(),
				s.healAt.Seconds(), strings.Join(states, "\n"))
		default:
			s.checkPreferred(active[0])
		}
	}
	return s.fail
}

func (s *sim) settle() string { return fmt.Sprintf("%.1fs", s.cfg.settle.Seconds()) }

// start runs a new process for n after a delay.
func (s *sim) start(n *simNode, after time.Duration) {
	s.at(s.now+after, func() {
		if n.adv.pausedUntil > s.now { // nothing starts on a paused host
			s.start(n, n.adv.pausedUntil-s.now)
			return
		}
		if n.running {
			return
		}
		n.inc++
		n.running = true
		// connecting too: an attempt scheduled by the last incarnation
		// never runs (n.at drops it), and would block every new one.
		n.sid, n.connected, n.connecting, n.watches, n.requeue = 0, false, false, map[string][]uint64{}, nil
		s.inflight[n] = map[uint64]*flight{}
		self := core.MemberInfo{Name: n.name, Role: "primary", Region: "world", Host: "host-" + n.name, PID: 100 + n.inc,
			Started: n.local(s.now), Priority: s.cfg.cand.priority(n.idx), NoFailover: s.cfg.cand.noFailover == n.idx+1}
		n.unhealthy = false
		guid := rand.New(rand.NewSource(s.rng.Int63()))
		c, err := core.New(core.Config{Root: s.root, Group: s.group, Self: self, Lease: s.cfg.lease,
			Margin: s.cfg.margin, Fencing: s.cfg.fencing, FenceMaxTries: s.cfg.fenceMaxTries,
			UnsafeTrustVanish: s.cfg.broken, Weaken: s.cfg.weaken,
			Policy: s.cfg.cand.policy, Preempt: s.cfg.cand.preempt, PreemptDelay: s.cfg.cand.preemptDelay,
			Wall:    func() time.Time { return n.local(s.now).Add(n.adv.wallAhead) },
			NewGUID: func() string { return fmt.Sprintf("%016x%016x", guid.Uint64(), guid.Uint64()) }})
		if err != nil {
			s.violate("%s: %v", n.name, err)
			return
		}
		n.core = c
		n.writer = writerState{} // a new process remembers nothing
		s.armWriter(n)
		s.tracef("%s: process started", n.name)
		n.lastSession = s.now
		n.step(core.EvSession{Up: false})
		n.scheduleConnect(0)
	})
}

// serve is a request arriving at the server.
func (s *sim) serve(n *simNode, conn int, sid int64, id uint64, f *flight) {
	if s.zkDown || f.requeued {
		return
	}
	if n.adv.serverGen != s.serverGen {
		// Its connection died with the server (a restart, a restore): the
		// new server resets it; the client notices the break on its own.
		return
	}
	f.arrived = true
	if n.conn != conn {
		// The connection broke with the request on its way:
		// it may or may not have arrived; its reply is lost either way.
		if s.rng.Float64() < 0.5 {
			s.beforeApply(n, f)
			s.afterApply(n, f, s.apply(sid, f.op))
		}
		return
	}
	if s.ens != nil {
		s.ens.serve(n, conn, sid, id, f)
		return
	}
	s.beforeApply(n, f)
	res := s.apply(sid, f.op)
	s.afterApply(n, f, res)
	zx := s.zk.LastZxid()
	op := f.op
	n.deliver(conn, func() {
		delete(s.inflight[n], id)
		s.onAck(n, f, res)
		if op.Kind == core.OpChildren && res.Err == core.ErrNone {
			s.onListing(n)
		}
		if op.Watch && res.Err == core.ErrNone {
			n.watches[op.Path] = append(n.watches[op.Path], id)
		}
		n.lastZxid = max(n.lastZxid, zx)
		n.hand(core.EvReply{ID: id, Result: res, Epoch: f.epoch}, 0)
		if res.Err == core.ErrNotSent {
			n.breakConn("session expired") // the server closes the connection
		}
	})
}

// apply executes an op at the server for session sid.
func (s *sim) apply(sid int64, op core.Op) core.Result {
	before, existed := s.beforeFenced(op)
	takeover := s.beforeTakeover(sid, op)
	res, evs := s.zk.Apply(sid, simOp(op), s.now)
	s.dispatch(evs)
	s.armExpiry()
	r := simResult(res)
	s.afterFenced(op, before, existed, r)
	s.afterTakeover(takeover, r)
	s.afterHistory(op, r)
	return r
}

func simOp(op core.Op) simzk.Op {
	o := simzk.Op{Path: op.Path, Data: op.Data, Version: op.Version, Flags: createFlags(op), Watch: op.Watch}
	switch op.Kind {
	case core.OpCreate:
		o.Kind = simzk.Create
	case core.OpDelete:
		o.Kind = simzk.Delete
	case core.OpSet:
		o.Kind = simzk.SetData
	case core.OpGet:
		o.Kind = simzk.GetData
	case core.OpChildren:
		o.Kind = simzk.Children
	case core.OpCheck:
		o.Kind = simzk.Check
	case core.OpMulti:
		o.Kind = simzk.Multi
		for _, sub := range op.Ops {
			o.Ops = append(o.Ops, simOp(sub))
		}
	}
	return o
}

func simResult(r simzk.Result) core.Result {
	out := core.Result{Err: errKind(r.Err), Path: r.Path, Data: r.Data, Children: r.Children, Stat: statOf(&r.Stat)}
	if r.Err != nil {
		out.Detail = r.Err.Error()
	}
	for _, m := range r.Multi {
		out.Multi = append(out.Multi, simResult(m))
	}
	return out
}

// dispatch sends watch notifications to connected clients.
func (s *sim) dispatch(evs []simzk.Event) {
	if s.ens != nil {
		s.ens.dispatch(evs)
		return
	}
	for _, ev := range evs {
		for _, n := range s.nodes {
			if n.running && n.connected && n.sid == ev.Session {
				ev := ev
				n.deliver(n.conn, func() { n.onWatchEvent(ev) })
			}
		}
	}
}

// flushExpiry runs the server's session tracker now.
func (s *sim) flushExpiry() {
	if s.zkDown {
		return
	}
	expired, evs := s.zk.ExpireDue(s.now)
	for _, id := range expired {
		s.tracef("zk: session %s expired", core.SessionHex(id))
	}
	s.dispatch(evs)
	s.armExpiry()
}

func (s *sim) armExpiry() {
	if t, ok := s.zk.NextExpiry(); ok && (s.expiryAt <= s.now || t < s.expiryAt) {
		s.expiryAt = t
		s.at(t, s.flushExpiry)
	}
}

// --- the duty ---------------------------------------------------------------

func (s *sim) dutyStart(n *simNode, term int64, leaseEnd time.Time) {
	for _, m := range s.nodes {
		if m != n && m.duty && m.adv.pausedUntil > s.now {
			// Paused with its host: it resumes, is told its clock
			// stalled, and stops within its allowance (doc.go, "Clocks
			// and host pauses": what only fencing can close).
			s.resumeOverlaps++
			continue
		}
		if m != n && m.duty {
			s.violate("two duties: %s starts term %d while %s still runs term %d", n.name, term, m.name, m.dutyTerm)
		}
	}
	s.checkClaimant(n, term)
	if term <= s.maxTerm {
		s.violate("term did not grow: %s starts term %d after term %d", n.name, term, s.maxTerm)
	}
	if leaseEnd.After(n.core.LeaseBound()) || !n.local(s.now).Before(leaseEnd) {
		s.violate("%s: duty started with deadline %v outside the lease (end %v, now %v)", n.name, leaseEnd,
			n.core.LeaseBound(), n.local(s.now))
	}
	s.maxTerm = max(s.maxTerm, term)
	s.histHeld(n, term)
	s.duties++
	n.duty, n.dutyTerm, n.dutyDeadline, n.dutyStopping = true, term, leaseEnd, false
	n.dutyGen++
	s.tracef("%s: duty started, term %d", n.name, term)
	n.armGuard()
}

// dutyStop stops n's duty within stopMax; the core hears of it when it
// asked (ask), the guard acts alone otherwise.
func (s *sim) dutyStop(n *simNode, ask bool) {
	inc := n.inc
	tell := func() {
		if ask {
			n.at(s.now, func() {
				if n.inc == inc {
					n.step(core.EvDutyStopped{})
				}
			})
		}
	}
	if !n.duty {
		tell()
		return
	}
	if n.dutyStopping {
		if ask {
			n.coreWaits = true
		}
		return
	}
	n.dutyStopping, n.coreWaits = true, ask
	gen := n.dutyGen
	// How long the stop takes on the guard's clock (the guard times
	// ACTIVE_STOP_TIMEOUT and the kill on it): at random, the whole
	// allowance M, or more (the simulator's own mutation test).
	took := s.dur(0, s.cfg.stopMax)
	switch {
	case n.adv.kill:
		took, n.adv.kill = 0, false
	case s.cfg.stopOver > 0:
		took = s.cfg.margin + s.cfg.stopOver
	case s.cfg.stopFull:
		took = s.cfg.margin - time.Millisecond
	}
	n.adv.stopAt = n.local(s.now).Add(took)
	n.adv.stopDone = func() {
		n.duty, n.dutyStopping = false, false
		if bound := n.dutyDeadline.Add(s.cfg.margin); n.local(s.now).After(bound) {
			s.violate("%s: duty of term %d stopped after its lease bound", n.name, n.dutyTerm)
		}
		s.checkHolderStop(n)
		s.tracef("%s: duty stopped, term %d", n.name, n.dutyTerm)
		if n.coreWaits {
			n.coreWaits = false
			ask = true
			tell()
		}
	}
	n.armStop(gen)
}

// armStop completes n's duty stop when its clock reaches adv.stopAt (and is
// armed again when the clock's rate changes).
func (n *simNode) armStop(gen int) {
	s := n.s
	s.at(max(n.real(n.adv.stopAt), s.now)+time.Microsecond, func() {
		if n.dutyGen != gen || !n.duty || !n.dutyStopping || n.adv.pausedUntil > s.now {
			return // done, or paused with its host: armed again at the resume
		}
		if n.local(s.now).Before(n.adv.stopAt) {
			n.armStop(gen) // the clock slowed meanwhile
			return
		}
		n.adv.stopDone()
	})
}

// --- checks -----------------------------------------------------------------

func (s *sim) active() []*simNode {
	var out []*simNode
	for _, n := range s.nodes {
		if n.core != nil && n.core.Active(n.local(s.now)) {
			out = append(out, n)
		}
	}
	return out
}

// check runs after every step of any node.
func (s *sim) check() {
	act := s.active()
	for _, n := range act {
		// The holder side in real time: whatever its clock says, no node
		// is active past its lease bound s + D/(1−ρ).
		if n.adv.leaseSent != 0 && s.now >= s.bound(n.adv.leaseSent) {
			s.violate("%s active at %.3fs, past its lease bound %.3fs in real time", n.name, s.now.Seconds(),
				s.bound(n.adv.leaseSent).Seconds())
		}
	}
	s.checkCandidacy(act)
	if len(act) > 1 {
		var who []string
		for _, n := range act {
			who = append(who, fmt.Sprintf("%s (term %d, lease until %.3fs)", n.name, n.core.Term(),
				n.real(n.core.LeaseBound()).Seconds()))
		}
		s.violate("two actives: %s", strings.Join(who, ", "))
	}
	if s.now >= s.healAt && len(act) == 1 && s.leaderAt == 0 {
		s.leaderAt = s.now
	}
	if len(act) != 1 && s.now >= s.healAt {
		s.leaderAt = 0
	}
	s.checkHistory()
}

// --- tests --------------------------------------------------------------------

// runSeeds runs the scenarios of seeds [first, first+n) on every core and
// reports each failure with the command that replays it.
func runSeeds(t *testing.T, first int64, n int, cfgOf func(int64) simConfig) (failed []int64, stats simStats) {
	t.Helper()
	var (
		mu   sync.Mutex
		next atomic.Int64
		wg   sync.WaitGroup
	)
	next.Store(first)
	workers := 2
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seed := next.Add(1) - 1
				if seed >= first+int64(n) {
					return
				}
				cfg := cfgOf(seed)
				s := newSim(cfg)
				fail := s.run()
				mu.Lock()
				stats.add(s)
				if fail != "" {
					failed = append(failed, seed)
					if len(failed) <= 3 {
						t.Logf("seed %d FAILED: %s\nfaults: %s\nlast events:\n%s\ncores then:\n%s\nreplay: go test ./ha -run 'TestSimulation$' -sim.seed=%d -v",
							seed, fail, strings.Join(s.log, "; "), s.tail(), s.failState, seed)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(failed)
	return failed, stats
}

type simStats struct {
	runs, steps, duties, fences int
	simulated                   time.Duration
	leaderMax                   time.Duration
	leaderMaxLeases             float64
	leaderMaxSeed               int64
	faults, claims              map[string]int
	fenced                      simFenced // counts only
	hist                        simHistCounts
	ens                         ensStats
	guard                       simGuardStats
}

func (st *simStats) add(s *sim) {
	st.runs++
	st.ens.add(s)
	st.steps += s.steps
	st.duties += s.duties
	st.fences += s.fences
	st.fenced.applied += s.fenced.applied
	st.fenced.refused += s.fenced.refused
	st.fenced.notSent += s.fenced.notSent
	st.fenced.carried += s.fenced.carried
	st.guard = st.guard.add(s.fencedGuard)
	st.hist.add(s.hist.counts)
	st.simulated += s.now
	if s.leaderAt > 0 {
		st.leaderMax = max(st.leaderMax, s.leaderAt-s.healAt)
		if l := float64(s.leaderAt-s.healAt) / float64(s.cfg.lease); l > st.leaderMaxLeases {
			st.leaderMaxLeases, st.leaderMaxSeed = l, s.cfg.seed
		}
	}
	if st.faults == nil {
		st.faults, st.claims = map[string]int{}, map[string]int{}
	}
	for k, v := range s.claims {
		st.claims[k] += v
	}
	for _, f := range s.log {
		st.faults[strings.Fields(f)[1]]++
	}
}

// TestSimulation runs thousands of seeded scenarios mixing every fault and
// checks the invariant after every step and liveness after the faults heal.
func TestSimulation(t *testing.T) {
	if *simSeed != 0 {
		s := newSim(randomConfig(*simSeed))
		s.verbose = testing.Verbose()
		if fail := s.run(); fail != "" {
			t.Fatalf("seed %d: %s\nfaults: %s\ncores then:\n%s", *simSeed, fail, strings.Join(s.log, "; "), s.failState)
		}
		t.Logf("seed %d passed: %d steps, %d duties, leader %.3fs after the heal", *simSeed, s.steps, s.duties,
			(s.leaderAt - s.healAt).Seconds())
		return
	}
	n := *simRuns
	if n == 0 {
		n = 10000
		if raceEnabled {
			n = 600
		}
	}
	var covMu sync.Mutex
	cov := map[string]int{}
	core.CoverHook = func(p string) { covMu.Lock(); cov[p]++; covMu.Unlock() }
	defer func() { core.CoverHook = nil }()
	start := time.Now()
	failed, st := runSeeds(t, *simFirst, n, randomConfig)
	core.CoverHook = nil
	var lines []string
	for _, p := range core.CoverPoints {
		lines = append(lines, fmt.Sprintf("  %-44s %8d", p, cov[p]))
		// The branches that lead to a claim, a release or a stop must all
		// be reached by make test's run of the simulator (10,000 seeds).
		if cov[p] == 0 && n >= 10000 {
			t.Errorf("no scenario reached %q: nothing checks that branch", p)
		}
	}
	for p := range cov {
		if !slices.Contains(core.CoverPoints, p) {
			t.Errorf("cover(%q) is not in core.CoverPoints", p)
		}
	}
	t.Logf("branches reached (claims, releases, stops):\n%s", strings.Join(lines, "\n"))
	t.Logf("%d scenarios in %s: %d steps, %.0f simulated hours, %d duties, %d fences; slowest leader after the heal %s (%.1f leases, seed %d); claims by rule %v; faults %v; %s; %s; %s",
		st.runs, time.Since(start).Round(time.Millisecond), st.steps, st.simulated.Hours(), st.duties, st.fences,
		st.leaderMax.Round(time.Millisecond), st.leaderMaxLeases, st.leaderMaxSeed, st.claims, st.faults, st.ens,
		st.fenced.summary()+st.guard.summary(), st.hist)
	if len(failed) > 0 {
		t.Fatalf("%d of %d scenarios failed; seeds %v", len(failed), n, failed[:min(len(failed), 20)])
	}
}

// TestSimulationFindsTheOldRule runs the simulator on a deliberately broken
// core that trusts what hanode once trusted (a vanished predecessor's lease
// has ended) and expects the simulator to catch two actives: the simulator
// can see the defect the adversarial probe found.
func TestSimulationFindsTheOldRule(t *testing.T) {
	cfgOf := func(seed int64) simConfig {
		cfg := randomConfig(seed)
		cfg.broken = true
		cfg.kinds = []faultKind{fDeleteHolder, fDeleteMember, fDeleteTree, fDataLoss, fKill, fPartition}
		return cfg
	}
	failed, st := runSeeds(t, 1, 200, cfgOf)
	t.Logf("the broken rule failed %d of %d scenarios", len(failed), st.runs)
	if len(failed) == 0 {
		t.Fatal("the simulator did not catch the broken rule")
	}
}
