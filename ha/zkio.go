package ha

import (
	"errors"

	"github.com/go-zookeeper/zk"
	"github.com/hanode/hanode/ha/internal/core"
)

// The core's Ops carried to go-zookeeper. These are free functions over the
// narrow zkConn interface: they touch no election state, and the simulator
// maps its own results with the same errKind and statOf.

// zkConn is the part of *zk.Conn the election uses.
type zkConn interface {
	Create(path string, data []byte, flags int32, acl []zk.ACL) (string, error)
	Delete(path string, version int32) error
	Set(path string, data []byte, version int32) (*zk.Stat, error)
	Get(path string) ([]byte, *zk.Stat, error)
	GetW(path string) ([]byte, *zk.Stat, <-chan zk.Event, error)
	Children(path string) ([]string, *zk.Stat, error)
	Multi(ops ...any) ([]zk.MultiResponse, error)
}

var _ zkConn = (*zk.Conn)(nil)

// do performs op on conn with acl for creates. A watch set by the request
// comes back as a channel (nil when none was set).
func do(conn zkConn, acl []zk.ACL, op core.Op) (core.Result, <-chan zk.Event) {
	var (
		r   core.Result
		st  *zk.Stat
		err error
		ch  <-chan zk.Event
	)
	switch op.Kind {
	case core.OpCreate:
		r.Path, err = conn.Create(op.Path, op.Data, createFlags(op), acl)
	case core.OpDelete:
		err = conn.Delete(op.Path, op.Version)
	case core.OpSet:
		st, err = conn.Set(op.Path, op.Data, op.Version)
	case core.OpGet:
		if op.Watch {
			r.Data, st, ch, err = conn.GetW(op.Path)
		} else {
			r.Data, st, err = conn.Get(op.Path)
		}
	case core.OpChildren:
		r.Children, st, err = conn.Children(op.Path)
	case core.OpMulti:
		ops := make([]any, len(op.Ops))
		for i, o := range op.Ops {
			ops[i] = multiOp(o, acl)
		}
		var mr []zk.MultiResponse
		mr, err = conn.Multi(ops...)
		r.Multi = make([]core.Result, len(mr))
		for i, m := range mr {
			r.Multi[i] = core.Result{Err: errKind(m.Error), Path: m.String, Stat: statOf(m.Stat)}
			if m.Error != nil {
				r.Multi[i].Detail = m.Error.Error()
			}
		}
		if err == nil && len(mr) != len(op.Ops) {
			err = errors.New("zk: multi answered with the wrong number of results")
		}
	default:
		err = errors.New("ha: unknown op " + op.Kind.String())
	}
	r.Stat = statOf(st)
	r.Err = errKind(err)
	if err != nil {
		r.Detail = err.Error()
	}
	return r, ch
}

func createFlags(op core.Op) int32 {
	var f int32
	if op.Ephemeral {
		f |= zk.FlagEphemeral
	}
	if op.Sequence {
		f |= zk.FlagSequence
	}
	return f
}

func multiOp(o core.Op, acl []zk.ACL) any {
	switch o.Kind {
	case core.OpCreate:
		return &zk.CreateRequest{Path: o.Path, Data: o.Data, Acl: acl, Flags: createFlags(o)}
	case core.OpDelete:
		return &zk.DeleteRequest{Path: o.Path, Version: o.Version}
	case core.OpSet:
		return &zk.SetDataRequest{Path: o.Path, Data: o.Data, Version: o.Version}
	case core.OpCheck:
		return &zk.CheckVersionRequest{Path: o.Path, Version: o.Version}
	}
	panic("ha: op " + o.Kind.String() + " cannot be part of a multi")
}

// errKind classifies a go-zookeeper error for the core.
func errKind(err error) core.ErrKind {
	switch {
	case err == nil:
		return core.ErrNone
	case errors.Is(err, zk.ErrNoNode):
		return core.ErrNoNode
	case errors.Is(err, zk.ErrNodeExists):
		return core.ErrNodeExists
	case errors.Is(err, zk.ErrBadVersion):
		return core.ErrBadVersion
	case errors.Is(err, zk.ErrNotEmpty):
		return core.ErrNotEmpty
	case errors.Is(err, zk.ErrConnectionClosed):
		// Sent (or queued) and no answer: it may have been applied.
		return core.ErrLost
	case errors.Is(err, zk.ErrNoServer), errors.Is(err, zk.ErrClosing), errors.Is(err, zk.ErrSessionExpired),
		errors.Is(err, errNoSession):
		return core.ErrNotSent
	}
	return core.ErrOther
}

// errNoSession refuses a request made while the client has no session:
// requests must fail fast, not wait in the client's queue (FACTS.md).
var errNoSession = errors.New("ha: no ZooKeeper session")

func statOf(st *zk.Stat) core.Stat {
	if st == nil {
		return core.Stat{}
	}
	return core.Stat{Version: st.Version, Cversion: st.Cversion, EphemeralOwner: st.EphemeralOwner, Czxid: st.Czxid, Mzxid: st.Mzxid}
}

// watchKind classifies a watch event.
func watchKind(ev zk.Event) core.WatchKind {
	switch ev.Type {
	case zk.EventNodeDataChanged:
		return core.WatchChanged
	case zk.EventNodeDeleted:
		return core.WatchDeleted
	case zk.EventNodeChildrenChanged:
		return core.WatchChildren
	case zk.EventNodeCreated:
		return core.WatchCreated
	}
	return core.WatchLost
}
