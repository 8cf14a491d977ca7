package ha

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hanode/hanode/internal/faultproxy"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// The state area against real ZooKeeper: the leader writes, every member
// reads its own copy, and nobody but the current leader's write lands.

func (g *group) others(leader *member) []*member {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*member
	for _, m := range g.members {
		if m != leader && m.running.Load() {
			out = append(out, m)
		}
	}
	return out
}

// waitValue waits until m's copy holds key at want (nil: absent).
func waitValue(t *testing.T, m *member, key string, want []byte) StateEntry {
	t.Helper()
	var en StateEntry
	testwait.For(t, 10*time.Second, m.name+" to read "+key+"="+string(want), func() bool {
		var ok bool
		en, ok = m.el.GetState(key)
		if want == nil {
			return !ok
		}
		return ok && bytes.Equal(en.Value, want)
	})
	return en
}

func TestLeaderPublishesStateThatEveryMemberReads(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	for _, n := range []string{"a", "b", "c"} {
		g.start(n)
	}
	leader := g.waitLeader(20 * time.Second)
	term := leader.el.State().Term
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	w1, err := leader.el.PutState(ctx, "epoch", []byte("v1"))
	if err != nil {
		t.Fatalf("leader's PutState: %v", err)
	}
	if w1.Term != term || w1.Version == 0 || w1.By != leader.name {
		t.Fatalf("PutState = %+v, want term %d, a version, by %s", w1, term, leader.name)
	}
	if en, ok := leader.el.GetState("epoch"); !ok || en.Version != w1.Version {
		t.Fatalf("the leader does not read its own write: %+v %v", en, ok)
	}
	standbys := g.others(leader)
	for _, m := range standbys {
		en := waitValue(t, m, "epoch", []byte("v1"))
		if en.Term != term || en.Version != w1.Version || en.By != leader.name {
			t.Fatalf("%s reads %+v, want term %d version %d by %s", m.name, en, term, w1.Version, leader.name)
		}
	}

	// A standby's watch wakes on the next write.
	s := standbys[0]
	woke := make(chan StateEntry, 1)
	go func() {
		en, _, err := s.el.WaitState(ctx, "epoch", w1.Version)
		if err != nil {
			t.Errorf("WaitState: %v", err)
		}
		woke <- en
	}()
	w2, err := leader.el.PutState(ctx, "epoch", []byte("v2"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case en := <-woke:
		if string(en.Value) != "v2" || en.Version != w2.Version || w2.Version <= w1.Version {
			t.Fatalf("woke with %+v after writing %+v over %+v", en, w2, w1)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitState on a standby did not wake on the leader's write")
	}

	// A standby may not write; it names the leader (once it has learned
	// who leads: a standby that joined before the claim learns it from its
	// next read of the record, not at once).
	testwait.For(t, 10*time.Second, s.name+" to know the leader", func() bool { return s.el.State().Leader == leader.name })
	if _, err := s.el.PutState(ctx, "epoch", []byte("mine")); !errors.Is(err, ErrNotLeader) || !strings.Contains(err.Error(), leader.name) {
		t.Fatalf("standby's PutState = %v, want ErrNotLeader naming %s", err, leader.name)
	}
	if _, err := s.el.DeleteState(ctx, "epoch"); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("standby's DeleteState = %v, want ErrNotLeader", err)
	}
	if _, err := leader.el.PutState(ctx, "no/slash", nil); !errors.Is(err, ErrBadStateKey) {
		t.Fatalf("bad key: %v", err)
	}

	// Delete, then re-create: the version keeps growing.
	if _, err := leader.el.PutState(ctx, "other", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := leader.el.DeleteState(ctx, "epoch"); err != nil {
		t.Fatalf("DeleteState: %v", err)
	}
	if _, ok := leader.el.GetState("epoch"); ok {
		t.Fatal("the leader still reads a key it deleted")
	}
	for _, m := range standbys {
		waitValue(t, m, "epoch", nil)
	}
	if _, err := leader.el.DeleteState(ctx, "epoch"); !errors.Is(err, ErrStateNotFound) {
		t.Fatalf("deleting an absent key = %v, want ErrStateNotFound", err)
	}
	w3, err := leader.el.PutState(ctx, "epoch", []byte("v3"))
	if err != nil || w3.Version <= w2.Version {
		t.Fatalf("re-created %+v (%v) after version %d: versions must grow", w3, err, w2.Version)
	}
	l := waitList(t, s, 2)
	if l.Entries[0].Key != "epoch" || l.Entries[1].Key != "other" || l.Entries[1].Size == 0 || l.Entries[0].Value != nil {
		t.Fatalf("ListState = %+v", l)
	}
}

func waitList(t *testing.T, m *member, n int) StateList {
	t.Helper()
	var l StateList
	testwait.For(t, 10*time.Second, m.name+" to list the keys", func() bool {
		l = m.el.ListState()
		return l.Synced && len(l.Entries) == n
	})
	return l
}

func TestStateLimitsHoldAcrossAFailover(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.start("a")
	g.start("b")
	leader := g.waitLeader(20 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	big := bytes.Repeat([]byte("x"), MaxStateValue)
	if _, err := leader.el.PutState(ctx, "max", big); err != nil {
		t.Fatalf("a value of exactly %d bytes: %v", MaxStateValue, err)
	}
	if _, err := leader.el.PutState(ctx, "over", append(big, 'x')); !errors.Is(err, ErrStateTooLarge) {
		t.Fatalf("a value of %d bytes = %v, want ErrStateTooLarge", MaxStateValue+1, err)
	}
	// Fill the area: 15 more values of 64 KB fit in 1 MB with their
	// headers, a 16th does not.
	var full error
	accepted := 1 // "max"
	for i := 0; i < 20 && full == nil; i++ {
		if _, full = leader.el.PutState(ctx, "k"+string(rune('a'+i)), big); full == nil {
			accepted++
		}
	}
	if !errors.Is(full, ErrStateFull) || !strings.Contains(full.Error(), "holds") {
		t.Fatalf("filling the area: %v after %d values, want ErrStateFull saying what it holds", full, accepted)
	}
	record := len(encodeStateRecord(leader.el.State().Term, leader.name, big))
	if accepted != MaxStateTotal/record {
		t.Fatalf("the area took %d values of %d bytes, want %d", accepted, record, MaxStateTotal/record)
	}
	t.Logf("full: %v", full)
	// Overwriting a key counts its old size out.
	if _, err := leader.el.PutState(ctx, "max", big); err != nil {
		t.Fatalf("overwriting a key in a full area: %v", err)
	}

	// The next leader counts what the first wrote before its first write.
	leader.stop(t)
	next := g.waitLeader(10 * time.Second)
	if _, err := next.el.PutState(ctx, "after-failover", big); !errors.Is(err, ErrStateFull) {
		t.Fatalf("new leader's write into a full area = %v, want ErrStateFull", err)
	}
	if _, err := next.el.DeleteState(ctx, "max"); err != nil {
		t.Fatal(err)
	}
	if _, err := next.el.PutState(ctx, "after-failover", big); err != nil {
		t.Fatalf("after a delete made room: %v", err)
	}
}

// TestFrozenLeaderWriteIsRefused: the leader freezes with a write that has
// its fence but is not sent yet, and loses its path to ZooKeeper; another
// member takes over and writes. When the old leader resumes, its write
// reaches ZooKeeper and is refused there (its checks name a lease that has
// moved on), and a write it starts afterwards is refused at once. The
// value never lands.
func TestFrozenLeaderWriteIsRefused(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.watchOverlap()
	p := faultproxy.Start(t, zkS.Addr)
	a := g.startOn("a", []string{p.Addr()})
	g.waitLeader(20 * time.Second)
	b := g.start("b")
	testwait.For(t, 10*time.Second, "b standby", func() bool { return b.el.State().Phase == PhaseStandby })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := a.el.PutState(ctx, "k", []byte("a-1")); err != nil {
		t.Fatal(err)
	}

	frozen, resume := make(chan struct{}), make(chan struct{})
	first := true
	a.el.kv.hookBuild = func() {
		if first {
			first = false
			close(frozen)
			<-resume
		}
	}
	stale := make(chan error, 1)
	go func() {
		_, err := a.el.PutState(ctx, "k", []byte("stale"))
		stale <- err
	}()
	<-frozen // a holds its fence and is about to send
	p.Stall()
	testwait.For(t, 20*time.Second, "b to take over", func() bool { return b.el.State().Active() })
	if _, err := b.el.PutState(ctx, "k", []byte("b-1")); err != nil {
		t.Fatalf("new leader's write: %v", err)
	}
	p.Heal()
	testwait.For(t, 20*time.Second, "a back as a standby, with a session", func() bool {
		return a.el.State().Phase == PhaseStandby && a.sess.status().up
	})
	close(resume)
	select {
	case err := <-stale:
		// Refused by ZooKeeper's checks ("the lease moved on"), or before
		// it: the connection its checks were taken on is gone (Fenced
		// sends only on that one). Either way it must never land (below).
		if !errors.Is(err, ErrNotLeader) {
			t.Fatalf("the frozen write = %v, want ErrNotLeader", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the frozen write did not return")
	}
	// Its refusal names the leader it knows: b, once its look after the
	// reconnect has read the record.
	testwait.For(t, 20*time.Second, "a to know that b leads", func() bool { return a.el.Leader().Name == "b" })
	if _, err := a.el.PutState(ctx, "k", []byte("stale-2")); !errors.Is(err, ErrNotLeader) || !strings.Contains(err.Error(), "b leads") {
		t.Fatalf("the resumed old leader's write = %v, want ErrNotLeader naming b", err)
	}

	conn := admin(t, zkS.Addr)
	data, _, err := conn.Get(g.layout().GroupNode() + "/state/k")
	if err != nil {
		t.Fatal(err)
	}
	h, v, err := decodeStateRecord(data)
	if err != nil || string(v) != "b-1" || h.By != "b" || h.Term != b.el.State().Term {
		t.Fatalf("k in ZooKeeper = %+v %q %v, want b's write", h, v, err)
	}
	waitValue(t, a, "k", []byte("b-1"))
}

// TestStateCopyFollowsAcrossASessionReplacement: a standby cut off long
// enough to lose its session misses writes, deletes and creates; once back,
// its copy reads everything again and its new watches follow.
func TestStateCopyFollowsAcrossASessionReplacement(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	a := g.start("a")
	g.waitLeader(20 * time.Second)
	p := faultproxy.Start(t, zkS.Addr)
	b := g.startOn("b", []string{p.Addr()})
	testwait.For(t, 10*time.Second, "b standby", func() bool { return b.el.State().Phase == PhaseStandby })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	put := func(k, v string) {
		t.Helper()
		if _, err := a.el.PutState(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	put("keep", "1")
	put("gone", "1")
	waitValue(t, b, "gone", []byte("1"))
	sid := b.sess.status().id

	p.Stall()
	testwait.For(t, 10*time.Second, "b's copy not synced", func() bool { return !b.el.ListState().Synced })
	put("keep", "2")
	if _, err := a.el.DeleteState(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	put("new", "1")
	// Outlast the session: ZooKeeper expires it, b gets a new one.
	conn := admin(t, zkS.Addr)
	testwait.For(t, 20*time.Second, "ZooKeeper to expire b's session", func() bool {
		ok, _, err := conn.Exists(g.layout().NameNode("b"))
		return err == nil && !ok
	})
	p.Heal()
	testwait.For(t, 20*time.Second, "b in a new session", func() bool {
		st := b.sess.status()
		return st.up && st.id != sid
	})
	waitValue(t, b, "keep", []byte("2"))
	waitValue(t, b, "gone", nil)
	waitValue(t, b, "new", []byte("1"))
	testwait.For(t, 10*time.Second, "b's copy synced", func() bool { return b.el.ListState().Synced })
	put("new", "2")
	waitValue(t, b, "new", []byte("2"))
}

// TestForeignStateZnodesAreReportedNotServed: data under state/ that is not
// a state record is listed with its path and never served; the leader's
// write of the key repairs it.
func TestForeignStateZnodesAreReportedNotServed(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	a := g.start("a")
	g.waitLeader(20 * time.Second)
	b := g.start("b")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := a.el.PutState(ctx, "ok", []byte("1")); err != nil {
		t.Fatal(err)
	}
	conn := admin(t, zkS.Addr)
	dir := g.layout().GroupNode() + "/state"
	for _, n := range []string{"junk", "bad:name"} {
		if _, err := conn.Create(dir+"/"+n, []byte("hello"), 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []*member{a, b} {
		testwait.For(t, 10*time.Second, m.name+" to report both foreign znodes", func() bool {
			return len(m.el.ListState().Ignored) == 2
		})
		l := m.el.ListState()
		if l.Ignored[0].Znode != dir+"/bad:name" || !strings.Contains(l.Ignored[0].Reason, "not a valid state key") ||
			l.Ignored[1].Znode != dir+"/junk" || !strings.Contains(l.Ignored[1].Reason, "no header line") {
			t.Fatalf("%s reports %+v", m.name, l.Ignored)
		}
		if _, ok := m.el.GetState("junk"); ok {
			t.Fatalf("%s serves foreign data", m.name)
		}
	}
	if _, err := a.el.PutState(ctx, "junk", []byte("repaired")); err != nil {
		t.Fatalf("overwriting a foreign znode: %v", err)
	}
	waitValue(t, b, "junk", []byte("repaired"))
	if l := b.el.ListState(); len(l.Ignored) != 1 {
		t.Fatalf("after the repair %s reports %+v", b.name, l.Ignored)
	}
}
