package simzk

import "github.com/go-zookeeper/zk"

// Reads against a Snapshot: the state a lagging replica serves. A snapshot
// is a flat list in depth-first order (parents before children), so a read
// is a linear scan; trees in the simulator are tiny. Reads never touch a
// session and never set a watch: the caller models sessions and the
// replica's watches.

// find returns the index of path in the snapshot, -1 if absent.
func (sn *Snapshot) find(path string) int {
	for i := range sn.nodes {
		if sn.nodes[i].n.path == path {
			return i
		}
	}
	return -1
}

// skip returns the index just after the subtree rooted at i.
func (sn *Snapshot) skip(i int) int {
	k := i + 1
	for c := 0; c < sn.nodes[i].children; c++ {
		k = sn.skip(k)
	}
	return k
}

// stat is node i's stat, as node.stat computes it for a live node.
func (sn *Snapshot) stat(i int) zk.Stat {
	return sn.nodes[i].n.statN(int32(sn.nodes[i].children))
}

// Get returns a node's data (do not modify it) and stat in the snapshot.
func (sn *Snapshot) Get(path string) (data []byte, stat zk.Stat, ok bool) {
	i := sn.find(path)
	if i < 0 {
		return nil, zk.Stat{}, false
	}
	return sn.nodes[i].n.data, sn.stat(i), true
}

// Read answers a GetData, Exists, Children or Sync request from the
// snapshot's state, as Apply would have answered it on the server the
// snapshot was taken of (Watch is ignored: no session, no watch). It
// returns zk.ErrInvalidPath for a path go-zookeeper rejects and panics on a
// write, like Apply on a request go-zookeeper cannot send.
func (sn *Snapshot) Read(op Op) Result {
	switch op.Kind {
	case GetData, Exists, Children, Sync:
	default:
		panic("simzk: Snapshot.Read of a write: " + op.Kind.String())
	}
	if err := clientCheck(&op); err != nil {
		return Result{Err: err}
	}
	if op.Kind == Sync {
		return Result{Path: op.Path}
	}
	i := sn.find(op.Path)
	if i < 0 {
		return Result{Err: zk.ErrNoNode}
	}
	switch op.Kind {
	case GetData:
		return Result{Data: sn.nodes[i].n.data, Stat: sn.stat(i)}
	case Exists:
		return Result{Stat: sn.stat(i)}
	}
	names := make([]string, 0, sn.nodes[i].children)
	for k, c := i+1, 0; c < sn.nodes[i].children; c++ {
		names = append(names, sn.nodes[k].n.name)
		k = sn.skip(k)
	}
	return Result{Children: names, Stat: sn.stat(i)}
}
