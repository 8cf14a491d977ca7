package ha

import (
	"container/heap"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hanode/hanode/ha/internal/core"
	"github.com/hanode/hanode/internal/simzk"
)

// A replicated ZooKeeper ensemble in the simulator (simConfig.replicated):
// three servers, server 0 the leader. s.zk is the leader's committed state;
// writes are applied there at once (committed by quorum, linearizable: the
// version checks of writes and multis are exact). Each follower applies the
// committed history late, by a delay that varies over time, and serves
// reads from the state it has applied: a read may be stale, and a watch set
// by a read fires when THAT server applies the change, late too. What
// ZooKeeper guarantees is kept:
//
//   - per-session FIFO and read-your-own-writes: a write's reply leaves the
//     client's server once that server has applied it, and a later read of
//     the session waits for it;
//   - monotonic reads: a server never goes back, and a client is refused by
//     a server that has applied less than the client's last zxid (it tries
//     the next server, as go-zookeeper does);
//   - a watch is never lost: a watch set by a stale read (the change may
//     already be committed at the leader) is checked against every state
//     the server applies afterwards, and fires on the first that changed
//     the node since the state the read saw.
//
// The history is a list of (zxid, snapshot) taken after every committed
// change (every dispatch of the leader's events, the one place every write,
// expiry and close passes); each entry carries the time at which each
// server applies it. An ensemble election, a wipe or a rollback resets the
// history to the leader's state (every follower synchronises with the new
// leader; every connection broke).

const ensServers = 3

type ensemble struct {
	s    *sim
	rng  *rand.Rand
	gen  int // bumped by every reset: scheduled work of an older generation is dropped
	hist []ensEntry
	base int // absolute index of hist[0]
	srv  [ensServers]ensServer
	node []ensNode // by simNode.idx

	// For the scripted test.
	observe   func(n *simNode, ev core.Event)
	refusals  int
	staleRead int
}

type ensEntry struct {
	zxid int64
	snap *simzk.Snapshot
	at   [ensServers]time.Duration // when each server applies it
}

type ensServer struct {
	applied  int           // absolute index of the newest entry applied
	lag      time.Duration // the current replication delay
	lagNext  time.Duration // when to draw the next one
	lagUntil time.Duration // lagging-follower fault: lag by lagBy until then
	lagBy    time.Duration
	watches  []ensWatch
}

// ensWatch is a watch held by one server for one connection of a node.
type ensWatch struct {
	n     *simNode
	sid   int64
	conn  int
	path  string
	child bool
	rel   int64 // fires on a state whose node changed after this zxid
}

type ensNode struct {
	order   [ensServers]int // the client's server list (go-zookeeper shuffles it)
	next    int             // index in order of the next server to try
	server  int             // server of the current (or last) connection
	connGen int             // ensemble generation of that connection
	pend    int64           // highest zxid of a write sent on connection pendConn
	pendCon int
	fails   int // connection attempts refused in a row
}

// replicatedSeed draws whether a seed runs against an ensemble, from its
// own generator so that the draws of the other seeds do not change.
func replicatedSeed(seed int64) bool {
	return rand.New(rand.NewSource(seed*0x9E3779B9+0x5EED)).Intn(3) == 0
}

// replicatedOnly reports a fault kind that needs an ensemble.
func (k faultKind) replicatedOnly() bool { return k >= fLaggingFollower && k < nFaultKinds }

func newEnsemble(s *sim) *ensemble {
	e := &ensemble{s: s, rng: rand.New(rand.NewSource(s.cfg.seed*31 + 7))}
	for range s.nodes {
		var en ensNode
		for i, p := range e.rng.Perm(ensServers) {
			en.order[i] = p
		}
		e.node = append(e.node, en)
	}
	e.reset()
	return e
}

// drawLag draws follower sv's replication delay and how long it lasts:
// mostly a few ms, for a while some tens to a few hundred, and now and
// then, while the faults last, a burst of up to about a second (a follower
// that kept lagging that much behind would be a fault that never heals:
// with a 2 s session, extensions answered a second late lapse the lease).
func (e *ensemble) drawLag(sv *ensServer) {
	r, now := e.rng.Float64(), e.s.now
	span := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(e.rng.Int63n(int64(hi-lo)+1)) }
	switch {
	case r < 0.7:
		sv.lag, sv.lagNext = span(0, 10*time.Millisecond), now+span(500*time.Millisecond, 3*time.Second)
	case r < 0.95 || now >= e.s.healAt:
		sv.lag, sv.lagNext = span(10*time.Millisecond, 200*time.Millisecond), now+span(100*time.Millisecond, time.Second)
	default:
		sv.lag, sv.lagNext = span(200*time.Millisecond, time.Second), now+span(100*time.Millisecond, time.Second)
	}
}

// reset makes the leader's state the only one: every server has applied
// it, nobody has a watch (every connection broke).
func (e *ensemble) reset() {
	e.gen++
	e.hist = append(e.hist[:0], ensEntry{zxid: e.s.zk.LastZxid(), snap: e.s.zk.Snapshot()})
	e.base = 0
	for i := range e.srv {
		e.srv[i].applied, e.srv[i].watches = 0, nil
	}
}

func (e *ensemble) entry(i int) *ensEntry { return &e.hist[i-e.base] }

func (e *ensemble) tail() int { return e.base + len(e.hist) - 1 }

// appliedZxid is the zxid of the newest state server f has applied.
func (e *ensemble) appliedZxid(f int) int64 { return e.entry(e.srv[f].applied).zxid }

// sync records the leader's state if it changed since the last entry, and
// schedules its application at every server.
func (e *ensemble) sync() {
	s := e.s
	last := &e.hist[len(e.hist)-1]
	if s.zk.LastZxid() == last.zxid {
		return
	}
	ent := ensEntry{zxid: s.zk.LastZxid(), snap: s.zk.Snapshot()}
	for f := 1; f < ensServers; f++ {
		sv := &e.srv[f]
		if s.now >= sv.lagNext {
			e.drawLag(sv)
		}
		at := s.now + sv.lag
		if s.now < sv.lagUntil {
			// The lagging-follower fault: far behind until it ends,
			// then caught up at once.
			at = max(at, min(s.now+sv.lagBy, sv.lagUntil))
		}
		ent.at[f] = max(at, last.at[f])
	}
	ent.at[0] = s.now
	e.prune()
	e.hist = append(e.hist, ent)
	idx, gen := e.tail(), e.gen
	for f := 0; f < ensServers; f++ {
		if ent.at[f] <= s.now {
			e.applyUpTo(f, idx)
			continue
		}
		s.at(ent.at[f], func() {
			if e.gen == gen {
				e.applyUpTo(f, idx)
			}
		})
	}
}

// prune drops the entries every server has gone past.
func (e *ensemble) prune() {
	if len(e.hist) < 64 {
		return
	}
	low := e.tail()
	for f := range e.srv {
		low = min(low, e.srv[f].applied)
	}
	if drop := low - e.base; drop > 0 {
		e.hist = append(e.hist[:0], e.hist[drop:]...)
		e.base = low
	}
}

// applyUpTo makes server f apply the history up to idx, firing its watches
// state by state.
func (e *ensemble) applyUpTo(f, idx int) {
	sv := &e.srv[f]
	for sv.applied < idx {
		sv.applied++
		if len(sv.watches) > 0 {
			e.fire(f, e.entry(sv.applied).snap)
		}
	}
}

// fire checks server f's watches against a state it just applied.
func (e *ensemble) fire(f int, st *simzk.Snapshot) {
	sv := &e.srv[f]
	keep := sv.watches[:0]
	for _, w := range sv.watches {
		if w.n.conn != w.conn || w.n.sid != w.sid {
			continue // the connection closed: the server forgot the watch
		}
		typ, ok := watchChanged(st, w.path, w.child, w.rel)
		if !ok {
			keep = append(keep, w)
			continue
		}
		e.deliverEvent(w.n, w.conn, simzk.Event{Session: w.sid, Type: typ, Path: w.path})
	}
	clear(sv.watches[len(keep):])
	sv.watches = keep
}

// watchChanged is DataTree.setWatches' rule, which is also when a watch set
// at state rel fires on a later state: a data watch on a node deleted or
// written after rel, a child watch on a node deleted or whose children
// changed after rel.
func watchChanged(st *simzk.Snapshot, path string, child bool, rel int64) (zk.EventType, bool) {
	_, stat, ok := st.Get(path)
	switch {
	case !ok:
		return zk.EventNodeDeleted, true
	case !child && stat.Mzxid > rel:
		return zk.EventNodeDataChanged, true
	case child && stat.Pzxid > rel:
		return zk.EventNodeChildrenChanged, true
	}
	return 0, false
}

func (e *ensemble) deliverEvent(n *simNode, conn int, ev simzk.Event) {
	n.deliver(conn, func() {
		if e.observe != nil {
			for _, id := range n.watches[ev.Path] {
				e.observe(n, core.EvWatch{ID: id, Kind: watchKind(zk.Event{Type: ev.Type})})
			}
		}
		n.onWatchEvent(ev)
	})
}

// dispatch replaces sim.dispatch: the leader's change is recorded and
// reaches each server's watches when that server applies it. (No client
// watch is ever registered at s.zk in this mode, so evs is empty.)
func (e *ensemble) dispatch(evs []simzk.Event) {
	_ = evs
	e.sync()
}

// serve replaces sim.serve for a request that reached n's server on a live
// connection.
func (e *ensemble) serve(n *simNode, conn int, sid int64, id uint64, f *flight) {
	s := e.s
	en := &e.node[n.idx]
	if en.connGen != e.gen {
		return // a connection of an older ensemble: closed, the reply never comes
	}
	e.sync()
	srv := en.server
	op := f.op
	reply := func(res core.Result, zx int64) {
		n.deliver(conn, func() {
			delete(s.inflight[n], id)
			if op.Watch && res.Err == core.ErrNone {
				n.watches[op.Path] = append(n.watches[op.Path], id)
			}
			n.lastZxid = max(n.lastZxid, zx)
			s.onAck(n, f, res)
			if op.Kind == core.OpChildren && res.Err == core.ErrNone {
				s.onListing(n)
			}
			ev := core.EvReply{ID: id, Result: res, Epoch: f.epoch}
			if e.observe != nil {
				e.observe(n, ev)
			}
			n.hand(ev, 0)
			if res.Err == core.ErrNotSent {
				n.breakConn("session expired") // the server closes the connection
			}
		})
	}
	if op.Kind != core.OpGet && op.Kind != core.OpChildren {
		// A write: committed at the leader now, answered once the
		// client's server applied it.
		s.beforeApply(n, f)
		res := s.apply(sid, op)
		s.afterApply(n, f, res)
		zx := s.zk.LastZxid()
		if res.Err == core.ErrNotSent {
			reply(res, 0)
			return
		}
		en.pend, en.pendCon = zx, conn
		at, gen := e.entry(e.tail()).at[srv], e.gen
		s.at(at, func() {
			if e.gen == gen {
				reply(res, zx)
			}
		})
		return
	}
	// A read waits for the session's earlier writes to be applied here.
	if en.pendCon == conn && en.pend > e.appliedZxid(srv) {
		i := e.srv[srv].applied
		for e.entry(i).zxid < en.pend {
			i++
		}
		gen := e.gen
		s.at(e.entry(i).at[srv], func() {
			if e.gen == gen && n.conn == conn && !s.zkDown {
				e.serve(n, conn, sid, id, f)
			}
		})
		return
	}
	if err := s.zk.Touch(sid, s.now); err != nil {
		s.flushExpiry()
		reply(simResult(simzk.Result{Err: err}), 0)
		return
	}
	s.flushExpiry()
	idx := e.srv[srv].applied
	ent := e.entry(idx)
	sop := simOp(op)
	sop.Watch = false
	res := simResult(ent.snap.Read(sop))
	if ent.zxid < s.zk.LastZxid() {
		e.staleRead++
		if s.verbose {
			s.tracef("%s: %s %s served by zk%d at zxid %d (leader at %d)", n.name, op.Kind, op.Path, srv, ent.zxid, s.zk.LastZxid())
		}
	}
	if op.Watch && res.Err == core.ErrNone {
		e.srv[srv].watches = append(e.srv[srv].watches, ensWatch{n: n, sid: sid, conn: conn, path: op.Path,
			child: op.Kind == core.OpChildren, rel: ent.zxid})
	}
	reply(res, ent.zxid)
}

// admit picks the server of a connection attempt that reached the
// ensemble, the next in the client's list; a server behind the client's
// last zxid refuses it (check: the client has a session to resume), and the
// client tries the next one, waiting a second after a full round. A client
// told its session expired gets a new one at the next server, unchecked.
func (e *ensemble) admit(n *simNode, check bool) bool {
	s := e.s
	e.sync()
	en := &e.node[n.idx]
	srv := en.order[en.next%ensServers]
	en.next++
	if check && n.lastZxid > e.appliedZxid(srv) {
		e.refusals++
		en.fails++
		s.tracef("%s: refused by zk%d: the client has seen zxid %d, the server is at %d", n.name, srv, n.lastZxid, e.appliedZxid(srv))
		wait := s.dur(time.Millisecond, 20*time.Millisecond)
		if en.fails%ensServers == 0 {
			wait = time.Second
		}
		n.scheduleConnect(wait)
		return false
	}
	en.fails = 0
	if check && !s.zk.Alive(n.sid) {
		// The server answers that the session expired: go-zookeeper
		// forgets its last zxid and connects to the next server for a
		// new session, which may be behind what the client saw.
		srv = en.order[en.next%ensServers]
		en.next++
	}
	en.server, en.connGen = srv, e.gen
	if s.verbose {
		s.tracef("%s: connecting to zk%d (at zxid %d, leader at %d)", n.name, srv, e.appliedZxid(srv), s.zk.LastZxid())
	}
	return true
}

// zxid is what the client learns as its last zxid when it connects.
func (e *ensemble) zxid(n *simNode) int64 { return e.appliedZxid(e.node[n.idx].server) }

// setWatches is go-zookeeper's SetWatches on reconnect, at the server the
// client connected to: a watch fires at once if that server's state changed
// since the client's last zxid, else the server holds it.
func (e *ensemble) setWatches(n *simNode, sid int64) ([]simzk.Event, error) {
	s := e.s
	if err := s.zk.Touch(sid, s.now); err != nil {
		return nil, err
	}
	srv := e.node[n.idx].server
	st := e.entry(e.srv[srv].applied).snap
	var evs []simzk.Event
	for _, p := range n.watchPaths() {
		// As the simulator sends them: every path as a data watch.
		if typ, ok := watchChanged(st, p, false, n.lastZxid); ok {
			evs = append(evs, simzk.Event{Session: sid, Type: typ, Path: p})
			continue
		}
		e.srv[srv].watches = append(e.srv[srv].watches, ensWatch{n: n, sid: sid, conn: n.conn, path: p, rel: n.lastZxid})
	}
	return evs, nil
}

// inject starts one of the ensemble's faults.
func (e *ensemble) inject(k faultKind, n *simNode, length time.Duration) {
	s := e.s
	switch k {
	case fLaggingFollower:
		f := 1 + e.rng.Intn(ensServers-1)
		sv := &e.srv[f]
		sv.lagUntil = s.now + length
		sv.lagBy = time.Duration(e.rng.Int63n(int64(s.cfg.lease))) + time.Millisecond
		s.tracef("zk%d lags by %.3fs", f, sv.lagBy.Seconds())
	case fEnsembleElection:
		// Every connection breaks; the committed state survives, and the
		// new leader's session tracker gives every session a fresh timeout.
		// (Over before the faults are taken to heal.)
		d := min(s.dur(100*time.Millisecond, 2*time.Second), length+900*time.Millisecond)
		s.serverOutage(d, func() { s.zk.Restore(s.zk.Snapshot(), s.now) })
	case fSessionMove:
		if n.running && n.connected && !s.zkDown {
			n.breakConn("session moves to another server")
		}
	}
}

// ensStats sums what the ensemble did over many seeds.
type ensStats struct{ seeds, staleReads, refusals int }

func (st *ensStats) add(s *sim) {
	if s.ens != nil {
		st.seeds++
		st.staleReads += s.ens.staleRead
		st.refusals += s.ens.refusals
	}
}

func (st ensStats) String() string {
	return fmt.Sprintf("replicated seeds %d (stale reads %d, connections refused %d)", st.seeds, st.staleReads, st.refusals)
}

// runFor plays the simulation's events for d (the scripted test drives
// the clients by hand: no core, no faults).
func (s *sim) runFor(d time.Duration) {
	end := s.now + d
	for s.q.Len() > 0 && s.q[0].at <= end {
		ev := heap.Pop(&s.q).(simEvent)
		s.now = ev.at
		ev.f()
	}
	s.now = end
}

// TestEnsembleModel scripts what the replicated model claims: a read from a
// lagging follower returns a stale version, a watch set by that stale read
// fires when the follower catches up, a session reads its own writes even
// there, and a client reconnecting is refused by a server behind its last
// zxid and moves on.
func TestEnsembleModel(t *testing.T) {
	cfg := randomConfig(1)
	cfg.nodes, cfg.replicated = 2, true
	s := newSim(cfg)
	e := s.ens
	const lag = 500 * time.Millisecond
	for f := range e.srv {
		e.srv[f].lag, e.srv[f].lagNext = 0, time.Hour // every server keeps up,
	}
	e.srv[2].lagUntil, e.srv[2].lagBy = time.Hour, lag // but zk2, 500 ms behind
	a, b := s.nodes[0], s.nodes[1]
	e.node[a.idx].order = [ensServers]int{0, 2, 1} // a: the leader, then the lagging follower
	e.node[b.idx].order = [ensServers]int{2, 0, 1} // b: the lagging follower
	type seen struct {
		at time.Duration
		ev core.Event
	}
	got := map[*simNode][]seen{}
	e.observe = func(n *simNode, ev core.Event) { got[n] = append(got[n], seen{s.now, ev}) }
	reply := func(n *simNode, id uint64) (core.Result, time.Duration) {
		t.Helper()
		for _, x := range got[n] {
			if r, ok := x.ev.(core.EvReply); ok && r.ID == id {
				return r.Result, x.at
			}
		}
		t.Fatalf("%s: no reply to request %d", n.name, id)
		return core.Result{}, 0
	}
	for _, n := range s.nodes {
		n.inc, n.running, n.watches = 1, true, map[string][]uint64{}
		s.inflight[n] = map[uint64]*flight{}
		n.tryConnect()
	}
	s.runFor(100 * time.Millisecond)
	if !a.connected || !b.connected || e.node[a.idx].server != 0 || e.node[b.idx].server != 2 {
		t.Fatalf("connected a=%v to zk%d, b=%v to zk%d", a.connected, e.node[a.idx].server, b.connected, e.node[b.idx].server)
	}

	// a creates /x and writes it; b, on the lagging follower, reads the
	// old version with a watch.
	a.send(1, core.Op{Kind: core.OpCreate, Path: "/x", Data: []byte("v0")})
	s.runFor(time.Second)
	a.send(2, core.Op{Kind: core.OpSet, Path: "/x", Data: []byte("v1"), Version: 0})
	s.runFor(20 * time.Millisecond)
	if r, _ := reply(a, 2); r.Err != core.ErrNone || r.Stat.Version != 1 {
		t.Fatalf("a's write: %+v", r)
	}
	committed := s.now - 20*time.Millisecond
	b.send(3, core.Op{Kind: core.OpGet, Path: "/x", Watch: true})
	s.runFor(50 * time.Millisecond)
	if r, _ := reply(b, 3); r.Err != core.ErrNone || r.Stat.Version != 0 || string(r.Data) != "v0" {
		t.Fatalf("b's read from the lagging follower: %+v, want the stale version 0", r)
	}
	s.runFor(time.Second)
	var fired time.Duration
	for _, x := range got[b] {
		if w, ok := x.ev.(core.EvWatch); ok && w.ID == 3 && w.Kind == core.WatchChanged {
			fired = x.at
		}
	}
	if fired == 0 || fired < committed+lag {
		t.Fatalf("the stale read's watch fired at %v (0: never); the change was committed at %v, applied at zk2 %v later",
			fired, committed, lag)
	}

	// b writes at the lagging follower: the reply waits for zk2 to apply
	// it, and b's next read, sent at once, sees it.
	sent := s.now
	b.send(4, core.Op{Kind: core.OpSet, Path: "/x", Data: []byte("v2"), Version: 1})
	b.send(5, core.Op{Kind: core.OpGet, Path: "/x"})
	s.runFor(time.Second)
	r4, at4 := reply(b, 4)
	r5, at5 := reply(b, 5)
	if r4.Err != core.ErrNone || at4 < sent+lag || r5.Stat.Version != 2 || at5 < at4 {
		t.Fatalf("b's write %+v at %v (sent %v) and read %+v at %v: want the write answered after zk2 applied it, "+
			"the read after it, seeing version 2", r4, at4, sent, r5, at5)
	}

	// a writes again (zk2 is 500 ms behind), then its connection breaks:
	// zk2, next in its list, refuses it; zk1 takes it, same session.
	a.send(6, core.Op{Kind: core.OpSet, Path: "/x", Data: []byte("v3"), Version: 2})
	s.runFor(5 * time.Millisecond)
	if r, _ := reply(a, 6); r.Err != core.ErrNone {
		t.Fatalf("a's second write: %+v", r)
	}
	sid := a.sid
	a.breakConn("test: the connection breaks")
	s.runFor(300 * time.Millisecond)
	if e.refusals != 1 || !a.connected || e.node[a.idx].server != 1 || a.sid != sid {
		t.Fatalf("after the break: %d refusals, a connected %v to zk%d with session %x (was %x); want refused by zk2, "+
			"then zk1", e.refusals, a.connected, e.node[a.idx].server, a.sid, sid)
	}
	// And a read there sees a's write.
	a.send(7, core.Op{Kind: core.OpGet, Path: "/x"})
	s.runFor(20 * time.Millisecond)
	if r, _ := reply(a, 7); r.Stat.Version != 3 {
		t.Fatalf("a's read at zk1 after the move: %+v", r)
	}
}
