package ha

// The duty guard's release (issue 17, core/guard.go) in the simulator. The
// guard is an actor of its own beside each process: it holds the last
// ticket its coordinator sent (over a pipe: a little late, in order), and
// when the process has exited — the kernel's proof, which the simulator has
// only for a kill or a process that gave up leaving, never for a freeze or
// a partition — it waits for the duty's stop, then writes the ticket's
// multi through a connection of its own. The guard itself may die before
// it sends, freeze for up to two leases, or be cut off (its request lost, or
// landing late). Deliberately broken guards (mutation tests): one that
// takes a silent coordinator (a freeze) for dead, one that releases before
// the duty has stopped.

import (
	"fmt"
	"math/rand"
	"time"

	"github.com/hanode/hanode/ha/internal/core"
)

// simGuard is what a node's guard holds for the release.
type simGuard struct {
	ticket  *core.GuardTicket // the last ticket that arrived, nil none
	until   time.Time         // the lease's end that came with it (the node's clock)
	sent    uint64            // tickets sent down the pipe (and clears)
	applied uint64            // the last one that arrived
	busy    bool              // a release is on its way for this process
}

// simGuardStats counts the guard's releases.
type simGuardStats struct {
	asked, landed, refused, lost, late int
}

func (g simGuardStats) add(o simGuardStats) simGuardStats {
	return simGuardStats{g.asked + o.asked, g.landed + o.landed, g.refused + o.refused, g.lost + o.lost, g.late + o.late}
}

// guardRng is the guard's own stream of draws, so that the scenarios'
// other draws stay as they were.
func (s *sim) guardRng() *rand.Rand {
	if s.grng == nil {
		s.grng = rand.New(rand.NewSource(s.cfg.seed ^ 0x6a4d_0e1e))
	}
	return s.grng
}

// guardTell sends t (nil: clear) down n's pipe to its guard: it arrives
// after a moment, after every line sent before it.
func (s *sim) guardTell(n *simNode, t *core.GuardTicket, until time.Time) {
	if !s.cfg.guardRelease {
		return
	}
	n.guard.sent++
	seq := n.guard.sent
	s.at(s.now+time.Duration(s.guardRng().Int63n(int64(time.Millisecond))), func() {
		if seq > n.guard.applied {
			n.guard.applied, n.guard.ticket, n.guard.until = seq, t, until
		}
	})
}

// guardOnExit: n's coordinator has exited (proven) or, for a broken guard,
// went silent. The guard stops the duty (exit has asked for it), and once
// it has stopped, releases with the ticket it holds.
func (s *sim) guardOnExit(n *simNode) {
	if !s.cfg.guardRelease || n.guard.busy {
		return
	}
	inc := n.inc // the process that exited (or, for a broken guard, froze)
	// Lines still in the pipe arrive first: the guard reads to EOF.
	s.at(s.now+time.Millisecond, func() {
		t, until := n.guard.ticket, n.guard.until
		n.guard.ticket = nil
		if t == nil {
			return
		}
		n.guard.busy = true
		release := func() { s.guardRelease(n, t, until, inc) }
		switch {
		case s.cfg.guardEarly:
			release() // broken: before the duty's stop is confirmed
		case n.duty && n.dutyStopping:
			done := n.adv.stopDone
			n.adv.stopDone = func() { done(); release() }
		case n.duty:
			s.dutyStop(n, false)
			done := n.adv.stopDone
			n.adv.stopDone = func() { done(); release() }
		default:
			release()
		}
	})
}

// guardRelease writes t's multi for n, with the guard's own faults. It is
// sent only before the lease's end until (n's clock: the guard's host), on
// one connection: a server restart or rollback between its send and its
// arrival loses it with the connection.
func (s *sim) guardRelease(n *simNode, t *core.GuardTicket, until time.Time, inc int) {
	rng := s.guardRng()
	s.fencedGuard.asked++
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int63n(int64(hi-lo)+1)) }
	send := between(2*s.cfg.netBase, 2*s.cfg.netBase+3*s.cfg.netJitter) // connect, then send
	arrive := between(s.cfg.netBase, s.cfg.netBase+s.cfg.netJitter)
	switch f := rng.Intn(10); {
	case f == 0: // the guard dies before it sends
		s.tracef("%s: guard died before its release (term %d)", n.name, t.Term)
		s.fencedGuard.lost++
		n.guard.busy = false
		return
	case f <= 2: // frozen before it sends
		send += time.Duration(rng.Int63n(int64(2 * s.cfg.lease)))
	case (f >= 4 && f <= 6 || f >= 7 && s.othersRunning(n) >= 2) && s.adversaryMayAct() && !s.plan.rollbackAtClaim:
		// The adversary's timing: the guard wakes just after the next
		// member claimed (rule D, W after the last extension it saw) and
		// ZooKeeper forgot that claim (restored to the ticket's versions).
		s.plan.rollbackAtClaim = true
		s.tracef("ADVERSARY: %s's guard frozen until after the next claim, which ZooKeeper forgets", n.name)
		woken := false
		wake := func() {
			if !woken {
				woken = true
				s.guardSend(n, t, until, inc, arrive)
			}
		}
		s.onServing = append(s.onServing, func() { s.at(s.now+between(20*time.Millisecond, s.cfg.lease/2), wake) })
		s.at(s.now+core.TakeoverWait(s.cfg.lease)+s.cfg.lease, wake) // no claim came: wake all the same
		return
	case f == 3: // cut off once sent: lost, or late on the same connection
		if rng.Intn(2) == 0 {
			s.at(s.now+send, func() { n.guard.busy = false })
			s.tracef("%s: guard cut off; its release is lost (term %d)", n.name, t.Term)
			s.fencedGuard.lost++
			return
		}
		arrive += time.Duration(rng.Int63n(int64(s.cfg.lease)))
	}
	s.at(s.now+send, func() { s.guardSend(n, t, until, inc, arrive) })
}

// othersRunning counts the processes running beside n: the adversary's
// rollback-at-claim needs a second one, to claim by rule B after the late
// release while the first's erased claim still acts.
func (s *sim) othersRunning(n *simNode) int {
	c := 0
	for _, o := range s.nodes {
		if o != n && o.running {
			c++
		}
	}
	return c
}

// guardSend is the guard sending t's release now (unless its lease is
// over), arriving at the server after arrive on the same connection.
func (s *sim) guardSend(n *simNode, t *core.GuardTicket, until time.Time, inc int, arrive time.Duration) {
	n.guard.busy = false
	{
		if !s.cfg.guardLate && !n.local(s.now).Before(until) {
			s.tracef("%s: guard's release for term %d not sent: the lease is over", n.name, t.Term)
			s.fencedGuard.late++
			return
		}
		gen := s.serverGen
		s.at(s.now+arrive, func() {
			if s.zkDown || s.serverGen != gen {
				s.fencedGuard.lost++ // its connection died with the server
				return
			}
			res := s.apply(s.advSession(), core.Op{Kind: core.OpMulti, Ops: t.Ops})
			if res.Err == core.ErrNone {
				s.fencedGuard.landed++
				// doc.go: a release is written after the duty stopped; it
				// ends the lease (the next member may claim at once).
				if n.duty {
					s.violate("%s: its guard's release of term %d applied while the duty still runs", n.name, t.Term)
				}
				n.adv.leaseSent, n.adv.releaseSent = 0, s.now
			} else {
				s.fencedGuard.refused++
			}
			s.tracef("%s: guard's release for term %d (process %s): %v", n.name, t.Term,
				map[bool]string{true: "exited", false: "alive"}[n.inc != inc || !n.running], res.Err)
			if n.inc == inc && n.running && res.Err == core.ErrNone && !s.cfg.guardNoProof {
				s.violate("%s: its guard released term %d while the process lives", n.name, t.Term)
			}
		})
	}
}

func (g simGuardStats) summary() string {
	return fmt.Sprintf("; guards' releases after a proven exit: %d asked, %d landed, %d refused by their checks, %d lost with the guard or its connection, %d not sent (the lease was over)",
		g.asked, g.landed, g.refused, g.lost, g.late)
}
