package core

import (
	"fmt"
	"time"
)

// What an observer (hanode status, the status page) makes of a group it
// read from ZooKeeper: the same decoders and the same naming of the leader
// as the core's own looks, so no reader shows a leader the core would not.

// NodeData is one znode as a reader found it: raw and untrusted.
type NodeData struct {
	// Node is the znode's name (members/ children; "" otherwise).
	Node string
	// Exists is false when the node was not there (or vanished between the
	// listing and the read).
	Exists bool
	Data   []byte
	// Ephemeral is true when the node is owned by a session.
	Ephemeral bool
}

// GroupView is one read of a group's znodes.
type GroupView struct {
	Layout  Layout
	Group   NodeData   // the group node (its record)
	Leader  NodeData   // the leader record
	Members []NodeData // every child of members/ that was read, in any order
}

// GroupStatus is one HA group as an observer reads it.
type GroupStatus struct {
	HAID    string   `json:"ha_id"`
	Role    string   `json:"role"`
	Region  string   `json:"region"`
	Members []Member `json:"members"`
	// Leader is the member holding the lease according to the leader
	// record, "" when none does (no record, released, or its holder gone).
	Leader     string `json:"leader"`
	LeaderHost string `json:"leader_host,omitempty"`
	LeaderHTTP string `json:"leader_http,omitempty"`
	// Term, Since and State come from the leader record.
	Term  int64     `json:"term"`
	Since time.Time `json:"since,omitzero"`
	State string    `json:"state,omitempty"`
	// Ignored lists znodes under members/ that are not live members.
	Ignored []Ignored `json:"ignored,omitempty"`
	// Problems lists damaged records, each naming its znode.
	Problems []string `json:"problems,omitempty"`
	// Paused is the group's maintenance mode (pause.go); nil: not paused.
	Paused *PauseInfo `json:"paused,omitempty"`
}

// recordHolder is the member node the leader record says holds the lease,
// "" when none does (no usable record, or a release). It is the one rule by
// which every reader, the core's looks included, names the group's leader
// from what it read.
func recordHolder(rec LeaderRecord, kind RecKind) string {
	if kind != RecOK || rec.State == RecReleased {
		return ""
	}
	return rec.HolderNode
}

// Describe makes a GroupStatus of v. Damaged or foreign data is reported
// in Problems and Ignored, each naming its znode.
func Describe(v GroupView) GroupStatus {
	l := v.Layout
	gs := GroupStatus{HAID: l.group, Members: []Member{}}
	if !v.Group.Exists {
		return gs // deleted meanwhile
	}
	var g groupRecord
	if err := StrictJSON(v.Group.Data, &g); err != nil || g.Role == "" {
		gs.Problems = append(gs.Problems, fmt.Sprintf("group record %s is not usable (%s); the next member to join rewrites it",
			l.GroupNode(), Quote(v.Group.Data)))
	}
	gs.Role, gs.Region, gs.Paused = g.Role, g.Region, g.Paused

	var rec LeaderRecord
	kind := RecAbsent
	if v.Leader.Exists {
		var why string
		rec, kind, why = DecodeLeader(v.Leader.Data)
		if kind == RecBad {
			gs.Problems = append(gs.Problems, fmt.Sprintf("leader record %s is not usable (%s); the next leader overwrites it",
				l.LeaderNode(), why))
		} else if rec.Term >= MaxTerm {
			gs.Problems = append(gs.Problems, fmt.Sprintf("leader record %s holds term %d, which cannot grow: members refuse "+
				"to lead; stop them all, then delete it", l.LeaderNode(), rec.Term))
		}
	}
	if kind == RecOK {
		gs.Term, gs.Since, gs.State = rec.Term, rec.Since, rec.State
	}
	holder := recordHolder(rec, kind)

	byNode := make(map[string]NodeData, len(v.Members))
	names := make([]string, 0, len(v.Members))
	for _, n := range v.Members {
		if _, ok := parseMember(n.Node); !ok {
			gs.Ignored = append(gs.Ignored, Ignored{Znode: l.MemberNode(n.Node), Reason: "not a member node name"})
			continue
		}
		byNode[n.Node] = n
		names = append(names, n.Node)
	}
	for _, m := range SortMembers(names) {
		n := byNode[m.Node]
		if !n.Exists {
			continue
		}
		d, why, ok := DecodeMember(n.Data)
		switch {
		case !n.Ephemeral:
			gs.Ignored = append(gs.Ignored, Ignored{Znode: l.MemberNode(m.Node), Reason: "persistent node"})
			continue
		case !ok:
			gs.Ignored = append(gs.Ignored, Ignored{Znode: l.MemberNode(m.Node), Reason: "not a member record (" + why + ")"})
			continue
		}
		leader := holder != "" && holder == m.Node
		gs.Members = append(gs.Members, Member{MemberInfo: d.MemberInfo, Seq: m.Seq, Leader: leader})
		if leader {
			gs.Leader, gs.LeaderHost, gs.LeaderHTTP = d.Name, d.Host, d.HTTP
		}
	}
	return gs
}
