package ha

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"
)

// GroupStatus is one HA group as read from ZooKeeper by an observer.
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
}

// Dial opens a ZooKeeper session for tools (not for election) and waits,
// bounded by ctx, until the session is established.
func Dial(ctx context.Context, servers []string, sessionTimeout time.Duration, log *zap.Logger) (*zk.Conn, error) {
	if log == nil {
		log = zap.NewNop()
	}
	conn, events, err := zk.Connect(servers, sessionTimeout, zk.WithLogger(zap.NewStdLog(log.Named("zk"))))
	if err != nil {
		return nil, fmt.Errorf("ha: connect: %w", err)
	}
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return conn, nil
			}
		case <-ctx.Done():
			conn.Close()
			return nil, fmt.Errorf("ha: no ZooKeeper session with %v: %w", servers, ctx.Err())
		}
	}
}

// ReadCluster reads every HA group under root. Damaged or foreign data is
// reported in the group's Problems and Ignored, never an error.
func ReadCluster(conn *zk.Conn, root string) ([]GroupStatus, error) {
	l := layout{root: root}
	ids, _, err := conn.Children(l.groupsDir())
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ha: list groups: %w", err)
	}
	sort.Strings(ids)
	out := make([]GroupStatus, 0, len(ids))
	for _, id := range ids {
		l.group = id
		gs, err := readGroup(conn, l)
		if err != nil {
			return nil, err
		}
		out = append(out, gs)
	}
	return out, nil
}

func readGroup(conn *zk.Conn, l layout) (GroupStatus, error) {
	gs := GroupStatus{HAID: l.group, Members: []Member{}}
	data, _, err := conn.Get(l.groupNode())
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return gs, nil // deleted meanwhile
	case err != nil:
		return gs, fmt.Errorf("ha: read %s: %w", l.groupNode(), err)
	}
	var g groupRecord
	if err := strictJSON(data, &g); err != nil || g.Role == "" {
		gs.Problems = append(gs.Problems, fmt.Sprintf("group record %s is not usable (%s); the next member to join rewrites it",
			l.groupNode(), quote(data)))
	}
	gs.Role, gs.Region = g.Role, g.Region

	data, _, err = conn.Get(l.leaderNode())
	var rec leaderRecord
	kind := recAbsent
	if err == nil {
		var why string
		rec, kind, why = decodeLeader(data)
		if kind == recBad {
			gs.Problems = append(gs.Problems, fmt.Sprintf("leader record %s is not usable (%s); the next leader overwrites it",
				l.leaderNode(), why))
		} else if rec.Term >= MaxTerm {
			gs.Problems = append(gs.Problems, fmt.Sprintf("leader record %s holds term %d, which cannot grow: members refuse "+
				"to lead; stop them all, then delete it", l.leaderNode(), rec.Term))
		}
	} else if !errors.Is(err, zk.ErrNoNode) {
		return gs, fmt.Errorf("ha: read %s: %w", l.leaderNode(), err)
	}
	if kind == recOK {
		gs.Term, gs.Since, gs.State = rec.Term, rec.Since, rec.State
	}

	children, _, err := conn.Children(l.membersDir())
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return gs, fmt.Errorf("ha: list %s: %w", l.membersDir(), err)
	}
	for _, name := range children {
		if _, ok := parseMember(name); !ok {
			gs.Ignored = append(gs.Ignored, Ignored{Znode: l.member(name), Reason: "not a member node name"})
		}
	}
	for _, m := range sortMembers(children) {
		data, st, err := conn.Get(l.member(m.Name))
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return gs, fmt.Errorf("ha: read %s: %w", l.member(m.Name), err)
		}
		d, why, ok := decodeMember(data)
		switch {
		case st.EphemeralOwner == 0:
			gs.Ignored = append(gs.Ignored, Ignored{Znode: l.member(m.Name), Reason: "persistent node"})
			continue
		case !ok:
			gs.Ignored = append(gs.Ignored, Ignored{Znode: l.member(m.Name), Reason: "not a member record (" + why + ")"})
			continue
		}
		leader := kind == recOK && rec.Holder == m.Name && rec.State != recReleased
		gs.Members = append(gs.Members, Member{MemberInfo: d.MemberInfo, Seq: m.Seq, Leader: leader})
		if leader {
			gs.Leader, gs.LeaderHost, gs.LeaderHTTP = d.Name, d.Host, d.HTTP
		}
	}
	return gs, nil
}
