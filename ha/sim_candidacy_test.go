package ha

// Candidacy in the simulator: election policies (first-come, priority with
// and without preemption), never-lead (NOFAILOVER) members and failing
// health checks, drawn per seed, under every other fault. The invariants
// they add, checked after every step: a NOFAILOVER node is never active; a
// node told that its health check fails is never active until it is told it
// passes again. Preemption and health hand-overs are checked by the
// invariant every step already checks (never two actives). After the
// faults heal, under priority with preemption, the leader is a best
// running member (checkPreferred).

import (
	"fmt"
	"math/rand"
	"time"

	"github.com/hanode/hanode/ha/internal/core"
)

// simCandidacy is a seed's candidacy setup.
type simCandidacy struct {
	policy       string
	preempt      bool
	preemptDelay time.Duration
	priorities   []int // by node index; nil: all 0
	noFailover   int   // 1-based index of a never-lead node, 0 none
}

// randomCandidacy draws a seed's candidacy from a stream of its own, so
// that the seed's other draws stay as they were.
func randomCandidacy(seed int64, nodes int, lease time.Duration) simCandidacy {
	rng := rand.New(rand.NewSource(seed ^ 0x0ca4_d1da))
	var c simCandidacy
	if rng.Intn(3) == 0 {
		c.policy = core.PolicyPriority
		c.priorities = make([]int, nodes)
		for i := range c.priorities {
			c.priorities[i] = rng.Intn(3)
		}
		if rng.Intn(2) == 0 {
			c.preempt = true
			c.preemptDelay = time.Duration(rng.Int63n(int64(lease)))
		}
	}
	if nodes >= 2 && rng.Intn(4) == 0 {
		c.noFailover = 1 + rng.Intn(nodes)
	}
	return c
}

func (c simCandidacy) priority(idx int) int {
	if c.priorities == nil {
		return 0
	}
	return c.priorities[idx]
}

// settle is the time preemption adds to the liveness bound: the holder
// sees a better member at its next listing (every three leases), waits
// PreemptDelay, hands over (a release: the next claims at once), and
// members stepping behind a better one rejoin.
func (c simCandidacy) settle(lease time.Duration) time.Duration {
	if !c.preempt {
		return 0
	}
	return c.preemptDelay + 4*lease
}

// unhealthy makes n's health check fail for length: the core is told so
// (as roles.Health does after HEALTH_FAILURES failures), and told it passes
// again afterwards. A restarted process starts healthy.
func (s *sim) unhealthy(n *simNode, length time.Duration) {
	if !n.running || n.core == nil {
		return
	}
	n.at(s.now, func() {
		n.unhealthy = true
		n.step(core.EvHealth{OK: false, Reason: "simulated"})
		s.check()
	})
	n.at(s.now+length, func() {
		n.unhealthy = false
		n.step(core.EvHealth{OK: true})
		s.check()
	})
}

// checkCandidacy: no node that may not lead is active.
func (s *sim) checkCandidacy(act []*simNode) {
	for _, n := range act {
		if s.cfg.cand.noFailover == n.idx+1 {
			s.violate("%s is active (term %d) but never leads (NOFAILOVER)", n.name, n.core.Term())
		}
		if n.unhealthy {
			s.violate("%s is active (term %d) though its health check fails", n.name, n.core.Term())
		}
	}
}

// checkPreferred: once the faults have healed, under priority with
// preemption, the leader has the best priority among the running nodes that
// may lead. (It found a gap of the simulated client that the one-leader
// check could not see: a restarted process that never connected, seeds
// 2212 and 9526.)
func (s *sim) checkPreferred(leader *simNode) {
	c := s.cfg.cand
	if !c.preempt {
		return
	}
	for _, n := range s.nodes {
		if n.running && n.core != nil && c.noFailover != n.idx+1 && c.priority(n.idx) < c.priority(leader.idx) {
			s.violate("liveness: %s (priority %d) leads %s after the faults healed, but %s (priority %d) runs and preempts",
				leader.name, c.priority(leader.idx), s.settle(), n.name, c.priority(n.idx))
			return
		}
	}
}

func (c simCandidacy) String() string {
	return fmt.Sprintf("policy=%q preempt=%v delay=%s priorities=%v nofailover=%d", c.policy, c.preempt, c.preemptDelay,
		c.priorities, c.noFailover)
}
