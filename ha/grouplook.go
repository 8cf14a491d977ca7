package ha

import (
	"fmt"

	"github.com/hanode/hanode/ha/internal/core"
)

// ReadGroup reads this election's group from ZooKeeper over its session,
// as ReadCluster reads every group: the members, and the leader the leader
// record names ("" when none holds the lease). It is for a node outside the
// line (unhealthy), whose election neither lists the members nor reads the
// record: what it last saw there goes stale. It makes 3 + (members)
// requests and waits for their answers; never call it where an answer must
// not wait for ZooKeeper. Damaged data is reported in the status's
// Problems, never an error; the error is for a read that failed (no
// session, for one).
func (e *Election) ReadGroup() (GroupStatus, error) {
	l := core.NewLayout(e.s.cfg.Root, e.cfg.Group)
	v := core.GroupView{Layout: l}
	get := func(p string) (core.NodeData, error) {
		r, _, _ := e.s.do(core.Op{Kind: core.OpGet, Path: p})
		switch r.Err {
		case core.ErrNone:
			return core.NodeData{Exists: true, Data: r.Data, Ephemeral: r.Stat.EphemeralOwner != 0}, nil
		case core.ErrNoNode:
			return core.NodeData{}, nil
		}
		return core.NodeData{}, fmt.Errorf("ha: read %s: %s", p, r.Detail)
	}
	var err error
	if v.Group, err = get(l.GroupNode()); err != nil || !v.Group.Exists {
		return core.Describe(v), err
	}
	if v.Leader, err = get(l.LeaderNode()); err != nil {
		return GroupStatus{}, err
	}
	r, _, _ := e.s.do(core.Op{Kind: core.OpChildren, Path: l.MembersDir()})
	if r.Err != core.ErrNone && r.Err != core.ErrNoNode {
		return GroupStatus{}, fmt.Errorf("ha: list %s: %s", l.MembersDir(), r.Detail)
	}
	for _, name := range r.Children {
		n := core.NodeData{Node: name}
		if core.IsMemberNode(name) {
			if n, err = get(l.MemberNode(name)); err != nil {
				return GroupStatus{}, err
			}
			n.Node = name
		}
		v.Members = append(v.Members, n)
	}
	return core.Describe(v), nil
}
