package nodetest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/testwait"
)

// Result classifies one answer of /se/.
type Result int

// Answers of /v2/ping/net/<id>/se/.
const (
	ResultError   Result = iota // no HTTP answer (refused, timeout, reset)
	ResultOK                    // 200 "ok"
	ResultStandby               // 503 "standby"
	ResultOther                 // any other status or body: a contract breach
)

func (r Result) String() string {
	switch r {
	case ResultOK:
		return "ok"
	case ResultStandby:
		return "standby"
	case ResultOther:
		return "other"
	default:
		return "error"
	}
}

// Run is a series of consecutive equal answers of one node. Sent and
// Arrived are local times taken just before the request and just after the
// whole answer was read.
type Run struct {
	Result                  Result
	N                       int
	FirstSent, FirstArrived time.Time
	LastSent, LastArrived   time.Time
	Code                    int
	Detail                  string // the last body or error
}

// sure is the interval in which a node answering this run was surely in
// the answered state: from the first answer's arrival to the last
// request's sending (empty for a single answer).
func (r Run) sure() (lo, hi time.Time, ok bool) {
	if r.N < 2 || r.LastSent.Before(r.FirstArrived) {
		return time.Time{}, time.Time{}, false
	}
	return r.FirstArrived, r.LastSent, true
}

// CheckerOptions tune a Checker; zero values take the defaults.
type CheckerOptions struct {
	// Interval between two requests to one node (default 10 ms).
	Interval time.Duration
	// Timeout of one request (default 1 s).
	Timeout time.Duration
	// FailOnPossible makes Assert fail on possible overlaps too (see the
	// package comment: they include handovers faster than Interval).
	FailOnPossible bool
}

// Checker polls every node's /se/ concurrently and checks that no two nodes
// were ever active at once, by their answers and by their duties'
// heartbeats.
type Checker struct {
	t     testing.TB
	opts  CheckerOptions
	start time.Time
	ctx   context.Context
	quit  context.CancelFunc
	wg    sync.WaitGroup

	mu       sync.Mutex
	nodes    []*Node
	runs     map[*Node][]Run
	samples  int
	stopAt   time.Time
	asserted bool
}

// NewChecker starts polling nodes every 10 ms. Polling stops at Assert or
// Stop; if the test never calls Assert, cleanup does.
func NewChecker(t testing.TB, nodes ...*Node) *Checker {
	return NewCheckerWith(t, CheckerOptions{}, nodes...)
}

// NewCheckerWith is NewChecker with options.
func NewCheckerWith(t testing.TB, opts CheckerOptions, nodes ...*Node) *Checker {
	if opts.Interval <= 0 {
		opts.Interval = 10 * time.Millisecond
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Checker{t: t, opts: opts, start: time.Now(), ctx: ctx, quit: cancel, runs: map[*Node][]Run{}}
	for _, n := range nodes {
		c.Add(n)
	}
	t.Cleanup(func() {
		c.mu.Lock()
		done := c.asserted
		c.mu.Unlock()
		if !done {
			c.Assert(t)
		}
		c.Stop()
	})
	return c
}

// Add starts polling another node.
func (c *Checker) Add(n *Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stopAt.IsZero() {
		c.t.Fatalf("nodetest: Checker.Add(%s) after Stop", n)
	}
	c.nodes = append(c.nodes, n)
	c.wg.Add(1)
	go c.poll(n)
}

// Nodes returns the polled nodes.
func (c *Checker) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.nodes)
}

// Node returns the polled node with this name, nil if none.
func (c *Checker) Node(name string) *Node {
	for _, n := range c.Nodes() {
		if n.Name() == name {
			return n
		}
	}
	return nil
}

// Stop ends polling; it is idempotent.
func (c *Checker) Stop() {
	c.quit()
	c.wg.Wait()
	c.mu.Lock()
	if c.stopAt.IsZero() {
		c.stopAt = time.Now()
	}
	c.mu.Unlock()
}

func (c *Checker) poll(n *Node) {
	defer c.wg.Done()
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, DisableCompression: true}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Timeout: c.opts.Timeout, Transport: tr}
	url := n.URL(n.PingSEPath())
	tick := time.NewTicker(c.opts.Interval)
	defer tick.Stop()
	for {
		sent := time.Now()
		code, body, err := getCtx(c.ctx, cl, url)
		arrived := time.Now()
		if c.ctx.Err() != nil {
			return // an answer cut short by Stop says nothing about the node
		}
		res, detail := classify(code, body, err)
		c.record(n, Run{Result: res, N: 1, FirstSent: sent, FirstArrived: arrived,
			LastSent: sent, LastArrived: arrived, Code: code, Detail: detail})
		select {
		case <-c.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func getCtx(ctx context.Context, cl *http.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b), err
}

func classify(code int, body string, err error) (Result, string) {
	switch {
	case err != nil:
		return ResultError, err.Error()
	case code == http.StatusOK && body == "ok":
		return ResultOK, body
	case code == http.StatusServiceUnavailable && body == "standby":
		return ResultStandby, body
	default:
		return ResultOther, fmt.Sprintf("%d %q", code, body)
	}
}

func (c *Checker) record(n *Node, s Run) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.samples++
	runs := c.runs[n]
	if k := len(runs) - 1; k >= 0 && runs[k].Result == s.Result && runs[k].Code == s.Code {
		r := &runs[k]
		r.N++
		r.LastSent, r.LastArrived, r.Detail = s.LastSent, s.LastArrived, s.Detail
		return
	}
	c.runs[n] = append(runs, s)
}

// Runs returns a copy of a node's answer runs so far.
func (c *Checker) Runs(n *Node) []Run {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.runs[n])
}

// Latest returns the node's latest answer run.
func (c *Checker) Latest(n *Node) (Run, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	runs := c.runs[n]
	if len(runs) == 0 {
		return Run{}, false
	}
	return runs[len(runs)-1], true
}

// Overlap is an interval in which two nodes answered "ok" at once.
type Overlap struct {
	A, B     string
	From, To time.Time
	// Definite is true when both nodes were surely active throughout; false
	// for the balancer's view (see the package comment).
	Definite   bool
	RunA, RunB Run
	origin     time.Time
}

// Duration is the length of the overlap.
func (o Overlap) Duration() time.Duration { return o.To.Sub(o.From) }

func (o Overlap) String() string {
	kind := "possible"
	if o.Definite {
		kind = "DEFINITE"
	}
	rel := func(t time.Time) string { return fmt.Sprintf("+%v", t.Sub(o.origin).Round(time.Microsecond)) }
	return fmt.Sprintf("%s overlap of ok answers of %s and %s for %v from %s to %s "+
		"(%s: %d ok sent %s..%s arrived %s..%s; %s: %d ok sent %s..%s arrived %s..%s)",
		kind, o.A, o.B, o.Duration(), rel(o.From), rel(o.To),
		o.A, o.RunA.N, rel(o.RunA.FirstSent), rel(o.RunA.LastSent), rel(o.RunA.FirstArrived), rel(o.RunA.LastArrived),
		o.B, o.RunB.N, rel(o.RunB.FirstSent), rel(o.RunB.LastSent), rel(o.RunB.FirstArrived), rel(o.RunB.LastArrived))
}

// okRun is an ok run with the end of its balancer-view interval.
type okRun struct {
	Run
	end time.Time // arrival of the next other answer, or the end of polling
}

func (c *Checker) okRuns() (map[*Node][]okRun, []*Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	end := c.stopAt
	if end.IsZero() {
		end = time.Now()
	}
	out := map[*Node][]okRun{}
	for _, n := range c.nodes {
		runs := c.runs[n]
		for i, r := range runs {
			if r.Result != ResultOK {
				continue
			}
			e := end
			if i+1 < len(runs) {
				e = runs[i+1].FirstArrived
			}
			out[n] = append(out[n], okRun{Run: r, end: e})
		}
	}
	return out, slices.Clone(c.nodes)
}

// Overlaps returns the definite overlaps: instants at which two nodes were
// surely both answering "ok".
func (c *Checker) Overlaps() []Overlap {
	runs, nodes := c.okRuns()
	return definiteOverlaps(runs, nodes, c.start)
}

// PossibleOverlaps returns the overlaps of the balancer's view: a node counts
// as ok from the arrival of an "ok" to the arrival of its next other answer.
func (c *Checker) PossibleOverlaps() []Overlap {
	runs, nodes := c.okRuns()
	return possibleOverlaps(runs, nodes, c.start)
}

func definiteOverlaps(runs map[*Node][]okRun, nodes []*Node, origin time.Time) []Overlap {
	var out []Overlap
	forPairs(runs, nodes, func(a, b *Node, ra, rb okRun) {
		if from, to, ok := definite(ra.Run, rb.Run); ok {
			out = append(out, Overlap{A: a.Name(), B: b.Name(), From: from, To: to, Definite: true, RunA: ra.Run, RunB: rb.Run, origin: origin})
		}
	})
	return out
}

func possibleOverlaps(runs map[*Node][]okRun, nodes []*Node, origin time.Time) []Overlap {
	var out []Overlap
	forPairs(runs, nodes, func(a, b *Node, ra, rb okRun) {
		from, to := later(ra.FirstArrived, rb.FirstArrived), earlier(ra.end, rb.end)
		if from.Before(to) {
			out = append(out, Overlap{A: a.Name(), B: b.Name(), From: from, To: to, RunA: ra.Run, RunB: rb.Run, origin: origin})
		}
	})
	return out
}

func forPairs(runs map[*Node][]okRun, nodes []*Node, f func(a, b *Node, ra, rb okRun)) {
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			for _, ra := range runs[a] {
				for _, rb := range runs[b] {
					f(a, b, ra, rb)
				}
			}
		}
	}
}

// definite decides whether two ok runs of two nodes prove both were active
// at one instant. A run of two or more answers proves activity over its sure
// interval (assuming the node stayed active between consecutive "ok"s); a
// single answer proves activity at some instant between its sending and its
// arrival, which overlaps only if the other node was surely active over all
// of that window.
func definite(a, b Run) (from, to time.Time, ok bool) {
	alo, ahi, aSure := a.sure()
	blo, bhi, bSure := b.sure()
	switch {
	case aSure && bSure:
		from, to = later(alo, blo), earlier(ahi, bhi)
		return from, to, !from.After(to)
	case bSure:
		return a.FirstSent, a.FirstArrived, !a.FirstSent.Before(blo) && !a.FirstArrived.After(bhi)
	case aSure:
		return b.FirstSent, b.FirstArrived, !b.FirstSent.Before(alo) && !b.FirstArrived.After(ahi)
	}
	return time.Time{}, time.Time{}, false
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// FirstOKAfter returns the node, other than those in except, whose first "ok"
// arriving at or after since arrived first, and that arrival (since itself
// when the node was already answering "ok" then).
func (c *Checker) FirstOKAfter(since time.Time, except ...*Node) (*Node, time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var best *Node
	var at time.Time
	for _, n := range c.nodes {
		if slices.Contains(except, n) {
			continue
		}
		for _, r := range c.runs[n] {
			if r.Result != ResultOK || r.LastArrived.Before(since) {
				continue
			}
			t := later(r.FirstArrived, since)
			if best == nil || t.Before(at) {
				best, at = n, t
			}
			break
		}
	}
	return best, at, best != nil
}

// WaitTakeover waits until a node other than old answers "ok" after since
// and returns it with the time from since to that answer's arrival. It
// fails the test after timeout.
func (c *Checker) WaitTakeover(since time.Time, old *Node, timeout time.Duration) (*Node, time.Duration) {
	c.t.Helper()
	var n *Node
	var at time.Time
	err := testwait.Poll(timeout, 2*time.Millisecond, func() bool {
		var ok bool
		n, at, ok = c.FirstOKAfter(since, old)
		return ok
	})
	if err != nil {
		c.t.Fatalf("nodetest: no node other than %s answered ok within %v of the fault\n%s", old, timeout, c.Summary())
	}
	return n, at.Sub(since)
}

// WaitSingleLeader polls every running, unpaused node until exactly one
// answers 200 "ok" on /se/ and every other one 503 "standby", and returns
// the leader's name. It fails the test after timeout.
func (c *Checker) WaitSingleLeader(timeout time.Duration) string {
	c.t.Helper()
	leader, last := "", ""
	err := testwait.Poll(timeout, 10*time.Millisecond, func() bool {
		leader, last = singleLeader(c.Nodes())
		return leader != ""
	})
	if err != nil {
		c.t.Fatalf("nodetest: no single leader within %v; last answers: %s", timeout, last)
	}
	return leader
}

// singleLeader asks every running node once, concurrently.
func singleLeader(nodes []*Node) (leader, answers string) {
	type answer struct {
		code int
		body string
		err  error
	}
	var live []*Node
	for _, n := range nodes {
		if n.Running() && !n.Paused() {
			live = append(live, n)
		}
	}
	got := make([]answer, len(live))
	var wg sync.WaitGroup
	for i, n := range live {
		wg.Go(func() {
			code, body, err := n.PingSE()
			got[i] = answer{code, body, err}
		})
	}
	wg.Wait()
	var parts []string
	oks, standbys := 0, 0
	for i, n := range live {
		a := got[i]
		switch {
		case a.err != nil:
			parts = append(parts, fmt.Sprintf("%s: %v", n, a.err))
		default:
			parts = append(parts, fmt.Sprintf("%s: %d %q", n, a.code, a.body))
			if a.code == http.StatusOK && a.body == "ok" {
				oks++
				leader = n.Name()
			} else if a.code == http.StatusServiceUnavailable && a.body == "standby" {
				standbys++
			}
		}
	}
	answers = strings.Join(parts, "; ")
	if oks != 1 || oks+standbys != len(live) {
		return "", answers
	}
	return leader, answers
}

// DutySpans reads the heartbeat files of every polled node started with
// Heartbeat and returns the duty spans, ordered by first heartbeat.
func (c *Checker) DutySpans() []DutySpan {
	var beats []Heartbeat
	for _, n := range c.Nodes() {
		if !n.opts.Heartbeat {
			continue
		}
		b, _, err := ReadHeartbeats(n.HeartbeatFile())
		if err != nil {
			c.t.Errorf("nodetest: %v", err)
		}
		beats = append(beats, b...)
	}
	return Spans(beats)
}

// Summary describes what the checker saw, for logs and failure messages.
func (c *Checker) Summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "checker: %d answers from %d nodes every %v\n", c.samples, len(c.nodes), c.opts.Interval)
	for _, n := range c.nodes {
		runs := c.runs[n]
		fmt.Fprintf(&b, "  %s:", n)
		from := max(0, len(runs)-8)
		if from > 0 {
			fmt.Fprintf(&b, " ... (%d earlier runs)", from)
		}
		for _, r := range runs[from:] {
			fmt.Fprintf(&b, " [+%v %s x%d]", r.FirstArrived.Sub(c.start).Round(time.Millisecond), r.Result, r.N)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Report is everything a Checker found.
type Report struct {
	// Definite overlaps of ok answers: two nodes surely active at once.
	Definite []Overlap
	// Possible overlaps in the balancer's view.
	Possible []Overlap
	// Duties overlapping by their heartbeats.
	Duties []DutyOverlap
	// TermProblems: a duty ran with a term not larger than its predecessor's.
	TermProblems []string
	// Spans are the duties seen, ordered by first heartbeat.
	Spans []DutySpan
}

// Report stops polling and returns the findings; the cleanup then no longer
// asserts on its own.
func (c *Checker) Report() Report {
	c.Stop()
	c.mu.Lock()
	c.asserted = true
	c.mu.Unlock()
	r := Report{Definite: c.Overlaps(), Possible: c.PossibleOverlaps(), Spans: c.DutySpans()}
	r.Duties, r.TermProblems = CheckSpans(r.Spans)
	return r
}

// Assert stops polling and fails the test on every definite overlap of ok
// answers, every overlap of two duties and every term that did not grow from
// one duty to the next. Possible overlaps are logged (failed on with
// FailOnPossible).
func (c *Checker) Assert(t testing.TB) {
	t.Helper()
	r := c.Report()
	for _, o := range r.Definite {
		t.Errorf("nodetest: %s", o)
	}
	var longest time.Duration
	for _, o := range r.Possible {
		longest = max(longest, o.Duration())
		if c.opts.FailOnPossible {
			t.Errorf("nodetest: %s", o)
		}
	}
	if len(r.Possible) > 0 && !c.opts.FailOnPossible {
		t.Logf("nodetest: %d possible overlaps of ok answers in the balancer's view (handover faster than the %v poll), longest %v",
			len(r.Possible), c.opts.Interval, longest)
	}
	for _, o := range r.Duties {
		t.Errorf("nodetest: %s", o)
	}
	for _, p := range r.TermProblems {
		t.Errorf("nodetest: %s", p)
	}
	if t.Failed() {
		t.Logf("%s", c.Summary())
		for _, s := range r.Spans {
			t.Logf("duty %s", s)
		}
	}
}
