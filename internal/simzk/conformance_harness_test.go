package simzk

// The harness of the conformance test: real go-zookeeper clients paired with
// model sessions, one step at a time. See conformance_test.go.

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hanode/hanode/internal/zktest"
)

type evRec struct {
	Type zk.EventType
	Path string
}

func (e evRec) String() string { return fmt.Sprintf("%v %s", e.Type, e.Path) }

type watchKind uint8

const (
	wData watchKind = iota
	wExist
	wChild
)

type watchKey struct {
	kind watchKind
	path string
}

// client is one real go-zookeeper connection and its model session.
type client struct {
	name     string
	conn     *zk.Conn
	realID   int64
	modelID  int64
	offline  bool  // cut off on purpose: not synced, gets no events
	lastZxid int64 // model zxid of the last reply, as go-zookeeper keeps it
	// watches are the watches go-zookeeper holds (and would re-register).
	watches map[watchKey]bool
	want    []evRec // events the model delivered

	mu     sync.Mutex
	closed bool
	got    []evRec
	gotAt  []time.Time
	states []zk.State
	logs   []string
	notify chan struct{}
}

func (c *client) record(ev zk.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	switch ev.Type {
	case zk.EventNodeCreated, zk.EventNodeDeleted, zk.EventNodeDataChanged, zk.EventNodeChildrenChanged:
		c.got = append(c.got, evRec{ev.Type, ev.Path})
		c.gotAt = append(c.gotAt, time.Now())
	case zk.EventSession:
		c.states = append(c.states, ev.State)
	}
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// Printf keeps go-zookeeper's log; it is shown when the test fails.
func (c *client) Printf(format string, args ...any) {
	c.mu.Lock()
	c.logs = append(c.logs, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// waitLog waits until some line of go-zookeeper's log satisfies match, at
// most timeout.
func (c *client) waitLog(timeout time.Duration, match func(line string) bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		found := slices.ContainsFunc(c.logs, match)
		c.mu.Unlock()
		if found {
			return true
		}
		select {
		case <-c.notify:
		case <-deadline.C:
			return false
		}
	}
}

func (c *client) snapshot() (got []evRec, states []zk.State) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got), slices.Clone(c.states)
}

// waitUntil waits until cond holds over the client's recorded events and
// states, at most timeout. It reports whether cond held.
func (c *client) waitUntil(timeout time.Duration, cond func(got []evRec, states []zk.State) bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		got, states := c.snapshot()
		if cond(got, states) {
			return true
		}
		select {
		case <-c.notify:
		case <-deadline.C:
			got, states = c.snapshot()
			return cond(got, states)
		}
	}
}

// stateAfter reports whether state occurs in states at or after index from.
func stateAfter(states []zk.State, from int, state zk.State) bool {
	return from <= len(states) && slices.Contains(states[from:], state)
}

// harness drives one script against the real server and the model.
type harness struct {
	t       *testing.T
	addr    string
	model   *Server
	now     time.Duration
	clients []*client
	history []string
	replay  string
	// Zxids: a real zxid is compared as model zxid + offset when the model
	// zxid is at least base (nodes of this script); older ones are skipped.
	offset int64
	base   int64
	events int // watch events delivered so far
}

func newHarness(t *testing.T, addr, replay string) *harness {
	return &harness{t: t, addr: addr, model: New(Config{Tick: confTick}), replay: replay}
}

// tick advances the model's clock by a millisecond: time in the model only
// matters for expiry, and every client is touched after every operation.
func (h *harness) tick() time.Duration {
	h.now += time.Millisecond
	return h.now
}

func (h *harness) fail(format string, args ...any) {
	h.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, format, args...)
	b.WriteString("\nlast operations:\n")
	from := max(0, len(h.history)-25)
	for _, l := range h.history[from:] {
		b.WriteString("  " + l + "\n")
	}
	for _, c := range h.clients {
		c.mu.Lock()
		if len(c.logs) > 0 {
			fmt.Fprintf(&b, "go-zookeeper log of %s:\n  %s\n", c.name, strings.Join(c.logs[max(0, len(c.logs)-10):], "\n  "))
		}
		c.mu.Unlock()
	}
	if h.replay != "" {
		b.WriteString("replay: " + h.replay + "\n")
	}
	h.t.Fatal(b.String())
}

// open connects a client to addr (the server or a proxy in front of it) and
// creates its model session, in the same order as the real one.
func (h *harness) open(name, addr string, requested time.Duration) *client {
	h.t.Helper()
	c := &client{name: name, watches: map[watchKey]bool{}, notify: make(chan struct{}, 1)}
	conn, _, err := zk.Connect([]string{addr}, requested, zk.WithEventCallback(c.record), zk.WithLogger(c))
	if err != nil {
		h.t.Fatalf("connect %s: %v", name, err)
	}
	c.conn = conn
	h.t.Cleanup(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		conn.Close()
	})
	if err := zktest.WaitSession(conn, 30*time.Second); err != nil {
		h.t.Fatalf("connect %s: %v", name, err)
	}
	c.realID = conn.SessionID()
	c.modelID, _ = h.model.CreateSession(requested, h.tick())
	c.lastZxid = h.model.LastZxid()
	h.clients = append(h.clients, c)
	h.history = append(h.history, fmt.Sprintf("open %s (real %#x, model %#x)", name, c.realID, c.modelID))
	return c
}

// closeClient closes the client's session on both sides and syncs the rest.
func (h *harness) closeClient(c *client) {
	h.t.Helper()
	h.history = append(h.history, fmt.Sprintf("close %s", c.name))
	evs, err := h.model.CloseSession(c.modelID, h.tick())
	if err != nil {
		h.fail("model CloseSession(%s): %v", c.name, err)
	}
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.conn.Close()
	h.clients = slices.DeleteFunc(h.clients, func(x *client) bool { return x == c })
	h.distribute(evs)
	h.syncAll()
}

func (h *harness) byModelID(id int64) *client {
	for _, c := range h.clients {
		if c.modelID == id {
			return c
		}
	}
	return nil
}

// distribute hands the model's events to the clients' expected lists and
// updates the watches go-zookeeper would still hold.
func (h *harness) distribute(evs []Event) {
	for _, e := range evs {
		c := h.byModelID(e.Session)
		if c == nil {
			h.fail("model delivered %v to a session no client has", e)
			return
		}
		c.want = append(c.want, evRec{e.Type, e.Path})
		h.events++
		switch e.Type {
		case zk.EventNodeCreated:
			delete(c.watches, watchKey{wExist, e.Path})
		case zk.EventNodeDataChanged:
			delete(c.watches, watchKey{wExist, e.Path})
			delete(c.watches, watchKey{wData, e.Path})
		case zk.EventNodeChildrenChanged:
			delete(c.watches, watchKey{wChild, e.Path})
		case zk.EventNodeDeleted:
			delete(c.watches, watchKey{wExist, e.Path})
			delete(c.watches, watchKey{wData, e.Path})
			delete(c.watches, watchKey{wChild, e.Path})
		}
	}
}

// step runs op as client c on both sides, compares the replies, syncs every
// client and compares the events. It returns the model's result.
func (h *harness) step(c *client, op Op) Result {
	h.t.Helper()
	h.history = append(h.history, fmt.Sprintf("#%d %s: %v", len(h.history), c.name, op))
	want, evs := h.model.Apply(c.modelID, op, h.tick())
	if !errors.Is(want.Err, zk.ErrInvalidPath) && !errors.Is(want.Err, zk.ErrInvalidFlags) {
		c.lastZxid = h.model.LastZxid() // the request reached the server
	}
	h.distribute(evs)
	got := h.real(c, op)
	h.compare(c, op, want, got)
	h.syncAll()
	return want
}

// syncAll sends Sync from every connected client (on both sides) and then
// compares every client's events.
func (h *harness) syncAll() {
	h.t.Helper()
	for _, c := range h.clients {
		if c.offline {
			continue
		}
		_, evs := h.model.Apply(c.modelID, Op{Kind: Sync, Path: "/"}, h.tick())
		h.distribute(evs)
		c.lastZxid = h.model.LastZxid()
		if _, err := c.conn.Sync("/"); err != nil {
			h.fail("sync %s: %v", c.name, err)
		}
	}
	h.checkEvents()
}

func (h *harness) checkEvents() {
	h.t.Helper()
	for _, c := range h.clients {
		if c.offline {
			continue
		}
		n := len(c.want)
		c.waitUntil(eventWait, func(got []evRec, _ []zk.State) bool { return len(got) >= n })
		got, _ := c.snapshot()
		if !slices.Equal(got, c.want) {
			h.fail("events of %s differ\n  model: %v\n  real:  %v", c.name, c.want, got)
		}
	}
}

// real runs op on the client's connection and shapes the answer like the
// model's Result.
func (h *harness) real(c *client, op Op) Result {
	conn := c.conn
	acl := zk.WorldACL(zk.PermAll)
	switch op.Kind {
	case Create:
		p, err := conn.Create(op.Path, op.Data, op.Flags, acl)
		return Result{Err: err, Path: p}
	case Delete:
		return Result{Err: conn.Delete(op.Path, op.Version)}
	case SetData:
		st, err := conn.Set(op.Path, op.Data, op.Version)
		return statResult(nil, st, err)
	case GetData:
		var data []byte
		var st *zk.Stat
		var err error
		if op.Watch {
			data, st, _, err = conn.GetW(op.Path)
			if err == nil {
				c.watches[watchKey{wData, op.Path}] = true
			}
		} else {
			data, st, err = conn.Get(op.Path)
		}
		return statResult(data, st, err)
	case Exists:
		var ok bool
		var st *zk.Stat
		var err error
		if op.Watch {
			ok, st, _, err = conn.ExistsW(op.Path)
			if err == nil && ok {
				c.watches[watchKey{wData, op.Path}] = true
			} else if err == nil {
				c.watches[watchKey{wExist, op.Path}] = true
			}
		} else {
			ok, st, err = conn.Exists(op.Path)
		}
		if err == nil && !ok {
			return Result{Err: zk.ErrNoNode}
		}
		return statResult(nil, st, err)
	case Children:
		var names []string
		var st *zk.Stat
		var err error
		if op.Watch {
			names, st, _, err = conn.ChildrenW(op.Path)
			if err == nil {
				c.watches[watchKey{wChild, op.Path}] = true
			}
		} else {
			names, st, err = conn.Children(op.Path)
		}
		r := statResult(nil, st, err)
		r.Children = names
		return r
	case Sync:
		p, err := conn.Sync(op.Path)
		return Result{Err: err, Path: p}
	case Multi:
		reqs := make([]any, len(op.Ops))
		for i, o := range op.Ops {
			switch o.Kind {
			case Create:
				reqs[i] = &zk.CreateRequest{Path: o.Path, Data: o.Data, Acl: acl, Flags: o.Flags}
			case Delete:
				reqs[i] = &zk.DeleteRequest{Path: o.Path, Version: o.Version}
			case SetData:
				reqs[i] = &zk.SetDataRequest{Path: o.Path, Data: o.Data, Version: o.Version}
			case Check:
				reqs[i] = &zk.CheckVersionRequest{Path: o.Path, Version: o.Version}
			default:
				h.fail("no go-zookeeper request for %v in a multi", o.Kind)
			}
		}
		mr, err := conn.Multi(reqs...)
		r := Result{Err: err, Multi: make([]Result, len(mr))}
		for i, m := range mr {
			r.Multi[i] = Result{Err: m.Error, Path: m.String}
			if m.Stat != nil {
				r.Multi[i].Stat = *m.Stat
				r.Multi[i].Data = []byte{} // marks "has a stat"
			}
		}
		return r
	}
	h.fail("no go-zookeeper call for %v", op.Kind)
	return Result{}
}

func statResult(data []byte, st *zk.Stat, err error) Result {
	r := Result{Err: err, Data: data}
	if err == nil && st != nil {
		r.Stat = *st
	}
	return r
}

// sameErr compares errors by identity, and errors without a sentinel in
// go-zookeeper (ErrRuntimeInconsistency) by message.
func sameErr(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	return errors.Is(a, b) || errors.Is(b, a) || a.Error() == b.Error()
}

func (h *harness) compare(c *client, op Op, want, got Result) {
	h.t.Helper()
	if !sameErr(want.Err, got.Err) {
		h.fail("%s %v: error: model %v, real %v", c.name, op, want.Err, got.Err)
	}
	if want.Err != nil && op.Kind != Multi {
		return
	}
	switch op.Kind {
	case Create, Sync:
		if want.Path != got.Path {
			h.fail("%s %v: path: model %q, real %q", c.name, op, want.Path, got.Path)
		}
	case SetData, Exists:
		h.compareStat(op.String(), want.Stat, got.Stat)
	case GetData:
		if !bytes.Equal(want.Data, got.Data) {
			h.fail("%s %v: data: model %q, real %q", c.name, op, want.Data, got.Data)
		}
		h.compareStat(op.String(), want.Stat, got.Stat)
	case Children:
		w, g := slices.Sorted(slices.Values(want.Children)), slices.Sorted(slices.Values(got.Children))
		if !slices.Equal(w, g) {
			h.fail("%s %v: children: model %v, real %v", c.name, op, w, g)
		}
		h.compareStat(op.String(), want.Stat, got.Stat)
	case Multi:
		if len(want.Multi) != len(got.Multi) {
			h.fail("%s %v: %d results in the model, %d real (model %+v, real %+v)", c.name, op, len(want.Multi), len(got.Multi), want.Multi, got.Multi)
		}
		for i, w := range want.Multi {
			g := got.Multi[i]
			if !sameErr(w.Err, g.Err) || w.Path != g.Path {
				h.fail("%s %v: op %d: model (%v, %q), real (%v, %q)", c.name, op, i, w.Err, w.Path, g.Err, g.Path)
			}
			hasStat := op.Ops[i].Kind == SetData && want.Err == nil
			if hasStat != (g.Data != nil) {
				h.fail("%s %v: op %d: real stat present=%v, model %v", c.name, op, i, g.Data != nil, hasStat)
			}
			if hasStat {
				h.compareStat(fmt.Sprintf("%v op %d", op, i), w.Stat, g.Stat)
			}
		}
	}
}

// compareStat compares every stat field but the times; zxids through the
// script's offset, and owners through the clients' session ids.
func (h *harness) compareStat(what string, want, got zk.Stat) {
	h.t.Helper()
	owner := want.EphemeralOwner
	if owner != 0 {
		owner = -1 // a session the harness does not know (any real value differs)
		for _, c := range h.clients {
			if c.modelID == want.EphemeralOwner {
				owner = c.realID
			}
		}
	}
	type field struct {
		name        string
		model, real int64
	}
	fields := []field{
		{"Version", int64(want.Version), int64(got.Version)},
		{"Cversion", int64(want.Cversion), int64(got.Cversion)},
		{"Aversion", int64(want.Aversion), int64(got.Aversion)},
		{"DataLength", int64(want.DataLength), int64(got.DataLength)},
		{"NumChildren", int64(want.NumChildren), int64(got.NumChildren)},
		{"EphemeralOwner", owner, got.EphemeralOwner},
	}
	for _, z := range []field{{"Czxid", want.Czxid, got.Czxid}, {"Mzxid", want.Mzxid, got.Mzxid}, {"Pzxid", want.Pzxid, got.Pzxid}} {
		if z.model >= h.base {
			fields = append(fields, field{z.name, z.model + h.offset, z.real})
		}
	}
	for _, f := range fields {
		if f.model != f.real {
			h.fail("%s: stat %s: model %d, real %d (offsets applied)\n  model %+v\n  real  %+v", what, f.name, f.model, f.real, want, got)
		}
	}
}

// begin creates the script's root node as client c and fixes the zxid
// offset between the real server and the model.
func (h *harness) begin(c *client, root string) {
	h.t.Helper()
	h.base = 0
	h.offset = 0
	want, _ := h.model.Apply(c.modelID, Op{Kind: Create, Path: root}, h.tick())
	_, err := c.conn.Create(root, nil, 0, zk.WorldACL(zk.PermAll))
	if want.Err != nil || err != nil {
		h.fail("create %s: model %v, real %v", root, want.Err, err)
	}
	_, st, err := c.conn.Exists(root)
	if err != nil {
		h.fail("exists %s: %v", root, err)
	}
	_, mst, _ := h.model.Get(root)
	h.base = mst.Czxid
	h.offset = st.Czxid - mst.Czxid
	c.lastZxid = h.model.LastZxid()
	h.history = append(h.history, fmt.Sprintf("begin %s (zxid offset %d)", root, h.offset))
	h.syncAll()
}

// compareTree compares the whole subtree under root, read through client c
// (reads change nothing on either side).
func (h *harness) compareTree(c *client, root string) {
	h.t.Helper()
	var want []string
	for _, p := range h.model.Paths() {
		if p == root || strings.HasPrefix(p, root+"/") {
			want = append(want, p)
		}
	}
	var got []string
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		data, st, err := c.conn.Get(p)
		if errors.Is(err, zk.ErrNoNode) {
			continue // deleted meanwhile: cannot happen, the script is paused
		}
		if err != nil {
			h.fail("tree: get %s: %v", p, err)
		}
		got = append(got, p)
		mdata, mst, ok := h.model.Get(p)
		if !ok {
			h.fail("tree: %s exists only on the real server", p)
		}
		if !bytes.Equal(data, mdata) {
			h.fail("tree: %s data: model %q, real %q", p, mdata, data)
		}
		h.compareStat("tree "+p, mst, *st)
		names, _, err := c.conn.Children(p)
		if err != nil {
			h.fail("tree: children %s: %v", p, err)
		}
		for _, n := range names {
			queue = append(queue, strings.TrimSuffix(p, "/")+"/"+n)
		}
	}
	slices.Sort(got)
	if !slices.Equal(want, got) {
		h.fail("tree under %s differs\n  model: %v\n  real:  %v", root, want, got)
	}
}

func uniqueRoot(kind string) string {
	return fmt.Sprintf("/simzk-%s-%d", kind, time.Now().UnixNano())
}
