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
	// Leader is the lowest live member, "" when the group has none.
	Leader     string `json:"leader"`
	LeaderHost string `json:"leader_host,omitempty"`
	LeaderHTTP string `json:"leader_http,omitempty"`
	// Term and Since come from the leader record; they describe Leader only
	// when Committed is true (a new leader commits them before it acts).
	Term      int64     `json:"term"`
	Since     time.Time `json:"since,omitzero"`
	Committed bool      `json:"committed"`
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

// ReadCluster reads every HA group under root.
func ReadCluster(conn *zk.Conn, root string) ([]GroupStatus, error) {
	s, l := newStore(conn), layout{root: root}
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
		var g groupRecord
		if _, err := s.getJSON(l.groupNode(), &g); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return nil, err
		}
		v, _, err := readView(s, l, nil)
		if errors.Is(err, zk.ErrNoNode) {
			v, err = view{}, nil // a group node without members yet
		}
		if err != nil {
			return nil, err
		}
		gs := GroupStatus{HAID: id, Role: g.Role, Region: g.Region, Members: v.members, Term: v.leader.Term, Since: v.leader.Since}
		if gs.Members == nil {
			gs.Members = []Member{}
		}
		if len(v.members) > 0 {
			lead := v.members[0]
			gs.Leader, gs.LeaderHost, gs.LeaderHTTP = lead.Name, lead.Host, lead.HTTP
			gs.Committed = v.leader.Name == lead.Name
		}
		out = append(out, gs)
	}
	return out, nil
}
