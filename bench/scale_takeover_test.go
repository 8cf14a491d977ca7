package bench

// The graceful handover of one group of three members (three sessions, one
// ZooKeeper), cancel of the leader's Run to the successor's
// State().Active(), broken down from outside hanode: the
// callbacks' and Subscribe's timestamps on both members, and, when traced,
// each member's ZooKeeper requests, replies and watch notifications as they
// passed a tracing proxy (scale_trace_test.go).

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// takeoverTry is one graceful handover; every time is from the cancel.
type takeoverTry struct {
	from, to, third int // procs

	active    time.Duration // successor's StartDuty
	dutyStop  time.Duration // old leader's StopDuty
	leftAt    time.Duration // old leader's Run returned
	watches   uint64        // watch events delivered to elections, all three sessions
	requests  uint64        // requests by all three sessions
	writes    uint64
	oldTrans  []string // transitions from Subscribe, with their At from the cancel
	nextTrans []string

	rule string // the successor's State().Reason once active, digits as N: which claim rule

	// Traced only.
	traced                  bool
	ordered                 bool          // release, notification, reads, claim, in this order (breakDown)
	releaseSent, releaseAck time.Duration // the old leader's first multi after the cancel
	watchFired              time.Duration // the successor's first notification
	watchWhat               string
	readSent, readAck       time.Duration // the successor's first request after it, and its reply
	readOp                  string
	reads                   int // successor's requests between the notification and the claim
	claimSent, claimAck     time.Duration
	oldWire, nextWire       []string // every frame, for the first try's log
	thirdWire               []string
	notifications           int // notifications on all three connections
}

type takeoverResult struct {
	traced      bool
	onExtension bool
	tries       []takeoverTry
	idleMix     string
}

// idleMix traces one group at idle for three extension periods and counts
// each member's frames by kind, per period R.
func idleMix(t *testing.T, f *fleet, tracers [scaleProcs]*tracer) string {
	measureFor(scaleR) // steady state
	if n := f.unsettled(); n != 0 {
		t.Fatalf("group not settled before the idle trace")
	}
	for _, tr := range tracers {
		tr.reset()
	}
	t0 := time.Now()
	measureFor(3 * scaleR)
	var names [scaleProcs]string
	for p := range tracers {
		names[p] = "standby"
		st := f.members[0][p].el.State()
		if st.Active() {
			names[p] = "leader"
		} else if len(st.Members) > 1 && st.Members[1].Name == fmt.Sprintf("proc%d", p) {
			names[p] = "second"
		}
	}
	return frameMix(tracers, t0, time.Since(t0).Seconds()/scaleR.Seconds(), names[:]...)
}

// frameMix counts each tracer's frames since t0 by label (replies only
// when they failed), divided by per, one line per tracer.
func frameMix(tracers [scaleProcs]*tracer, t0 time.Time, per float64, names ...string) string {
	return frameMixUntil(tracers, t0, time.Time{}, per, names...)
}

// frameMixUntil is frameMix for the frames from t0 to t1 (zero: on).
func frameMixUntil(tracers [scaleProcs]*tracer, t0, t1 time.Time, per float64, names ...string) string {
	var b strings.Builder
	for p, tr := range tracers {
		counts := map[string]int{}
		for _, e := range tr.since(t0) {
			if !t1.IsZero() && e.at.After(t1) {
				continue
			}
			if e.kind != "pong" && (e.kind != "rep" || e.failed()) {
				counts[e.label()]++
			}
		}
		keys := slices.Sorted(maps.Keys(counts))
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, float64(counts[k])/per))
		}
		name := fmt.Sprintf("proc%d", p)
		if p < len(names) {
			name = names[p] + " (" + name + ")"
		}
		fmt.Fprintf(&b, "  %s: %s\n", name, strings.Join(parts, ", "))
	}
	return b.String()
}

// takeoverConfig sets a run of handovers.
type takeoverConfig struct {
	tries  int
	traced bool          // each session through a tracing proxy
	mix    bool          // with traced: first count each member's traffic at idle
	phase  time.Duration // bound of the random wait before each try
	// onExtension (with traced) cancels the leader the moment its next
	// extension write passes its tracer: the release is then built while
	// that write is in flight.
	onExtension bool
}

// runTakeovers runs cfg.tries graceful handovers of one group on a fresh
// ZooKeeper (tickTime 2000, T 10 s, margin 3 s). The cancelled leader's
// process (its session) rejoins the group as a new member before the next
// try, so every try has three members.
func runTakeovers(t *testing.T, cfg takeoverConfig) takeoverResult {
	traced := cfg.traced
	zks := zktest.StartWith(t, zktest.Options{TickMs: scaleTickMs, MaxClientCnxns: 0})
	var addrs [scaleProcs]string
	var tracers [scaleProcs]*tracer
	for p := range scaleProcs {
		addrs[p] = zks.Addr
		if traced {
			tracers[p] = startTracer(t, zks.Addr)
			addrs[p] = tracers[p].Addr()
		}
	}
	f := openFleet(t, addrs, "/hanode", 1, true)
	f.start()
	testwait.Every(t, scaleW+30*time.Second, 5*time.Millisecond, "one leader", func() bool { return f.unsettled() == 0 })

	res := takeoverResult{traced: traced, onExtension: cfg.onExtension}
	if traced && cfg.mix {
		res.idleMix = idleMix(t, f, tracers)
	}
	for i := range cfg.tries {
		// A random phase against the holder's extensions (every R), so the
		// tries do not all fall at one point of the extension cycle.
		if cfg.phase > 0 {
			measureFor(rand.N(cfg.phase))
		}
		testwait.Every(t, 20*time.Second, 5*time.Millisecond, "one leader, two standbys", func() bool { return f.unsettled() == 0 })
		old := f.leaders()[0]
		for _, tr := range tracers {
			if tr != nil {
				tr.reset()
			}
		}
		var from time.Time // the wire is listed from here: the cancel, or the extension before it
		if cfg.onExtension {
			ev, err := recvBounded(tracers[old.proc].nextRequest(14), 2*scaleR+time.Second)
			if err != nil {
				t.Fatalf("try %d: no extension write from the leader: %v", i+1, err)
			}
			from = ev.at
		}
		st0 := f.stats()
		t0 := time.Now()
		old.cancel()
		if from.IsZero() {
			from = t0
		}
		var next *membership
		testwait.Every(t, scaleW+10*time.Second, time.Millisecond, "a new leader", func() bool {
			for _, m := range f.members[0] {
				if m != old && m.started.Load() > t0.UnixNano() {
					next = m
					return true
				}
			}
			return false
		})
		if err := waitDone(old, 10*time.Second); err != nil {
			t.Fatalf("try %d: old leader: %v", i+1, err)
		}
		st1 := f.stats()
		since := func(ns int64) time.Duration { return time.Duration(ns - t0.UnixNano()) }
		try := takeoverTry{from: old.proc, to: next.proc, third: 3 - old.proc - next.proc,
			active: since(next.started.Load()), dutyStop: since(old.stopCall.Load()), leftAt: since(old.stoppedAt.Load()),
			watches: st1.WatchEvents - st0.WatchEvents, requests: st1.Requests - st0.Requests, writes: st1.Writes - st0.Writes,
			oldTrans: transSince(old, t0), nextTrans: transSince(next, t0)}
		// StartDuty runs just before the election publishes its
		// new state.
		testwait.Every(t, time.Second, time.Millisecond, "the new leader's state", func() bool { return next.el.State().Active() })
		try.rule = digits.ReplaceAllString(next.el.State().Reason, "N")
		if traced {
			breakDown(&try, t0, from, tracers)
		}
		res.tries = append(res.tries, try)

		// The old leader's process rejoins as a new member.
		f.members[0][old.proc] = f.run(0, old.proc)
	}
	return res
}

func transSince(m *membership, t0 time.Time) []string {
	var out []string
	for _, tr := range m.transitions() {
		if !tr.At.Before(t0) {
			out = append(out, fmtTrans(tr, t0))
		}
	}
	return out
}

func fmtTrans(tr ha.Transition, t0 time.Time) string {
	return fmt.Sprintf("%.3f ms %s→%s (%s)", msf(tr.At.Sub(t0)), tr.From, tr.To, tr.Reason)
}

// breakDown reads the two members' wire traces. The usual order is: the
// old leader's release (a multi), the successor's notification, its reads,
// its claim (a multi). A successor whose safety-net relist was in flight
// can see the release and claim before its notification arrives: such a
// try counts in the totals but not in the per-step table (ordered false).
func breakDown(try *takeoverTry, t0, from time.Time, tracers [scaleProcs]*tracer) {
	try.traced = true
	d := func(at time.Time) time.Duration { return at.Sub(t0) }
	oldEv, nextEv := tracers[try.from].since(t0), tracers[try.to].since(t0)
	for p := range scaleProcs {
		for _, e := range tracers[p].since(t0) {
			if e.kind == "notify" {
				try.notifications++
			}
		}
	}
	wire := func(evs []wireEvent) []string {
		var out []string
		for _, e := range evs {
			if e.kind != "ping" && e.kind != "pong" {
				out = append(out, fmt.Sprintf("%8.3f ms %s", msf(d(e.at)), e))
			}
		}
		return out
	}
	try.oldWire, try.nextWire = wire(tracers[try.from].since(from)), wire(tracers[try.to].since(from))
	try.thirdWire = wire(tracers[try.third].since(from))
	isMulti := func(e wireEvent) bool { return e.kind == "rep" && e.op == 14 }
	rel, relErr := firstAfter(oldEv, t0, isMulti)
	claim, claimErr := firstAfter(nextEv, t0, isMulti)
	w, wErr := firstAfter(nextEv, t0, func(e wireEvent) bool { return e.kind == "notify" })
	if relErr == nil {
		try.releaseSent, try.releaseAck = d(rel.sent), d(rel.at)
	}
	if claimErr == nil {
		try.claimSent, try.claimAck = d(claim.sent), d(claim.at)
	}
	if wErr == nil {
		try.watchFired, try.watchWhat = d(w.at), w.label()
	}
	try.ordered = relErr == nil && claimErr == nil && wErr == nil && w.at.Before(claim.sent)
	if !try.ordered {
		try.watchWhat = "no notification before the claim"
		return
	}
	first := true
	for _, e := range nextEv {
		if e.kind != "rep" || e.sent.Before(w.at) || !e.sent.Before(claim.sent) {
			continue
		}
		try.reads++
		if first {
			first = false
			try.readSent, try.readAck, try.readOp = d(e.sent), d(e.at), zkOpName(e.op)
		} else {
			try.readAck = max(try.readAck, d(e.at))
			if !strings.Contains(try.readOp, zkOpName(e.op)) {
				try.readOp += "+" + zkOpName(e.op)
			}
		}
	}
}

func (r takeoverResult) report() string {
	var b strings.Builder
	n := len(r.tries)
	ordered := 0
	for _, tr := range r.tries {
		if tr.ordered {
			ordered++
		}
	}
	// every takes a figure from every try; wired only from the tries whose
	// wire steps came in the usual order.
	pick := func(f func(takeoverTry) time.Duration, orderedOnly bool) []time.Duration {
		out := make([]time.Duration, 0, n)
		for _, tr := range r.tries {
			if !orderedOnly || tr.ordered {
				out = append(out, f(tr))
			}
		}
		return out
	}
	every := func(f func(takeoverTry) time.Duration) []time.Duration { return pick(f, false) }
	wired := func(f func(takeoverTry) time.Duration) []time.Duration { return pick(f, true) }
	line := func(name string, ds []time.Duration) {
		if len(ds) == 0 {
			fmt.Fprintf(&b, "| %s | - | - | - | - |\n", name)
			return
		}
		p50, p90, hi := quantiles(ds)
		lo := slices.Min(ds)
		fmt.Fprintf(&b, "| %s | %.2f | %.2f | %.2f | %.2f |\n", name, msf(p50), msf(p90), msf(lo), msf(hi))
	}
	mode := "direct connections"
	if r.traced {
		mode = "each session through a tracing proxy"
	}
	if r.onExtension {
		mode += ", each leader cancelled as its extension write passed its proxy (the write in flight; wire listings start at that write)"
	}
	if r.idleMix != "" {
		fmt.Fprintf(&b, "idle, frames per extension period R (%v) on each member's connection (pings included):\n%s\n", scaleR, r.idleMix)
	}
	fmt.Fprintf(&b, "%d graceful handovers, one group of 3, %s; times from the cancel of the leader's Run, ms\n\n", n, mode)
	b.WriteString("| step | median | p90 | min | max |\n|---|---|---|---|---|\n")
	line("old leader's duty stopped (StopDuty called)", every(func(x takeoverTry) time.Duration { return x.dutyStop }))
	if r.traced {
		line("release multi sent", wired(func(x takeoverTry) time.Duration { return x.releaseSent }))
		line("release multi acknowledged", wired(func(x takeoverTry) time.Duration { return x.releaseAck }))
		line("successor's watch notification arrived", wired(func(x takeoverTry) time.Duration { return x.watchFired }))
		line("successor's first read sent", wired(func(x takeoverTry) time.Duration { return x.readSent }))
		line("successor's last read answered", wired(func(x takeoverTry) time.Duration { return x.readAck }))
		line("claim multi sent", wired(func(x takeoverTry) time.Duration { return x.claimSent }))
		line("claim multi acknowledged", wired(func(x takeoverTry) time.Duration { return x.claimAck }))
	}
	line("**successor active (StartDuty)**", every(func(x takeoverTry) time.Duration { return x.active }))
	line("old leader's Run returned (left the group)", every(func(x takeoverTry) time.Duration { return x.leftAt }))
	if r.traced {
		fmt.Fprintf(&b, "\nper step (differences of the above, per try), over the %d of %d tries whose successor's notification came before its claim (in the others a read already in flight showed it the release):\n\n| segment | median | p90 | min | max |\n|---|---|---|---|---|\n", ordered, n)
		line("cancel → duty stopped", wired(func(x takeoverTry) time.Duration { return x.dutyStop }))
		line("duty stopped → release sent", wired(func(x takeoverTry) time.Duration { return x.releaseSent - x.dutyStop }))
		line("release sent → acknowledged (a write round trip)", wired(func(x takeoverTry) time.Duration { return x.releaseAck - x.releaseSent }))
		line("release acknowledged → successor's notification", wired(func(x takeoverTry) time.Duration { return x.watchFired - x.releaseAck }))
		line("notification → first read sent", wired(func(x takeoverTry) time.Duration { return x.readSent - x.watchFired }))
		line("reads (first sent → last answered)", wired(func(x takeoverTry) time.Duration { return x.readAck - x.readSent }))
		line("last read answered → claim sent", wired(func(x takeoverTry) time.Duration { return x.claimSent - x.readAck }))
		line("claim sent → acknowledged (a write round trip)", wired(func(x takeoverTry) time.Duration { return x.claimAck - x.claimSent }))
		line("claim acknowledged → active", wired(func(x takeoverTry) time.Duration { return x.active - x.claimAck }))
	}
	var w, q, wr, notes []float64
	reads := map[string]int{}
	for _, tr := range r.tries {
		w = append(w, float64(tr.watches))
		q = append(q, float64(tr.requests))
		wr = append(wr, float64(tr.writes))
		notes = append(notes, float64(tr.notifications))
		reads[fmt.Sprintf("%d× %s after %s", tr.reads, tr.readOp, tr.watchWhat)]++
	}
	rules := map[string][]time.Duration{}
	for _, tr := range r.tries {
		rules[tr.rule] = append(rules[tr.rule], tr.active)
	}
	for _, rule := range slices.Sorted(maps.Keys(rules)) {
		p50, _, hi := quantiles(rules[rule])
		fmt.Fprintf(&b, "\n%d successors %q: median %.2f ms, max %.2f ms", len(rules[rule]), rule, msf(p50), msf(hi))
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "\nper handover (all three sessions, cancel to the old leader's Run returning): watch events delivered %s, requests %s, writes %s",
		spread(w), spread(q), spread(wr))
	if r.traced {
		fmt.Fprintf(&b, ", notifications on the wire %s\nsuccessor's reads: %v", spread(notes), reads)
	}
	b.WriteString("\n")
	if len(r.tries) > 0 {
		tr := r.tries[0]
		fmt.Fprintf(&b, "first try: old leader (proc%d) transitions: %s\n  successor (proc%d) transitions: %s\n",
			tr.from, strings.Join(tr.oldTrans, "; "), tr.to, strings.Join(tr.nextTrans, "; "))
		if r.traced {
			for _, x := range r.tries {
				if !x.ordered {
					tr = x
					b.WriteString("a try whose successor claimed before its notification came:\n")
					break
				}
			}
			fmt.Fprintf(&b, "  old leader's wire:\n    %s\n  successor's wire:\n    %s\n  third member's wire:\n    %s\n",
				strings.Join(tr.oldWire, "\n    "), strings.Join(tr.nextWire, "\n    "), strings.Join(tr.thirdWire, "\n    "))
		}
	}
	return b.String()
}

// spread renders min–max (median) of small counts.
func spread(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return fmt.Sprintf("median %g (%g–%g)", s[len(s)/2], s[0], s[len(s)-1])
}
