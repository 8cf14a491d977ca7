package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
	"github.com/hanode/hanode/ping"
)

// Timings of a switchover whose target dies midway, for the e2e session
// timeout D = nodetest.DefaultSessionTimeout (4 s).
var (
	// takeoverW is W = D(1+ρ)/(1−ρ), ρ = ha.DriftAllowance, rounded up to
	// the millisecond (core.TakeoverWait): 4.081 s for D = 4 s.
	takeoverW = takeoverWait(nodetest.DefaultSessionTimeout)
	// switchKillBound bounds the kill of the target until another member
	// answers ok. The old leader releases once its duty stopped (at most
	// ACTIVE_STOP_TIMEOUT after it saw the request); the next member in
	// line then waits out the dead target, first in line: by rule D once
	// the target's node stayed unchanged for W + D (it never held), or by
	// rule C, W after its last read of the target, once ZooKeeper expired
	// the target's session (at most D plus a 2 s tick after its last
	// ping). So ACTIVE_STOP_TIMEOUT + W + D = 8.88 s, plus 1 s for a loaded
	// machine: about the 10 s TestCrashedLeaderIsReplacedOnceItsLeaseProvablyEnded
	// allows after a leader's crash.
	switchKillBound = defaultStopTimeout + takeoverW + nodetest.DefaultSessionTimeout + time.Second
	// switchoverTTL is how long a switchover request stands: two leases
	// and W after it was asked (core's switchoverTTL); then it lapses.
	switchoverTTL = 2*nodetest.DefaultSessionTimeout + takeoverW
)

// takeoverWait is W for a lease of d, as core.TakeoverWait computes it.
func takeoverWait(d time.Duration) time.Duration {
	w := time.Duration(float64(d) * (1 + ha.DriftAllowance) / (1 - ha.DriftAllowance))
	return (w + time.Millisecond - 1).Truncate(time.Millisecond)
}

const (
	// defaultStopTimeout is ACTIVE_STOP_TIMEOUT's default for D = 4 s:
	// min(2/3, 7/8 − 400 ms) of LEASE_MARGIN (30% of D, 1.2 s).
	defaultStopTimeout = 800 * time.Millisecond
	// slowStop is how long slowStopDuty keeps beating after SIGTERM.
	slowStop = 500 * time.Millisecond
)

// slowStopDuty is HeartbeatCmd's duty that, on SIGTERM, keeps beating for
// slowStop before it exits (well within ACTIVE_STOP_TIMEOUT): a leader
// asked to hand over releases only once its duty stopped, so for slowStop
// after the request the lease is surely not released and the target surely
// does not lead.
func slowStopDuty(hb string) string {
	return `stop=0; trap 'stop=$(($(date +%s%N) + ` + strconv.FormatInt(slowStop.Nanoseconds(), 10) + `))' TERM; ` +
		`while :; do echo "$(date +%s%N) $HANODE_NAME $HANODE_TERM $HANODE_ROLE $HANODE_HA_ID" >> ` + nodetest.ShellQuote(hb) +
		`; if [ "$stop" -ne 0 ] && [ "$(date +%s%N)" -ge "$stop" ]; then exit 0; fi; sleep 0.05; done`
}

// TestSwitchoverToATargetKilledBeforeItLeadsEndsWithOneLeader: a switchover
// is asked on the leader's node; the test sees the request land in the
// group record (a ZooKeeper watch) and SIGKILLs the target at once, while
// the leader is still stopping its duty (it stops in 500 ms), so the lease
// is not released yet and the target never leads. Another member (or the
// old leader) answers ok within switchKillBound of the kill; the asked
// switchover answers that its target left (HTTP 503); the request then
// lapses without moving anyone, and a later hanode switchover works as
// usual. No two members were ever active at once, nor two duties.
func TestSwitchoverToATargetKilledBeforeItLeadsEndsWithOneLeader(t *testing.T) {
	g := startSwitchoverGroup(t, slowStopDuty)
	// The last member in line: the member between it and the leader steps
	// behind it, the leader hands over.
	target := g.standbys()[len(g.standbys())-1]
	t.Logf("line before: %s; leader %s, target %s", g.line(), g.leader, target)

	asked := time.Now()
	answer := g.postSwitchover(g.leader, target.Name())
	g.waitGroupRecord(10*time.Second, "the switchover request in the group record", func(s *ha.SwitchoverInfo) bool {
		return s != nil && s.To == target.Name() && !s.At.Before(asked.Add(-time.Second))
	})
	kill := target.Kill()
	rec := g.leaderRecord()
	t.Logf("target %s killed %v after the request; leader record then: %s term %d %s",
		target, kill.Sub(asked).Round(time.Millisecond), rec.Name, rec.Term, rec.State)
	if rec.Name != g.leader.Name() || rec.State != "active" {
		t.Fatalf("the kill came too late to be midway: the leader record reads %+v, want %s still active", rec, g.leader)
	}
	if code := target.WaitExit(exitBound); code != -1 {
		t.Fatalf("%s exited %d after SIGKILL, want -1", target, code)
	}

	g.checkOneLeaderAfterKill(target, asked, kill, answer)
}

// TestSwitchoverToAFrozenTargetKilledAfterTheReleaseEndsWithOneLeader: the
// target is frozen (SIGSTOP) before a switchover to it is asked, so once
// the leader has stopped its duty and released the lease (the test waits
// for the released leader record) nobody claims it: the target is first in
// line and cannot. Then the target is SIGKILLed. Another member answers ok
// within switchKillBound of the kill; the backgrounded hanode switchover
// exits 1 saying its target left; the request lapses without moving
// anyone, and a later hanode switchover works as usual. No two members
// were ever active at once, nor two duties.
func TestSwitchoverToAFrozenTargetKilledAfterTheReleaseEndsWithOneLeader(t *testing.T) {
	g := startSwitchoverGroup(t, nil)
	// The member right behind the leader: the leader alone steps aside.
	target := g.standbys()[0]
	t.Logf("line before: %s; leader %s, target %s", g.line(), g.leader, target)

	target.Stop()
	asked := time.Now()
	answer := g.switchoverCommand(g.leader, target.Name())
	rec := g.waitLeaderRecord(10*time.Second, g.leader.Name()+" to release the lease", func(r leaderRecordView) bool {
		return r.Name == g.leader.Name() && r.State == "released"
	})
	released := time.Now()
	t.Logf("%s released %v after the request (%q)", g.leader, released.Sub(asked).Round(time.Millisecond), rec.Reason)
	// The target is first in line and frozen: nobody may claim by rule B,
	// and the others must wait it out.
	if n, at, ok := g.chk.FirstOKAfter(released, target); ok {
		t.Fatalf("%s answered ok %v after the release while the target %s was frozen", n, at.Sub(released), target)
	}
	kill := target.Kill()
	t.Logf("target %s killed %v after the release", target, kill.Sub(released).Round(time.Millisecond))
	if code := target.WaitExit(exitBound); code != -1 {
		t.Fatalf("%s exited %d after SIGKILL, want -1", target, code)
	}

	g.checkOneLeaderAfterKill(target, asked, kill, answer)
}

// switchoverGroup is a group of three real members with an admin token,
// the ZooKeeper they use and a client of it.
type switchoverGroup struct {
	t      *testing.T
	conn   *zk.Conn
	haID   string
	token  string
	nodes  []*nodetest.Node
	chk    *nodetest.Checker
	leader *nodetest.Node
}

// startSwitchoverGroup starts members a, b and c with the heartbeat duty
// (built by duty when not nil) and waits for their leader.
func startSwitchoverGroup(t *testing.T, duty func(string) string) *switchoverGroup {
	t.Helper()
	zkSrv := zktest.Start(t)
	g := &switchoverGroup{t: t, haID: nodetest.GroupID(t), token: "e2e-admin-token-0123456789"}
	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokenFile, []byte(g.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c"} {
		env := nodetest.HAEnv(zkSrv.Addr, g.haID, name)
		env["ADMIN_TOKEN_FILE"] = tokenFile
		g.nodes = append(g.nodes, nodetest.Start(t, nodetest.Options{Name: name, Env: env, Heartbeat: true, DutyCmd: duty}))
	}
	g.chk = nodetest.NewChecker(t, g.nodes...)
	g.leader = g.chk.Node(g.chk.WaitSingleLeader(electionTimeout))
	g.conn = zktest.Connect(t, zkSrv.Addr, 10*time.Second)
	return g
}

// standbys are the members other than the leader, in line order as the
// leader's status lists them.
func (g *switchoverGroup) standbys() []*nodetest.Node {
	st, err := g.leader.WaitStatus(10*time.Second, func(st ping.Status) bool { return len(st.Members) == len(g.nodes) })
	if err != nil {
		g.t.Fatalf("the leader's status never listed every member: %v", err)
	}
	var out []*nodetest.Node
	for _, m := range st.Members {
		if n := g.chk.Node(m.Name); n != nil && n != g.leader {
			out = append(out, n)
		}
	}
	if len(out) != len(g.nodes)-1 {
		g.t.Fatalf("%s lists %d other members, want %d", g.leader, len(out), len(g.nodes)-1)
	}
	return out
}

// line is the members in line order as the leader's status lists them.
func (g *switchoverGroup) line() string {
	var names []string
	for _, m := range g.leader.MustStatus().Members {
		names = append(names, m.Name)
	}
	return strings.Join(names, ", ")
}

// switchoverAnswer is the admin API's answer to a switchover request.
type switchoverAnswer struct {
	code int
	body string
	err  error
	took time.Duration
}

// postSwitchover asks n's admin API, in the background, to switch over to
// to (what `hanode switchover --to` does); the answer comes on the channel.
func (g *switchoverGroup) postSwitchover(n *nodetest.Node, to string) <-chan switchoverAnswer {
	out := make(chan switchoverAnswer, 1)
	go func() {
		start := time.Now()
		req, err := http.NewRequest(http.MethodPost, n.URL("/v2/admin/switchover?to="+to), nil)
		if err != nil {
			out <- switchoverAnswer{err: err}
			return
		}
		req.Header.Set("Authorization", "Bearer "+g.token)
		cl := &http.Client{Timeout: cliTimeout, Transport: &http.Transport{Proxy: nil}}
		resp, err := cl.Do(req)
		if err != nil {
			out <- switchoverAnswer{err: err, took: time.Since(start)}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		out <- switchoverAnswer{code: resp.StatusCode, body: strings.TrimSpace(string(b)), err: err, took: time.Since(start)}
	}()
	return out
}

// switchoverCommand runs `hanode switchover --to to` on n's host in the
// background; its exit status and output come on the channel (code is the
// exit status, body stdout and stderr).
func (g *switchoverGroup) switchoverCommand(n *nodetest.Node, to string) <-chan switchoverAnswer {
	bin := nodetest.Build(g.t)
	out := make(chan switchoverAnswer, 1)
	go func() {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "switchover", "--env-file", n.EnvFilePath(), "--to", to)
		cmd.Env = cleanEnv()
		b, err := cmd.CombinedOutput()
		a := switchoverAnswer{body: strings.TrimSpace(string(b)), err: err, took: time.Since(start)}
		if cmd.ProcessState != nil {
			a.code = cmd.ProcessState.ExitCode()
		}
		out <- a
	}()
	return out
}

// checkOneLeaderAfterKill checks what follows the kill of a switchover's
// target asked at asked: the target never led; exactly one other member
// answers ok within switchKillBound of the kill; the switchover request
// answers that its target left, naming the new leader; the request lapses without moving anyone and no
// survivor stays behind it; a later switchover works; no two members
// were ever active at once, nor two duties.
func (g *switchoverGroup) checkOneLeaderAfterKill(target *nodetest.Node, asked, kill time.Time, answer <-chan switchoverAnswer) {
	t := g.t
	t.Helper()
	next, took := g.waitTakeover(target, asked, kill, switchKillBound+5*time.Second)
	t.Logf("%s answered ok %v after the target %s was killed (bound %v)", next, took.Round(time.Millisecond), target, switchKillBound)
	if took > switchKillBound {
		t.Errorf("%s took over %v after the kill of %s, want ≤ %v", next, took, target, switchKillBound)
	}
	if got := g.chk.WaitSingleLeader(5 * time.Second); got != next.Name() {
		t.Fatalf("leader is %s, want %s: the first to answer ok after the kill", got, next)
	}
	st := next.MustStatus()
	t.Logf("%s: %s (%s)", next, st.State, st.Reason)
	for _, r := range g.chk.Runs(target) {
		if r.Result == nodetest.ResultOK {
			t.Errorf("target %s answered ok (%d answers from %v after the request)", target, r.N, r.FirstArrived.Sub(asked))
		}
	}
	if beats, _, err := nodetest.ReadHeartbeats(target.HeartbeatFile()); err != nil || len(beats) > 0 {
		t.Errorf("target %s ran its duty (%d heartbeats, %v)", target, len(beats), err)
	}

	// The request answers, soon after the takeover, that its target left
	// and who leads instead (HTTP 503, or the command's exit 1).
	select {
	case a := <-answer:
		t.Logf("the switchover request answered %d %s after %v (err %v)", a.code, a.body, a.took.Round(time.Millisecond), a.err)
		if a.code != http.StatusServiceUnavailable && a.code != 1 {
			t.Errorf("the switchover to the killed %s answered %d, want 503 (HTTP) or exit 1: %s (%v)", target, a.code, a.body, a.err)
		}
		want := "switchover target left the group before it led: " + target.Name() + "; " + next.Name() + " leads"
		if !strings.Contains(a.body, want) {
			t.Errorf("the switchover's answer %q does not say %q", a.body, want)
		}
		if late := asked.Add(a.took).Sub(kill.Add(took)); late > 2*time.Second {
			t.Errorf("the switchover answered %v after %s took over, want within 2s", late, next)
		}
	case <-time.After(cliTimeout):
		t.Errorf("the switchover request did not answer within %v", cliTimeout)
	}

	// The request still stands in the group record until it is older than
	// switchoverTTL; across that instant the leadership must not move.
	req := g.groupRecord()
	t.Logf("the group record's switchover after the takeover: %+v", req)
	var lapse time.Time
	if req != nil {
		lapse = req.At.Add(switchoverTTL)
	}
	settled := time.Now()
	if wait := time.Until(lapse) + time.Second; wait > 0 {
		moved := func() bool {
			if r, ok := g.chk.Latest(next); !ok || r.Result != nodetest.ResultOK {
				return true
			}
			_, _, ok := g.chk.FirstOKAfter(settled, next)
			return ok
		}
		if err := testwait.Poll(wait, 20*time.Millisecond, moved); err == nil {
			t.Fatalf("leadership moved while the lapsing switchover request stood\n%s", g.chk.Summary())
		}
	}
	var other *nodetest.Node
	for _, n := range g.nodes {
		if n == target || n == next {
			continue
		}
		other = n
		st := n.MustStatus()
		t.Logf("survivor %s after the request lapsed: %s (%s)", n, st.State, st.Reason)
		if st.State != "standby" || strings.Contains(st.Reason, "switchover") || strings.Contains(st.Reason, "stepped behind") {
			t.Errorf("survivor %s is %s (%s), want a plain standby", n, st.State, st.Reason)
		}
	}
	if st := next.MustStatus(); st.State != "active" {
		t.Errorf("%s is %s (%s) after the request lapsed, want active", next, st.State, st.Reason)
	}

	// A later switchover works as usual and its target clears the request.
	start := time.Now()
	stdout, stderr, code := cli(t, "switchover", "--env-file", next.EnvFilePath(), "--to", other.Name())
	if code != 0 {
		t.Fatalf("a later hanode switchover --to %s: exit %d: %s", other, code, stderr)
	}
	t.Logf("later switchover --to %s: %v; %s", other, time.Since(start).Round(time.Millisecond), strings.TrimSpace(stdout))
	if got := g.chk.WaitSingleLeader(electionTimeout); got != other.Name() {
		t.Fatalf("%s leads after a switchover to %s", got, other)
	}
	g.waitGroupRecord(10*time.Second, "the done switchover to be cleared", func(s *ha.SwitchoverInfo) bool { return s == nil })
	g.chk.Assert(t)
}

// waitTakeover waits until a member other than dead answers ok after the
// old leader stopped answering ok (after asked) and after kill, and returns
// it with the time from kill to its first ok.
func (g *switchoverGroup) waitTakeover(dead *nodetest.Node, asked, kill time.Time, timeout time.Duration) (*nodetest.Node, time.Duration) {
	g.t.Helper()
	var next *nodetest.Node
	var at time.Time
	err := testwait.Poll(timeout, 2*time.Millisecond, func() bool {
		runs := g.chk.Runs(g.leader)
		i := slices.IndexFunc(runs, func(r nodetest.Run) bool {
			return r.Result != nodetest.ResultOK && r.FirstArrived.After(asked)
		})
		if i < 0 {
			return false // the old leader still answers ok
		}
		since := later(runs[i].FirstArrived, kill)
		var ok bool
		next, at, ok = g.chk.FirstOKAfter(since, dead)
		return ok
	})
	if err != nil {
		g.t.Fatalf("no member answered ok within %v of the kill of %s\n%s", timeout, dead, g.chk.Summary())
	}
	return next, at.Sub(kill)
}

// groupRecord is the switchover the group record holds, nil none.
func (g *switchoverGroup) groupRecord() *ha.SwitchoverInfo {
	g.t.Helper()
	data, _, err := g.conn.Get(g.groupPath())
	if err != nil {
		g.t.Fatalf("read %s: %v", g.groupPath(), err)
	}
	return decodeSwitchover(g.t, data)
}

// waitGroupRecord waits, by data watches, until cond holds for the group
// record's switchover.
func (g *switchoverGroup) waitGroupRecord(timeout time.Duration, what string, cond func(*ha.SwitchoverInfo) bool) {
	g.t.Helper()
	waitZNode(g.t, g.conn, g.groupPath(), timeout, what, func(data []byte) bool { return cond(decodeSwitchover(g.t, data)) })
}

// leaderRecordView is what the tests read of the leader record.
type leaderRecordView struct {
	Term   int64  `json:"term"`
	Name   string `json:"name"`
	State  string `json:"state"`
	Reason string `json:"reason"`
}

func (g *switchoverGroup) leaderRecord() leaderRecordView {
	g.t.Helper()
	data, _, err := g.conn.Get(g.groupPath() + "/leader")
	if err != nil {
		g.t.Fatalf("read the leader record: %v", err)
	}
	return decodeLeaderRecord(g.t, data)
}

// waitLeaderRecord waits, by data watches, until cond holds for the leader
// record, and returns it.
func (g *switchoverGroup) waitLeaderRecord(timeout time.Duration, what string, cond func(leaderRecordView) bool) leaderRecordView {
	g.t.Helper()
	data := waitZNode(g.t, g.conn, g.groupPath()+"/leader", timeout, what, func(data []byte) bool {
		return cond(decodeLeaderRecord(g.t, data))
	})
	return decodeLeaderRecord(g.t, data)
}

func (g *switchoverGroup) groupPath() string { return "/hanode/groups/" + g.haID }

func decodeSwitchover(t *testing.T, data []byte) *ha.SwitchoverInfo {
	t.Helper()
	var rec struct {
		Switchover *ha.SwitchoverInfo `json:"switchover"`
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatalf("group record %q: %v", data, err)
	}
	return rec.Switchover
}

func decodeLeaderRecord(t *testing.T, data []byte) leaderRecordView {
	t.Helper()
	var r leaderRecordView
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("leader record %q: %v", data, err)
	}
	return r
}

// waitZNode waits until cond holds for path's data, reading it again each
// time a data watch fires (no polling delay), and returns that data.
func waitZNode(t *testing.T, conn *zk.Conn, path string, timeout time.Duration, what string, cond func([]byte) bool) []byte {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		data, _, ev, err := conn.GetW(path)
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		if cond(data) {
			return data
		}
		select {
		case <-ev:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s (%s holds %s)", timeout, what, path, data)
		}
	}
}
