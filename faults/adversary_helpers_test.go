package faults

// Helpers of the adversarial scenarios (adversary_test.go): another
// ZooKeeper client that writes into hanode's znodes, as an operator's zkCli
// or a cleanup script would, and the bounds those scenarios assert.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
	"github.com/hanode/hanode/ping"
)

// Bounds from the lease arithmetic of ha/doc.go at ZK_SESSION_TIMEOUT=4s
// (D = 4 s, LEASE_MARGIN 1.2 s, ρ = 1 %).
const (
	// advW is W = D(1+ρ)/(1−ρ), rounded up to the millisecond: how long a
	// node watches a lease go without an extension (or a vacant group stay
	// vacant) before it claims.
	advW = 4081 * time.Millisecond
	// advR is the holder's extension period, (D − M)/3: the holder finds a
	// deleted or overwritten member node at its next extension, at most
	// this long after the fault.
	advR = lease / 3
	// relist is how often a settled member lists its whole group again
	// (3D, ha.Core.relistEvery). A standby watches its own node and the
	// lowest member refusing a record watches the record, so these learn
	// of a change at once; the relist is the bound when a watch is lost.
	relist = 3 * sessionTimeout
	// slack is added to every upper bound, for a loaded CI machine.
	slack = 2 * time.Second
)

// adversary is another ZooKeeper client writing into hanode's tree.
type adversary struct {
	t       testing.TB
	servers string
	conn    *zk.Conn
	root    string
}

func newAdversary(t testing.TB, servers string) *adversary {
	t.Helper()
	return &adversary{t: t, servers: servers, conn: zktest.Connect(t, servers, 10*time.Second), root: "/hanode"}
}

// ready makes sure the adversary has a session: after a restart of
// ZooKeeper its client may stay stuck in a handshake the server never
// answers, so one that has no session within timeout is replaced.
func (a *adversary) ready(timeout time.Duration) {
	a.t.Helper()
	if zktest.WaitSession(a.conn, timeout) != nil {
		a.conn.Close()
		a.conn = zktest.Connect(a.t, a.servers, 10*time.Second)
	}
}

func (a *adversary) group(haID string) string   { return a.root + "/groups/" + haID }
func (a *adversary) members(haID string) string { return a.group(haID) + "/members" }
func (a *adversary) leader(haID string) string  { return a.group(haID) + "/leader" }
func (a *adversary) name(name string) string    { return a.root + "/names/" + name }

// memberZnode is one child of members/ as the adversary read it.
type memberZnode struct {
	Path string
	Seq  int64 // -1 when the name does not end in 10 digits
	Name string
	Stat *zk.Stat
	Data []byte
}

// read runs a read of path, again while the adversary's own connection is
// down (a restarted server may drop it once more after its session came
// back): the scenarios fault hanode, not the adversary's client. A read is
// idempotent, so trying it again changes nothing.
func (a *adversary) read(path string, do func() error) error {
	a.t.Helper()
	var err error
	lost := func() bool {
		return errors.Is(err, zk.ErrNoServer) || errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrClosing)
	}
	_ = testwait.Poll(15*time.Second, 50*time.Millisecond, func() bool {
		if err = do(); !lost() {
			return true
		}
		a.t.Logf("adversary: read %s: %v; again once its session is back", path, err)
		a.ready(5 * time.Second)
		return false
	})
	return err
}

// memberZnodes lists members/ (each child read once), ordered by the
// sequence suffix. Children deleted while it reads are left out.
func (a *adversary) memberZnodes(haID string) []memberZnode {
	a.t.Helper()
	dir := a.members(haID)
	var children []string
	err := a.read(dir, func() (err error) { children, _, err = a.conn.Children(dir); return err })
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		a.t.Fatalf("adversary: list %s: %v", dir, err)
	}
	var out []memberZnode
	for _, ch := range children {
		p := dir + "/" + ch
		var data []byte
		var st *zk.Stat
		err := a.read(p, func() (err error) { data, st, err = a.conn.Get(p); return err })
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			a.t.Fatalf("adversary: read %s: %v", p, err)
		}
		m := memberZnode{Path: p, Seq: -1, Stat: st, Data: data}
		if len(ch) >= 10 {
			if seq, err := strconv.ParseInt(ch[len(ch)-10:], 10, 64); err == nil && seq >= 0 {
				m.Seq = seq
			}
		}
		var d struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(data, &d) == nil {
			m.Name = d.Name
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(x, y memberZnode) int { return int(x.Seq - y.Seq) })
	return out
}

// memberOf returns the member znode whose data names the node.
func (a *adversary) memberOf(haID string, n *nodetest.Node) memberZnode {
	a.t.Helper()
	var m memberZnode
	testwait.For(a.t, 5*time.Second, n.Name()+"'s member znode", func() bool {
		for _, z := range a.memberZnodes(haID) {
			if z.Name == n.Name() {
				m = z
				return true
			}
		}
		return false
	})
	return m
}

// hasMember reports whether members/ holds a node whose data names n with a
// sequence above after.
func (a *adversary) hasMember(haID string, n *nodetest.Node, after int64) bool {
	for _, z := range a.memberZnodes(haID) {
		if z.Name == n.Name() && z.Seq > after {
			return true
		}
	}
	return false
}

// advRecord is the part of groups/<HA_ID>/leader the scenarios read.
type advRecord struct {
	Term   int64  `json:"term"`
	Holder string `json:"holder"`
	Name   string `json:"name"`
	State  string `json:"state"`
}

// record reads the leader record; ok is false when it is absent or not a
// record.
func (a *adversary) record(haID string) (advRecord, []byte, *zk.Stat, bool) {
	a.t.Helper()
	var data []byte
	var st *zk.Stat
	err := a.read(a.leader(haID), func() (err error) { data, st, err = a.conn.Get(a.leader(haID)); return err })
	if errors.Is(err, zk.ErrNoNode) {
		return advRecord{}, nil, nil, false
	}
	if err != nil {
		a.t.Fatalf("adversary: read %s: %v", a.leader(haID), err)
	}
	var r advRecord
	err = json.Unmarshal(data, &r)
	return r, data, st, err == nil && r.Term > 0
}

// overwrite writes data over the version of path it has just read (as a
// careful operator's `set -v` would), reading again when a write came in
// between, and returns the stat of the version it replaced: its Mtime is
// when ZooKeeper applied the last write before ours.
func (a *adversary) overwrite(path string, data []byte) *zk.Stat {
	a.t.Helper()
	for range 20 {
		_, st, err := a.conn.Get(path)
		if err != nil {
			a.t.Fatalf("adversary: read %s: %v", path, err)
		}
		if _, err = a.conn.Set(path, data, st.Version); err == nil {
			return st
		}
		if !errors.Is(err, zk.ErrBadVersion) {
			a.t.Fatalf("adversary: write %s: %v", path, err)
		}
	}
	a.t.Fatalf("adversary: %s changed under 20 writes in a row", path)
	return nil
}

// deleteTree deletes path and everything under it in one multi, each node
// at the version it has just read, children first (zkCli's deleteall,
// atomic): when a node was written or created in between, it reads the tree
// again. It returns the stat of every node it deleted, by path.
func (a *adversary) deleteTree(path string) map[string]*zk.Stat {
	a.t.Helper()
	var lastErr error
	for range 50 {
		var paths []string
		stats := map[string]*zk.Stat{}
		var walk func(p string) error
		walk = func(p string) error {
			_, st, err := a.conn.Get(p)
			if err != nil {
				return err
			}
			paths = append(paths, p)
			stats[p] = st
			children, _, err := a.conn.Children(p)
			if err != nil {
				return err
			}
			for _, ch := range children {
				if err := walk(strings.TrimSuffix(p, "/") + "/" + ch); err != nil && !errors.Is(err, zk.ErrNoNode) {
					return err
				}
			}
			return nil
		}
		if err := walk(path); err != nil {
			lastErr = err
			continue
		}
		ops := make([]any, 0, len(paths))
		for _, p := range slices.Backward(paths) {
			ops = append(ops, &zk.DeleteRequest{Path: p, Version: stats[p].Version})
		}
		if _, err := a.conn.Multi(ops...); err != nil {
			lastErr = err
			continue
		}
		return stats
	}
	a.t.Fatalf("adversary: deleteall %s: the tree kept changing: %v", path, lastErr)
	return nil
}

// znodeMtime is a znode's modification time as ZooKeeper stamped it (the
// server's clock: the container shares this host's).
func znodeMtime(st *zk.Stat) time.Time { return time.UnixMilli(st.Mtime) }

// okRunStarted waits until some node starts a run of "ok" answers after
// since (a run already going at since does not count) and returns the node
// and the arrival of that run's first "ok". It fails the test after timeout.
func okRunStarted(t testing.TB, chk *nodetest.Checker, since time.Time, timeout time.Duration) (*nodetest.Node, time.Time) {
	t.Helper()
	var node *nodetest.Node
	var at time.Time
	err := testwait.Poll(timeout, 5*time.Millisecond, func() bool {
		node, at = firstOKRunAfter(chk, since)
		return node != nil
	})
	if err != nil {
		t.Fatalf("no node began answering ok within %v of the fault\n%s", timeout, chk.Summary())
	}
	return node, at
}

// okEnded waits until n, which was answering "ok" at at, answers anything
// else, and returns the sending of the last "ok" of that run. It fails the
// test after timeout.
func okEnded(t testing.TB, chk *nodetest.Checker, n *nodetest.Node, at time.Time, timeout time.Duration) time.Time {
	t.Helper()
	var last time.Time
	err := testwait.Poll(timeout, 5*time.Millisecond, func() bool {
		var ok bool
		last, ok = okStopped(chk, n, at)
		return ok
	})
	if err != nil {
		t.Fatalf("%s did not stop answering ok within %v of the fault\n%s", n, timeout, chk.Summary())
	}
	return last
}

// okStopped reports whether n, answering "ok" at at, has stopped since,
// and the sending of the last "ok" of that run.
func okStopped(chk *nodetest.Checker, n *nodetest.Node, at time.Time) (time.Time, bool) {
	runs := chk.Runs(n)
	for i, r := range runs {
		if r.Result == nodetest.ResultOK && !r.FirstArrived.After(at) && i+1 < len(runs) && !runs[i+1].FirstArrived.Before(at) {
			return r.LastSent, true
		}
	}
	return time.Time{}, false
}

// hanodeStatus runs `hanode status --zk ADDR` (the real binary) and returns
// its exit status and output.
func hanodeStatus(t testing.TB, zkAddr string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodetest.Build(t), "status", "--zk", zkAddr)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	}
	t.Fatalf("hanode status: %v\n%s", err, out)
	return 0, ""
}

// statusJSON returns n's /v2/status as it was sent (every field, also those
// ping.Status does not decode).
func statusJSON(n *nodetest.Node) (string, error) {
	resp, err := http.Get(n.URL(ping.PathStatus))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return string(b), err
}

// statusNames waits until the /v2/status of some node of nodes mentions
// every one of want, and reports which are still missing after timeout
// (nil: all found).
func statusNames(nodes []*nodetest.Node, timeout time.Duration, want ...string) []string {
	var missing []string
	_ = testwait.Poll(timeout, 100*time.Millisecond, func() bool {
		missing = missing[:0]
		var bodies []string
		for _, n := range nodes {
			if b, err := statusJSON(n); err == nil {
				bodies = append(bodies, b)
			}
		}
		all := strings.Join(bodies, "\n")
		for _, w := range want {
			if !strings.Contains(all, w) {
				missing = append(missing, w)
			}
		}
		return len(missing) == 0
	})
	return missing
}

// logsName returns the first log line of n (all runs) that mentions every
// one of words, "" if none does.
func logsName(n *nodetest.Node, words ...string) string {
	for _, line := range strings.Split(n.AllLogs(), "\n") {
		ok := true
		for _, w := range words {
			if !strings.Contains(line, w) {
				ok = false
				break
			}
		}
		if ok {
			return line
		}
	}
	return ""
}

// noPanics fails the test for every node whose log shows a Go panic or a
// fatal runtime error.
func noPanics(t testing.TB, nodes []*nodetest.Node) {
	t.Helper()
	for _, n := range nodes {
		for _, w := range []string{"panic:", "fatal error:", "goroutine "} {
			if line := logsName(n, w); line != "" {
				t.Errorf("%s's log shows %q: %s", n, w, line)
				break
			}
		}
	}
}

// ms renders a duration for logs and RESULT rows.
func msOf(d time.Duration) string { return d.Round(time.Millisecond).String() }

// bounded fails the test when d is above bound (what names the measure).
func assertWithin(t testing.TB, what string, d, bound time.Duration) {
	t.Helper()
	if d > bound {
		t.Errorf("%s took %v, want at most %v", what, msOf(d), bound)
	}
}

// pidsOf returns each node's current process id.
func pidsOf(nodes []*nodetest.Node) map[*nodetest.Node]int {
	out := map[*nodetest.Node]int{}
	for _, n := range nodes {
		out[n] = n.PID()
	}
	return out
}

// samePIDs fails the test for every node that exited or was replaced.
func samePIDs(t testing.TB, before map[*nodetest.Node]int) {
	t.Helper()
	for n, pid := range before {
		switch {
		case !n.Running():
			code, _ := n.Wait(time.Second)
			t.Errorf("%s (pid %d) exited with status %d\n%s", n, pid, code, tailOf(n, 30))
		case n.PID() != pid:
			t.Errorf("%s runs as pid %d, was pid %d", n, n.PID(), pid)
		}
	}
}

func tailOf(n *nodetest.Node, lines int) string {
	all := strings.Split(strings.TrimRight(n.Logs(), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

func describeMembers(ms []memberZnode) string {
	var parts []string
	for _, m := range ms {
		parts = append(parts, fmt.Sprintf("%d:%s(v%d)", m.Seq, m.Name, m.Stat.Version))
	}
	return strings.Join(parts, " ")
}

// noOverlapsYet fails the test on every definite overlap of "ok" answers
// the Checker has seen so far (it keeps polling): a scenario of several
// faults names the fault that caused one.
func noOverlapsYet(t testing.TB, c *cluster) {
	t.Helper()
	for _, o := range c.chk.Overlaps() {
		t.Errorf("nodetest: %s", o)
	}
}

// firstJoin returns when the first of nodes joined its group, from the
// "joined as seq" state change in its log.
func firstJoin(t testing.TB, nodes []*nodetest.Node) time.Time {
	t.Helper()
	var first time.Time
	for _, n := range nodes {
		for _, e := range nodetest.ParseLog(n.AllLogs()) {
			if e.Msg != "state change" || !strings.HasPrefix(e.Reason, "joined as seq") {
				continue
			}
			ts, _ := e.Fields["ts"].(string)
			at, err := time.Parse("2006-01-02T15:04:05.000Z0700", ts)
			if err == nil && (first.IsZero() || at.Before(first)) {
				first = at
			}
			break
		}
	}
	if first.IsZero() {
		t.Fatalf("no node logged that it joined")
	}
	return first
}

// lostOutcome is the outcome of a fault that ended the leader's lease, as
// leaderLost checks it.
const lostOutcome = "old leader out at its next extension; one leader once its lease provably ended"

// loss is what a fault that ended the leader's lease did.
type loss struct {
	oldStop time.Duration  // fault to the old leader's last "ok" (sent)
	next    *nodetest.Node // the node that answered "ok" first afterwards
	back    time.Duration  // fault to that first "ok" (arrival)
	wait    time.Duration  // the old leader's last extension to that first "ok"
	term    int64          // the next leader's term
}

// leaderLost measures a fault at fault that ends the lease of old, whose
// last extension ZooKeeper applied at lastExt: old must stop answering "ok"
// at its next extension (R after lastExt); nobody may answer "ok" before
// old's lease provably ended (lastExt + D: the next leader must wait W from
// an observation made after lastExt); and one leader must be back within
// back (from the fault). It waits for the group to settle, checks the
// handover of the duties and that the term grew.
func leaderLost(t *testing.T, c *cluster, old *nodetest.Node, oldTerm int64, fault, lastExt time.Time, back time.Duration) loss {
	t.Helper()
	var l loss
	stopped := okEnded(t, c.chk, old, fault, advR+slack)
	l.oldStop = stopped.Sub(fault)
	if d := stopped.Sub(lastExt); d > advR+time.Second {
		t.Errorf("%s answered ok %v after its last extension, want it to stop at its next one (R = %v, asserted with 1 s of slack)",
			old, msOf(d), msOf(advR))
	}
	next, at := okRunStarted(t, c.chk, fault, back+10*time.Second)
	l.next, l.back, l.wait = next, at.Sub(fault), at.Sub(lastExt)
	if at.Before(lastExt.Add(sessionTimeout)) {
		t.Errorf("%s answered ok %v after %s's last extension, before that lease provably ended (D = %v)",
			next, msOf(l.wait), old, sessionTimeout)
	}
	assertWithin(t, "one leader back", l.back, back)
	leader := c.settle(t, settleTimeout)
	st := activeStatus(t, leader, 5*time.Second)
	l.term = st.Term
	if st.Term <= oldTerm {
		t.Errorf("%s leads in term %d after the fault, %s led in term %d", leader, st.Term, old, oldTerm)
	}
	if leader != old {
		dutyHandover(t, old, oldTerm, leader, st.Term)
	}
	noOverlapsYet(t, c)
	return l
}

// steady waits for a settled group and its leader's duty, and returns the
// leader and its term.
func steady(t *testing.T, c *cluster, timeout time.Duration) (*nodetest.Node, int64) {
	t.Helper()
	leader := c.settle(t, timeout)
	st := activeStatus(t, leader, 5*time.Second)
	waitBeat(t, leader, st.Term, 5*time.Second)
	return leader, st.Term
}

// firstLeaderWait waits until a node of c is the lowest member in its
// first-leader wait (it cannot know whether an earlier leader still holds
// a lease, so it waits W) and returns it.
func firstLeaderWait(t *testing.T, c *cluster, timeout time.Duration) *nodetest.Node {
	t.Helper()
	var found *nodetest.Node
	var last []string
	err := testwait.Poll(timeout, 20*time.Millisecond, func() bool {
		last = last[:0]
		for _, n := range c.nodes {
			if !n.Running() {
				continue
			}
			st, err := n.Status()
			if err != nil {
				continue
			}
			last = append(last, fmt.Sprintf("%s: %s (%s)", n, st.State, st.Reason))
			if st.State == "waiting" && strings.Contains(st.Reason, "may still hold its lease") {
				found = n
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("no member in its first-leader wait within %v; last: %s\n%s", timeout, strings.Join(last, "; "), c.chk.Summary())
	}
	return found
}

func containsAll(s string, want ...string) bool {
	for _, w := range want {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

// firstOKRunAfter returns the node that began a run of "ok" answers first
// after since (nil if none) and that run's first arrival.
func firstOKRunAfter(chk *nodetest.Checker, since time.Time) (*nodetest.Node, time.Time) {
	var node *nodetest.Node
	var at time.Time
	for _, n := range chk.Nodes() {
		for _, r := range chk.Runs(n) {
			if r.Result == nodetest.ResultOK && r.FirstArrived.After(since) {
				if node == nil || r.FirstArrived.Before(at) {
					node, at = n, r.FirstArrived
				}
				break
			}
		}
	}
	return node, at
}

// fenceCall is one run of FENCE_CMD, as the command wrote it.
type fenceCall struct {
	at                        time.Time
	name                      string
	term, prevTerm            int64
	prevName, prevKnown, line string
}

// fenceCalls reads the lines FENCE_CMD appended to file.
func fenceCalls(t testing.TB, file string) []fenceCall {
	t.Helper()
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	var out []fenceCall
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 6 {
			continue
		}
		ns, _ := strconv.ParseInt(f[0], 10, 64)
		fc := fenceCall{at: time.Unix(0, ns), name: f[1], line: line}
		fc.term, _ = strconv.ParseInt(strings.TrimPrefix(f[2], "term="), 10, 64)
		fc.prevName = strings.TrimPrefix(f[3], "prev_name=")
		fc.prevTerm, _ = strconv.ParseInt(strings.TrimPrefix(f[4], "prev_term="), 10, 64)
		fc.prevKnown = strings.TrimPrefix(f[5], "prev_known=")
		out = append(out, fc)
	}
	return out
}

func pick(ms []memberZnode, keep func(memberZnode) bool) []memberZnode {
	var out []memberZnode
	for _, m := range ms {
		if keep(m) {
			out = append(out, m)
		}
	}
	return out
}

// waitJoined waits until every running node of c has a session and is a
// member (standby, waiting, fencing or active).
func waitJoined(t testing.TB, c *cluster, timeout time.Duration) {
	t.Helper()
	testwait.For(t, timeout, "every node to be back in the group", func() bool {
		for _, n := range c.nodes {
			st, err := n.Status()
			if err != nil || !st.ZK.Connected {
				return false
			}
			switch st.State {
			case "standby", "waiting", "fencing", "active":
			default:
				return false
			}
		}
		return true
	})
}
