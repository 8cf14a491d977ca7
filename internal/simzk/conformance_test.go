package simzk

// The differential conformance test: the same operations run against a real
// ZooKeeper 3.8 server (internal/zktest, through go-zookeeper *zk.Conns) and
// against the model, and every reply and every watch event must agree.
//
// How events are compared without sleeping: after every operation each
// client sends Sync. ZooKeeper queues a session's watch events before the
// reply to any later request of that session, and go-zookeeper runs the
// event callback before it handles the next packet, so once every Sync has
// returned, every event the operation caused has been recorded. A shortfall
// is still waited for (bounded) before the test fails, to report it well.
//
// Replay a failing random script with the command the failure prints, e.g.
//
//	SIMZK_SEEDS=17 go test -race -count=1 -run 'TestConformance/random/seed=17$' -v ./internal/simzk
//
// SIMZK_SEEDS (comma-separated) replaces the default seeds, SIMZK_OPS the
// number of operations per script.

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hanode/hanode/internal/faultproxy"
	"github.com/hanode/hanode/internal/zktest"
)

const (
	// confTick is zktest's tickTime; the model must use the same.
	confTick = 500 * time.Millisecond
	// confSession is the session timeout of the scripts' clients (the
	// largest the server grants: 20 ticks).
	confSession = 10 * time.Second
	// eventWait bounds the wait for an event the model expects but the real
	// client has not recorded after the sync round.
	eventWait = 2 * time.Second
	// defaultOps is the number of operations of one random script.
	defaultOps = 250
)

var defaultSeeds = []int64{1, 2, 3, 4, 5, 6}

// TestConformance runs every conformance script against one real server.
// The subtests run in order and share the server: fresh-tree must be first
// (it checks the empty tree and absolute zxids), expiry last (its expired
// sessions end asynchronously).
func TestConformance(t *testing.T) {
	srv := zktest.Start(t) // fails (never skips) without Docker or the image
	t.Run("fresh-tree", func(t *testing.T) { testFreshTree(t, srv.Addr) })
	t.Run("edges", func(t *testing.T) { testEdges(t, srv.Addr) })
	t.Run("close-order", func(t *testing.T) { testCloseOrder(t, srv.Addr) })
	t.Run("random", func(t *testing.T) {
		seeds, ops := confSeeds(t), confOps(t)
		for _, seed := range seeds {
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { testRandom(t, srv.Addr, seed, ops) })
		}
	})
	t.Run("setwatches-after-reconnect", func(t *testing.T) { testSetWatches(t, srv.Addr) })
	t.Run("expiry", func(t *testing.T) { testExpiry(t, srv.Addr) })
}

func confSeeds(t *testing.T) []int64 {
	v := os.Getenv("SIMZK_SEEDS")
	if v == "" {
		return defaultSeeds
	}
	var seeds []int64
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil {
			t.Fatalf("SIMZK_SEEDS=%q: %v", v, err)
		}
		seeds = append(seeds, n)
	}
	return seeds
}

func confOps(t *testing.T) int {
	v := os.Getenv("SIMZK_OPS")
	if v == "" {
		return defaultOps
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("SIMZK_OPS=%q: want a positive number", v)
	}
	return n
}

// testFreshTree checks the empty tree, root-level edge cases and absolute
// zxids (the server is new and the model starts at zxid 0 too).
func testFreshTree(t *testing.T, addr string) {
	h := newHarness(t, addr, "go test -race -count=1 -run 'TestConformance/fresh-tree$' -v ./internal/simzk")
	a := h.open("a", addr, confSession)
	b := h.open("b", addr, confSession)
	h.syncAll()
	for _, p := range []string{"/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"} {
		h.step(a, Op{Kind: Exists, Path: p})
		h.step(a, Op{Kind: GetData, Path: p})
		h.step(a, Op{Kind: Children, Path: p})
	}
	h.step(b, Op{Kind: Children, Path: "/", Watch: true})
	h.step(b, Op{Kind: Exists, Path: "/", Watch: true})
	seq := h.step(a, Op{Kind: Create, Path: "/", Flags: zk.FlagSequence}) // "/0000000000"
	h.step(a, Op{Kind: Exists, Path: "/"})
	h.step(a, Op{Kind: Delete, Path: seq.Path, Version: -1})
	h.step(a, Op{Kind: Exists, Path: "/"})
	h.step(b, Op{Kind: Children, Path: "/", Watch: true})
	h.step(a, Op{Kind: Create, Path: "/", Flags: zk.FlagSequence | zk.FlagEphemeral})
	h.step(a, Op{Kind: Create, Path: "/"})
	h.step(a, Op{Kind: Create, Path: "/zookeeper"})
	h.step(a, Op{Kind: Delete, Path: "/", Version: -1})
	h.step(a, Op{Kind: Delete, Path: "/zookeeper", Version: -1})
	h.step(a, Op{Kind: Delete, Path: "/zookeeper/quota", Version: -1})
	h.step(a, Op{Kind: Delete, Path: "/zookeeper/config", Version: -1})
	h.step(a, Op{Kind: Create, Path: "/zookeeper/x", Data: []byte("x")})
	h.step(a, Op{Kind: Children, Path: "/zookeeper"})
	h.step(a, Op{Kind: Delete, Path: "/zookeeper/x", Version: 0})
	h.step(a, Op{Kind: SetData, Path: "/", Data: []byte("root"), Version: -1})
	h.step(a, Op{Kind: SetData, Path: "/", Data: nil, Version: 1})
	h.step(b, Op{Kind: Exists, Path: "/"})
	h.closeClient(a)
	h.step(b, Op{Kind: Children, Path: "/"})
	h.step(b, Op{Kind: Exists, Path: "/"})
}

// testEdges runs fixed scripts for the semantics the brief names.
func testEdges(t *testing.T, addr string) {
	h := newHarness(t, addr, "go test -race -count=1 -run 'TestConformance/edges$' -v ./internal/simzk")
	a := h.open("a", addr, confSession)
	b := h.open("b", addr, confSession)
	w := h.open("w", addr, confSession)
	P := uniqueRoot("edges")
	h.begin(a, P)
	const anyV = int32(-1)

	// Paths: go-zookeeper's check, then the server's.
	for _, p := range []string{"", "x", P + "/", P + "//x", P + "/./x", P + "/../x", P + "/x/.", P + "/\x01", P + "/\u0085"} {
		h.step(a, Op{Kind: Create, Path: p})
		h.step(a, Op{Kind: GetData, Path: p})
		h.step(a, Op{Kind: Delete, Path: p, Version: anyV})
	}
	for _, p := range []string{P + "/\ue000", P + "/\U0001F600", P + "/\uf000", P + "/é", P + "/.x", P + "/..x", P + "/x."} {
		h.step(a, Op{Kind: Create, Path: p})
		h.step(a, Op{Kind: GetData, Path: p})
		h.step(a, Op{Kind: SetData, Path: p, Version: anyV})
		h.step(a, Op{Kind: Delete, Path: p, Version: anyV})
	}
	h.step(a, Op{Kind: Create, Path: P + "/f", Flags: zk.FlagTTL}) // go-zookeeper refuses TTL flags

	// Parents, ephemerals, versions, NotEmpty.
	h.step(a, Op{Kind: Create, Path: P + "/missing/x"})
	h.step(b, Op{Kind: Create, Path: P + "/e", Data: []byte("eph"), Flags: zk.FlagEphemeral})
	h.step(a, Op{Kind: Create, Path: P + "/e/x"})
	h.step(a, Op{Kind: Create, Path: P + "/e/x", Flags: zk.FlagSequence | zk.FlagEphemeral})
	h.step(a, Op{Kind: Create, Path: P + "/e", Flags: zk.FlagEphemeral})
	h.step(a, Op{Kind: Exists, Path: P + "/e"})
	h.step(a, Op{Kind: SetData, Path: P + "/e", Data: []byte("taken"), Version: 0}) // no ownership
	h.step(a, Op{Kind: GetData, Path: P + "/e"})
	h.step(a, Op{Kind: Create, Path: P + "/d"})
	h.step(a, Op{Kind: Create, Path: P + "/d/c"})
	h.step(a, Op{Kind: Delete, Path: P + "/d", Version: 5}) // BadVersion before NotEmpty
	h.step(a, Op{Kind: Delete, Path: P + "/d", Version: anyV})
	h.step(a, Op{Kind: SetData, Path: P + "/d", Data: []byte("same"), Version: anyV})
	h.step(a, Op{Kind: SetData, Path: P + "/d", Data: []byte("same"), Version: 1})
	h.step(a, Op{Kind: SetData, Path: P + "/d", Data: []byte("same"), Version: 1})
	h.step(a, Op{Kind: GetData, Path: P + "/d"})
	h.step(a, Op{Kind: Delete, Path: P + "/d/c", Version: 1})
	h.step(a, Op{Kind: Delete, Path: P + "/d/c", Version: 0})
	h.step(a, Op{Kind: Delete, Path: P + "/d/c", Version: anyV})
	h.step(a, Op{Kind: Exists, Path: P + "/d"})
	h.step(a, Op{Kind: Delete, Path: P + "/e", Version: anyV}) // another session's ephemeral
	h.step(b, Op{Kind: Exists, Path: P + "/e"})

	// Sequence numbers: the count of creates, restarting with the parent.
	h.step(a, Op{Kind: Create, Path: P + "/s"})
	for range 3 {
		h.step(a, Op{Kind: Create, Path: P + "/s/n-", Flags: zk.FlagSequence})
	}
	h.step(a, Op{Kind: Delete, Path: P + "/s/n-0000000001", Version: anyV})
	h.step(a, Op{Kind: Create, Path: P + "/s/", Flags: zk.FlagSequence})
	h.step(b, Op{Kind: Create, Path: P + "/s/e-", Flags: zk.FlagSequence | zk.FlagEphemeral})
	// A node named like a future sequence number: the sequential create
	// collides with it (NodeExists) and, as a failed create does not count,
	// keeps colliding.
	h.step(a, Op{Kind: Create, Path: P + "/s/n-0000000006"})
	h.step(a, Op{Kind: Create, Path: P + "/s/n-", Flags: zk.FlagSequence})
	h.step(a, Op{Kind: Create, Path: P + "/s/n-", Flags: zk.FlagSequence})
	h.step(a, Op{Kind: Children, Path: P + "/s"})
	h.step(a, Op{Kind: Exists, Path: P + "/s"})
	h.step(a, Op{Kind: Multi, Ops: []Op{
		{Kind: Delete, Path: P + "/s/n-0000000000", Version: anyV},
		{Kind: Delete, Path: P + "/s/n-0000000002", Version: anyV},
		{Kind: Delete, Path: P + "/s/0000000003", Version: anyV},
		{Kind: Delete, Path: P + "/s/n-0000000006", Version: anyV},
	}})
	h.closeClient(b) // deletes P/s/e-0000000004
	b = h.open("b2", addr, confSession)
	h.step(a, Op{Kind: Delete, Path: P + "/s", Version: anyV})
	h.step(a, Op{Kind: Create, Path: P + "/s"})
	h.step(a, Op{Kind: Create, Path: P + "/s/n-", Flags: zk.FlagSequence})

	// Multi: visibility of earlier ops, failure codes, watches, empties.
	h.step(a, Op{Kind: Multi, Ops: []Op{
		{Kind: Create, Path: P + "/m"},
		{Kind: Create, Path: P + "/m/c", Data: []byte("c")},
		{Kind: SetData, Path: P + "/m/c", Data: []byte("c2"), Version: 0},
		{Kind: Check, Path: P + "/m/c", Version: 1},
		{Kind: Create, Path: P + "/m/q-", Flags: zk.FlagSequence},
		{Kind: Create, Path: P + "/m/q-", Flags: zk.FlagSequence | zk.FlagEphemeral},
	}})
	h.step(a, Op{Kind: Multi, Ops: []Op{
		{Kind: Delete, Path: P + "/m/c", Version: anyV},
		{Kind: Check, Path: P + "/m/c", Version: anyV},
		{Kind: Create, Path: P + "/m/never"},
	}})
	h.step(a, Op{Kind: Multi, Ops: []Op{
		{Kind: Create, Path: P + "/m/x"},
		{Kind: SetData, Path: P + "/m", Data: []byte("v"), Version: 0},
		{Kind: Check, Path: P + "/m", Version: 0}, // fails: SetData made it 1
		{Kind: Delete, Path: "bad", Version: anyV},
	}})
	h.step(a, Op{Kind: Multi, Ops: []Op{{Kind: Check, Path: P + "/nothing", Version: anyV}}})
	h.step(a, Op{Kind: Multi, Ops: []Op{{Kind: Create, Path: "bad"}}})
	h.step(a, Op{Kind: Multi, Ops: []Op{{Kind: Create, Path: P + "/m/"}, {Kind: Create, Path: P + "/m//x"}}})
	h.step(a, Op{Kind: Multi, Ops: []Op{{Kind: Delete, Path: P + "/m//x", Version: anyV}}})
	h.step(a, Op{Kind: Multi, Ops: []Op{{Kind: Delete, Path: "/zookeeper", Version: anyV}}})
	h.step(a, Op{Kind: Multi, Ops: []Op{{Kind: SetData, Path: P + "/m/", Version: anyV}}})
	h.step(a, Op{Kind: Multi, Ops: []Op{{Kind: Create, Path: P + "/m/z", Flags: 7}}})
	h.step(a, Op{Kind: Multi})
	h.step(a, Op{Kind: Multi, Ops: []Op{{Kind: Check, Path: P + "/m", Version: 1}}})
	h.step(a, Op{Kind: Exists, Path: P + "/m"})

	h.step(a, Op{Kind: Create, Path: P + "/w"})
	h.step(a, Op{Kind: Create, Path: P + "/w/x", Data: []byte("x")})
	h.step(w, Op{Kind: GetData, Path: P + "/w/x", Watch: true})
	h.step(w, Op{Kind: Exists, Path: P + "/w/x", Watch: true})
	h.step(w, Op{Kind: Children, Path: P + "/w/x", Watch: true})
	h.step(w, Op{Kind: Children, Path: P + "/w", Watch: true})
	h.step(w, Op{Kind: Exists, Path: P + "/w/y", Watch: true})
	h.step(w, Op{Kind: GetData, Path: P + "/w", Watch: true})
	h.step(b, Op{Kind: Exists, Path: P + "/w/x", Watch: true})
	h.step(a, Op{Kind: Multi, Ops: []Op{
		{Kind: SetData, Path: P + "/w/x", Data: []byte("x2"), Version: anyV},
		{Kind: Delete, Path: P + "/w/x", Version: anyV},
		{Kind: Create, Path: P + "/w/y"},
		{Kind: Create, Path: P + "/w/x"},
		{Kind: SetData, Path: P + "/w", Version: anyV},
	}})
	h.step(w, Op{Kind: Children, Path: P + "/w", Watch: true})
	h.step(w, Op{Kind: Exists, Path: P + "/w/z", Watch: true})
	h.step(a, Op{Kind: Multi, Ops: []Op{ // fails: no event
		{Kind: Create, Path: P + "/w/z"},
		{Kind: Create, Path: P + "/w/z"},
	}})
	h.step(a, Op{Kind: Create, Path: P + "/w/z"})
	h.step(a, Op{Kind: Create, Path: P + "/w/z"}) // NodeExists: no event

	// A session with a data and a child watch on a deleted node gets one
	// NodeDeleted; a child watch alone also gets NodeDeleted.
	h.step(a, Op{Kind: Create, Path: P + "/two"})
	h.step(w, Op{Kind: GetData, Path: P + "/two", Watch: true})
	h.step(w, Op{Kind: Children, Path: P + "/two", Watch: true})
	h.step(b, Op{Kind: Children, Path: P + "/two", Watch: true})
	h.step(a, Op{Kind: Delete, Path: P + "/two", Version: anyV})

	// Watches set on a missing node: exists registers, get/children do not.
	h.step(w, Op{Kind: GetData, Path: P + "/late", Watch: true})
	h.step(w, Op{Kind: Children, Path: P + "/late", Watch: true})
	h.step(w, Op{Kind: Exists, Path: P + "/late", Watch: true})
	h.step(w, Op{Kind: Exists, Path: P + "/late", Watch: true}) // once per session
	h.step(a, Op{Kind: Create, Path: P + "/late"})
	h.step(a, Op{Kind: Delete, Path: P + "/late", Version: anyV})

	// Closing a session deletes its ephemerals and fires others' watches.
	h.step(b, Op{Kind: Create, Path: P + "/eb"})
	h.step(b, Op{Kind: Create, Path: P + "/eb/1", Flags: zk.FlagEphemeral})
	h.step(b, Op{Kind: Create, Path: P + "/eb/2", Flags: zk.FlagEphemeral})
	h.step(w, Op{Kind: Children, Path: P + "/eb", Watch: true})
	h.step(w, Op{Kind: GetData, Path: P + "/eb/1", Watch: true})
	h.step(w, Op{Kind: Exists, Path: P + "/eb/2", Watch: true})
	h.step(b, Op{Kind: Exists, Path: P + "/eb/1", Watch: true})
	h.closeClient(b)
	h.step(a, Op{Kind: Exists, Path: P + "/eb"})
	h.step(a, Op{Kind: Sync, Path: P})
	h.compareTree(a, P)
}

// testCloseOrder checks the order in which closing a session deletes its
// ephemerals (Java HashSet iteration order), including after the set grew
// past 12 entries and shrank again (the cloned set is then smaller).
func testCloseOrder(t *testing.T, addr string) {
	h := newHarness(t, addr, "go test -race -count=1 -run 'TestConformance/close-order$' -v ./internal/simzk")
	a := h.open("a", addr, confSession)
	w := h.open("w", addr, confSession)
	P := uniqueRoot("close")
	h.begin(a, P)
	// Rounds: (ephemerals, which to delete before the close).
	rounds := []struct {
		n    int
		drop func(i int) bool
	}{
		{6, func(int) bool { return false }},
		{20, func(i int) bool { return i%3 != 0 }}, // set grew to 32, clone sized 16
		{40, func(i int) bool { return i%3 == 1 }},
		{30, func(i int) bool { return i%6 != 0 }}, // set grew to 64, clone sized 8
	}
	for round, rd := range rounds {
		n := rd.n
		e := h.open(fmt.Sprintf("e%d", round), addr, confSession)
		dir := fmt.Sprintf("%s/r%d", P, round)
		h.step(a, Op{Kind: Create, Path: dir})
		var paths []string
		for i := range n {
			p := h.step(e, Op{Kind: Create, Path: fmt.Sprintf("%s/n%d-", dir, i%7), Flags: zk.FlagEphemeral | zk.FlagSequence}).Path
			paths = append(paths, p)
		}
		for i, p := range paths {
			if rd.drop(i) {
				h.step(a, Op{Kind: Delete, Path: p, Version: -1})
				continue
			}
			h.step(w, Op{Kind: Exists, Path: p, Watch: true})
		}
		if round == 2 { // recreate some: they go to the end of their buckets
			for i := 0; i < n; i += 5 {
				h.step(e, Op{Kind: Create, Path: fmt.Sprintf("%s/again%d", dir, i), Flags: zk.FlagEphemeral})
				h.step(w, Op{Kind: GetData, Path: fmt.Sprintf("%s/again%d", dir, i), Watch: true})
			}
		}
		h.step(w, Op{Kind: Children, Path: dir, Watch: true})
		h.closeClient(e)
	}

	// A crafted round: 13 ephemerals grow the session's set to 32 buckets,
	// then all but four are deleted, so the clone the close iterates has 8.
	// The four names are chosen so that ordering by insertion, by the
	// original set's buckets only, or with a set that never grew, all differ
	// from ZooKeeper's order.
	dir := P + "/crafted"
	h.step(a, Op{Kind: Create, Path: dir})
	keep, fill := craftCloseOrder(dir)
	e := h.open("e-crafted", addr, confSession)
	for _, name := range append(keep[:2:2], append(fill, keep[2:]...)...) {
		h.step(e, Op{Kind: Create, Path: dir + "/" + name, Flags: zk.FlagEphemeral})
	}
	for _, name := range fill {
		h.step(a, Op{Kind: Delete, Path: dir + "/" + name, Version: -1})
	}
	for _, name := range keep {
		h.step(w, Op{Kind: Exists, Path: dir + "/" + name, Watch: true})
	}
	h.closeClient(e)
	t.Logf("crafted close order: %v", w.want[len(w.want)-len(keep):])
	h.compareTree(a, P)
}

// craftCloseOrder picks four names under dir (see testCloseOrder) and nine
// fillers. With h the spread hash of a path: A and B share their bucket
// modulo 8; A sorts after B modulo 32 but before it modulo 16, and A is
// created first. C is in bucket 0 modulo 8 but a high bucket modulo 32, D in
// bucket 7 modulo 8 but a lower bucket modulo 32.
func craftCloseOrder(dir string) (keep, fill []string) {
	hash := func(name string) uint32 { return javaSpreadHash(dir + "/" + name) }
	var a, b, c, d string
	for i := 0; a == "" || b == "" || c == "" || d == ""; i++ {
		name := "k" + strconv.Itoa(i)
		h := hash(name)
		switch {
		case a == "" && h%32 >= 16 && h%16 < 8:
			a = name
		case a != "" && b == "" && h%8 == hash(a)%8 && h%32 < 16 && h%16 >= 8:
			b = name
		case c == "" && h%8 == 0 && h%32 >= 24 && name != a && name != b:
			c = name
		case d == "" && h%8 == 7 && h%32 < 8 && name != a && name != b:
			d = name
		}
	}
	for i := 0; len(fill) < 9; i++ {
		fill = append(fill, "f"+strconv.Itoa(i))
	}
	return []string{a, b, c, d}, fill
}

// testRandom runs one seeded random script with four clients.
func testRandom(t *testing.T, addr string, seed int64, nops int) {
	replay := fmt.Sprintf("SIMZK_SEEDS=%d SIMZK_OPS=%d go test -race -count=1 -run 'TestConformance/random/seed=%d$' -v ./internal/simzk", seed, nops, seed)
	h := newHarness(t, addr, replay)
	for i := range 4 {
		h.open(fmt.Sprintf("c%d", i), addr, confSession)
	}
	P := uniqueRoot(fmt.Sprintf("seed%d", seed))
	h.begin(h.clients[0], P)
	g := &gen{r: rand.New(rand.NewPCG(uint64(seed), 0x5eed)), h: h, root: P, stats: map[string]int{}}
	for _, rel := range []string{"/a", "/b", "/c", "/a/x", "/a/y", "/b/x", "/c/x", "/a/x/z"} {
		g.known = append(g.known, P+rel)
	}
	g.parents = []string{P, P + "/a", P + "/b", P + "/c", P + "/a/x"}
	for i := range nops {
		g.next()
		if i%50 == 49 {
			h.compareTree(h.clients[0], P)
		}
	}
	h.compareTree(h.clients[0], P)
	keys := slices.Sorted(maps.Keys(g.stats))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, g.stats[k])
	}
	t.Logf("seed %d: %d ops, %d reopened sessions, %d watch events;%s", seed, nops, g.reopen, h.events, b.String())
}

// gen makes random operations biased towards collisions: few names, versions
// that often match, multis that fail about half the time.
type gen struct {
	r       *rand.Rand
	h       *harness
	root    string
	known   []string // paths worth targeting (some may not exist)
	parents []string
	reopen  int
	stats   map[string]int // "Kind:outcome" -> count
}

func (g *gen) client() *client { return g.h.clients[g.r.IntN(len(g.h.clients))] }

// path picks a target: mostly a node that exists now, else a name worth
// trying (which may not exist).
func (g *gen) path() string {
	switch x := g.r.IntN(10); {
	case x == 0:
		return g.parents[g.r.IntN(len(g.parents))]
	case x < 7:
		if p := g.live(); p != "" {
			return p
		}
	}
	return g.known[g.r.IntN(len(g.known))]
}

// live returns a random node under the script's root that exists now, or "".
func (g *gen) live() string {
	var live []string
	for _, p := range g.h.model.Paths() {
		if strings.HasPrefix(p, g.root+"/") {
			live = append(live, p)
		}
	}
	if len(live) == 0 {
		return ""
	}
	return live[g.r.IntN(len(live))]
}

func (g *gen) version(path string) int32 {
	_, st, ok := g.h.model.Get(path)
	switch x := g.r.IntN(10); {
	case x < 4:
		return -1
	case x < 8 && ok:
		return st.Version
	default:
		return int32(g.r.IntN(3))
	}
}

func (g *gen) data() []byte {
	switch g.r.IntN(4) {
	case 0:
		return nil
	case 1:
		return []byte{}
	default:
		b := make([]byte, g.r.IntN(9))
		for i := range b {
			b[i] = byte('a' + g.r.IntN(26))
		}
		return b
	}
}

func (g *gen) flags() int32 {
	return []int32{0, 0, 0, zk.FlagEphemeral, zk.FlagSequence, zk.FlagEphemeral | zk.FlagSequence}[g.r.IntN(6)]
}

func (g *gen) createOp() Op {
	flags := g.flags()
	parent := g.parents[g.r.IntN(len(g.parents))]
	if g.r.IntN(10) < 6 {
		// Under a node that exists now (maybe an ephemeral: refused), not
		// too deep.
		if p := g.live(); p != "" && strings.Count(p[len(g.root):], "/") < 4 {
			parent = p
		}
	}
	var path string
	switch {
	case flags&zk.FlagSequence == 0:
		path = parent + "/" + []string{"a", "b", "c", "x", "y"}[g.r.IntN(5)]
	case g.r.IntN(10) == 0:
		path = parent + "/" // sequential with a trailing slash: allowed
	default:
		path = parent + "/s-"
	}
	return Op{Kind: Create, Path: path, Data: g.data(), Flags: flags}
}

func (g *gen) writeOp() Op {
	switch g.r.IntN(10) {
	case 0, 1, 2, 3:
		return g.createOp()
	case 4, 5, 6:
		p := g.path()
		return Op{Kind: Delete, Path: p, Version: g.version(p)}
	case 7, 8:
		p := g.path()
		return Op{Kind: SetData, Path: p, Data: g.data(), Version: g.version(p)}
	default:
		p := g.path()
		return Op{Kind: Check, Path: p, Version: g.version(p)}
	}
}

var oddPaths = []string{"", "noslash", "/trailing/", "//double", "/a/./b", "/a/../b", "/\ue000", "/\U0001F600", "/ctl\x01"}

func (g *gen) next() {
	h := g.h
	c := g.client()
	if _, _, ok := h.model.Get(g.root); !ok {
		// The root was deleted (it can be, when empty): recreate it, which
		// also restarts its sequence numbers.
		h.step(c, Op{Kind: Create, Path: g.root})
		g.stats["root recreated"]++
	}
	var op Op
	switch x := g.r.IntN(100); {
	case x < 20:
		op = g.createOp()
	case x < 30:
		p := g.path()
		op = Op{Kind: Delete, Path: p, Version: g.version(p)}
	case x < 40:
		p := g.path()
		op = Op{Kind: SetData, Path: p, Data: g.data(), Version: g.version(p)}
	case x < 48:
		op = Op{Kind: GetData, Path: g.path(), Watch: g.r.IntN(8) != 0}
	case x < 56:
		op = Op{Kind: Exists, Path: g.path(), Watch: g.r.IntN(8) != 0}
	case x < 64:
		op = Op{Kind: Children, Path: g.path(), Watch: g.r.IntN(8) != 0}
	case x < 80:
		n := g.r.IntN(5)
		op = Op{Kind: Multi, Ops: make([]Op, n)}
		for i := range op.Ops {
			op.Ops[i] = g.writeOp()
		}
		if n > 0 && g.r.IntN(12) == 0 {
			bad := oddPaths[g.r.IntN(len(oddPaths))]
			op.Ops[g.r.IntN(n)].Path = strings.Replace(bad, "/", g.root+"/", 1)
		}
	case x < 83:
		bad := oddPaths[g.r.IntN(len(oddPaths))]
		if strings.HasPrefix(bad, "/") {
			bad = g.root + bad
		}
		kinds := []Kind{Create, Delete, SetData, GetData, Exists, Children}
		op = Op{Kind: kinds[g.r.IntN(len(kinds))], Path: bad, Version: -1}
	case x < 85:
		op = Op{Kind: Sync, Path: g.path()}
	case x < 87:
		g.reopen++
		h.closeClient(c)
		h.open(fmt.Sprintf("%s.%d", c.name, g.reopen), h.addr, confSession)
		return
	default:
		// Watch-heavy: a watcher on something the next writes may touch.
		w := g.client()
		p := g.path()
		h.step(w, Op{Kind: Exists, Path: p, Watch: true})
		h.step(w, Op{Kind: Children, Path: p, Watch: true})
		op = g.createOp()
	}
	res := h.step(c, op)
	g.learn(op, res)
	g.count(op, res)
}

// count tallies outcomes, to show what a script covered.
func (g *gen) count(op Op, res Result) {
	outcome := "ok"
	if res.Err != nil {
		outcome = strings.TrimPrefix(res.Err.Error(), "zk: ")
	}
	g.stats[op.Kind.String()+":"+outcome]++
}

// learn adds created paths to the targets.
func (g *gen) learn(op Op, res Result) {
	if op.Kind == Create && res.Err == nil && op.Flags&zk.FlagSequence != 0 {
		g.known = append(g.known, res.Path)
	}
	for i, r := range res.Multi {
		if r.Path != "" && op.Ops[i].Flags&zk.FlagSequence != 0 {
			g.known = append(g.known, r.Path)
		}
	}
	if len(g.known) > 40 {
		g.known = slices.Delete(g.known, 8, 9) // keep the fixed names
	}
}

// testSetWatches cuts a client's connection with RST (the server drops its
// watches), changes the tree meanwhile, and checks what go-zookeeper's
// SetWatches gets back when the client reconnects with the same session, and
// that the re-registered watches fire later.
func testSetWatches(t *testing.T, addr string) {
	h := newHarness(t, addr, "go test -race -count=1 -run 'TestConformance/setwatches-after-reconnect$' -v ./internal/simzk")
	proxy := faultproxy.Start(t, addr)
	a := h.open("a (via proxy)", proxy.Addr(), confSession)
	b := h.open("b", addr, confSession)
	P := uniqueRoot("setwatches")
	h.begin(b, P)
	for _, n := range []string{"x", "q", "z", "r", "del", "del/c", "old"} {
		h.step(b, Op{Kind: Create, Path: P + "/" + n, Data: []byte(n)})
	}
	h.step(b, Op{Kind: Delete, Path: P + "/del/c", Version: -1})
	for _, op := range []Op{
		{Kind: GetData, Path: P + "/x", Watch: true},   // changes: NodeDataChanged
		{Kind: Exists, Path: P + "/y", Watch: true},    // created: NodeCreated
		{Kind: Children, Path: P + "/z", Watch: true},  // child added: NodeChildrenChanged
		{Kind: GetData, Path: P + "/q", Watch: true},   // unchanged: registered again
		{Kind: Children, Path: P + "/r", Watch: true},  // unchanged: registered again
		{Kind: Exists, Path: P + "/s", Watch: true},    // still missing: registered again
		{Kind: GetData, Path: P + "/del", Watch: true}, // deleted: NodeDeleted
		{Kind: Children, Path: P + "/del", Watch: true},
		{Kind: Exists, Path: P + "/old", Watch: true},
	} {
		h.step(a, op)
	}
	// A change a's last reply already covered: its mzxid is below relZxid.
	h.step(b, Op{Kind: SetData, Path: P + "/old", Data: []byte("seen"), Version: -1})
	h.step(a, Op{Kind: Exists, Path: P + "/old", Watch: true})
	h.step(a, Op{Kind: Sync, Path: P})

	_, before := a.snapshot()
	a.offline = true
	proxy.Reset()
	if !a.waitUntil(10*time.Second, func(_ []evRec, st []zk.State) bool { return stateAfter(st, len(before), zk.StateDisconnected) }) {
		h.fail("a did not see its connection drop")
	}
	h.model.Disconnect(a.modelID)
	h.history = append(h.history, "a disconnected (RST)")

	h.step(b, Op{Kind: SetData, Path: P + "/x", Data: []byte("x2"), Version: -1})
	h.step(b, Op{Kind: Create, Path: P + "/y"})
	h.step(b, Op{Kind: Create, Path: P + "/z/c"})
	h.step(b, Op{Kind: Delete, Path: P + "/del", Version: -1})

	var data, exist, child []string
	for k := range a.watches {
		switch k.kind {
		case wData:
			data = append(data, k.path)
		case wExist:
			exist = append(exist, k.path)
		case wChild:
			child = append(child, k.path)
		}
	}
	for _, l := range [][]string{data, exist, child} {
		slices.Sort(l)
	}
	_, states := a.snapshot()
	proxy.Heal()
	if !a.waitUntil(20*time.Second, func(_ []evRec, st []zk.State) bool { return stateAfter(st, len(states), zk.StateHasSession) }) {
		h.fail("a did not reconnect")
	}
	if id := a.conn.SessionID(); id != a.realID {
		h.fail("a reconnected with session %#x, want %#x", id, a.realID)
	}
	evs, err := h.model.SetWatches(a.modelID, a.lastZxid, data, exist, child, h.tick())
	if err != nil {
		h.fail("model SetWatches: %v", err)
	}
	h.history = append(h.history, fmt.Sprintf("a reconnected: SetWatches(rel=%d, data=%v, exist=%v, child=%v)", a.lastZxid, data, exist, child))
	before2 := len(a.want)
	h.distribute(evs)
	want := slices.Clone(a.want[before2:])
	n := len(a.want)
	a.waitUntil(eventWait, func(got []evRec, _ []zk.State) bool { return len(got) >= n })
	got, _ := a.snapshot()
	// go-zookeeper builds the lists from a map: compare as multisets.
	gotNew := slices.Clone(got[min(before2, len(got)):])
	sortEv := func(e []evRec) {
		slices.SortFunc(e, func(x, y evRec) int { return strings.Compare(x.String(), y.String()) })
	}
	sortEv(want)
	sortEv(gotNew)
	if !slices.Equal(want, gotNew) || len(got) != n {
		h.fail("events after SetWatches differ\n  model: %v\n  real:  %v", want, gotNew)
	}
	a.want = slices.Clone(got) // same multiset; keep the real order
	a.offline = false
	h.syncAll()
	t.Logf("SetWatches events: %v", want)

	// The watches registered again fire like any other.
	h.step(b, Op{Kind: SetData, Path: P + "/q", Data: []byte("q2"), Version: -1})
	h.step(b, Op{Kind: Create, Path: P + "/r/c"})
	h.step(b, Op{Kind: Create, Path: P + "/s"})
	h.step(b, Op{Kind: SetData, Path: P + "/old", Data: []byte("again"), Version: -1})
	h.step(b, Op{Kind: SetData, Path: P + "/x", Data: []byte("x3"), Version: -1}) // its watch was used up
	h.compareTree(b, P)
}

// testExpiry stalls the paths of three clients at staggered instants and
// checks the timeout negotiation, that their ephemerals vanish at the same
// events the model gives, and that they vanish on tick boundaries.
func testExpiry(t *testing.T, addr string) {
	h := newHarness(t, addr, "go test -race -count=1 -run 'TestConformance/expiry$' -v ./internal/simzk")
	w := h.open("w", addr, confSession)
	const requested = 100 * time.Millisecond
	negotiated := h.model.Negotiate(requested)
	if negotiated != 2*confTick {
		t.Fatalf("model negotiates %v for %v, want 2 ticks", negotiated, requested)
	}
	var proxies []*faultproxy.Proxy
	var es []*client
	for i := range 3 {
		p := faultproxy.Start(t, addr)
		proxies = append(proxies, p)
		es = append(es, h.open(fmt.Sprintf("e%d", i), p.Addr(), requested))
	}
	for _, e := range es {
		// go-zookeeper logs "authenticated: id=..., timeout=MS" with the
		// server's answer, sometimes just after the session state changes.
		timeout := ""
		e.waitLog(5*time.Second, func(l string) bool {
			_, timeout, _ = strings.Cut(l, "timeout=")
			return timeout != ""
		})
		if timeout != strconv.Itoa(int(negotiated.Milliseconds())) {
			h.fail("%s: server negotiated timeout=%s ms, model %v", e.name, timeout, negotiated)
		}
	}
	P := uniqueRoot("expiry")
	h.begin(w, P)
	for i, e := range es {
		for j := range i + 1 {
			p := fmt.Sprintf("%s/e%d-%d", P, i, j)
			h.step(e, Op{Kind: Create, Path: p, Flags: zk.FlagEphemeral})
			h.step(w, Op{Kind: Exists, Path: p, Watch: true})
		}
	}
	h.step(w, Op{Kind: Children, Path: P, Watch: true})

	// Cut the three paths 150 ms apart: without tick rounding the nodes would
	// vanish about 150 ms apart too.
	const stagger = 150 * time.Millisecond
	var stalled []time.Time
	for i, e := range es {
		if i > 0 {
			time.Sleep(stagger) // the fault schedule itself, not a synchronisation
		}
		e.offline = true
		proxies[i].Stall()
		stalled = append(stalled, time.Now())
	}
	h.now += negotiated + confTick // the model's clock: every e is due, w (10 s) is not
	_, evs := h.model.ExpireDue(h.now)
	for _, e := range es {
		if h.model.Alive(e.modelID) {
			h.fail("model: %s still alive after its timeout", e.name)
		}
	}
	h.distribute(evs)
	n := len(w.want)
	if !w.waitUntil(negotiated+confTick+5*time.Second, func(got []evRec, _ []zk.State) bool { return len(got) >= n }) {
		got, _ := w.snapshot()
		h.fail("expiry events: model %v, real %v", w.want, got)
	}
	w.mu.Lock()
	got, gotAt := slices.Clone(w.got), slices.Clone(w.gotAt)
	w.mu.Unlock()
	// Sessions expiring on the same tick are closed in no defined order.
	sortEv := func(e []evRec) []evRec {
		e = slices.Clone(e)
		slices.SortFunc(e, func(x, y evRec) int { return strings.Compare(x.String(), y.String()) })
		return e
	}
	if !slices.Equal(sortEv(w.want), sortEv(got)) {
		h.fail("expiry events differ\n  model: %v\n  real:  %v", w.want, got)
	}
	w.want = got

	// When each session's first node vanished, against when its path was cut.
	var vanished []time.Time
	for i := range es {
		for k, e := range got {
			if e.Type == zk.EventNodeDeleted && e.Path == fmt.Sprintf("%s/e%d-0", P, i) {
				vanished = append(vanished, gotAt[k])
			}
		}
	}
	ping := negotiated / 3
	for i := range es {
		d := vanished[i].Sub(stalled[i])
		t.Logf("e%d: cut at +%v, vanished %v after the cut", i, stalled[i].Sub(stalled[0]).Round(time.Millisecond), d.Round(time.Millisecond))
		// Last packet in [cut - ping interval, cut]; expiry in (last + T, last + T + tick].
		if d < negotiated-ping-50*time.Millisecond || d > negotiated+confTick+300*time.Millisecond {
			h.fail("e%d vanished %v after its cut, outside [T - T/3, T + tick] for T=%v", i, d, negotiated)
		}
	}
	for i := 1; i < len(vanished); i++ {
		off := vanished[i].Sub(vanished[0]) % confTick
		if off > confTick/2 {
			off -= confTick
		}
		if off < -80*time.Millisecond || off > 80*time.Millisecond {
			h.fail("e%d vanished %v after e0: not a whole number of ticks (%v)", i, vanished[i].Sub(vanished[0]), confTick)
		}
	}
	h.syncAll()
	h.step(w, Op{Kind: Children, Path: P})
	h.compareTree(w, P)

	// The expired client learns it when its path heals.
	_, states := es[0].snapshot()
	proxies[0].Heal()
	if !es[0].waitUntil(20*time.Second, func(_ []evRec, st []zk.State) bool { return stateAfter(st, len(states), zk.StateExpired) }) {
		h.fail("e0 never saw StateExpired after its path healed")
	}
	if err := h.model.Touch(es[0].modelID, h.tick()); !errors.Is(err, zk.ErrSessionExpired) {
		h.fail("model Touch of an expired session: %v", err)
	}
	for i := 1; i < len(proxies); i++ {
		_, states := es[i].snapshot()
		proxies[i].Heal()
		if !es[i].waitUntil(20*time.Second, func(_ []evRec, st []zk.State) bool { return stateAfter(st, len(states), zk.StateExpired) }) {
			h.fail("e%d never saw StateExpired after its path healed", i)
		}
	}
}
