package simzk

import (
	"slices"
	"time"

	"github.com/go-zookeeper/zk"
)

// Faults an operator or a broken disk causes, and helpers that read the
// server's state without being a client (no session, no touch, no watch).

// Wipe is a server that lost all its data: the tree is back to "/" and
// "/zookeeper", there are no sessions and no watches, and the zxid is 0.
// Session ids are not reused: a client of a lost session gets
// zk.ErrSessionExpired, as from a real server restarted empty. Expirations
// not yet reported by ExpireDue are dropped.
func (s *Server) Wipe() { s.reset() }

// Snapshot is a deep copy of a server's tree, sessions and zxid. Watches are
// not part of it: a restarted server has none.
type Snapshot struct {
	nodes    []snapNode // parents before children, children in order
	sessions []snapSession
	zxid     int64
}

type snapNode struct {
	n        node // path, data and stat fields; no links
	children int
}

type snapSession struct {
	id      int64
	timeout time.Duration
	eph     []string
	ephCap  int
}

// Zxid is the snapshot's last zxid.
func (sn *Snapshot) Zxid() int64 { return sn.zxid }

// Snapshot copies the server's tree, sessions and zxid.
func (s *Server) Snapshot() *Snapshot {
	sn := &Snapshot{zxid: s.zxid, nodes: make([]snapNode, 0, len(s.nodes))}
	var walk func(n *node)
	walk = func(n *node) {
		c := *n
		c.parent, c.children = nil, nil
		sn.nodes = append(sn.nodes, snapNode{n: c, children: len(n.children)})
		for _, ch := range n.children {
			walk(ch)
		}
	}
	walk(s.nodes["/"])
	for _, id := range s.Sessions() {
		ss := s.sessions[id]
		cs := snapSession{id: id, timeout: ss.timeout, ephCap: ss.ephCap}
		for _, n := range ss.eph {
			cs.eph = append(cs.eph, n.path)
		}
		sn.sessions = append(sn.sessions, cs)
	}
	return sn
}

// Restore rolls the server back to a snapshot, as a server restarted from an
// older snapshot: the tree, sessions and zxid are the snapshot's, there are no
// watches, and every restored session expires a timeout after now (rounded up
// to a tick) unless touched, like ZooKeeper's session tracker after a load.
// Sessions created after the snapshot are unknown. The snapshot stays usable.
// Expirations not yet reported by ExpireDue are dropped.
func (s *Server) Restore(sn *Snapshot, now time.Duration) {
	if now < s.now {
		panic("simzk: Restore with time going backwards")
	}
	s.now = now
	s.nodes = make(map[string]*node, len(sn.nodes))
	s.sessions = make(map[int64]*session, len(sn.sessions))
	s.dataW = make(map[string][]int64)
	s.childW = make(map[string][]int64)
	s.pendingExpired, s.pendingEvents = nil, nil
	s.lowExpiry = noExpiry
	s.zxid = sn.zxid
	for _, c := range sn.nodes {
		n := new(node)
		*n = c.n
		if c.children > 0 {
			n.children = make([]*node, 0, c.children)
		}
		if n.path != "/" {
			pp, _ := parentPath(n.path)
			n.parent = s.nodes[pp]
			n.parent.children = append(n.parent.children, n)
		}
		s.nodes[n.path] = n
	}
	for _, cs := range sn.sessions {
		ss := &session{id: cs.id, timeout: cs.timeout, ephCap: cs.ephCap, expiry: s.roundUp(now + cs.timeout)}
		for _, p := range cs.eph {
			ss.eph = append(ss.eph, s.nodes[p])
		}
		s.sessions[cs.id] = ss
		s.lowExpiry = min(s.lowExpiry, ss.expiry)
	}
}

// Get returns a node's data (do not modify it) and stat.
func (s *Server) Get(path string) (data []byte, stat zk.Stat, ok bool) {
	n := s.nodes[path]
	if n == nil {
		return nil, zk.Stat{}, false
	}
	return n.data, n.stat(), true
}

// Paths returns every node's path, sorted, "/" and "/zookeeper" included.
func (s *Server) Paths() []string {
	out := make([]string, 0, len(s.nodes))
	for p := range s.nodes {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Ephemerals returns the paths of the session's ephemeral nodes, sorted.
func (s *Server) Ephemerals(id int64) []string {
	ss := s.sessions[id]
	if ss == nil {
		return nil
	}
	out := make([]string, len(ss.eph))
	for i, n := range ss.eph {
		out[i] = n.path
	}
	slices.Sort(out)
	return out
}

// deleteAllBatch is ZKUtil.deleteRecursive's default batch size.
const deleteAllBatch = 1000

// DeleteAll is zkCli's "deleteall path" run by the session at now: it lists
// the subtree breadth first and deletes it leaves first, in multis of up to
// 1000 deletes (each a transaction that fires watches). It returns the events
// and the first error; a missing path gives zk.ErrNoNode and changes nothing.
func (s *Server) DeleteAll(id int64, path string, now time.Duration) ([]Event, error) {
	if !clientPathOK(path, false) {
		return nil, zk.ErrInvalidPath
	}
	res, evs := s.Apply(id, Op{Kind: Exists, Path: path}, now)
	if res.Err != nil {
		return evs, res.Err
	}
	tree := []*node{s.nodes[path]}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, tree[i].children...)
	}
	var firstErr error
	var ops []Op
	for i := len(tree) - 1; i >= 0; i-- {
		ops = append(ops, Op{Kind: Delete, Path: tree[i].path, Version: -1})
		if len(ops) == deleteAllBatch || i == 0 {
			r, e := s.Apply(id, Op{Kind: Multi, Ops: ops}, now)
			evs = append(evs, e...)
			if r.Err != nil && firstErr == nil {
				firstErr = r.Err
			}
			ops = nil
		}
	}
	return evs, firstErr
}
