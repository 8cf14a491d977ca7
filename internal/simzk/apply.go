package simzk

import (
	"fmt"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// Apply executes one request of the session at now, atomically, and returns
// the reply and the watch events it fired (for any session, the requester
// included), in delivery order. Events of expirations due at now come first.
//
// The order of checks is the real one: a path go-zookeeper rejects gives
// zk.ErrInvalidPath without reaching the server; an unknown or expired
// session gives zk.ErrSessionExpired and no effect; otherwise the request
// touches the session, and a write (Create, Delete, SetData, Check, Multi)
// takes the next zxid whether it succeeds or fails.
//
// Apply panics on a request go-zookeeper cannot send (an invalid Kind, or a
// read or a Multi inside a Multi): that is a bug in the caller.
func (s *Server) Apply(id int64, op Op, now time.Duration) (Result, []Event) {
	evs := s.advance(now)
	if err := clientCheck(&op); err != nil {
		return Result{Err: err}, evs
	}
	if err := s.touch(id, now); err != nil {
		return Result{Err: err}, evs
	}
	switch op.Kind {
	case GetData, Exists, Children, Sync:
		return s.read(id, &op), evs
	case Multi:
		return s.write(id, op.Ops, true, evs)
	default:
		ops := [1]Op{op}
		return s.write(id, ops[:], false, evs)
	}
}

// clientCheck is what go-zookeeper checks before sending a request.
func clientCheck(op *Op) error {
	switch op.Kind {
	case Create:
		if op.Flags&^(zk.FlagEphemeral|zk.FlagSequence) != 0 {
			return zk.ErrInvalidFlags // containers and TTL nodes are not modelled
		}
		if !clientPathOK(op.Path, op.Flags&zk.FlagSequence != 0) {
			return zk.ErrInvalidPath
		}
	case Delete, SetData, GetData, Exists, Children, Check, Sync:
		if !clientPathOK(op.Path, false) {
			return zk.ErrInvalidPath
		}
	case Multi:
		for i := range op.Ops {
			switch k := op.Ops[i].Kind; k {
			case Create, Delete, SetData, Check:
			default:
				panic(fmt.Sprintf("simzk: %v inside a Multi (go-zookeeper sends only Create, Delete, SetData, Check)", k))
			}
		}
	default:
		panic(fmt.Sprintf("simzk: invalid request kind %v", op.Kind))
	}
	return nil
}

func (s *Server) read(id int64, op *Op) Result {
	n := s.nodes[op.Path]
	switch op.Kind {
	case GetData:
		if n == nil {
			return Result{Err: zk.ErrNoNode}
		}
		if op.Watch {
			addWatch(s.dataW, op.Path, id)
		}
		return Result{Data: n.data, Stat: n.stat()}
	case Exists:
		if op.Watch { // registered whether or not the node exists
			addWatch(s.dataW, op.Path, id)
		}
		if n == nil {
			return Result{Err: zk.ErrNoNode}
		}
		return Result{Stat: n.stat()}
	case Children:
		if n == nil {
			return Result{Err: zk.ErrNoNode}
		}
		if op.Watch {
			addWatch(s.childW, op.Path, id)
		}
		names := make([]string, len(n.children))
		for i, c := range n.children {
			names[i] = c.name
		}
		return Result{Children: names, Stat: n.stat()}
	default: // Sync
		return Result{Path: op.Path}
	}
}

// rec is the pending state of one path while a write is prepared, like
// ZooKeeper's ChangeRecord: later ops of a multi see earlier ops' effects.
type rec struct {
	path    string
	exists  bool
	version int32
	created int32
	nchild  int32
	owner   int64
}

// lookup returns the index in s.recs of path's pending record, creating it
// from the tree.
func (s *Server) lookup(path string) int {
	for i := range s.recs {
		if s.recs[i].path == path {
			return i
		}
	}
	r := rec{path: path}
	if n := s.nodes[path]; n != nil {
		r.exists = true
		r.version = n.version
		r.created = n.created
		r.nchild = int32(len(n.children))
		r.owner = n.owner
	}
	s.recs = append(s.recs, r)
	return len(s.recs) - 1
}

// prep checks one write against the pending state, as ZooKeeper's
// PrepRequestProcessor does, updates the pending state and returns the path
// the op acts on (the created path for a sequential Create).
func (s *Server) prep(op *Op, id int64) (string, error) {
	path := op.Path
	switch op.Kind {
	case Create:
		if op.Flags&^(zk.FlagEphemeral|zk.FlagSequence) != 0 {
			return "", zk.ErrBadArguments
		}
		slash := strings.LastIndexByte(path, '/')
		if slash < 0 || hasNUL(path) {
			return "", zk.ErrBadArguments
		}
		pp := path[:slash]
		if pp == "" {
			pp = "/"
		}
		pi := s.lookup(pp)
		if !s.recs[pi].exists {
			return "", zk.ErrNoNode
		}
		if op.Flags&zk.FlagSequence != 0 {
			path += sequenceSuffix(s.recs[pi].created)
		}
		if !serverPathOK(path) {
			return "", zk.ErrBadArguments
		}
		ni := s.lookup(path)
		if s.recs[ni].exists {
			return "", zk.ErrNodeExists
		}
		if s.recs[pi].owner != 0 {
			return "", zk.ErrNoChildrenForEphemerals
		}
		s.recs[pi].created++
		s.recs[pi].nchild++
		var owner int64
		if op.Flags&zk.FlagEphemeral != 0 {
			owner = id
		}
		s.recs[ni] = rec{path: path, exists: true, owner: owner}
		return path, nil
	case Delete:
		slash := strings.LastIndexByte(path, '/')
		if slash < 0 || hasNUL(path) || isSpecialPath(path) {
			return "", zk.ErrBadArguments
		}
		pp := path[:slash]
		if pp == "" {
			pp = "/"
		}
		pi := s.lookup(pp)
		if !s.recs[pi].exists {
			return "", zk.ErrNoNode
		}
		ni := s.lookup(path)
		r := &s.recs[ni]
		if !r.exists {
			return "", zk.ErrNoNode
		}
		if op.Version != -1 && op.Version != r.version {
			return "", zk.ErrBadVersion
		}
		if r.nchild > 0 {
			return "", zk.ErrNotEmpty
		}
		r.exists = false
		s.recs[pi].nchild--
		return path, nil
	case SetData, Check:
		if !serverPathOK(path) {
			return "", zk.ErrBadArguments
		}
		r := &s.recs[s.lookup(path)]
		if !r.exists {
			return "", zk.ErrNoNode
		}
		if op.Version != -1 && op.Version != r.version {
			return "", zk.ErrBadVersion
		}
		if op.Kind == SetData {
			r.version++
		}
		return path, nil
	}
	panic(fmt.Sprintf("simzk: %v is not a write", op.Kind))
}

// write runs ops as one transaction with the next zxid: all are checked
// first, and only if all pass are they applied, in order.
func (s *Server) write(id int64, ops []Op, isMulti bool, evs []Event) (Result, []Event) {
	s.zxid++
	zxid := s.zxid
	s.recs, s.paths = s.recs[:0], s.paths[:0]
	for i := range ops {
		p, err := s.prep(&ops[i], id)
		if err != nil {
			if !isMulti {
				return Result{Err: err}, evs
			}
			res := make([]Result, len(ops))
			res[i].Err = err
			for j := i + 1; j < len(ops); j++ {
				res[j].Err = ErrRuntimeInconsistency
			}
			return Result{Err: err, Multi: res}, evs
		}
		s.paths = append(s.paths, p)
	}
	var single Result
	var res []Result
	if isMulti {
		res = make([]Result, len(ops))
	}
	for i := range ops {
		op, p := &ops[i], s.paths[i]
		r := &single
		if isMulti {
			r = &res[i]
		}
		switch op.Kind {
		case Create:
			pp, _ := parentPath(p)
			var owner int64
			if op.Flags&zk.FlagEphemeral != 0 {
				owner = id
			}
			evs = s.createNode(s.nodes[pp], p, op.Data, owner, zxid, evs)
			r.Path = p
		case Delete:
			evs = s.deleteNode(s.nodes[p], zxid, evs)
		case SetData:
			n := s.nodes[p]
			evs = s.setData(n, op.Data, zxid, evs)
			r.Stat = n.stat()
		}
	}
	if isMulti {
		return Result{Multi: res}, evs
	}
	return single, evs
}
