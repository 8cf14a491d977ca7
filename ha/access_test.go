package ha

import (
	"context"
	"crypto/tls"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap/zaptest"

	"github.com/hanode/hanode/internal/faultproxy"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// Access tests: hanode's tree protected by a shared secret, against a real
// ZooKeeper, probed by plain go-zookeeper clients that are not hanode.

const (
	secret1 = "the-cluster-secret-number-one"
	secret2 = "the-cluster-secret-number-two"
)

func secrets(s ...string) Access {
	a := Access{}
	for _, x := range s {
		a.Secrets = append(a.Secrets, []byte(x))
	}
	return a
}

// plainClient is a foreign ZooKeeper client: go-zookeeper as anyone would
// use it, with the digest credential user:password added if given.
func plainClient(t *testing.T, addr string, auth string) *zk.Conn {
	t.Helper()
	conn, events, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogger(zkLogger(zaptest.NewLogger(t))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	timeout := time.After(10 * time.Second)
	for up := false; !up; {
		select {
		case ev := <-events:
			up = ev.State == zk.StateHasSession
		case <-timeout:
			t.Fatal("no ZooKeeper session within 10s")
		}
	}
	if auth != "" {
		if err := conn.AddAuth("digest", []byte(auth)); err != nil {
			t.Fatal(err)
		}
	}
	return conn
}

// adminWith is a tool's client with a's credentials (DialAccess).
func adminWith(t *testing.T, addr string, a Access) *zk.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := DialAccess(ctx, []string{addr}, 10*time.Second, nil, a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return conn
}

// tree lists root and every znode under it.
func tree(t *testing.T, conn *zk.Conn, root string) []string {
	t.Helper()
	out := []string{}
	stack := []string{root}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		children, _, err := conn.Children(p)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			t.Fatalf("list %s: %v", p, err)
		}
		out = append(out, p)
		for _, c := range children {
			stack = append(stack, p+"/"+c)
		}
	}
	slices.Sort(out)
	return out
}

// requireACL fails unless every znode under root (root included) has
// exactly want.
func requireACL(t *testing.T, conn *zk.Conn, root string, want []zk.ACL) []string {
	t.Helper()
	nodes := tree(t, conn, root)
	for _, p := range nodes {
		acl, _, err := conn.GetACL(p)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			t.Fatalf("getAcl %s: %v", p, err)
		}
		if !sameACL(acl, want) {
			t.Errorf("%s: ACL %s, want %s", p, describeACL(acl), describeACL(want))
		}
	}
	return nodes
}

// requireLocked fails unless the foreign client conn can neither read nor
// change anything at the znodes given.
func requireLocked(t *testing.T, who string, conn *zk.Conn, root string, nodes []string) {
	t.Helper()
	noAuth := func(what, p string, err error) {
		t.Helper()
		if !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("%s: %s %s: got %v, want %v", who, what, p, err, zk.ErrNoAuth)
		}
	}
	for _, p := range nodes {
		_, _, err := conn.Get(p)
		noAuth("get", p, err)
		_, _, err = conn.Children(p)
		noAuth("children", p, err)
		_, _, err = conn.GetACL(p)
		noAuth("getAcl", p, err)
		_, err = conn.Set(p, []byte("intruder"), -1)
		noAuth("set", p, err)
		_, err = conn.SetACL(p, zk.WorldACL(zk.PermAll), -1)
		noAuth("setAcl", p, err)
		_, err = conn.Create(p+"/intruder", nil, 0, zk.WorldACL(zk.PermAll))
		noAuth("create under", p, err)
		err = conn.Delete(p, -1)
		if p == root {
			// The root's parent is ZooKeeper's "/", which hanode leaves
			// open: ZooKeeper checks the delete against it, and refuses
			// it because the root is not empty.
			if err == nil {
				t.Errorf("%s: deleted the root %s", who, p)
			}
			continue
		}
		noAuth("delete", p, err)
	}
}

// TestForeignClientCannotReadOrChangeTheProtectedTree: with a shared
// secret, every kind of znode hanode makes (the root, names/, the group,
// members/, the leader record, the cycle, jobs/, state/) carries exactly
// the secret's digest ACL, and a plain go-zookeeper client without the
// secret, or with a wrong one, can neither read nor create, change or
// delete anything under the root, nor change an ACL.
func TestForeignClientCannotReadOrChangeTheProtectedTree(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.access = secrets(secret1)
	g.watchOverlap()
	a, b := startCycleNode(g, "a", time.Second), startCycleNode(g, "b", time.Second)
	leader := g.waitLeader(20 * time.Second)
	waitCycles(t, 10*time.Second, 1, a, b) // the leader's Cycle advances it
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := leader.el.PutState(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := leader.el.StartPeriod(ctx, PeriodStart{Job: "backup", Period: time.Now()}); err != nil {
		t.Fatal(err)
	}

	admin := adminWith(t, zkS.Addr, g.access)
	nodes := requireACL(t, admin, g.root, g.access.acl())
	l := g.layout()
	for _, want := range []string{g.root, l.NamesDir() + "/a", l.GroupNode(), l.MembersDir(), cyclePath(g.root),
		JobsDir(g.root, g.haID) + "/backup", l.GroupNode() + "/state/k"} {
		if !slices.Contains(nodes, want) {
			t.Fatalf("znode %s missing from the tree %v", want, nodes)
		}
	}
	var members int
	for _, p := range nodes {
		if strings.HasPrefix(p, l.MembersDir()+"/") {
			members++
		}
	}
	if members != 2 {
		t.Fatalf("%d member nodes in %v, want 2", members, nodes)
	}
	t.Logf("%d znodes, each with %s", len(nodes), describeACL(g.access.acl()))

	requireLocked(t, "no credential", plainClient(t, zkS.Addr, ""), g.root, nodes)
	requireLocked(t, "wrong secret", plainClient(t, zkS.Addr, DigestUser+":"+DigestPassword([]byte(secret2))), g.root, nodes)
	// The raw secret as a password is not the credential either: hanode
	// derives the password, so the secret itself never reaches ZooKeeper.
	requireLocked(t, "raw secret", plainClient(t, zkS.Addr, DigestUser+":"+secret1), g.root, nodes)

	// Nothing changed: the tree is the same, the value is intact and the
	// group still has its leader.
	if after := tree(t, admin, g.root); !slices.Equal(after, nodes) {
		t.Fatalf("the tree changed under the foreign clients:\nbefore %v\nafter  %v", nodes, after)
	}
	data, _, err := admin.Get(l.GroupNode() + "/state/k")
	if err != nil || !strings.Contains(string(data), "v") {
		t.Fatalf("state/k = %q, %v", data, err)
	}
	if g.waitLeader(5*time.Second) != leader {
		t.Fatal("the leader changed")
	}
}

// TestWrongOrMissingSecretRefusesToStart: against a tree protected by the
// cluster's secret, a node with another secret, and one with none, are
// refused (ErrAccessDenied, a refusal) before they join the group, with a
// message that names the znode and what is wrong; ZooKeeper's AddAuth
// accepts any password, so only the read of the root can tell.
func TestWrongOrMissingSecretRefusesToStart(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.access = secrets(secret1)
	g.watchOverlap()
	a := g.start("a")
	g.waitLeader(20 * time.Second)
	admin := adminWith(t, zkS.Addr, g.access)

	for _, tc := range []struct {
		name   string
		access Access
		want   string
	}{
		{"wrong", secrets(secret2), "none of this node's secrets matches"},
		{"none", Access{}, "this node has no shared secret"},
	} {
		g.access = tc.access
		m := g.start(tc.name)
		var err error
		select {
		case err = <-m.done:
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: not refused within 15s (state %+v)", tc.name, m.el.State())
		}
		m.running.Store(false)
		m.cancel = nil
		if !errors.Is(err, ErrAccessDenied) || !IsRefusal(err) {
			t.Fatalf("%s: Run = %v, want a refusal wrapping ErrAccessDenied", tc.name, err)
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "znode "+g.root) {
			t.Fatalf("%s: message %q: want it to name znode %s and say %q", tc.name, err, g.root, tc.want)
		}
		if m.starts.Load() != 0 {
			t.Fatalf("%s: started a duty", tc.name)
		}
		t.Logf("%s secret: %v", tc.name, err)
	}
	children, _, err := admin.Children(g.layout().MembersDir())
	if err != nil || len(children) != 1 {
		t.Fatalf("members %v (%v): want only a's", children, err)
	}
	names, _, err := admin.Children(g.layout().NamesDir())
	if err != nil || !slices.Equal(names, []string{"a"}) {
		t.Fatalf("names %v (%v): want only a", names, err)
	}
	if !a.el.State().Active() {
		t.Fatal("a stopped leading")
	}
}

// TestOpenTreeIsConvertedAtStart: a tree made open (by hanode without a
// secret, or by anyone) is converted, not left open, by the first node
// that starts with a secret: every znode under the root, an ephemeral of
// another client's live session included, gets exactly the digest ACL.
func TestOpenTreeIsConvertedAtStart(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.watchOverlap()
	a := g.start("a")
	g.waitLeader(20 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.el.PutState(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	open := plainClient(t, zkS.Addr, "")
	if _, err := open.Create(g.root+"/leftover", []byte("x"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := open.Create(g.layout().NamesDir()+"/zombie", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	before := tree(t, open, g.root)

	g.access = secrets(secret1)
	b := g.start("b")
	g.waitLeader(20 * time.Second)
	if e, ok := b.el.GetState("k"); !ok || string(e.Value) != "v" {
		t.Fatalf("state k after the conversion = %+v, %v", e, ok)
	}
	admin := adminWith(t, zkS.Addr, g.access)
	nodes := requireACL(t, admin, g.root, g.access.acl())
	for _, p := range before {
		if !slices.Contains(nodes, p) {
			t.Errorf("%s vanished in the conversion", p)
		}
	}
	requireLocked(t, "the open client", open, g.root, nodes)
}

// TestKeepOpenIntroducesTheSecretWithNoDowntime: the rolling change from
// an open tree to a protected one, one node at a time: every node gets
// the secret with KeepOpen (the tree stays usable by those still without
// it), then every node drops KeepOpen (the first converts the tree). The
// group has one leader after every step and never two; no node is refused.
func TestKeepOpenIntroducesTheSecretWithNoDowntime(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.watchOverlap()
	g.start("a")
	g.start("b")
	g.waitLeader(20 * time.Second)
	withOpen := secrets(secret1)
	withOpen.KeepOpen = true
	roll(t, g, []string{"b", "a"}, withOpen)
	roll(t, g, []string{"b", "a"}, secrets(secret1))
	admin := adminWith(t, zkS.Addr, secrets(secret1))
	nodes := requireACL(t, admin, g.root, secrets(secret1).acl())
	requireLocked(t, "no credential", plainClient(t, zkS.Addr, ""), g.root, nodes)
}

// TestSecretRotationKeepsOneLeader: rotating the secret in two rolling
// steps (every node gets the new secret with the old one as the other,
// then every node drops the old one) keeps the group led by exactly one
// member after every restart, never two, and refuses no node. The tree
// ends protected by the new secret only: the old one opens nothing.
func TestSecretRotationKeepsOneLeader(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.access = secrets(secret1)
	g.watchOverlap()
	g.start("a")
	g.start("b")
	g.waitLeader(20 * time.Second)
	roll(t, g, []string{"b", "a"}, secrets(secret2, secret1))
	admin := adminWith(t, zkS.Addr, secrets(secret1))
	requireACL(t, admin, g.root, secrets(secret2, secret1).acl())
	roll(t, g, []string{"b", "a"}, secrets(secret2))
	admin = adminWith(t, zkS.Addr, secrets(secret2))
	nodes := requireACL(t, admin, g.root, secrets(secret2).acl())
	requireLocked(t, "old secret", plainClient(t, zkS.Addr, DigestUser+":"+DigestPassword([]byte(secret1))), g.root, nodes)
}

// roll restarts the named members one at a time with access, and after
// each restart requires exactly one leader, the rest standbys, and no
// member refused.
func roll(t *testing.T, g *group, names []string, access Access) {
	t.Helper()
	g.access = access
	for _, name := range names {
		var m *member
		g.mu.Lock()
		for _, x := range g.members {
			if x.name == name && x.running.Load() {
				m = x
			}
		}
		g.mu.Unlock()
		if m == nil {
			t.Fatalf("no running member %s", name)
		}
		if err := m.stop(t); err != nil {
			t.Fatalf("%s ended with %v", name, err)
		}
		g.start(name)
		leader := g.waitLeader(20 * time.Second)
		t.Logf("%s restarted with %d secret(s) (open: %v): %s leads", name, len(access.Secrets), access.KeepOpen, leader.name)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, m := range g.members {
		select {
		case err := <-m.done:
			t.Fatalf("%s ended: %v", m.name, err)
		default:
		}
	}
}

// TestReplacedClientAuthenticatesAgain: a client replaced after a session
// timeout without a session (checkClient) starts with no credentials;
// the session adds them again before anything else, so the member comes
// back and can still use its protected tree.
func TestReplacedClientAuthenticatesAgain(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.access = secrets(secret1)
	g.watchOverlap()
	p := faultproxy.Start(t, zkS.Addr)
	a := g.startOn("a", []string{p.Addr()})
	g.waitLeader(20 * time.Second)
	b := g.start("b")
	testwait.For(t, 10*time.Second, "b standby", func() bool { return b.el.State().Phase == PhaseStandby })
	p.Stall()
	testwait.For(t, 20*time.Second, "a's client to be replaced", func() bool { return a.sess.Stats().Replacements > 0 })
	p.Heal()
	testwait.For(t, 20*time.Second, "a back as a standby", func() bool { return a.el.State().Phase == PhaseStandby })
	g.waitLeader(10 * time.Second)
	// a's name is reserved again in its new session, on the protected tree.
	admin := adminWith(t, zkS.Addr, g.access)
	_, st, err := admin.Get(g.layout().NameNode("a"))
	if err != nil || st.EphemeralOwner != a.sess.conn.Load().SessionID() {
		t.Fatalf("a's name node: %+v, %v; want it owned by a's new session", st, err)
	}
	requireACL(t, admin, g.root, g.access.acl())
}

// TestSessionOverTLS: members reach ZooKeeper's secure client port with
// TLS (a client certificate, the server verified against the CA), with a
// secret too, and elect one leader; a client that trusts another CA, one
// without a client certificate, and a plain client all get no session.
func TestSessionOverTLS(t *testing.T) {
	zkS := zktest.StartWith(t, zktest.Options{TLS: true})
	files := zkS.TLS(t)
	tlsCfg, err := LoadTLS(files.CA, files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	g := newGroup(t, zkS.SecureAddr)
	g.access = secrets(secret1)
	g.access.TLS = tlsCfg
	g.watchOverlap()
	a, b := g.start("a"), g.start("b")
	g.waitLeader(20 * time.Second)
	for _, m := range []*member{a, b} {
		if !m.sess.ZK().Connected {
			t.Fatalf("%s not connected", m.name)
		}
	}
	admin := adminWith(t, zkS.SecureAddr, g.access)
	requireACL(t, admin, g.root, g.access.acl())

	otherCA, err := LoadTLS(files.OtherCA, files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	noCert, err := LoadTLS(files.CA, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tls  *tls.Config
		why  string // in the error: the handshake's failure
	}{
		{"another CA", otherCA, "certificate signed by unknown authority"},
		{"no client certificate", noCert, "handshake failure"},
		{"plain TCP", nil, "no ZooKeeper session"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		conn, err := DialAccess(ctx, []string{zkS.SecureAddr}, 10*time.Second, nil, Access{TLS: tc.tls})
		cancel()
		if err == nil {
			conn.Close()
			t.Fatalf("%s: got a session on the secure port", tc.name)
		}
		if !strings.Contains(err.Error(), tc.why) {
			t.Fatalf("%s: %v: want it to say %q", tc.name, err, tc.why)
		}
		t.Logf("%s: %v", tc.name, err)
	}
}
