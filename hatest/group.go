package hatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/internal/faultproxy"
	"github.com/hanode/hanode/internal/testwait"
)

// Config configures a Group. The zero value is three members with no duty
// of their own, on a ZooKeeper started for the test.
type Config struct {
	// ZooKeeper is the server the group uses (optional: default a new one,
	// StartZooKeeper with default options). Several groups may share one.
	ZooKeeper *ZooKeeper
	// Nodes is how many members the group has (optional: default 3), named
	// node-1 to node-N; Names names them instead.
	Nodes int
	Names []string
	// Group and Role are the HA group's id and role (optional: "hatest"
	// and "primary").
	Group, Role string
	// SessionTimeout is the ZooKeeper session timeout, which is the lease
	// (optional: default 2s). A crashed leader is replaced about this long
	// after its last extension.
	SessionTimeout time.Duration
	// Margin is how long before its lease ends a leader stops its duty
	// (optional: default 40% of SessionTimeout; below half of it).
	Margin time.Duration
	// Duty runs on the leader (optional: default none; the group still
	// checks that no two leaderships overlap).
	Duty Duty
	// WaitTimeout bounds every wait of the group's methods (optional:
	// default 30s).
	WaitTimeout time.Duration
	// Logger receives hanode's logs of every member, each named by the
	// member (optional: default none).
	Logger *zap.Logger
}

func (c Config) withDefaults(t testing.TB) Config {
	if len(c.Names) == 0 {
		n := c.Nodes
		if n <= 0 {
			n = 3
		}
		for i := 1; i <= n; i++ {
			c.Names = append(c.Names, fmt.Sprintf("node-%d", i))
		}
	}
	if c.Group == "" {
		c.Group = "hatest"
	}
	if c.Role == "" {
		c.Role = "primary"
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 2 * time.Second
	}
	if c.Margin == 0 {
		c.Margin = c.SessionTimeout * 2 / 5
	}
	if c.WaitTimeout == 0 {
		c.WaitTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Duty == nil {
		c.Duty = idle
	}
	seen := map[string]bool{}
	for _, n := range c.Names {
		if !nameRE.MatchString(n) || seen[n] {
			t.Fatalf("hatest: member name %q is empty, repeated or not letters, digits, '.', '_', '-'", n)
		}
		seen[n] = true
	}
	return c
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// idle is the duty of a group without one: it only holds the leadership.
func idle(ctx context.Context, _ Lead) error {
	<-ctx.Done()
	return nil
}

// Group is an HA group of in-process members on a ZooKeeper server (see the
// package documentation for what each member is). Its methods are for the
// test's goroutine: the waits fail the test with t.Fatalf.
type Group struct {
	t     testing.TB
	cfg   Config
	root  string
	zk    *ZooKeeper
	nodes map[string]*node

	mu      sync.Mutex
	running map[string]int64 // the duties running now: member -> term
}

// NewGroup starts the group's members, in the order of their names, and
// returns without waiting for a leader (WaitActive waits). Everything is
// stopped in t.Cleanup. The members use a ZooKeeper tree of their own
// (/hatest/<test>-<random>), so tests may share a server.
func NewGroup(t testing.TB, cfg Config) *Group {
	t.Helper()
	cfg = cfg.withDefaults(t)
	zk := cfg.ZooKeeper
	if zk == nil {
		zk = StartZooKeeper(t, ZooKeeperOptions{})
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	g := &Group{t: t, cfg: cfg, zk: zk, nodes: map[string]*node{}, running: map[string]int64{},
		root: "/hatest/" + znodeSafe(t.Name()) + "-" + hex.EncodeToString(rnd[:])}
	for _, name := range cfg.Names {
		g.nodes[name] = &node{g: g, name: name, started: time.Now(), proxy: faultproxy.Start(t, zk.Addr),
			log: cfg.Logger.Named(name)}
	}
	t.Cleanup(g.close)
	for _, name := range cfg.Names {
		g.nodes[name].start()
	}
	return g
}

// znodeSafe keeps the letters, digits, '_' and '-' of s.
func znodeSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, s)
}

// Nodes returns the members' names.
func (g *Group) Nodes() []string { return slices.Clone(g.cfg.Names) }

// ZooKeeper returns the server the group uses.
func (g *Group) ZooKeeper() *ZooKeeper { return g.zk }

// State returns the member's state as hanode's /v2/status would show it
// (the zero State, phase "", for a member stopped or killed).
func (g *Group) State(name string) ha.State {
	return g.node(name).state()
}

// Leader returns the member that is active now ("" when none is). Two
// active members fail the test.
func (g *Group) Leader() string {
	active := g.active()
	if len(active) > 1 {
		g.t.Errorf("hatest: two members active at once: %v\n%s", active, g.describe())
	}
	if len(active) == 0 {
		return ""
	}
	return active[0]
}

// WaitActive waits until exactly one member is active, one of among when
// any are named, and returns its name. It fails the test after
// Config.WaitTimeout, showing every member's state.
func (g *Group) WaitActive(among ...string) string {
	g.t.Helper()
	for _, n := range among {
		g.node(n)
	}
	var leader string
	err := testwait.Poll(g.cfg.WaitTimeout, testwait.Tick, func() bool {
		active := g.active()
		if len(active) != 1 || len(among) > 0 && !slices.Contains(among, active[0]) {
			return false
		}
		leader = active[0]
		return true
	})
	if err != nil {
		what := "one active member"
		if len(among) > 0 {
			what += " among " + strings.Join(among, ", ")
		}
		g.t.Fatalf("hatest: no %s after %s:\n%s", what, g.cfg.WaitTimeout, g.describe())
	}
	return leader
}

// Kill crashes the member (see the package documentation): it returns at
// once, its duty stopped; the rest of the group learns of it only when the
// lease runs out.
func (g *Group) Kill(name string) {
	g.t.Helper()
	g.node(name).kill()
}

// Freeze stalls the member's path to ZooKeeper (see the package
// documentation) until Thaw.
func (g *Group) Freeze(name string) {
	g.t.Helper()
	g.node(name).proxy.Stall()
}

// Thaw lets a frozen member's path to ZooKeeper carry bytes again.
func (g *Group) Thaw(name string) {
	g.t.Helper()
	g.node(name).proxy.Heal()
}

// Stop stops the member gracefully, as SIGTERM stops `hanode run`: it stops
// its duty, releases the lease if it holds it, and leaves. Stop returns
// once it has left.
func (g *Group) Stop(name string) {
	g.t.Helper()
	g.node(name).stop()
}

// Start starts a stopped or killed member again (a killed one once its
// abandoned election has ended); it joins as a standby.
func (g *Group) Start(name string) {
	g.t.Helper()
	g.node(name).start()
}

// Switchover hands the leadership over gracefully with Election.Resign:
// the leader stops its duty, releases (the next member takes over at
// once) and rejoins behind the others, its session kept. It returns the
// new leader. There must be a leader.
func (g *Group) Switchover() string {
	g.t.Helper()
	old := g.Leader()
	if old == "" {
		g.t.Fatalf("hatest: Switchover: no leader:\n%s", g.describe())
	}
	if err := g.node(old).resign(g.cfg.WaitTimeout); err != nil {
		g.t.Fatalf("hatest: Switchover: %s did not resign: %v", old, err)
	}
	var others []string
	for _, n := range g.cfg.Names {
		if n != old {
			others = append(others, n)
		}
	}
	return g.WaitActive(others...)
}

func (g *Group) node(name string) *node {
	g.t.Helper()
	n, ok := g.nodes[name]
	if !ok {
		g.t.Fatalf("hatest: no member %q (members: %s)", name, strings.Join(g.cfg.Names, ", "))
	}
	return n
}

// active lists the members active now, in name order.
func (g *Group) active() []string {
	var out []string
	for _, name := range g.cfg.Names {
		if g.nodes[name].state().Active() {
			out = append(out, name)
		}
	}
	return out
}

// describe shows every member's state, for failure messages.
func (g *Group) describe() string {
	var b strings.Builder
	for _, name := range g.cfg.Names {
		n := g.nodes[name]
		st := n.state()
		fmt.Fprintf(&b, "  %-10s %-12s path=%-7s term=%d leader=%q reason=%q\n",
			name, orDash(string(st.Phase)), n.proxy.Mode(), st.Term, st.Leader, st.Reason)
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "(stopped)"
	}
	return s
}

// dutyStarted records that name's duty of term starts, failing the test if
// another member's runs.
func (g *Group) dutyStarted(name string, term int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var others []string
	for n, tm := range g.running {
		others = append(others, fmt.Sprintf("%s (term %d)", n, tm))
	}
	if len(others) > 0 {
		sort.Strings(others)
		g.t.Errorf("hatest: two duties at once: %s starts its duty (term %d) while %s still runs one",
			name, term, strings.Join(others, ", "))
	}
	g.running[name] = term
}

// dutyEnded records that name's duty has returned.
func (g *Group) dutyEnded(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.running, name)
}

// close stops every member at once and waits for all of them.
func (g *Group) close() {
	var wg sync.WaitGroup
	for _, n := range g.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.shutdown()
		}()
	}
	wg.Wait()
}
