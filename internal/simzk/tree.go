package simzk

import (
	"slices"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/go-zookeeper/zk"
)

// node is one znode.
type node struct {
	path     string
	name     string // last path component
	parent   *node  // nil for "/"
	children []*node
	data     []byte // never modified in place: SetData replaces it

	czxid, mzxid, pzxid int64
	ctime, mtime        int64 // ms
	version             int32
	aversion            int32
	// created counts the children ever created under the node: ZooKeeper's
	// stored cversion, the source of sequence numbers. The reported Cversion
	// is 2*created - len(children).
	created int32
	owner   int64  // ephemeral owner session, 0 for a persistent node
	ephSeq  uint64 // position in the owner's ephemeral set
}

func (n *node) stat() zk.Stat { return n.statN(int32(len(n.children))) }

// statN is the node's stat with nc children.
func (n *node) statN(nc int32) zk.Stat {
	return zk.Stat{
		Czxid:          n.czxid,
		Mzxid:          n.mzxid,
		Ctime:          n.ctime,
		Mtime:          n.mtime,
		Version:        n.version,
		Cversion:       2*n.created - nc,
		Aversion:       n.aversion,
		EphemeralOwner: n.owner,
		DataLength:     int32(len(n.data)),
		NumChildren:    nc,
		Pzxid:          n.pzxid,
	}
}

func millis(t time.Duration) int64 { return int64(t / time.Millisecond) }

// parentPath returns the parent of a path that starts with '/' and is not
// "/" itself ("/" for a top-level node), and the node's name.
func parentPath(path string) (parent, name string) {
	i := strings.LastIndexByte(path, '/')
	if i <= 0 {
		return "/", path[i+1:]
	}
	return path[:i], path[i+1:]
}

// createNode adds a node under parent at zxid and fires the watches:
// NodeCreated on the node, then NodeChildrenChanged on the parent.
func (s *Server) createNode(parent *node, path string, data []byte, owner int64, zxid int64, evs []Event) []Event {
	t := millis(s.now)
	n := &node{
		path: path, parent: parent,
		czxid: zxid, mzxid: zxid, pzxid: zxid,
		ctime: t, mtime: t,
		owner: owner,
	}
	_, n.name = parentPath(path)
	if len(data) > 0 {
		n.data = append([]byte(nil), data...)
	}
	parent.children = append(parent.children, n)
	parent.created++
	parent.pzxid = zxid
	s.nodes[path] = n
	if owner != 0 {
		if ss := s.sessions[owner]; ss != nil {
			ss.addEphemeral(n, &s.ephSeq)
		}
	}
	evs = s.trigger(s.dataW, path, zk.EventNodeCreated, evs, nil)
	return s.trigger(s.childW, parent.path, zk.EventNodeChildrenChanged, evs, nil)
}

// deleteNode removes a childless node at zxid and fires the watches:
// NodeDeleted on the node (data and child watchers, each session once), then
// NodeChildrenChanged on the parent.
func (s *Server) deleteNode(n *node, zxid int64, evs []Event) []Event {
	p := n.parent
	if i := slices.Index(p.children, n); i >= 0 {
		p.children = slices.Delete(p.children, i, i+1)
	}
	if zxid > p.pzxid {
		p.pzxid = zxid
	}
	delete(s.nodes, n.path)
	if n.owner != 0 {
		if ss := s.sessions[n.owner]; ss != nil {
			ss.removeEphemeral(n)
		}
	}
	start := len(evs)
	evs = s.trigger(s.dataW, n.path, zk.EventNodeDeleted, evs, nil)
	evs = s.trigger(s.childW, n.path, zk.EventNodeDeleted, evs, evs[start:])
	return s.trigger(s.childW, p.path, zk.EventNodeChildrenChanged, evs, nil)
}

// setData replaces a node's data at zxid and fires its data watches.
func (s *Server) setData(n *node, data []byte, zxid int64, evs []Event) []Event {
	if len(data) > 0 {
		n.data = append([]byte(nil), data...)
	} else {
		n.data = nil
	}
	n.version++
	n.mzxid = zxid
	n.mtime = millis(s.now)
	return s.trigger(s.dataW, n.path, zk.EventNodeDataChanged, evs, nil)
}

// ---- ephemeral sets in ZooKeeper's order ----

func (ss *session) addEphemeral(n *node, seq *uint64) {
	*seq++
	n.ephSeq = *seq
	ss.eph = append(ss.eph, n)
	if ss.ephCap == 0 {
		ss.ephCap = 16 // java.util.HashMap's default table
	}
	if len(ss.eph) > ss.ephCap*3/4 {
		ss.ephCap *= 2
	}
}

func (ss *session) removeEphemeral(n *node) {
	if i := slices.Index(ss.eph, n); i >= 0 {
		ss.eph = slices.Delete(ss.eph, i, i+1)
	}
}

// closeOrder returns the session's ephemerals in the order ZooKeeper deletes
// them on close: the iteration order of a clone of the session's
// HashSet<String> of paths (DataTree.getEphemerals). The clone's table is
// sized for the current count; within one of its buckets the entries keep the
// original set's iteration order, which is by the original's (never
// shrinking) bucket, then by insertion.
func closeOrder(ss *session) []*node {
	if len(ss.eph) == 0 {
		return nil
	}
	cloneCap := javaTableSizeFor(int(float32(len(ss.eph))/0.75 + 1))
	type keyed struct {
		clone, orig uint32
		seq         uint64
		n           *node
	}
	ks := make([]keyed, len(ss.eph))
	for i, n := range ss.eph {
		h := javaSpreadHash(n.path)
		ks[i] = keyed{h & uint32(cloneCap-1), h & uint32(ss.ephCap-1), n.ephSeq, n}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		switch {
		case a.clone != b.clone:
			return int(a.clone) - int(b.clone)
		case a.orig != b.orig:
			return int(a.orig) - int(b.orig)
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	out := make([]*node, len(ks))
	for i, k := range ks {
		out[i] = k.n
	}
	return out
}

// javaSpreadHash is java.util.HashMap.hash(key) for a String key:
// String.hashCode over UTF-16 code units, then h ^ (h >>> 16).
func javaSpreadHash(str string) uint32 {
	var h uint32
	for _, r := range str {
		if r < 0x10000 {
			h = 31*h + uint32(r)
			continue
		}
		r1, r2 := utf16.EncodeRune(r)
		h = 31*h + uint32(r1)
		h = 31*h + uint32(r2)
	}
	return h ^ (h >> 16)
}

// javaTableSizeFor is java.util.HashMap.tableSizeFor: the smallest power of
// two >= c (at least 1).
func javaTableSizeFor(c int) int {
	n := 1
	for n < c {
		n <<= 1
	}
	return n
}
