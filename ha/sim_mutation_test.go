package ha

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hanode/hanode/ha/internal/core"
)

// Mutation tests of the simulator: a simulator is only as strong as the
// weakenings it catches. Each mutation below breaks one rule of doc.go's
// argument (weaken.go) or one assumption the simulator itself must
// enforce; the simulator must find a violation with each, within the seeds
// `make test` runs. The seeds each one needed are logged: a mutation that
// starts to need many more is a simulator that got weaker.

type mutation struct {
	name string
	// edit changes a seed's scenario; the scenario is randomConfig's
	// otherwise.
	edit func(*simConfig)
}

var mutations = []mutation{
	{"W x 0.99", func(c *simConfig) { c.weaken |= core.WeakWait }},
	{"holder's margin check removed", func(c *simConfig) { c.weaken |= core.WeakNoMargin }},
	{"duty stops after its allowance", func(c *simConfig) { c.stopOver = 20 * time.Millisecond }},
	{"rule C dated from the listing", func(c *simConfig) { c.weaken |= core.WeakRuleCFromListing }},
	{"release before the duty stopped", func(c *simConfig) { c.weaken |= core.WeakReleaseBeforeStop }},
	{"observations kept across a reconnect", func(c *simConfig) { c.weaken |= core.WeakKeepAcrossEpochs }},
	{"rule A takes a record naming us at any version", func(c *simConfig) { c.weaken |= core.WeakRuleAAnyVersion }},
	{"a stalled clock (host pause) ignored", func(c *simConfig) { c.weaken |= core.WeakIgnoreClockStall }},
	{"rule B takes a release first read after a reconnect", func(c *simConfig) { c.weaken |= core.WeakRuleBAnyRelease }},
	{"a holder writes in a new epoch before a look", func(c *simConfig) { c.weaken |= core.WeakNoRevalidate }},
	{"a vanished predecessor ended its lease (the old rule)", func(c *simConfig) { c.broken = true }},
	{"a NOFAILOVER or unhealthy member claims", func(c *simConfig) { c.weaken |= core.WeakNoFailoverClaims }},
	{"an unhealthy holder keeps its lease", func(c *simConfig) { c.weaken |= core.WeakHolderIgnoresHealth }},
	{"a fenced write rests on the holder's clock only", func(c *simConfig) { c.weaken |= core.WeakFenceTimeOnly }},
	{"a paused group takes over all the same", func(c *simConfig) { c.weaken |= core.WeakIgnorePause }},
	{"a guard takes a silent coordinator for dead and releases", func(c *simConfig) { c.guardRelease, c.guardNoProof = true, true }},
	{"a guard releases before the duty has stopped", func(c *simConfig) { c.guardRelease, c.guardEarly = true, true }},
	{"a guard releases after the lease (across a rollback)", func(c *simConfig) { c.guardRelease, c.guardLate = true, true }},
	{"a takeover's history entry written unfenced", func(c *simConfig) { c.hist.unfenced = true }},
	{"the history's trim deletes the newest entries", func(c *simConfig) { c.hist.trimNewest = true }},
	{"a takeover's history entry written without the mark", func(c *simConfig) { c.hist.noMark = true }},
}

// mutationSeeds is how many seeds a mutation may need at most: the seeds of
// make test's own run of the simulator.
const mutationSeeds = 10000

// mutationBudget lets a mutation whose defect needs a rare coincidence
// search longer. A guard's late release needs a killed holder with a
// ticket, its guard frozen, a claim ZooKeeper then forgets and a third
// member: about one seed in four thousand has them (seeds 3779 and 4139 at
// two commits of issue 17).
var mutationBudget = map[string]int{"a guard releases after the lease (across a rollback)": 4 * mutationSeeds}

// firstFailing runs seeds from 1 with edit applied until one fails, on two
// workers; it returns that seed (0: none within limit) and the violation.
func firstFailing(limit int, edit func(*simConfig)) (int64, string) {
	var (
		next  atomic.Int64
		found atomic.Int64
		mu    sync.Mutex
		what  string
		wg    sync.WaitGroup
	)
	next.Store(1)
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seed := next.Add(1) - 1
				if seed > int64(limit) || found.Load() != 0 && seed > found.Load() {
					return
				}
				cfg := randomConfig(seed)
				edit(&cfg)
				if fail := newSim(cfg).run(); fail != "" {
					mu.Lock()
					if f := found.Load(); f == 0 || seed < f {
						found.Store(seed)
						what = fail
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return found.Load(), what
}

func TestSimulationCatchesEveryMutation(t *testing.T) {
	if raceEnabled {
		t.Skip("run by make sim, without the race detector (each scenario is one goroutine)")
	}
	var report []string
	for _, m := range mutations {
		start := time.Now()
		limit := mutationSeeds
		if b := mutationBudget[m.name]; b > 0 {
			limit = b
		}
		seed, what := firstFailing(limit, m.edit)
		if seed == 0 {
			t.Errorf("mutation %q: no violation in %d seeds: the simulator cannot see this defect", m.name, limit)
			continue
		}
		first, _, _ := strings.Cut(what, "\n")
		report = append(report, fmt.Sprintf("%-52s caught by seed %5d (%s): %s", m.name, seed,
			time.Since(start).Round(time.Millisecond), first))
	}
	t.Logf("mutations:\n%s", strings.Join(report, "\n"))
}

// TestSimulationReviewSequences scripts the two sequences a review
// found, each as the only fault of its scenarios, with the adversary's
// timing (clocks at the drift extremes, duties that take their whole stop
// allowance): the core as built shows no violation in any seed, the core
// weakened back to the defect shows it.
//
//  1. A listing, then the member's path stalls while the holder extends, is
//     cut off and its node deleted; the member's read then finds the node
//     gone (rule C dated from the listing).
//  2. Another client writes a valid record with a higher term; the holder
//     hands over to itself (a release that keeps its node), and another
//     client deletes its node at once, so the next member claims on the
//     release (a release written before the duty stopped).
func TestSimulationReviewSequences(t *testing.T) {
	if raceEnabled {
		t.Skip("run by make sim, without the race detector (each scenario is one goroutine)")
	}
	const seeds = 400
	for _, c := range []struct {
		name   string
		kind   faultKind
		weaken core.Weakening
	}{
		{"rule C dated by the read", fSensitiveLook, core.WeakRuleCFromListing},
		{"release after the stop", fValidRecord, core.WeakReleaseBeforeStop},
	} {
		t.Run(c.name, func(t *testing.T) {
			edit := func(w core.Weakening) func(*simConfig) {
				return func(cfg *simConfig) {
					cfg.kinds, cfg.weaken = []faultKind{c.kind}, w
					cfg.extremeClocks, cfg.stopFull = true, true
				}
			}
			seed, what := firstFailing(seeds, edit(c.weaken))
			if seed == 0 {
				t.Fatalf("the weakened core survived %d seeds of the scripted sequence: the script does not reach it", seeds)
			}
			first, _, _ := strings.Cut(what, "\n")
			t.Logf("weakened core: violation at seed %d: %s", seed, first)
			if seed, what := firstFailing(seeds, edit(0)); seed != 0 {
				t.Fatalf("seed %d: %s\nreplay with the same edit of randomConfig", seed, what)
			}
		})
	}
}
