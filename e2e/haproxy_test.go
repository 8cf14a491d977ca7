package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/haproxytest"
	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// balancerRoundsEnv sets how many failovers of each kind
// TestHAProxySendsTrafficOnlyToTheActiveNode runs (default 1); BENCHMARKS.md
// ("Balancer") was measured with more.
const balancerRoundsEnv = "HANODE_BALANCER_ROUNDS"

// shippedHAProxyConfig is the configuration the test runs.
var shippedHAProxyConfig = filepath.Join("..", "etc", "haproxy", "hanode.cfg")

// TestHAProxySendsTrafficOnlyToTheActiveNode: Debian's HAProxy, with the
// shipped etc/haproxy/hanode.cfg (loopback addresses and ports put in), in
// front of a three-node group whose ACTIVE_CMD is a small HTTP service that
// names its node and term in every answer. Two clients send requests
// through HAProxy every 5 ms each, before, during and after a graceful
// failover (SIGTERM to the leader) and a crash failover (SIGKILL to the
// leader's process group), the old leader restarted each time as systemd
// would.
//
// Every answer that got through was served by the one duty running then:
// by (node, term) whose duty was running (its heartbeat span), and never by
// an older term after a newer one served. Outside the failovers every
// request got an answer, and HAProxy sends traffic to the leader alone. Per
// failover the test logs how long HAProxy took to follow: from the new
// leader's first "ok" to HAProxy marking it up and to the first request it
// served, the time HAProxy had no server up, and the requests that failed.
func TestHAProxySendsTrafficOnlyToTheActiveNode(t *testing.T) {
	haproxytest.Require(t)
	rounds := 1
	if v := os.Getenv(balancerRoundsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", balancerRoundsEnv, v)
		}
		rounds = n
	}
	zk := zktest.Start(t)
	backend := haproxytest.BackendBin(t)
	haID := nodetest.GroupID(t)
	var nodes []*nodetest.Node
	var servers []haproxytest.Server
	for _, name := range []string{"a", "b", "c"} {
		svc := haproxytest.FreeAddr(t)
		n := nodetest.Start(t, nodetest.Options{
			Name: name, Env: nodetest.HAEnv(zk.Addr, haID, name), Heartbeat: true,
			DutyCmd: func(hb string) string {
				return "exec " + nodetest.ShellQuote(backend) + " -listen " + svc + " -heartbeat " + nodetest.ShellQuote(hb)
			},
		})
		_, port, err := net.SplitHostPort(n.Addr())
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(port)
		nodes = append(nodes, n)
		servers = append(servers, haproxytest.Server{Name: name, Addr: svc, CheckPort: p})
	}
	hp := haproxytest.Start(t, shippedHAProxyConfig, servers)
	watch := haproxytest.NewWatch(t, hp, 5*time.Millisecond)
	chk := nodetest.NewCheckerWith(t, nodetest.CheckerOptions{Interval: 5 * time.Millisecond}, nodes...)
	leader := chk.Node(chk.WaitSingleLeader(electionTimeout))
	waitOnlyUp(t, watch, leader, 5*time.Second)

	cl := startClient(t, "http://"+hp.Addr+"/", 2, 5*time.Millisecond)
	testwait.For(t, 10*time.Second, "requests served by the leader through HAProxy", func() bool {
		return cl.servedBy(leader.Name(), time.Time{}) >= 20
	})

	type fault struct {
		kind string
		do   func(*nodetest.Node) time.Time
		// bound on the takeover
		bound time.Duration
	}
	graceful := fault{"SIGTERM", func(n *nodetest.Node) time.Time { return n.Term() }, gracefulBound + 2*time.Second}
	crash := fault{"SIGKILL group", func(n *nodetest.Node) time.Time { return n.KillGroup() },
		nodetest.DefaultSessionTimeout + 6*time.Second}
	var plan []fault
	for range rounds {
		plan = append(plan, graceful, crash)
	}

	var windows [][2]time.Time // from each fault until the group and HAProxy settled again
	var figures []balancerRound
	for i, f := range plan {
		old := leader
		at := f.do(old)
		next, took := chk.WaitTakeover(at, old, f.bound)
		testwait.For(t, 10*time.Second, "HAProxy to send requests to "+next.Name(), func() bool {
			return cl.servedBy(next.Name(), at) > 0
		})
		code := old.WaitExit(exitBound)
		if f.kind == "SIGTERM" && code != 0 {
			t.Errorf("round %d: %s exited %d after SIGTERM, want 0", i+1, old, code)
		}
		old.Restart()
		waitState(t, old, nodetest.DefaultSessionTimeout+10*time.Second, "standby")
		waitOnlyUp(t, watch, next, 5*time.Second)
		// A few more answers after the settling, all from the new leader.
		settled := time.Now()
		testwait.For(t, 10*time.Second, "answers after the group settled", func() bool {
			return cl.servedBy(next.Name(), settled) >= 20
		})
		windows = append(windows, [2]time.Time{at, settled})
		r := measureRound(chk, watch, cl, old, next, at, settled)
		r.kind, r.takeover = f.kind, took
		figures = append(figures, r)
		leader = next
	}
	cl.stop()

	// Every answer from the duty that ran then, terms in order.
	answers := cl.all()
	spans := chk.DutySpans()
	checkServedByRunningDuties(t, answers, spans)
	// Outside the failovers no request failed. A request in flight at the
	// fault is one of the failover's.
	for _, a := range answers {
		if a.ok() {
			continue
		}
		inFailover := slices.ContainsFunc(windows, func(w [2]time.Time) bool { return inRound(a, w[0], w[1]) })
		if !inFailover {
			t.Errorf("a request sent at %s, outside every failover, failed: %s", a.sent.Format("15:04:05.000"), a.failure())
		}
	}
	chk.Assert(t)

	t.Logf("%d requests through HAProxy, %d answered by a duty; per failover:", len(answers), countOK(answers))
	header := fmt.Sprintf("%-18s %13s %13s %13s %13s %13s %13s %13s %11s", "fault", "takeover", "listens",
		"marked up", "first req", "old down", "none up", "client gap", "failed/sent")
	t.Log(header)
	for _, r := range figures {
		t.Logf("%s", r)
	}
	t.Logf("median/max in ms:\n%s\n%s\n%s", header, summary(graceful.kind, figures), summary(crash.kind, figures))
}

// balancerRound is what one failover cost, seen from HAProxy and its
// clients.
type balancerRound struct {
	kind     string
	takeover time.Duration // fault → the new leader's first "ok"
	listens  time.Duration // the new leader's first "ok" → its service's first heartbeat (it listens by then)
	markedUp time.Duration // the new leader's first "ok" → HAProxy marked it up
	firstReq time.Duration // the new leader's first "ok" → the first request its service handled
	oldDown  time.Duration // the old leader's last "ok" → HAProxy marked it down
	noneUp   time.Duration // how long HAProxy had no server up
	gap      time.Duration // the last request the old leader served → the first the new one served
	failed   int           // requests that got no answer from a duty
	sent     int
}

func (r balancerRound) String() string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
	return fmt.Sprintf("%-18s %13s %13s %13s %13s %13s %13s %13s %5d/%-5d", r.kind, ms(r.takeover), ms(r.listens),
		ms(r.markedUp), ms(r.firstReq), ms(r.oldDown), ms(r.noneUp), ms(r.gap), r.failed, r.sent)
}

// columns are balancerRound's figures, for the summary.
func (r balancerRound) columns() []time.Duration {
	return []time.Duration{r.takeover, r.listens, r.markedUp, r.firstReq, r.oldDown, r.noneUp, r.gap}
}

// summary is the median and the maximum of each column of rounds of one
// kind, and the failed requests in all.
func summary(kind string, rounds []balancerRound) string {
	var cols [7][]time.Duration
	failed, sent := 0, 0
	for _, r := range rounds {
		if r.kind != kind {
			continue
		}
		for i, d := range r.columns() {
			cols[i] = append(cols[i], d)
		}
		failed += r.failed
		sent += r.sent
	}
	if len(cols[0]) == 0 {
		return ""
	}
	ms := func(d time.Duration) string {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-18s", fmt.Sprintf("%s x%d", kind, len(cols[0])))
	for _, c := range cols {
		slices.Sort(c)
		fmt.Fprintf(&b, " %13s", ms(c[len(c)/2])+"/"+ms(c[len(c)-1]))
	}
	fmt.Fprintf(&b, " %5d/%-5d", failed, sent)
	return b.String()
}

func measureRound(chk *nodetest.Checker, watch *haproxytest.Watch, cl *client, old, next *nodetest.Node,
	at, settled time.Time) balancerRound {
	var r balancerRound
	_, firstOK, _ := chk.FirstOKAfter(at, old)
	for _, s := range chk.DutySpans() {
		if s.Name == next.Name() && s.First.After(at) {
			r.listens = s.First.Sub(firstOK)
			break
		}
	}
	var lastOK time.Time
	for _, run := range chk.Runs(old) {
		if run.Result == nodetest.ResultOK && run.FirstArrived.Before(at) {
			lastOK = run.LastArrived
		}
	}
	// HAProxy's view: the states as they stood at the fault, then every
	// change until the group settled.
	states := map[string]string{}
	var noneSince time.Time
	upCount := func() int {
		n := 0
		for _, s := range states {
			if haproxytest.Up(s) {
				n++
			}
		}
		return n
	}
	for _, c := range watch.Changes() {
		if c.At.After(settled) {
			break
		}
		if c.At.After(at) {
			switch {
			case c.Server == next.Name() && haproxytest.Up(c.To) && !haproxytest.Up(c.From) && r.markedUp == 0:
				r.markedUp = c.At.Sub(firstOK)
			case c.Server == old.Name() && !haproxytest.Up(c.To) && haproxytest.Up(c.From) && r.oldDown == 0:
				r.oldDown = c.At.Sub(lastOK)
			}
		}
		before := upCount()
		states[c.Server] = c.To
		if !c.At.After(at) {
			continue
		}
		switch after := upCount(); {
		case before > 0 && after == 0:
			noneSince = c.At
		case before == 0 && after > 0 && !noneSince.IsZero():
			r.noneUp += c.At.Sub(noneSince)
			noneSince = time.Time{}
		}
	}
	var lastOld, firstNew time.Time
	for _, a := range cl.all() {
		if inRound(a, at, settled) {
			r.sent++
			if !a.ok() {
				r.failed++
			}
		}
		if a.sent.After(settled) {
			continue // a later round's
		}
		switch {
		case a.ok() && a.name == old.Name() && a.served.After(lastOld):
			lastOld = a.served
		case a.ok() && a.name == next.Name() && a.served.After(at) && (firstNew.IsZero() || a.served.Before(firstNew)):
			firstNew = a.served
		}
	}
	r.firstReq = firstNew.Sub(firstOK)
	r.gap = firstNew.Sub(lastOld)
	return r
}

// inRound reports whether a belongs to the failover from the fault at to
// settled: answered after the fault (sent before it, it was in flight) and
// sent before settled.
func inRound(a answer, at, settled time.Time) bool {
	return !a.recv.Before(at) && a.sent.Before(settled)
}

// checkServedByRunningDuties fails the test for an answer not served by a
// duty running at that moment (its heartbeat span, widened by one beat and
// a little slack at each end), and for any answer of a term served after an
// answer of a later term.
func checkServedByRunningDuties(t *testing.T, answers []answer, spans []nodetest.DutySpan) {
	t.Helper()
	const slack = nodetest.HeartbeatInterval + 50*time.Millisecond
	var served []answer
	for _, a := range answers {
		if !a.ok() {
			continue
		}
		served = append(served, a)
		i := slices.IndexFunc(spans, func(s nodetest.DutySpan) bool { return s.Name == a.name && s.Term == a.term })
		if i < 0 {
			t.Errorf("an answer from %s in term %d, whose duty never beat", a.name, a.term)
			continue
		}
		if s := spans[i]; a.served.Before(s.First.Add(-slack)) || a.served.After(s.Last.Add(slack)) {
			t.Errorf("%s's service in term %d answered at %s, outside its duty's span %s",
				a.name, a.term, a.served.Format("15:04:05.000"), s)
		}
	}
	sort.Slice(served, func(i, j int) bool { return served[i].served.Before(served[j].served) })
	for i := 1; i < len(served); i++ {
		p, a := served[i-1], served[i]
		if a.term < p.term || a.term == p.term && a.name != p.name {
			t.Errorf("%s (term %d) served at %s after %s (term %d) served at %s: two services answered",
				a.name, a.term, a.served.Format("15:04:05.000000"), p.name, p.term, p.served.Format("15:04:05.000000"))
		}
	}
}

// waitOnlyUp waits until HAProxy sends traffic to n alone.
func waitOnlyUp(t *testing.T, w *haproxytest.Watch, n *nodetest.Node, timeout time.Duration) {
	t.Helper()
	if err := testwait.Poll(timeout, 5*time.Millisecond, func() bool { return w.OnlyUp(n.Name()) }); err != nil {
		t.Fatalf("HAProxy does not send traffic to %s alone after %v: %v", n, timeout, w.Current())
	}
}

// answer is one request a client sent through HAProxy.
type answer struct {
	sent, recv time.Time
	code       int
	body       string
	err        error
	// From the body of a duty's answer: who served it, when.
	name   string
	term   int64
	served time.Time
}

// ok reports whether a duty answered.
func (a answer) ok() bool { return a.err == nil && a.code == http.StatusOK && a.name != "" }

func (a answer) failure() string {
	if a.err != nil {
		return a.err.Error()
	}
	return fmt.Sprintf("%d %q", a.code, strings.TrimSpace(a.body))
}

func countOK(as []answer) int {
	n := 0
	for _, a := range as {
		if a.ok() {
			n++
		}
	}
	return n
}

// client sends GET url from several workers, each every interval, until
// stopped (or for at most clientMaxRun), and keeps every answer.
type client struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	got    []answer
}

const clientMaxRun = 10 * time.Minute

func startClient(t *testing.T, url string, workers int, interval time.Duration) *client {
	ctx, cancel := context.WithTimeout(context.Background(), clientMaxRun)
	c := &client{cancel: cancel}
	for range workers {
		c.wg.Add(1)
		go c.work(ctx, url, interval)
	}
	t.Cleanup(c.stop)
	return c
}

func (c *client) work(ctx context.Context, url string, interval time.Duration) {
	defer c.wg.Done()
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		a := answer{sent: time.Now()}
		resp, err := hc.Get(url)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			a.code, a.body, err = resp.StatusCode, string(b), rerr
		}
		a.recv, a.err = time.Now(), err
		if f := strings.Fields(a.body); err == nil && a.code == http.StatusOK && len(f) == 3 {
			term, terr := strconv.ParseInt(f[1], 10, 64)
			ns, nerr := strconv.ParseInt(f[2], 10, 64)
			if terr == nil && nerr == nil {
				a.name, a.term, a.served = f[0], term, time.Unix(0, ns)
			}
		}
		c.mu.Lock()
		c.got = append(c.got, a)
		c.mu.Unlock()
	}
}

func (c *client) stop() {
	c.cancel()
	c.wg.Wait()
}

func (c *client) all() []answer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

// servedBy counts the answers name's service gave to requests sent after
// since.
func (c *client) servedBy(name string, since time.Time) int {
	n := 0
	for _, a := range c.all() {
		if a.ok() && a.name == name && a.sent.After(since) {
			n++
		}
	}
	return n
}
