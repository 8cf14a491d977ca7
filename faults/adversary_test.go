package faults

// Adversarial faults: another ZooKeeper client writes
// into hanode's znodes while a group runs (or while it is stopped), as an
// operator's zkCli or a cleanup script would, and ZooKeeper loses its data
// while members restart. Every scenario runs a group of the real binary
// against real ZooKeeper, with the heartbeat duty and ZK_SESSION_TIMEOUT=4s
// (D), and ends with the Checker's verdict: no two nodes ever answered "ok"
// at one instant, no two duties ran at once, terms grew. Each also bounds
// when exactly one leader is back, in terms of W (advW, 4.081 s), the
// extension period R (advR, 0.93 s) and the relist period 3D, with slack
// for a loaded CI machine, and records the measured time as a RESULT row.
// docs/faults.md, "Adversarial faults", has the table.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// TestAdversaryMemberNodeDeleted: another client deletes member nodes of a
// running group. A standby's: the leader is untouched, and the standby
// rejoins with a new node (its own-node watch; the relist, 3D, bounds it). The leader's: the
// leader stops at its next extension (R), and its successor leads only W
// after its last observation of the leader's node, so after the leader's
// lease provably ended. Every member node at once (deleteall of members/):
// every member rejoins, and the first leader of the re-created group waits W.
func TestAdversaryMemberNodeDeleted(t *testing.T) {
	server := zktest.Start(t)
	c := startCluster(t, clusterOptions{Servers: []string{server.Addr}, Names: []string{"m1", "m2", "m3"}})
	adv := newAdversary(t, server.Addr)
	steady(t, c, electionTimeout)

	t.Run("Standby", func(t *testing.T) {
		const scenario = "member node deleted by another client: a standby's"
		leader, term := steady(t, c, settleTimeout)
		ms := adv.memberZnodes(c.haID)
		if len(ms) != 3 || ms[0].Name != leader.Name() {
			t.Fatalf("members/ holds %s, want the leader %s lowest of 3", describeMembers(ms), leader)
		}
		victim := ms[1] // next in line: it watches the leader
		standby := c.chk.Node(victim.Name)
		fault := time.Now()
		if err := adv.conn.Delete(victim.Path, victim.Stat.Version); err != nil {
			t.Fatalf("delete %s: %v", victim.Path, err)
		}
		testwait.For(t, relist+slack, standby.Name()+" to rejoin with a new member node", func() bool {
			return adv.hasMember(c.haID, standby, ms[2].Seq)
		})
		rejoined := time.Since(fault)
		assertWithin(t, standby.Name()+"'s rejoin", rejoined, relist+slack)
		if got, _ := steady(t, c, settleTimeout); got != leader {
			t.Errorf("leader is %s after a standby's node was deleted, want %s", got, leader)
		}
		if st := activeStatus(t, leader, 5*time.Second); st.Term != term {
			t.Errorf("%s's term went from %d to %d", leader, term, st.Term)
		}
		if r, ok := c.chk.Latest(leader); !ok || r.Result != nodetest.ResultOK || r.FirstArrived.After(fault) {
			t.Errorf("%s did not answer ok throughout: %s", leader, c.chk.Summary())
		}
		t.Logf("%s: %s's node %s deleted; it rejoined with a new node %v later; %s led throughout in term %d",
			scenario, standby, victim.Path, msOf(rejoined), leader, term)
		record(t, scenario, outcomeOf(t, "no failover, same term; the standby rejoined at its relist"), -1)
	})

	t.Run("Leader", func(t *testing.T) {
		const scenario = "member node deleted by another client: the leader's"
		leader, term := steady(t, c, settleTimeout)
		z := adv.memberOf(c.haID, leader)
		fault := time.Now()
		if err := adv.conn.Delete(z.Path, z.Stat.Version); err != nil {
			t.Fatalf("delete %s at version %d: %v", z.Path, z.Stat.Version, err)
		}
		l := leaderLost(t, c, leader, term, fault, znodeMtime(z.Stat), advW+slack)
		t.Logf("%s: %s stopped answering ok %v after the delete; %s answered ok %v after it (%v after %s's last extension), term %d -> %d",
			scenario, leader, msOf(l.oldStop), l.next, msOf(l.back), msOf(l.wait), leader, term, l.term)
		record(t, scenario, outcomeOf(t, lostOutcome), l.back)
	})

	t.Run("All", func(t *testing.T) {
		const scenario = "member node deleted by another client: every one (deleteall members/)"
		leader, term := steady(t, c, settleTimeout)
		z := adv.memberOf(c.haID, leader)
		fault := time.Now()
		stats := adv.deleteTree(adv.members(c.haID))
		st, ok := stats[z.Path]
		if !ok {
			t.Fatalf("deleteall %s did not delete the leader's node %s", adv.members(c.haID), z.Path)
		}
		l := leaderLost(t, c, leader, term, fault, znodeMtime(st), advW+slack)
		t.Logf("%s: %s stopped answering ok %v after the delete; %s answered ok %v after it (%v after %s's last extension), term %d -> %d",
			scenario, leader, msOf(l.oldStop), l.next, msOf(l.back), msOf(l.wait), leader, term, l.term)
		record(t, scenario, outcomeOf(t, lostOutcome), l.back)
	})
	c.assertClean(t)
}

// TestAdversaryRootDeleted: another client deletes hanode's whole tree
// (deleteall /hanode: name reservations, group and leader records, member
// nodes) while a group runs, once, then twice in a row a second apart. The
// leader stops at its next extension; every member reserves its name again
// and rejoins; the first leader of the re-created group waits W, so nobody
// leads before the old leader's lease provably ended; terms keep growing
// (members bring the terms they saw).
func TestAdversaryRootDeleted(t *testing.T) {
	server := zktest.Start(t)
	c := startCluster(t, clusterOptions{Servers: []string{server.Addr}, Names: []string{"r1", "r2", "r3"}})
	adv := newAdversary(t, server.Addr)
	steady(t, c, electionTimeout)

	for _, tc := range []struct {
		name, scenario string
		times          int
	}{
		{"Once", "ZK_ROOT deleted (deleteall /hanode)", 1},
		{"TwiceASecondApart", "ZK_ROOT deleted twice, 1 s apart", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leader, term := steady(t, c, settleTimeout)
			z := adv.memberOf(c.haID, leader)
			fault := time.Now()
			st, ok := adv.deleteTree(adv.root)[z.Path]
			if !ok {
				t.Fatalf("deleteall %s did not delete the leader's node %s", adv.root, z.Path)
			}
			last := fault
			for range tc.times - 1 {
				holdFault(time.Second)
				last = time.Now()
				adv.deleteTree(adv.root)
			}
			l := leaderLost(t, c, leader, term, fault, znodeMtime(st), last.Sub(fault)+advW+slack)
			// The tree is back: every name reserved again, the group
			// record, the leader record naming the leader.
			for _, n := range c.nodes {
				if _, _, err := adv.conn.Get(adv.name(n.Name())); err != nil {
					t.Errorf("%s's name reservation %s: %v", n, adv.name(n.Name()), err)
				}
			}
			if _, _, err := adv.conn.Get(adv.group(c.haID)); err != nil {
				t.Errorf("group record %s: %v", adv.group(c.haID), err)
			}
			leaderNow := c.settle(t, settleTimeout)
			if rec, _, _, ok := adv.record(c.haID); !ok || rec.Name != leaderNow.Name() || rec.Term != l.term {
				t.Errorf("leader record %+v (readable %v), want %s in term %d", rec, ok, leaderNow, l.term)
			}
			t.Logf("%s: %s stopped answering ok %v after the first delete; %s answered ok %v after it, %v after the last delete "+
				"(%v after %s's last extension), term %d -> %d",
				tc.scenario, leader, msOf(l.oldStop), l.next, msOf(l.back), msOf(l.back-last.Sub(fault)), msOf(l.wait), leader, term, l.term)
			record(t, tc.scenario, outcomeOf(t, lostOutcome), l.back)
		})
	}
	c.assertClean(t)
}

// TestAdversaryDataLossDuringFirstLeaderWait: the group's only ZooKeeper
// server, with some history, loses its data while the group leads; the
// members rejoin the empty server, and the lowest waits W (it cannot know
// whether the old leader's lease has ended). Then the member in its
// first-leader wait is restarted, with SIGTERM, and then its successor,
// which became lowest and waits in turn, with SIGKILL: the third member
// takes over from a predecessor that was itself still in its first-leader
// wait, once the killed member's session has ended, and within W
// more at most. Nobody leads twice at once, and every term is above every
// term used before the loss (restarted members forget the terms they saw:
// the wall clock carries them).
func TestAdversaryDataLossDuringFirstLeaderWait(t *testing.T) {
	const scenario = "data loss, then the waiting lowest restarted (SIGTERM), then its successor (SIGKILL)"
	const variant = "took over from a predecessor killed in its first-leader wait"
	server := zktest.Start(t)
	zkHistory(t, server.Addr, 300)
	c := startCluster(t, clusterOptions{Servers: []string{server.Addr}, Names: []string{"d1", "d2", "d3"}})
	old, termBefore := steady(t, c, electionTimeout)
	termBefore = max(termBefore, maxTerm(c.nodes))

	fault := time.Now()
	server.RestartWiped(t)
	// Members have no session for D, then start a fresh client (the empty
	// server refuses the old one for good) and rejoin; the lowest waits W.
	adv := newAdversary(t, server.Addr) // a client that has not seen the lost history
	testwait.For(t, 3*sessionTimeout+slack, "every member to rejoin the empty server", func() bool {
		return len(adv.memberZnodes(c.haID)) == len(c.nodes)
	})
	first := firstLeaderWait(t, c, advW)
	termed := first.Term()
	if code := first.WaitExit(exitBound); code != 0 {
		t.Errorf("%s exited %d after SIGTERM, want 0", first, code)
	}
	first.Restart()
	second := firstLeaderWait(t, c, advW+slack)
	if second == first {
		t.Fatalf("%s, restarted, is lowest again; want its successor", first)
	}
	killed := second.Kill()
	second.WaitExit(exitBound)
	second.Restart()
	// The third takes over once the killed member's node is gone with its
	// session (D and a tick): at once if it read that member as lowest W
	// before; else (it watches only its predecessor, and was not told that
	// it became lowest) it waits W from then.
	bound := sessionTimeout + 500*time.Millisecond + advW + slack
	next, okAt := okRunStarted(t, c.chk, killed, bound+10*time.Second)
	back := okAt.Sub(killed)
	assertWithin(t, "one leader back after the kill", back, bound)
	leader := c.settle(t, settleTimeout)
	st := activeStatus(t, leader, 5*time.Second)
	waitBeat(t, leader, st.Term, 5*time.Second) // the Checker compares its term with the earlier duties'
	if st.Term <= termBefore {
		t.Errorf("%s leads in term %d after the data loss; the group had used term %d", leader, st.Term, termBefore)
	}
	if leader == second {
		t.Errorf("%s, killed in its wait and restarted, leads; want the member behind it", second)
	}
	t.Logf("%s: %s led in term %d; ZooKeeper wiped; %s in its first-leader wait %v after the wipe began, got SIGTERM; "+
		"%s then waited and got SIGKILL %v after the wipe began; %s answered ok %v after the kill, term %d; %s leads",
		scenario, old, termBefore, first, msOf(termed.Sub(fault)), second, msOf(killed.Sub(fault)), next, msOf(back), st.Term, leader)
	c.assertClean(t)
	record(t, scenario, outcomeOf(t, "one leader, in a term above every earlier one"), okAt.Sub(fault))
	how := "it had seen the killed member lowest: it led once that member's session ended"
	if back > sessionTimeout+500*time.Millisecond+slack/2 {
		how = "it had not seen the killed member lowest (it watches only its predecessor): W more after that member's session ended"
	}
	record(t, variant, outcomeOf(t, "one leader, 0 overlaps; "+how), back)
}

// garbage is what another client may write over hanode's records.
var garbage = []struct {
	kind string
	data []byte
}{
	{"not JSON", []byte("\x00\x01 not json {{")},
	{"empty", []byte{}},
	{"JSON of the wrong shape", []byte(`["term", 7, {"holder": null}]`)},
}

// TestAdversaryUndecodableData: another client
// overwrites hanode's records with garbage (not JSON, empty, JSON of the
// wrong shape) while a group runs.
//
//   - The leader record: the leader, which watches it, rewrites it at once;
//     no failover, same term.
//   - The group record: running members do not read it; `hanode status`
//     names it, and the next member to join (a restarted standby) rewrites it.
//   - A standby's member node: the standby's own-node watch finds it (the relist, 3D, bounds it),
//     steps out and rejoins with a clean node; `hanode status` lists the
//     damaged node as ignored until then; the leader is untouched.
//   - The leader's member node: the leader's next extension fails (R); its
//     successor leads W after it read the damaged node, after the leader's
//     lease provably ended.
//
// `hanode status` exits 0 throughout.
func TestAdversaryUndecodableData(t *testing.T) {
	server := zktest.Start(t)
	c := startCluster(t, clusterOptions{Servers: []string{server.Addr}, Names: []string{"u1", "u2", "u3"}})
	adv := newAdversary(t, server.Addr)
	steady(t, c, electionTimeout)
	status := func(t *testing.T, want ...string) string {
		t.Helper()
		code, out := hanodeStatus(t, server.Addr)
		if code != 0 {
			t.Errorf("hanode status exited %d, want 0:\n%s", code, out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("hanode status does not name %q:\n%s", w, out)
			}
		}
		return out
	}

	t.Run("LeaderRecord", func(t *testing.T) {
		path := adv.leader(c.haID)
		for _, g := range garbage {
			scenario := "leader record overwritten (" + g.kind + ")"
			leader, term := steady(t, c, settleTimeout)
			fault := time.Now()
			adv.overwrite(path, g.data)
			testwait.For(t, advW+slack, "a leader to rewrite "+path, func() bool {
				_, _, _, ok := adv.record(c.haID)
				return ok
			})
			repaired := time.Since(fault)
			status(t)
			if logsName(leader, "overwritten by another client", path) == "" {
				t.Errorf("%s's log does not name %s as overwritten", leader, path)
			}
			outcome, back := "no failover, same term; the leader rewrote it", time.Duration(-1)
			got, gotTerm := steady(t, c, settleTimeout)
			if stopped, ok := okStopped(c.chk, leader, fault); ok || got != leader || gotTerm != term {
				next, at := okRunStarted(t, c.chk, fault, time.Second)
				back = at.Sub(fault)
				if logsName(leader, "member node", "was written by another client; stepping down") == "" {
					t.Errorf("%s stopped answering ok %v after the leader record was overwritten", leader, msOf(stopped.Sub(fault)))
				}
				t.Errorf("%s stopped answering ok %v after the leader record was overwritten (it rewrote it in %v); "+
					"%s answered ok %v after the write and leads in term %d, want %s in term %d throughout",
					leader, msOf(stopped.Sub(fault)), msOf(repaired), next, msOf(back), gotTerm, leader, term)
				outcome = "the leader rewrote it, then stepped down; one leader W later"
			}
			t.Logf("%s: %s rewrote it %v after the write; %s; %s leads in term %d", scenario, leader, msOf(repaired), outcome, got, gotTerm)
			record(t, scenario, outcomeOf(t, outcome), back)
		}
	})

	t.Run("GroupRecord", func(t *testing.T) {
		path := adv.group(c.haID)
		for _, g := range garbage {
			scenario := "group record overwritten (" + g.kind + "), then a standby restarted"
			leader, term := steady(t, c, settleTimeout)
			adv.overwrite(path, g.data)
			status(t, "group record "+path+" is not usable")
			var standby *nodetest.Node
			for _, n := range c.others(leader) {
				standby = n
			}
			fault := standby.Term()
			if code := standby.WaitExit(exitBound); code != 0 {
				t.Errorf("%s exited %d after SIGTERM, want 0", standby, code)
			}
			standby.Restart()
			testwait.For(t, slack, "the restarted "+standby.Name()+" to rewrite "+path, func() bool {
				data, _, err := adv.conn.Get(path)
				return err == nil && strings.Contains(string(data), `"role":"primary"`)
			})
			repaired := time.Since(fault)
			nodetest.WaitStandby(t, standby, slack, "")
			if got, gotTerm := steady(t, c, settleTimeout); got != leader || gotTerm != term {
				t.Errorf("%s leads in term %d, want %s in term %d", got, gotTerm, leader, term)
			}
			if logsName(standby, "group record", path, "rewriting") == "" {
				t.Errorf("%s's log does not name %s as rewritten", standby, path)
			}
			status(t)
			t.Logf("%s: `hanode status` named it; %s, restarted, rewrote it %v after its SIGTERM and rejoined; %s led throughout",
				scenario, standby, msOf(repaired), leader)
			record(t, scenario, outcomeOf(t, "no failover; status names it; the rejoining member rewrote it"), -1)
		}
	})

	t.Run("StandbyMemberNode", func(t *testing.T) {
		// Both standbys at once (two kinds), then the third kind: each
		// damaged standby finds out at once (it watches its own node), and
		// at its next relist at the latest.
		for _, round := range [][]int{{0, 1}, {2}} {
			leader, term := steady(t, c, settleTimeout)
			ms := adv.memberZnodes(c.haID)
			if len(ms) != 3 || ms[0].Name != leader.Name() {
				t.Fatalf("members/ holds %s, want the leader %s lowest of 3", describeMembers(ms), leader)
			}
			fault := time.Now()
			var paths []string
			for i, k := range round {
				adv.overwrite(ms[1+i].Path, garbage[k].data)
				paths = append(paths, ms[1+i].Path)
			}
			// `hanode status` lists every damaged node still there (a
			// standby whose relist came at once may have replaced its own).
			out := status(t)
			for _, p := range paths {
				if !strings.Contains(out, "ignored "+p+": not a member record") {
					if _, _, err := adv.conn.Get(p); err == nil {
						t.Errorf("hanode status does not list %s as ignored:\n%s", p, out)
					}
				}
			}
			missing := statusNames(c.nodes, time.Second, paths...)
			var stillThere []string // damaged nodes not yet replaced by their owner
			for _, p := range missing {
				if _, _, err := adv.conn.Get(p); err == nil {
					stillThere = append(stillThere, p)
				}
			}
			for i, k := range round {
				victim := ms[1+i]
				scenario := "a standby's member node overwritten (" + garbage[k].kind + ")"
				standby := c.chk.Node(victim.Name)
				testwait.For(t, relist+slack, standby.Name()+" to rejoin with a clean node", func() bool {
					return adv.hasMember(c.haID, standby, ms[2].Seq)
				})
				rejoined := time.Since(fault)
				if _, _, err := adv.conn.Get(victim.Path); err == nil {
					t.Errorf("the damaged node %s is still there after %s rejoined", victim.Path, standby)
				}
				if logsName(standby, "written by another client", victim.Path) == "" {
					t.Errorf("%s's log does not name %s as written by another client", standby, victim.Path)
				}
				if slices.Contains(stillThere, victim.Path) {
					t.Errorf("no node's /v2/status names the damaged member node %s in the second after the write", victim.Path)
				}
				t.Logf("%s: %s's node %s; `hanode status` listed it as ignored; %s rejoined with a clean node %v after the write",
					scenario, standby, victim.Path, standby, msOf(rejoined))
				record(t, scenario, outcomeOf(t, "no failover; status lists it as ignored while it is there; the standby rejoined with a clean node"), -1)
			}
			if got, gotTerm := steady(t, c, settleTimeout); got != leader || gotTerm != term {
				t.Errorf("%s leads in term %d, want %s in term %d", got, gotTerm, leader, term)
			}
			if r, ok := c.chk.Latest(leader); !ok || r.Result != nodetest.ResultOK || r.FirstArrived.After(fault) {
				t.Errorf("%s did not answer ok throughout:\n%s", leader, c.chk.Summary())
			}
		}
	})

	t.Run("LeaderMemberNode", func(t *testing.T) {
		for _, g := range garbage {
			scenario := "the leader's member node overwritten (" + g.kind + ")"
			leader, term := steady(t, c, settleTimeout)
			z := adv.memberOf(c.haID, leader)
			fault := time.Now()
			prev := adv.overwrite(z.Path, g.data)
			l := leaderLost(t, c, leader, term, fault, znodeMtime(prev), advW+slack)
			if logsName(leader, "written by another client", z.Path) == "" {
				t.Errorf("%s's log does not name %s as written by another client", leader, z.Path)
			}
			status(t)
			t.Logf("%s: %s stopped answering ok %v after the write; %s answered ok %v after it (%v after %s's last extension), term %d -> %d",
				scenario, leader, msOf(l.oldStop), l.next, msOf(l.back), msOf(l.wait), leader, term, l.term)
			record(t, scenario, outcomeOf(t, lostOutcome), l.back)
		}
	})
	c.assertClean(t)
}

// TestAdversaryForeignMemberNodes: with the group
// stopped, another client leaves nodes under members/ that hanode did not
// write: (a) a persistent node named like a member with the lowest
// sequence and member-like data, (b) a name with a sign where the 10-digit
// sequence belongs, (c) an ephemeral sequential node with a member's name
// and garbage data, owned by a live client that keeps its session, and (d)
// junk names. Then the group starts. (a), (b) and (d) take no part and stay;
// (c) takes its place in the order (a live member might own it), so the
// first member waits behind it, and it is swept (deleted at the version
// seen) once it has not changed for W + D: one leader W + D after the first
// member joined. `hanode status` lists each one it ignores.
func TestAdversaryForeignMemberNodes(t *testing.T) {
	const scenario = "foreign and hand-made nodes under members/, then the group starts"
	server := zktest.Start(t)
	adv := newAdversary(t, server.Addr)
	owner := newAdversary(t, server.Addr) // the live client owning (c)
	haID := nodetest.GroupID(t)
	dir := adv.members(haID)
	for _, p := range []string{adv.root, adv.root + "/groups", adv.group(haID), dir} {
		data := []byte(nil)
		if p == adv.group(haID) { // as a stopped group leaves it
			data = fmt.Appendf(nil, `{"ha_id":%q,"role":"primary","region":"world","lease_ms":%d,"created":"2026-01-01T00:00:00Z"}`,
				haID, sessionTimeout.Milliseconds())
		}
		if _, err := adv.conn.Create(p, data, 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	guid := "0123456789abcdef0123456789abcdef"
	member := `{"name":"ghost","role":"primary","region":"world","host":"elsewhere","pid":4242,"started":"2026-01-01T00:00:00Z","seen_term":7}`
	persistent := dir + "/_c_" + guid + "-m-0000000000"
	signed := dir + "/_c_" + guid + "-m--000000001"
	junk := []string{dir + "/junk", dir + "/lock-0000000001", dir + "/_c_" + strings.ToUpper(guid) + "-m-0000000002"}
	for _, p := range append([]string{persistent, signed}, junk...) {
		if _, err := adv.conn.Create(p, []byte(member), 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	foreign, err := owner.conn.Create(dir+"/_c_"+strings.Repeat("e", 32)+"-m-", []byte("\x00 not a member"),
		zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	if err != nil {
		t.Fatalf("create the ephemeral foreign node: %v", err)
	}
	ignored := append([]string{persistent, signed, foreign}, junk...)
	// No member yet, so no active: hanode status says so with exit 1.
	if code, out := hanodeStatus(t, server.Addr); code != 1 || !containsAll(out, ignored...) {
		t.Errorf("hanode status exited %d, want 1 (no active) and every foreign node listed as ignored:\n%s", code, out)
	}

	start := time.Now()
	c := startCluster(t, clusterOptions{Servers: []string{server.Addr}, Names: []string{"f1", "f2", "f3"}})
	next, okAt := okRunStarted(t, c.chk, start, advW+sessionTimeout+slack+10*time.Second)
	joined := firstJoin(t, c.nodes)
	back := okAt.Sub(joined)
	assertWithin(t, "one leader after the first member joined", back, advW+sessionTimeout+slack)
	leader, term := steady(t, c, settleTimeout)
	if _, _, err := adv.conn.Get(foreign); err == nil {
		t.Errorf("the foreign ephemeral node %s is still there after %s began to lead", foreign, next)
	}
	if owner.conn.State() != zk.StateHasSession {
		t.Errorf("the foreign node's owner lost its session (%v): hanode may delete the node, never end a session", owner.conn.State())
	}
	for _, p := range append([]string{persistent, signed}, junk...) {
		if _, _, err := adv.conn.Get(p); err != nil {
			t.Errorf("%s, which hanode ignores, is gone: %v", p, err)
		}
	}
	if logsName(leader, "deleting", foreign) == "" && logsName(next, "deleting", foreign) == "" {
		t.Logf("no leader log names the sweep of %s (it went with a claim that deleted it)", foreign)
	}
	kept := append([]string{persistent, signed}, junk...)
	if code, out := hanodeStatus(t, server.Addr); code != 0 || !containsAll(out, kept...) {
		t.Errorf("hanode status exited %d, want 0 and every foreign node listed as ignored:\n%s", code, out)
	}
	if missing := statusNames(c.nodes, time.Second, kept...); len(missing) > 0 {
		t.Errorf("no node's /v2/status names the ignored znodes %s", strings.Join(missing, ", "))
	}
	t.Logf("%s: %s answered ok %v after the first member joined (%v after the first start); %s leads in term %d; %s swept; the rest kept and listed as ignored",
		scenario, next, msOf(back), msOf(okAt.Sub(start)), leader, term, foreign)
	c.assertClean(t)
	record(t, scenario, outcomeOf(t, "one leader behind the swept foreign node; the rest ignored and kept"), back)
}

// TestAdversaryTermCannotGrow: an operator edits the
// leader record of a running group, writing the term 9223372036854775800
// and keeping every other field. No term can follow it (terms stay below
// 2^53, exact for JSON consumers): the leader, which watches the record,
// steps down, and every member refuses to lead, saying so and naming the
// record, in /v2/status and in `hanode status`. No node answers "ok" with a
// term that is not positive or smaller than the one before. Once the
// operator deletes the record (the fix the message names), one leader is
// back at once (the refusing lowest member watches the record; the relist,
// 3D, bounds it), in a term above the old one, and the group hands
// over normally again (SIGTERM to the new leader).
func TestAdversaryTermCannotGrow(t *testing.T) {
	const scenario = "leader record's term set to 9223372036854775800, then the record deleted"
	const poison = "9223372036854775800"
	server := zktest.Start(t)
	c := startCluster(t, clusterOptions{Servers: []string{server.Addr}, Names: []string{"t1", "t2", "t3"}})
	adv := newAdversary(t, server.Addr)
	leader, term := steady(t, c, electionTimeout)
	var watches []*statusWatch
	for _, n := range c.nodes {
		watches = append(watches, watchStatus(t, n))
	}
	path := adv.leader(c.haID)
	data, _, err := adv.conn.Get(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var rec map[string]json.RawMessage
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatalf("decode %s: %v: %s", path, err, data)
	}
	rec["term"] = json.RawMessage(poison)
	edited, _ := json.Marshal(rec)

	fault := time.Now()
	adv.overwrite(path, edited)
	stopped := okEnded(t, c.chk, leader, fault, slack)
	// Nobody leads: watch for longer than W, the wait of every rule that
	// could let a member claim here (the old leader is lowest, and its node
	// still says it held the lease).
	observe(advW+time.Second, 50*time.Millisecond, func() {
		if n, at := firstOKRunAfter(c.chk, fault); n != nil {
			t.Fatalf("%s answered ok %v after the record's term was set to %s\n%s", n, msOf(at.Sub(fault)), poison, c.chk.Summary())
		}
	})
	if raw, _, _ := adv.conn.Get(path); !strings.Contains(string(raw), `"term":`+poison) {
		t.Errorf("%s was rewritten while members refused to lead: %s (want the operator's term %s kept for the operator)", path, raw, poison)
	}
	code, out := hanodeStatus(t, server.Addr)
	if code != 1 || !strings.Contains(out, "leader record "+path) || !strings.Contains(out, "cannot grow") {
		t.Errorf("hanode status exited %d, want 1 (no active) and the refusal naming %s:\n%s", code, path, out)
	}
	var reasons []string
	for _, n := range c.nodes {
		st := n.MustStatus()
		reasons = append(reasons, fmt.Sprintf("%s: %s (%s)", n, st.State, st.Reason))
		if n.Name() == leader.Name() || st.State == "waiting" {
			if !strings.Contains(st.Reason, "cannot grow") {
				t.Errorf("%s's /v2/status says %s (%s), want a refusal to lead", n, st.State, st.Reason)
			}
		}
	}
	if missing := statusNames(c.nodes, time.Second, path); len(missing) > 0 {
		t.Errorf("no node's /v2/status names %s while every member refuses to lead (reasons: %s)", path, strings.Join(reasons, "; "))
	}

	fix := time.Now()
	if err := adv.conn.Delete(path, -1); err != nil {
		t.Fatalf("delete %s: %v", path, err)
	}
	next, okAt := okRunStarted(t, c.chk, fix, relist+slack+10*time.Second)
	back := okAt.Sub(fix)
	assertWithin(t, "one leader back after the record was deleted", back, relist+slack)
	now, newTerm := steady(t, c, settleTimeout)
	if newTerm <= term || newTerm > 1<<53-1 {
		t.Errorf("%s leads in term %d after the fix; the term before was %d (want above it, below 2^53)", now, newTerm, term)
	}
	// The group hands over as usual: no member kept the unreachable term.
	handover := now.Term()
	after, took := c.chk.WaitTakeover(handover, now, slack)
	assertWithin(t, "graceful handover after the fix", took, slack)
	now.WaitExit(exitBound)
	now.Restart()
	nodetest.WaitStandby(t, now, slack+relist, "")
	_, finalTerm := steady(t, c, settleTimeout)
	for i, w := range watches {
		w.Stop()
		for _, s := range w.between(fault, time.Now()) {
			if s.st.State == "active" && (s.st.Term <= 0 || s.st.Term < term || s.st.Term > 1<<53-1) {
				t.Errorf("%s reported active in term %d at +%v (the term before was %d)", c.nodes[i], s.st.Term, msOf(s.at.Sub(fault)), term)
				break
			}
		}
	}
	t.Logf("%s: %s (term %d) stopped answering ok %v after the edit; nobody led for %v; reasons: %s; after the delete %s answered ok %v later, term %d; "+
		"SIGTERM to it: %s took over in %v, term %d",
		scenario, leader, term, msOf(stopped.Sub(fault)), msOf(fix.Sub(stopped)), strings.Join(reasons, "; "), next, msOf(back), newTerm,
		after, msOf(took), finalTerm)
	c.assertClean(t)
	record(t, scenario, outcomeOf(t, "every member refused to lead until the record was deleted; then one leader, and handovers as usual"), back)
}

// TestAdversaryFenceWithoutLeaderRecord: every member has FENCE_CMD, which writes its environment to a file.
// The leader is SIGKILLed and, at once, another client deletes the leader
// record: the record cannot say whom to fence, but the next leader read the
// killed leader's node (the silent lowest member it pushes out, or the one
// it saw below it vanish), so it still runs FENCE_CMD naming it by name and
// the term it published (HANODE_PREV_KNOWN=1), and
// only then starts its duty (the fence's line precedes the duty's first
// heartbeat). The plain case, the leader's node SIGKILLed: the next fences it
// by name and term, from the record. Either takeover comes W after the
// killed leader's last extension at most.
func TestAdversaryFenceWithoutLeaderRecord(t *testing.T) {
	server := zktest.Start(t)
	fenceLog := filepath.Join(t.TempDir(), "fence.log")
	fence := `echo "$(date +%s%N) $HANODE_NAME term=$HANODE_TERM prev_name=$HANODE_PREV_NAME prev_term=$HANODE_PREV_TERM ` +
		`prev_known=$HANODE_PREV_KNOWN" >> ` + nodetest.ShellQuote(fenceLog)
	c := startCluster(t, clusterOptions{Servers: []string{server.Addr}, Names: []string{"k1", "k2", "k3"},
		Env: map[string]string{"FENCE_CMD": fence}})
	adv := newAdversary(t, server.Addr)
	steady(t, c, electionTimeout)

	for _, tc := range []struct {
		name, scenario string
		deleteRecord   bool
	}{
		{"LeaderKilledAndRecordDeleted", "FENCE_CMD: leader SIGKILLed and the leader record deleted at once", true},
		{"LeaderKilled", "FENCE_CMD: leader SIGKILLed", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leader, term := steady(t, c, settleTimeout)
			// The whole node dies (hanode with its duty guard): nobody
			// releases, so the next leader must fence. (hanode alone is
			// released for by its guard, with its duty proven stopped,
			// and is not fenced, as after a graceful stop:
			// e2e/guard_release_test.go.)
			fault := leader.KillGroup()
			if tc.deleteRecord {
				if err := adv.conn.Delete(adv.leader(c.haID), -1); err != nil {
					t.Fatalf("delete the leader record: %v", err)
				}
			}
			next, took := c.chk.WaitTakeover(fault, leader, 2*advW+slack+10*time.Second)
			outcome := ""
			if took > advW+slack {
				t.Errorf("takeover took %v, want at most %v (W and slack)", msOf(took), advW+slack)
				outcome = "W more than it should; "
			}
			st := activeStatus(t, next, 5*time.Second)
			first := waitBeat(t, next, st.Term, 5*time.Second)
			var calls []fenceCall
			for _, fc := range fenceCalls(t, fenceLog) {
				if fc.name == next.Name() && fc.term == st.Term {
					calls = append(calls, fc)
				}
			}
			if len(calls) == 0 {
				log, _ := os.ReadFile(fenceLog)
				t.Fatalf("%s leads in term %d without running FENCE_CMD for it; fence log:\n%s", next, st.Term, log)
			}
			fc := calls[0]
			wantKnown, wantName, wantTerm := "1", leader.Name(), term
			if fc.prevKnown != wantKnown || fc.prevName != wantName || fc.prevTerm != wantTerm {
				t.Errorf("FENCE_CMD ran with HANODE_PREV_KNOWN=%s HANODE_PREV_NAME=%q HANODE_PREV_TERM=%d, want %s %q %d (%s)",
					fc.prevKnown, fc.prevName, fc.prevTerm, wantKnown, wantName, wantTerm, fc.line)
			}
			if !fc.at.Before(first.At) {
				t.Errorf("%s's fence ran at %s, not before its duty's first heartbeat at %s",
					next, fc.at.Format("15:04:05.000"), first.At.Format("15:04:05.000"))
			}
			leader.WaitExit(exitBound)
			leader.Restart()
			nodetest.WaitStandby(t, leader, sessionTimeout+slack, "")
			if got, _ := steady(t, c, settleTimeout); got != next {
				t.Errorf("leader is %s after %s rejoined, want %s", got, leader, next)
			}
			t.Logf("%s: %s took over %v after the kill in term %d; FENCE_CMD ran %v before its duty's first beat: %s",
				tc.scenario, next, msOf(took), st.Term, msOf(first.At.Sub(fc.at)), fc.line)
			record(t, tc.scenario, outcomeOf(t, outcome+fmt.Sprintf("fenced with HANODE_PREV_KNOWN=%s before the duty started", fc.prevKnown)), took)
		})
	}
	c.assertClean(t)
}

// TestAdversaryNameReservationDeleted: another client
// deletes names/<NAME> of a running node, and a second process with the
// same NAME starts (in the same group, or in another). The running node
// reserves its name again at once (it watches it); the second process is
// refused: it exits 77 naming the holder's host and pid. The original keeps
// running and keeps its place: same pid, same member node, same term if it
// led.
func TestAdversaryNameReservationDeleted(t *testing.T) {
	server := zktest.Start(t)
	c := startCluster(t, clusterOptions{Servers: []string{server.Addr}, Names: []string{"n1", "n2", "n3"}})
	adv := newAdversary(t, server.Addr)
	leader, _ := steady(t, c, electionTimeout)
	standby := c.others(leader)[0]

	for _, tc := range []struct {
		name, scenario string
		victim         *nodetest.Node
		haID           string
	}{
		{"LeadersNameSameGroup", "name reservation of the leader deleted, then a second process with its NAME in the same group", leader, c.haID},
		{"StandbysNameOtherGroup", "name reservation of a standby deleted, then a second process with its NAME in another group", standby, c.haID + "-other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ldr, term := steady(t, c, settleTimeout)
			v := tc.victim
			pid, seq := v.PID(), adv.memberOf(c.haID, v).Seq
			path := adv.name(v.Name())
			fault := time.Now()
			if err := adv.conn.Delete(path, -1); err != nil {
				t.Fatalf("delete %s: %v", path, err)
			}
			dup := nodetest.Launch(t, nodetest.Options{Name: v.Name() + "-second", Env: nodetest.HAEnv(server.Addr, tc.haID, v.Name())})
			code := dup.WaitExit(exitBound + sessionTimeout)
			refused := time.Since(fault)
			logs := dup.Logs()
			if code != 77 || !strings.Contains(logs, fmt.Sprintf("pid %d", pid)) {
				t.Errorf("the second %s exited %d, want 77 naming the holder's pid %d:\n%s", v, code, pid, logs)
			}
			data, st, err := adv.conn.Get(path)
			if err != nil || !strings.Contains(string(data), fmt.Sprintf(`"pid":%d`, pid)) {
				t.Errorf("%s holds %s (%v), want the running %s's reservation (pid %d)", path, data, err, v, pid)
			} else if v.MustStatus().ZK.SessionID != fmt.Sprintf("0x%x", st.EphemeralOwner) {
				t.Errorf("%s is owned by session 0x%x, want %s's session %s", path, st.EphemeralOwner, v, v.MustStatus().ZK.SessionID)
			}
			if !v.Running() || v.PID() != pid {
				t.Errorf("%s runs as pid %d (running %v), want the same process, pid %d", v, v.PID(), v.Running(), pid)
			}
			if z := adv.memberOf(c.haID, v); z.Seq != seq {
				t.Errorf("%s's member node has sequence %d, was %d: it rejoined", v, z.Seq, seq)
			}
			if got, gotTerm := steady(t, c, settleTimeout); got != ldr || gotTerm != term {
				t.Errorf("%s leads in term %d, want %s in term %d", got, gotTerm, ldr, term)
			}
			if r, ok := c.chk.Latest(ldr); !ok || r.Result != nodetest.ResultOK || r.FirstArrived.After(fault) {
				t.Errorf("%s did not answer ok throughout:\n%s", ldr, c.chk.Summary())
			}
			line := ""
			for _, l := range strings.Split(logs, "\n") {
				if strings.Contains(l, "refused") {
					line = strings.TrimSpace(l)
				}
			}
			t.Logf("%s: the second process exited %d %v after the delete: %s; %s kept pid %d, seq %d; %s leads in term %d throughout",
				tc.scenario, code, msOf(refused), line, v, pid, seq, ldr, term)
			record(t, tc.scenario, outcomeOf(t, "the second process exited 3 naming the holder; the original kept its place"), -1)
		})
	}
	c.assertClean(t)
}

// TestAdversaryZooKeeperRestartsAndMemberDeletes (a regression test: a
// retry armed before a membership was lost once survived the rejoin and
// crashed the process): the group's only ZooKeeper server is restarted
// three times (data kept), each time as soon as every member is back in
// the group, and around each restart another client deletes member nodes
// (the leader's, all of them, the leader's and a standby's), before the
// restart or as soon as the server serves again. No process exits (every
// node runs the same pid throughout, no panic in any log), nobody leads
// twice at once, and one leader is back after the last fault within
// D + D/4 + W (a member that lost its session starts a fresh client after D
// without one, checked every D/4; the re-formed group's first leader waits W).
func TestAdversaryZooKeeperRestartsAndMemberDeletes(t *testing.T) {
	const scenario = "3 ZooKeeper restarts (data kept) interleaved with member node deletes"
	server := zktest.Start(t)
	c := startCluster(t, clusterOptions{Servers: []string{server.Addr}, Names: []string{"z1", "z2", "z3"}})
	adv := newAdversary(t, server.Addr)
	steady(t, c, electionTimeout)
	before := pidsOf(c.nodes)
	// Deletes before the restart (even rounds) or as soon as the server
	// serves again (odd rounds).
	deletes := []struct {
		what  string
		which func(ms []memberZnode, leader string) []memberZnode
	}{
		{"the leader's", func(ms []memberZnode, leader string) []memberZnode {
			return pick(ms, func(m memberZnode) bool { return m.Name == leader })
		}},
		{"every one", func(ms []memberZnode, _ string) []memberZnode { return ms }},
		{"the leader's and a standby's", func(ms []memberZnode, _ string) []memberZnode { return ms[:min(2, len(ms))] }},
	}
	var steps []string
	last := time.Now()
	for i, d := range deletes {
		// Between rounds, every member has a session and is in the group
		// again (a leader need not be back): restarts closer than that
		// once left ZooKeeper 3.8.0 unable to start (exit status 1).
		waitJoined(t, c, sessionTimeout+sessionTimeout/4+slack)
		del := func() {
			adv.ready(5 * time.Second)
			rec, _, _, _ := adv.record(c.haID)
			victims := d.which(adv.memberZnodes(c.haID), rec.Name)
			for _, m := range victims {
				_ = adv.conn.Delete(m.Path, -1) // gone already is fine
			}
			last = time.Now()
			steps = append(steps, fmt.Sprintf("delete %s (%d)", d.what, len(victims)))
		}
		if i%2 == 0 {
			del()
		}
		server.Restart(t)
		last = time.Now()
		steps = append(steps, "restart")
		if i%2 == 1 {
			del()
		}
	}
	leader, term := steady(t, c, settleTimeout)
	back := time.Duration(0) // the leader's current run of "ok" began before the last fault: never lost
	if r, ok := c.chk.Latest(leader); ok && r.Result == nodetest.ResultOK && r.FirstArrived.After(last) {
		back = r.FirstArrived.Sub(last)
	}
	// A member may lose its session to the restarts (a restarted server
	// may accept its reconnect and not answer for a while): it starts a
	// fresh client after D without a session (checked every D/4), and the
	// first leader of the group it rejoins waits W.
	bound := sessionTimeout + sessionTimeout/4 + advW + slack
	assertWithin(t, "one leader back after the last fault", back, bound)
	testwait.For(t, relist+slack, "every node to hold a member node", func() bool {
		for _, n := range c.nodes {
			if !adv.hasMember(c.haID, n, -1) {
				return false
			}
		}
		return true
	})
	samePIDs(t, before)
	noPanics(t, c.nodes)
	t.Logf("%s: %s; %s leads in term %d, answering ok %v after the last fault; every node kept its pid",
		scenario, strings.Join(steps, ", "), leader, term, msOf(back))
	c.assertClean(t)
	record(t, scenario, outcomeOf(t, "no process exited; one leader after the last fault"), back)
}
