package bench

// What G HA groups cost one ZooKeeper and one process, and how fast they
// fail over all at once (BENCHMARKS.md, "Scale").
//
//	go test ./bench -run '^TestScale.*Smoke$' -count=1 -v   (10 groups, about 25 s, and 3 handovers,
//	                                                       about 15 s; part of `make test`)
//	HANODE_BENCH_SCALE=1 go test ./bench -run '^TestScale$' -count=1 -v -timeout 20m
//	                                                       (`make bench-scale`, about 6 minutes: 10, 100,
//	                                                        1,000 groups; 30 real processes; 30 graceful
//	                                                        handovers traced, 30 direct, 5 with the
//	                                                        leader's extension write in flight)
//
// HANODE_SCALE_GROUPS (e.g. "1000") picks the group counts of the full
// run; HANODE_SCALE_PROFILE=DIR writes, for the largest G, CPU profiles of
// the join, the idle window and the mass handover, and a heap profile at
// idle (after a collection); HANODE_SCALE_TRACE=1 puts a tracing proxy in
// front of each session, counts what crosses it during the join and at idle,
// and lists the traffic of groups whose new leader did not claim by rule B
// (the proxy's own CPU and the frames it keeps then count in this process's
// figures).

import (
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// scaleConfig sets one run's windows.
type scaleConfig struct {
	groups     int
	settle     time.Duration // after every group has its leader, before measuring idle
	idle       time.Duration // idle window, probe off: packets, writes, CPU, watch events
	idleProbe  time.Duration // idle window, probe on: client-observed latency
	probeEvery time.Duration
	pollEvery  time.Duration // how often the harness reads every member's State
	profileDir string
	trace      bool // put a tracing proxy in front of each session and count the idle frames
}

// scaleResult is one run's figures.
type scaleResult struct {
	groups, memberships int

	// Join: from starting every election to each group's first
	// StartDuty (the last group's is the figure).
	joinFirst, joinMedian, joinAll time.Duration
	joinZK                         zkDelta
	joinZKCPU, joinSelfCPU         float64 // share of one core over the join
	joinProbe                      probeFigures
	joinMix                        string // with trace: frames per membership, by session

	// Idle, per second, whole server (divide by groups for per group).
	idle                   zkDelta
	idleZKCPU, idleSelfCPU float64 // share of one core
	idleZKCPUOK            bool
	idleReq, idleWrites    float64 // client side (Session.Stats), per second
	idleWatches            float64 // watch events delivered per second
	idleProbe              probeFigures
	idleMix                string // with trace: frames per group per R, by session
	// Memory: before the sessions, with the three sessions open, and idle
	// with every membership; per membership is the last two's difference
	// (the sessions' fixed cost, mostly go-zookeeper's 1.5 MB receive
	// buffer per connection, is left out).
	memBefore, memSessions, memIdle memReading
	heapPerMember, rssPerMembr      float64 // bytes
	stackPerMember                  float64

	// Mass handover.
	cancelSpread       time.Duration // first to last cancel
	handoverAll        time.Duration // first cancel to the last group's new leader
	handoverMedian     time.Duration
	releasedAll        time.Duration // first cancel to the last old leader's Run returning
	handoverWindow     time.Duration // the window the watch events were counted over
	handoverWatches    int64
	handoverExtensions int64 // new holders' extensions in the window, each one watch event
	watchesPerFailover float64
	handoverRules      map[string]ruleTally // the new leaders' State().Reason: which claim rule
	handoverOdd        string               // with trace: the wire of groups not led again by rule B
	handoverMix        string               // with trace: frames per group from the cancels on, by session
	handoverZK         zkDelta
	handoverZKCPU      float64 // share of one core from just before the cancels to the last Run's return
	handoverSelfCPU    float64
	handoverProbe      probeFigures
	// dutyOverlaps counts groups whose new leader's duty started before
	// the old leader's StopDuty call (must be 0). Exact, from the duty
	// callbacks' times, where a sampler of every State() competed with
	// the handover for the machine's two cores and saw only every 20 ms.
	dutyOverlaps int
}

// ruleTally counts new leaders by the reason they lead for.
type ruleTally struct {
	n       int
	slowest time.Duration
}

var digits = regexp.MustCompile(`[0-9]+`)

type probeFigures struct {
	n            int
	avg, p99, hi time.Duration
	fails        int
}

func (p probeFigures) String() string {
	if p.n == 0 {
		return "no samples"
	}
	return fmt.Sprintf("avg %.2f ms, p99 %.2f ms, max %.2f ms (%d reads, %d failed)", msf(p.avg), msf(p.p99), msf(p.hi), p.n, p.fails)
}

func probeResult(p *probe, phase string) probeFigures {
	n, avg, p99, hi, fails := p.result(phase)
	return probeFigures{n: n, avg: avg, p99: p99, hi: hi, fails: fails}
}

// TestScaleSmoke: ten groups of three members on one ZooKeeper (tickTime
// 2000, no per-client connection cap), as three processes' sessions: every
// group gets exactly one leader W after it was created, costs ZooKeeper
// less than one write a second while idle, and when every leader steps down
// at once every group has a new leader, never two, with a few watch
// notifications per departure.
func TestScaleSmoke(t *testing.T) {
	r := runScale(t, scaleConfig{groups: 10, settle: scaleR, idle: 4 * time.Second, idleProbe: time.Second,
		probeEvery: 10 * time.Millisecond, pollEvery: 10 * time.Millisecond})
	t.Log("\n" + r.report())
	if r.dutyOverlaps != 0 {
		t.Errorf("%d groups had a new leader's duty start before the old one's stop", r.dutyOverlaps)
	}
	if got := float64(r.idle.writes) / r.idle.secs / float64(r.groups); got > 1 {
		t.Errorf("idle: %.2f ZooKeeper writes/s per group, want about 1/R = %.2f", got, 1/scaleR.Seconds())
	}
	// A successor claims by rule B at once after the release; one whose
	// leader was cancelled with an extension write in flight finds no
	// release and waits W (rule C; BENCHMARKS.md, "Scale"). Nothing else.
	if r.handoverAll > scaleW+5*time.Second {
		t.Errorf("mass handover of %d groups took %v", r.groups, r.handoverAll)
	}
	for rule, rt := range r.handoverRules {
		if !strings.Contains(rule, ruleReleased) && !strings.Contains(rule, ruleSafeWait) {
			t.Errorf("%d new leaders claimed by an unexpected rule: %q", rt.n, rule)
		}
	}
	// A few per departure, whatever the number of groups (BENCHMARKS.md,
	// "Scale"): at 1188f7e three, the successor's watch on the leaver's
	// node, the leaver's own watch on the lease record and the next
	// standby's watch on the successor's node, which the claim writes; four
	// since a standby also watches its own node. A herd would be more.
	if r.watchesPerFailover < 0.5 || r.watchesPerFailover > 5 {
		t.Errorf("%.2f watch notifications per departure, want a few", r.watchesPerFailover)
	}
}

// The rules a new leader names for its claim (ha/doc.go): rule B after a
// release, rule C after W with no member below.
const (
	ruleReleased = "claimed by rule B (leader released)"
	ruleSafeWait = "claimed by rule C (no member below)"
)

// TestScaleHandoverSmoke: three graceful handovers of one traced group of
// three; each is broken down from the members' callbacks, transitions and
// ZooKeeper traffic, and one by rule B takes two writes (the release and
// the claim).
func TestScaleHandoverSmoke(t *testing.T) {
	r := runTakeovers(t, takeoverConfig{tries: 3, traced: true, phase: 200 * time.Millisecond})
	t.Log("\n" + r.report())
	for i, tr := range r.tries {
		switch {
		case strings.Contains(tr.rule, ruleSafeWait):
			t.Logf("handover %d: the successor waited W (%v): the leader's extension was in flight", i+1, tr.active)
		case !strings.Contains(tr.rule, ruleReleased):
			t.Errorf("handover %d: the successor claimed by %q", i+1, tr.rule)
		// The release and the claim; and the new leader's history entry
		// (ha/history.go), written just after its activation, when it lands
		// before the window closes.
		case tr.writes < 2 || tr.writes > 3 || tr.claimAck == 0 || tr.releaseAck == 0:
			t.Errorf("handover %d: %d writes, release acknowledged at %v, claim at %v; want the release and the claim (and the history entry)",
				i+1, tr.writes, tr.releaseAck, tr.claimAck)
		}
	}
}

// TestScale is the full run behind `make bench-scale` (skipped unless
// HANODE_BENCH_SCALE is set): 10, 100 and 1,000 groups in one process, 10
// groups of real hanode processes, 30 graceful handovers of one group
// traced and 30 untraced, and 5 whose leader is cancelled while its
// extension write is in flight. The tables go to stdout.
func TestScale(t *testing.T) {
	if os.Getenv("HANODE_BENCH_SCALE") == "" {
		t.Skip("set HANODE_BENCH_SCALE=1 (make bench-scale) to run the full scale benchmark")
	}
	counts := []int{10, 100, 1000}
	if s := os.Getenv("HANODE_SCALE_GROUPS"); s != "" {
		counts = nil
		for f := range strings.SplitSeq(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				t.Fatalf("HANODE_SCALE_GROUPS=%q: %q is not a group count", s, f)
			}
			counts = append(counts, n)
		}
	}
	largest := slices.Max(counts)
	fmt.Printf("scale: start, load average %s\n", loadAvg())
	var results []scaleResult
	for _, g := range counts {
		t.Run(fmt.Sprintf("groups=%d", g), func(t *testing.T) {
			cfg := scaleConfig{groups: g, settle: scaleR + time.Second, idle: 30 * time.Second, idleProbe: 10 * time.Second,
				probeEvery: 10 * time.Millisecond, pollEvery: 10 * time.Millisecond}
			if g >= 300 {
				cfg.pollEvery = 25 * time.Millisecond
			}
			cfg.trace = os.Getenv("HANODE_SCALE_TRACE") != ""
			if g == largest {
				cfg.profileDir = os.Getenv("HANODE_SCALE_PROFILE")
			}
			r := runScale(t, cfg)
			fmt.Printf("\n### %d groups (load average %s)\n%s", g, loadAvg(), r.report())
			results = append(results, r)
		})
	}
	fmt.Printf("\n%s", growthTable(results))

	t.Run("processes", func(t *testing.T) {
		pr := runProcesses(t, 10)
		fmt.Printf("\n### real hanode processes (load average %s)\n%s", loadAvg(), pr.report())
	})
	t.Run("handover", func(t *testing.T) {
		tr := runTakeovers(t, takeoverConfig{tries: 30, traced: true, mix: true, phase: time.Second})
		fmt.Printf("\n### graceful handover, traced (load average %s)\n%s", loadAvg(), tr.report())
		tu := runTakeovers(t, takeoverConfig{tries: 30, phase: time.Second})
		fmt.Printf("\n### graceful handover, direct (load average %s)\n%s", loadAvg(), tu.report())
	})
	t.Run("extension", func(t *testing.T) {
		tr := runTakeovers(t, takeoverConfig{tries: 5, traced: true, onExtension: true})
		fmt.Printf("\n### graceful handover with the leader's extension in flight (load average %s)\n%s", loadAvg(), tr.report())
	})
	fmt.Printf("\nscale: end, load average %s\n", loadAvg())
}

// runScale runs one fleet of cfg.groups groups through join, idle and a
// mass handover, on a fresh ZooKeeper.
func runScale(t *testing.T, cfg scaleConfig) scaleResult {
	r := scaleResult{groups: cfg.groups, memberships: scaleProcs * cfg.groups}
	zks := zktest.StartWith(t, zktest.Options{TickMs: scaleTickMs, MaxClientCnxns: 0})
	cid := zks.ContainerID()
	pr := startProbe(t, zks.Addr, cfg.probeEvery)
	r.memBefore = readMem()
	addrs := [scaleProcs]string{zks.Addr, zks.Addr, zks.Addr}
	var tracers [scaleProcs]*tracer
	if cfg.trace {
		for p := range tracers {
			tracers[p] = startTracer(t, zks.Addr)
			addrs[p] = tracers[p].Addr()
		}
	}
	f := openFleet(t, addrs, "/hanode", cfg.groups, false)
	r.memSessions = readMem()

	// Join: every election starts at once; a brand-new group's first
	// leader waits W by design.
	stopProfile := startCPUProfile(t, cfg.profilePath("cpu-join"))
	defer func() { stopProfile() }()
	z0 := mustSrvr(t, zks.Addr)
	zc0, _ := cgroupCPU(cid)
	c0, _ := procCPU(os.Getpid())
	pr.set("join")
	t0 := time.Now()
	f.start()
	testwait.Every(t, scaleW+2*time.Minute, cfg.pollEvery, "exactly one leader in every group", func() bool {
		return f.unsettled() == 0
	})
	pr.set("")
	stopProfile()
	z1 := mustSrvr(t, zks.Addr)
	zc1, _ := cgroupCPU(cid)
	c1, _ := procCPU(os.Getpid())
	r.joinZK, r.joinProbe = srvrDelta(z0, z1), probeResult(pr, "join")
	r.joinZKCPU, r.joinSelfCPU = (zc1-zc0).Seconds()/r.joinZK.secs, (c1-c0).Seconds()/r.joinZK.secs
	if cfg.trace {
		r.joinMix = frameMix(tracers, t0, float64(cfg.groups))
	}
	var firsts []time.Duration
	for _, g := range f.members {
		var first time.Duration
		for _, m := range g {
			if at := m.started.Load(); at != 0 && (first == 0 || time.Duration(at-t0.UnixNano()) < first) {
				first = time.Duration(at - t0.UnixNano())
			}
		}
		firsts = append(firsts, first)
	}
	slices.Sort(firsts)
	r.joinFirst, r.joinMedian, r.joinAll = firsts[0], firsts[len(firsts)/2], firsts[len(firsts)-1]

	// Idle: one extension period to reach steady state, then the window.
	measureFor(cfg.settle)
	r.memIdle = readMem()
	n := float64(r.memberships)
	r.heapPerMember = float64(r.memIdle.heapInuse-r.memSessions.heapInuse) / n
	r.stackPerMember = float64(r.memIdle.stackInuse-r.memSessions.stackInuse) / n
	r.rssPerMembr = float64(r.memIdle.rss-r.memSessions.rss) / n
	if cfg.profileDir != "" {
		writeHeapProfile(t, cfg.profilePath("heap-idle"))
	}
	stopProfile = startCPUProfile(t, cfg.profilePath("cpu-idle"))
	for _, tr := range tracers {
		if tr != nil {
			tr.reset()
		}
	}
	s2, z2 := f.stats(), mustSrvr(t, zks.Addr)
	zc2, zcOK := cgroupCPU(cid)
	c2, _ := procCPU(os.Getpid())
	measureFor(cfg.idle)
	s3, z3 := f.stats(), mustSrvr(t, zks.Addr)
	zc3, _ := cgroupCPU(cid)
	c3, _ := procCPU(os.Getpid())
	r.idle = srvrDelta(z2, z3)
	secs := r.idle.secs
	r.idleZKCPU, r.idleZKCPUOK = (zc3-zc2).Seconds()/secs, zcOK
	r.idleSelfCPU = (c3 - c2).Seconds() / secs
	r.idleReq = float64(s3.Requests-s2.Requests) / secs
	r.idleWrites = float64(s3.Writes-s2.Writes) / secs
	r.idleWatches = float64(s3.WatchEvents-s2.WatchEvents) / secs
	if cfg.trace {
		r.idleMix = frameMix(tracers, z2.at, float64(cfg.groups)*secs/scaleR.Seconds())
	}
	pr.set("idle")
	measureFor(cfg.idleProbe)
	pr.set("")
	r.idleProbe = probeResult(pr, "idle")
	stopProfile()

	// Mass handover: cancel every leader's Run at the same instant; each
	// stops its duty, releases and leaves, and the next member claims.
	leaders := f.leaders()
	for gi, m := range leaders {
		if m == nil {
			t.Fatalf("group %d has no leader before the mass handover", gi)
		}
	}
	stopProfile = startCPUProfile(t, cfg.profilePath("cpu-handover"))
	s5, z5 := f.stats(), mustSrvr(t, zks.Addr)
	zc5, _ := cgroupCPU(cid)
	c5, _ := procCPU(os.Getpid())
	pr.set("handover")
	h0 := time.Now()
	for _, m := range leaders {
		m.cancel()
	}
	r.cancelSpread = time.Since(h0)
	newLeader := func(gi int) (time.Duration, bool) {
		for _, m := range f.members[gi] {
			if m != leaders[gi] {
				if at := m.started.Load(); at > h0.UnixNano() {
					return time.Duration(at - h0.UnixNano()), true
				}
			}
		}
		return 0, false
	}
	testwait.Every(t, 60*time.Second, 5*time.Millisecond, "a new leader in every group", func() bool {
		for gi := range leaders {
			if _, ok := newLeader(gi); !ok {
				return false
			}
		}
		return true
	})
	testwait.Every(t, 30*time.Second, 5*time.Millisecond, "every old leader's Run to return", func() bool {
		for _, m := range leaders {
			if m.running.Load() {
				return false
			}
		}
		return true
	})
	s6, window := f.stats(), time.Since(h0)
	pr.set("")
	z6 := mustSrvr(t, zks.Addr)
	zc6, _ := cgroupCPU(cid)
	c6, _ := procCPU(os.Getpid())
	stopProfile()
	var took []time.Duration
	r.handoverRules = map[string]ruleTally{}
	for gi, m := range leaders {
		d, _ := newLeader(gi)
		took = append(took, d)
		for _, n := range f.members[gi] {
			if n != m && n.started.Load() > h0.UnixNano() {
				rule := digits.ReplaceAllString(n.el.State().Reason, "N")
				rt := r.handoverRules[rule]
				rt.n++
				rt.slowest = max(rt.slowest, d)
				r.handoverRules[rule] = rt
			}
		}
		if err := waitDone(m, 10*time.Second); err != nil {
			t.Errorf("group %d: old leader: %v", gi, err)
		}
		// A duty's start and stop are told on the election's goroutine at
		// the moment the core decides (an active node is active only
		// between them), so no overlap of the two is exact.
		if stop := m.stopCall.Load(); stop < h0.UnixNano() || h0.UnixNano()+int64(d) < stop {
			r.dutyOverlaps++
		}
		if rel := time.Duration(m.stoppedAt.Load() - h0.UnixNano()); rel > r.releasedAll {
			r.releasedAll = rel
		}
	}
	r.handoverMedian, _, r.handoverAll = quantiles(took)
	if cfg.trace {
		r.handoverOdd = oddHandovers(f, leaders, tracers, h0, 2)
		r.handoverMix = frameMixUntil(tracers, h0, h0.Add(window), float64(cfg.groups))
	}
	r.handoverWindow = window
	r.handoverWatches = int64(s6.WatchEvents - s5.WatchEvents)
	// Every holder stopped extending at the cancel; a new holder extends R
	// after its claim and every R after that, each extension a notification
	// to the next member. Those that fell in the window (only when some
	// group took longer than R) are not departures' and are taken out.
	end := h0.Add(window)
	for gi := range leaders {
		if d, ok := newLeader(gi); ok {
			r.handoverExtensions += int64(end.Sub(h0.Add(d)) / scaleR)
		}
	}
	r.watchesPerFailover = float64(r.handoverWatches-r.handoverExtensions) / float64(cfg.groups)
	r.handoverZK, r.handoverProbe = srvrDelta(z5, z6), probeResult(pr, "handover")
	r.handoverZKCPU, r.handoverSelfCPU = (zc6-zc5).Seconds()/r.handoverZK.secs, (c6-c5).Seconds()/r.handoverZK.secs
	testwait.Every(t, 30*time.Second, cfg.pollEvery, "exactly one leader in every group after the handover", func() bool {
		return f.unsettled() == 0
	})
	return r
}

// oddHandovers renders, for at most limit groups whose new leader did not
// claim by rule B (leader released), every frame about the group
// on each session's connection from one extension period before the cancel.
func oddHandovers(f *fleet, leaders []*membership, tracers [scaleProcs]*tracer, h0 time.Time, limit int) string {
	var b strings.Builder
	for gi, old := range leaders {
		if limit == 0 {
			break
		}
		var next *membership
		for _, m := range f.members[gi] {
			if m != old && m.started.Load() > h0.UnixNano() {
				next = m
			}
		}
		if next == nil || strings.Contains(next.el.State().Reason, ruleReleased) {
			continue
		}
		limit--
		fmt.Fprintf(&b, "group %s: old leader proc%d, new leader proc%d (%s) after %v; frames about the group, ms from the cancel:\n",
			scaleGroupID(gi), old.proc, next.proc, next.el.State().Reason,
			time.Duration(next.started.Load()-h0.UnixNano()).Round(time.Millisecond))
		needle := "/groups/" + scaleGroupID(gi)
		for p, tr := range tracers {
			for _, e := range tr.since(h0.Add(-scaleR)) {
				if strings.Contains(e.path, needle) {
					fmt.Fprintf(&b, "  proc%d %9.3f %s\n", p, msf(e.at.Sub(h0)), e)
				}
			}
		}
	}
	return b.String()
}

func writeHeapProfile(t testing.TB, path string) {
	t.Helper()
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if err := pprof.WriteHeapProfile(fh); err != nil {
		t.Fatal(err)
	}
}

// startCPUProfile starts a CPU profile into path and returns the func
// that stops it and closes the file; later calls do nothing. With an empty
// path it does nothing.
func startCPUProfile(t testing.TB, path string) func() {
	t.Helper()
	if path == "" {
		return func() {}
	}
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(fh); err != nil {
		fh.Close()
		t.Fatalf("cpu profile (is go test -cpuprofile also on?): %v", err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			fh.Close()
		})
	}
}

// profilePath is the file for a profile of this run, "" without a
// profile directory.
func (cfg scaleConfig) profilePath(kind string) string {
	if cfg.profileDir == "" {
		return ""
	}
	return filepath.Join(cfg.profileDir, fmt.Sprintf("%s-g%d.pprof", kind, cfg.groups))
}

func (r scaleResult) report() string {
	var b strings.Builder
	g := float64(r.groups)
	per := func(v float64) string { return fmt.Sprintf("%.1f/s (%.3f/s per group)", v, v/g) }
	secs := r.idle.secs
	fmt.Fprintf(&b, "groups %d, memberships %d (3 sessions), ZooKeeper tickTime %d ms, no connection cap, session %v, margin %v, W %v, R %v\n",
		r.groups, r.memberships, scaleTickMs, scaleSessionTimeout, scaleMargin, scaleW, scaleR)
	fmt.Fprintf(&b, "join: first leader %v, median group %v, every group %v (W + %v)\n",
		r.joinFirst.Round(time.Millisecond), r.joinMedian.Round(time.Millisecond), r.joinAll.Round(time.Millisecond),
		(r.joinAll - scaleW).Round(time.Millisecond))
	fmt.Fprintf(&b, "join: ZooKeeper received %d, sent %d packets, %d writes; server avg latency %.2f ms, max since start %d ms; probe %s\n",
		r.joinZK.received, r.joinZK.sent, r.joinZK.writes, r.joinZK.avgLatMs, r.joinZK.maxLatSinceStartMs, r.joinProbe)
	fmt.Fprintf(&b, "join: CPU, share of one core over %.1f s: ZooKeeper %.0f%%, this process %.0f%%\n",
		r.joinZK.secs, 100*r.joinZKCPU, 100*r.joinSelfCPU)
	if r.joinMix != "" {
		fmt.Fprintf(&b, "join: frames per membership, by session:\n%s", r.joinMix)
	}
	fmt.Fprintf(&b, "idle (%.0f s): ZooKeeper packets received %s, sent %s; writes (zxid) %s\n", secs,
		per(float64(r.idle.received)/secs), per(float64(r.idle.sent)/secs), per(float64(r.idle.writes)/secs))
	fmt.Fprintf(&b, "idle: client side requests %s, writes %s, watch events %s\n", per(r.idleReq), per(r.idleWrites), per(r.idleWatches))
	zcpu := "n/a (no cgroup file found)"
	if r.idleZKCPUOK {
		zcpu = fmt.Sprintf("%.2f%% of one core", 100*r.idleZKCPU)
	}
	if r.idleMix != "" {
		fmt.Fprintf(&b, "idle: frames per group per extension period R, by session:\n%s", r.idleMix)
	}
	fmt.Fprintf(&b, "idle: ZooKeeper CPU %s; this process %.2f%% of one core\n", zcpu, 100*r.idleSelfCPU)
	fmt.Fprintf(&b, "idle: server avg latency %.2f ms (max since start %d ms); probe %s\n",
		r.idle.avgLatMs, r.idle.maxLatSinceStartMs, r.idleProbe)
	fmt.Fprintf(&b, "memory per membership: heap %.1f KB, stacks %.1f KB, RSS %.1f KB, goroutines %.2f (before sessions -> 3 sessions open -> every membership idle: HeapInuse %.1f -> %.1f -> %.1f MB, StackInuse %.2f -> %.2f -> %.2f MB, RSS %.1f -> %.1f -> %.1f MB, goroutines %d -> %d -> %d)\n",
		r.heapPerMember/1024, r.stackPerMember/1024, r.rssPerMembr/1024,
		float64(r.memIdle.goroutines-r.memSessions.goroutines)/float64(r.memberships),
		mib(r.memBefore.heapInuse), mib(r.memSessions.heapInuse), mib(r.memIdle.heapInuse),
		mib(r.memBefore.stackInuse), mib(r.memSessions.stackInuse), mib(r.memIdle.stackInuse),
		mib(r.memBefore.rss), mib(r.memSessions.rss), mib(r.memIdle.rss),
		r.memBefore.goroutines, r.memSessions.goroutines, r.memIdle.goroutines)
	fmt.Fprintf(&b, "mass handover: %d cancels in %v; every group led again after %v (median group %v); every old leader released and left after %v\n",
		r.groups, r.cancelSpread.Round(time.Microsecond), r.handoverAll.Round(time.Millisecond),
		r.handoverMedian.Round(time.Millisecond), r.releasedAll.Round(time.Millisecond))
	fmt.Fprintf(&b, "mass handover: %d watch events delivered in %v, %d of them new holders' extensions: %.2f per departure; groups whose new duty started before the old one's stop: %d\n",
		r.handoverWatches, r.handoverWindow.Round(time.Millisecond), r.handoverExtensions, r.watchesPerFailover,
		r.dutyOverlaps)
	fmt.Fprintf(&b, "mass handover: ZooKeeper received %d, sent %d packets, %d writes; server avg latency %.2f ms, max since start %d ms; probe %s\n",
		r.handoverZK.received, r.handoverZK.sent, r.handoverZK.writes, r.handoverZK.avgLatMs, r.handoverZK.maxLatSinceStartMs, r.handoverProbe)
	for _, rule := range slices.Sorted(maps.Keys(r.handoverRules)) {
		rt := r.handoverRules[rule]
		fmt.Fprintf(&b, "mass handover: %d new leaders %q, the slowest after %v\n", rt.n, rule, rt.slowest.Round(time.Millisecond))
	}
	b.WriteString(r.handoverOdd)
	if r.handoverMix != "" {
		fmt.Fprintf(&b, "mass handover: frames per group from the cancels until every old leader left, by session:\n%s", r.handoverMix)
	}
	fmt.Fprintf(&b, "mass handover: CPU, share of one core over %.2f s: ZooKeeper %.0f%%, this process %.0f%%\n",
		r.handoverZK.secs, 100*r.handoverZKCPU, 100*r.handoverSelfCPU)
	return b.String()
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// growthTable shows how each cost grows with G: the figure at each G and
// the exponent k of G^k between the smallest and the largest G.
func growthTable(rs []scaleResult) string {
	if len(rs) == 0 {
		return ""
	}
	type row struct {
		name string
		f    func(scaleResult) float64
		unit string
	}
	rows := []row{
		{"time to every group's first leader, beyond W", func(r scaleResult) float64 { return msf(r.joinAll - scaleW) }, "ms"},
		{"ZooKeeper packets received+sent/s, idle", func(r scaleResult) float64 {
			return float64(r.idle.received+r.idle.sent) / r.idle.secs
		}, "/s"},
		{"ZooKeeper writes/s (zxid), idle", func(r scaleResult) float64 { return float64(r.idle.writes) / r.idle.secs }, "/s"},
		{"ZooKeeper CPU, idle", func(r scaleResult) float64 { return 100 * r.idleZKCPU }, "% core"},
		{"this process's CPU, idle", func(r scaleResult) float64 { return 100 * r.idleSelfCPU }, "% core"},
		{"watch events/s, idle", func(r scaleResult) float64 { return r.idleWatches }, "/s"},
		{"server avg latency, idle", func(r scaleResult) float64 { return r.idle.avgLatMs }, "ms"},
		{"probe max latency, idle", func(r scaleResult) float64 { return msf(r.idleProbe.hi) }, "ms"},
		{"heap (HeapInuse) of the memberships", func(r scaleResult) float64 { return mib(r.memIdle.heapInuse - r.memSessions.heapInuse) }, "MB"},
		{"RSS of the memberships", func(r scaleResult) float64 { return mib(r.memIdle.rss - r.memSessions.rss) }, "MB"},
		{"mass handover, every group led again", func(r scaleResult) float64 { return msf(r.handoverAll) }, "ms"},
		{"mass handover, probe max latency", func(r scaleResult) float64 { return msf(r.handoverProbe.hi) }, "ms"},
		{"mass handover, ZooKeeper CPU", func(r scaleResult) float64 { return 100 * r.handoverZKCPU }, "% core"},
		{"watch events per departure", func(r scaleResult) float64 { return r.watchesPerFailover }, ""},
	}
	var b strings.Builder
	b.WriteString("| cost |")
	for _, r := range rs {
		fmt.Fprintf(&b, " G=%d |", r.groups)
	}
	b.WriteString(" growth (k in G^k, smallest to largest G) |\n|---|")
	for range rs {
		b.WriteString("---|")
	}
	b.WriteString("---|\n")
	for _, rw := range rows {
		fmt.Fprintf(&b, "| %s |", rw.name)
		for _, r := range rs {
			fmt.Fprintf(&b, " %.3g %s |", rw.f(r), rw.unit)
		}
		first, last := rs[0], rs[len(rs)-1]
		k := "-"
		if a, z := rw.f(first), rw.f(last); a > 0 && z > 0 && last.groups > first.groups {
			k = fmt.Sprintf("%.2f", math.Log(z/a)/math.Log(float64(last.groups)/float64(first.groups)))
		}
		fmt.Fprintf(&b, " %s |\n", k)
	}
	return b.String()
}
