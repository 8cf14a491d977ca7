package ha

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hanode/hanode/ha/internal/core"
	"github.com/hanode/hanode/internal/simzk"
)

// The simulated process: one hanode (core, ZooKeeper client as go-zookeeper
// and Session behave, duty guard) whose clock runs at its own rate. Every
// method runs inside one simulation event; nothing here blocks or reads a
// real clock.

type simNode struct {
	s    *sim
	idx  int
	name string

	inc     int        // process incarnation; bumped by kill and restart
	core    *core.Core // nil while the process is down
	running bool
	frozen  time.Duration // frozen until this real time (0: not frozen)
	// stopFollows: the action being taken is followed by a duty stop from
	// the same step (a holder that learned two things at once: its lease
	// extended, and that it must step down): the extension was within the
	// lease when the core emitted it, and the check of it against the
	// core's state after the step does not apply.
	stopFollows bool

	// Clock: local = base + offset + rate*real.
	offset time.Duration
	rate   float64

	// Client.
	sid         int64
	conn        int  // connection generation; bumped on every break
	connected   bool // a live connection with session sid
	connecting  bool
	epoch       uint64
	lastHeard   time.Duration // last packet from the server (real)
	lastSession time.Duration // last time it had a session (real)
	lastZxid    int64
	requeue     []simReq // requests to send on the next connection
	watches     map[string][]uint64
	partUntil   time.Duration // cut off from the server until (real)
	slowUntil   time.Duration // extra latency until (real)
	slowBy      time.Duration
	replaced    bool          // Session.checkClient dropped the session
	conns       uint64        // connections made
	upAt        time.Duration // last scheduled arrival at the server (FIFO)
	downAt      time.Duration // last scheduled arrival at the client (FIFO)

	// Duty, as the duty guard runs it (a separate process: not frozen with
	// the coordinator, and killed only with it when asked).
	duty         bool
	dutyTerm     int64
	dutyDeadline time.Time // local
	dutyStopping bool
	writer       writerState              // its fenced writes (sim_fenced_test.go)
	unhealthy    bool                     // the core was told its health check fails (sim_candidacy_test.go)
	coreWaits    bool                     // the core asked for the stop and waits for EvDutyStopped
	handedAt     map[uint64]time.Duration // when each reply reached the core
	spins        int                      // ticks in a row that found a due deadline and did nothing
	dutyGen      int
	fenceTerm    int64
	fenceGen     int

	adv   simAdv   // what the adversary knows and plans (sim_adversary_test.go)
	guard simGuard // the guard's release ticket (sim_guard_test.go)
}

type simReq struct {
	id uint64
	op core.Op
}

// local is the node's clock reading at real time t.
func (n *simNode) local(t time.Duration) time.Time {
	return simBase.Add(n.offset + time.Duration(float64(t)*n.rate))
}

// real is the real time at which the node's clock reads l.
func (n *simNode) real(l time.Time) time.Duration {
	return time.Duration(float64(l.Sub(simBase)-n.offset) / n.rate)
}

var simBase = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)

// at schedules f for this process incarnation: dropped if the process died
// meanwhile, held while it is frozen.
func (n *simNode) at(t time.Duration, f func()) {
	inc := n.inc
	var run func()
	run = func() {
		if n.inc != inc || !n.running {
			return
		}
		if n.frozen > n.s.now {
			n.s.at(n.frozen, run)
			return
		}
		f()
	}
	n.s.at(t, run)
}

// hand passes ev to the core a little later, as the real driver does from
// the goroutine of each request or from the session's notification: events
// can overtake each other there, except that a watch reaches the core after
// the reply of the request that set it (after names that request; 0: none).
func (n *simNode) hand(ev core.Event, after uint64) {
	t := n.s.now + time.Duration(n.s.rng.Int63n(int64(300*time.Microsecond)))
	if after != 0 {
		t = max(t, n.handedAt[after]+time.Nanosecond)
	}
	if r, ok := ev.(core.EvReply); ok {
		if n.handedAt == nil {
			n.handedAt = map[uint64]time.Duration{}
		}
		n.handedAt[r.ID] = t
	}
	n.at(t, func() { n.step(ev) })
}

// notify tells the core the session changed, as Session's notification
// does: the core reads the state as it is when it gets there (so it may
// miss a brief change, never see one out of order).
func (n *simNode) notify() {
	n.at(n.s.now+time.Duration(n.s.rng.Int63n(int64(300*time.Microsecond))), func() {
		ev := core.EvSession{Up: n.connected, Epoch: n.epoch}
		if n.connected {
			ev.ID = n.sid
		}
		n.step(ev)
	})
}

// step feeds one event to the core and carries out its actions.
func (n *simNode) step(ev core.Event) {
	if n.core == nil {
		return
	}
	if r, ok := ev.(core.EvReply); ok && n.s.histReply(n, r) {
		return // the history goroutine's, not the core's (sim_history_test.go)
	}
	now := n.local(n.s.now)
	// As the driver does (election.go): a stalled monotonic clock first.
	// The wall clock follows real time (NTP corrects it after a pause).
	if n.adv.clock == nil {
		n.adv.clock = newClockWatch(n.s.cfg.margin)
	}
	if by := n.adv.clock.observe(now, simBase.Add(n.s.now), 0); by > 0 {
		n.s.tracef("%s: clock stalled by %s", n.name, by)
		n.stepAt(now, core.EvClockStall{By: by})
		if n.core == nil {
			return
		}
	}
	n.stepAt(now, ev)
}

// stepAt feeds ev to the core at its clock reading now.
func (n *simNode) stepAt(now time.Time, ev core.Event) {
	var acts []core.Action
	func() {
		defer func() {
			if r := recover(); r != nil {
				n.s.violate("%s: core panicked: %v", n.name, r)
			}
		}()
		acts = n.core.Step(now, ev)
	}()
	n.s.noteLease(n)
	_, isTick := ev.(core.EvTick)
	idle := isTick && len(acts) == 0
	for i, a := range acts {
		n.stopFollows = slices.ContainsFunc(acts[i+1:], func(a core.Action) bool { _, ok := a.(core.ActStopDuty); return ok })
		n.act(a)
	}
	n.stopFollows = false
	n.armTick()
	if n.core == nil {
		n.s.check()
		return
	}
	if d, ok := n.core.NextDeadline(); idle && ok && !d.After(now) {
		n.spins++
		if n.spins > 1000 {
			n.s.violate("%s: core spins: its deadline %v is due (now %v) and a tick does nothing: %s", n.name, d, now, n.core.String())
		}
	} else if !idle {
		n.spins = 0
	}
	n.s.check()
}

func (n *simNode) armTick() {
	if n.core == nil {
		return
	}
	d, ok := n.core.NextDeadline()
	if !ok {
		return
	}
	t := max(n.real(d), n.s.now) + time.Microsecond
	n.at(t, func() { n.step(core.EvTick{}) })
}

func (n *simNode) act(a core.Action) {
	s := n.s
	switch a := a.(type) {
	case core.ActRequest:
		n.send(a.ID, a.Op)
	case core.ActStartDuty:
		s.dutyStart(n, a.Term, a.LeaseEnd)
		s.guardTell(n, a.Ticket, a.LeaseEnd)
	case core.ActExtendDuty:
		if n.duty && !n.dutyStopping {
			if a.LeaseEnd.After(n.core.LeaseBound()) && !n.stopFollows {
				s.violate("%s: duty extended to %v beyond the lease end %v", n.name, a.LeaseEnd, n.core.LeaseBound())
			}
			n.dutyDeadline = a.LeaseEnd
			n.armGuard()
			s.guardTell(n, a.Ticket, a.LeaseEnd)
		}
	case core.ActStopDuty:
		s.guardTell(n, nil, time.Time{}) // the guard forgets its ticket at a stop
		s.dutyStop(n, true)
	case core.ActFence:
		n.fenceGen++
		gen, term := n.fenceGen, a.Req.Term
		s.fences++
		fail := s.rng.Float64() < s.cfg.fenceFail && s.now < s.healAt // the fence device heals with the rest
		n.at(s.now+s.dur(time.Millisecond, 300*time.Millisecond), func() {
			if n.fenceGen != gen {
				return
			}
			var err error
			if fail {
				err = errors.New("fence device unreachable")
			}
			n.step(core.EvFenced{Term: term, Err: err})
		})
	case core.ActCancelFence:
		n.fenceGen++
	case core.ActTransition:
		s.tracef("%s: %s -> %s term %d: %s", n.name, a.T.From, a.T.To, a.T.Term, a.T.Reason)
		if a.T.To == PhaseActive {
			s.claims[a.T.Reason[strings.Index(a.T.Reason, "claimed by ")+len("claimed by "):]]++
		}
		s.histTransition(n, a.T)
	case core.ActNotice:
		s.tracef("%s: notice %s: %s", n.name, a.N.Level, a.N.Msg)
		if a.N.Level == "bug" {
			s.violate("%s: %s", n.name, a.N.Msg)
		}
	case core.ActDone:
		s.tracef("%s: election done (%v)", n.name, a.Err)
		if a.Err != nil {
			s.violate("%s: refused: %v", n.name, a.Err)
		}
		n.exit(true)
	}
}

// --- the ZooKeeper client -------------------------------------------------

// latency is one way, client to server or back.
func (n *simNode) latency() time.Duration {
	s := n.s
	d := s.cfg.netBase + time.Duration(s.rng.Int63n(int64(s.cfg.netJitter)+1))
	if s.rng.Float64() < 0.01 {
		d += time.Duration(s.rng.Int63n(int64(50 * time.Millisecond)))
	}
	if n.slowUntil > s.now {
		d += n.slowBy
	}
	return d
}

func (n *simNode) cut() bool { return n.partUntil > n.s.now || n.s.zkDown }

// hold runs f at t on connection conn as TCP would deliver it: held while
// the path is cut (retransmitted once it heals), dropped if the connection
// broke meanwhile.
func (n *simNode) hold(t time.Duration, conn int, f func()) {
	var try func()
	try = func() {
		switch {
		case n.conn != conn:
		case n.partUntil > n.s.now:
			n.s.at(n.partUntil+n.latency(), try)
		default:
			f()
		}
	}
	n.s.at(t, try)
}

// send carries a core request: it fails fast without a connection (as
// Session.do does), else travels to the server.
func (n *simNode) send(id uint64, op core.Op) {
	if !n.connected {
		n.hand(core.EvReply{ID: id, Result: core.Result{Err: core.ErrNotSent}}, 0)
		return
	}
	conn, sid := n.conn, n.sid
	arrive := max(n.s.now+n.latency(), n.upAt+time.Nanosecond)
	n.upAt = arrive
	f := &flight{op: op, epoch: n.epoch, sent: n.s.now, sentLocal: n.local(n.s.now)}
	n.adv.noteSend(f.sentLocal, f.sent)
	n.s.inflight[n][id] = f
	n.s.at(arrive, func() {
		if n.conn == conn && n.partUntil > n.s.now {
			n.hold(n.partUntil+n.latency(), conn, func() { n.s.serve(n, conn, sid, id, f) })
			return
		}
		n.s.serve(n, conn, sid, id, f)
	})
}

// flight is a request on its way.
type flight struct {
	op        core.Op
	epoch     uint64        // of the connection it was sent on, which delivers its reply
	sent      time.Duration // real time the core sent it
	sentLocal time.Time     // the same on the node's clock
	requeued  bool          // to be sent again on the next connection (never reached the server)
	arrived   bool          // it reached the server: never sent again
	failed    bool          // failed with ErrLost at a break: it may still reach the server
}

// deliver hands a server message back to the client, in order (one TCP
// connection): lost if the connection broke meanwhile (the break already
// failed outstanding requests with ErrLost).
func (n *simNode) deliver(conn int, f func()) { n.deliverOn(conn, true, f) }

// deliverOn is deliver for a connection that may not be established yet
// (the connect answer).
func (n *simNode) deliverOn(conn int, established bool, f func()) {
	inc := n.inc
	t := max(n.s.now+n.latency(), n.downAt+time.Nanosecond)
	n.downAt = t
	n.hold(t, conn, func() {
		if n.inc != inc || established && !n.connected || n.s.zkDown {
			return
		}
		n.at(n.s.now, func() {
			if n.conn != conn || established && !n.connected {
				return
			}
			n.lastHeard = n.s.now
			f()
		})
	})
}

// onWatchEvent delivers a server watch notification to the core requests
// that set a watch on the path.
func (n *simNode) onWatchEvent(ev simzk.Event) {
	ids := n.watches[ev.Path]
	if len(ids) == 0 {
		return
	}
	delete(n.watches, ev.Path)
	kind := watchKind(zk.Event{Type: ev.Type})
	for _, id := range ids {
		n.hand(core.EvWatch{ID: id, Kind: kind, Epoch: n.epoch}, id)
	}
}

// breakConn is a dead connection noticed by the client: outstanding
// requests fail with ErrLost (some were applied), the session lives on at
// the server until it expires.
func (n *simNode) breakConn(why string) {
	if !n.connected {
		return
	}
	n.s.tracef("%s: connection lost (%s)", n.name, why)
	n.connected, n.lastSession = false, n.s.now
	n.conn++
	n.s.zk.Disconnect(n.sid)
	ids := make([]uint64, 0, len(n.s.inflight[n]))
	for id := range n.s.inflight[n] {
		ids = append(ids, id)
	}
	sortIDs(ids)
	for _, id := range ids {
		f := n.s.inflight[n][id]
		if f == nil || n.core == nil {
			continue // the process ended meanwhile
		}
		delete(n.s.inflight[n], id)
		if !f.arrived && n.s.rng.Float64() < n.s.cfg.requeue {
			// Still in go-zookeeper's send queue: it goes out on the next
			// connection, whatever session that has.
			f.requeued = true
			n.requeue = append(n.requeue, simReq{id: id, op: f.op})
			continue
		}
		f.failed = true
		n.hand(core.EvReply{ID: id, Result: core.Result{Err: core.ErrLost}}, 0)
	}
	n.notify()
	n.scheduleConnect(n.s.dur(10*time.Millisecond, 200*time.Millisecond))
}

func (n *simNode) scheduleConnect(after time.Duration) {
	if n.connecting {
		return
	}
	n.connecting = true
	n.at(n.s.now+after, func() {
		n.connecting = false
		n.tryConnect()
	})
}

// tryConnect is one connection attempt, as go-zookeeper makes them: with a
// dead session it learns of the expiry, fails every watch, and gets a new
// session; a client with no session for a session timeout is replaced.
func (n *simNode) tryConnect() {
	s := n.s
	if n.connected {
		return
	}
	if n.sid != 0 && s.now-n.lastSession > s.cfg.lease && !n.replaced {
		n.replaced = true // Session.checkClient: a fresh client, a fresh session
		n.lastZxid = 0
		s.tracef("%s: no session for a session timeout; replacing the client", n.name)
	}
	if n.cut() {
		for _, r := range n.requeue {
			n.step(core.EvReply{ID: r.id, Result: core.Result{Err: core.ErrNotSent}})
		}
		n.requeue = nil
		n.scheduleConnect(time.Second)
		return
	}
	conn := n.conn
	arrive := s.now + n.latency()
	s.at(arrive, func() {
		if n.conn != conn || n.connected || n.cut() {
			n.scheduleConnect(time.Second)
			return
		}
		oldSID := n.sid
		if s.ens != nil && !s.ens.admit(n, oldSID != 0 && !n.replaced) {
			return
		}
		if oldSID != 0 && !n.replaced && n.lastZxid > s.zk.LastZxid() {
			// ZooKeeper refuses a client that has seen a newer zxid than
			// it has (a server restored from an older state, or wiped);
			// the client retries until it is replaced.
			s.tracef("%s: refused: the client has seen zxid %d, the server is at %d", n.name, n.lastZxid, s.zk.LastZxid())
			n.scheduleConnect(time.Second)
			return
		}
		reuse := oldSID != 0 && !n.replaced && s.zk.Alive(oldSID)
		var evs []simzk.Event
		if reuse {
			var err error
			if s.ens != nil {
				evs, err = s.ens.setWatches(n, oldSID)
			} else {
				evs, err = s.zk.SetWatches(oldSID, n.lastZxid, n.watchPaths(), nil, nil, s.now)
			}
			if err != nil {
				reuse = false
			}
		}
		if !reuse {
			n.sid, _ = s.zk.CreateSession(s.cfg.lease, s.now)
		}
		sid := n.sid
		zx := s.zk.LastZxid()
		if s.ens != nil {
			zx = s.ens.zxid(n)
		}
		n.connecting = true // until the answer arrives, or the attempt times out
		n.at(s.now+s.cfg.lease/3+time.Second, func() {
			// go-zookeeper gives up on a connect whose answer does not
			// come (lost with a server that went down, or held by a cut)
			// and dials again; a late answer is dropped with the attempt.
			if n.connecting && !n.connected && n.conn == conn {
				n.conn++
				n.connecting = false
				s.tracef("%s: no answer to the connect; dialing again", n.name)
				n.scheduleConnect(0)
			}
		})
		n.deliverOn(conn, false, func() {
			n.connecting = false
			n.connected, n.lastSession, n.lastZxid = true, s.now, zx
			n.adv.serverGen = s.serverGen
			n.conns++
			n.epoch++ // every connection is an epoch (Session does the same)
			if !reuse {
				n.replaced = false
				lost := n.watches
				n.watches = map[string][]uint64{}
				for _, ids := range lost {
					for _, id := range ids {
						n.hand(core.EvWatch{ID: id, Kind: core.WatchLost}, id)
					}
				}
			}
			_ = sid
			n.notify()
			for _, ev := range evs {
				n.onWatchEvent(ev)
			}
			q := n.requeue
			n.requeue = nil
			for _, r := range q {
				n.send(r.id, r.op)
			}
			n.armPing()
		})
		s.flushExpiry()
	})
}

func (n *simNode) watchPaths() []string {
	var out []string
	for p := range n.watches {
		out = append(out, p)
	}
	sortStrings(out)
	return out
}

// armPing keeps the session alive as go-zookeeper does (a ping every T/3)
// and notices a silent server after 2T/3.
func (n *simNode) armPing() {
	conn := n.conn
	var ping func()
	ping = func() {
		if n.conn != conn || !n.connected {
			return
		}
		s := n.s
		if s.now-n.lastHeard >= 2*s.cfg.lease/3 {
			n.breakConn("no answer from the server")
			return
		}
		{
			sid := n.sid
			n.hold(s.now+n.latency(), conn, func() {
				if s.zkDown {
					return
				}
				if s.zk.Touch(sid, s.now) != nil {
					n.deliver(conn, func() { n.breakConn("session expired") }) // the server closes the connection
					return
				}
				s.flushExpiry()
				n.deliver(conn, func() {})
			})
		}
		n.at(s.now+s.cfg.lease/3, ping)
	}
	n.at(n.s.now+n.s.cfg.lease/3, ping)
	n.at(n.s.now+2*n.s.cfg.lease/3, func() {
		if n.conn == conn && n.connected && n.s.now-n.lastHeard >= 2*n.s.cfg.lease/3 {
			n.breakConn("no answer from the server")
		}
	})
}

// --- the duty guard -------------------------------------------------------

func (n *simNode) armGuard() {
	gen := n.dutyGen
	n.s.at(n.real(n.dutyDeadline)+time.Microsecond, func() {
		if n.adv.pausedUntil > n.s.now {
			return // paused with its host: armed again at the resume
		}
		if n.dutyGen == gen && n.duty && !n.dutyStopping && !n.local(n.s.now).Before(n.dutyDeadline) {
			n.s.tracef("%s: duty guard: lease ran out without an extension", n.name)
			n.s.dutyStop(n, false)
		}
	})
}

// exit ends the process: a graceful exit closes the session (its ephemeral
// nodes go at once); a kill leaves it to expire. The guard sees its
// coordinator gone and stops the duty.
func (n *simNode) exit(graceful bool) {
	s := n.s
	if n.duty && !n.dutyStopping {
		s.dutyStop(n, false)
	}
	s.guardOnExit(n) // the process exited: the kernel says so to its guard
	if graceful && n.connected && !n.cut() {
		sid := n.sid
		s.at(s.now+n.latency(), func() {
			evs, _ := s.zk.CloseSession(sid, s.now)
			s.dispatch(evs)
		})
	} else if n.sid != 0 {
		s.zk.Disconnect(n.sid)
	}
	n.inc++
	n.core, n.running, n.connected, n.connecting = nil, false, false, false
	n.conn++
	n.sid, n.watches, n.requeue, n.frozen = 0, nil, nil, 0
	delete(s.inflight, n)
}

func sortIDs(a []uint64) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

func sortStrings(a []string) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}
