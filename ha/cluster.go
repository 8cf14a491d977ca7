package ha

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sort"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hanode/hanode/ha/internal/core"
	"go.uber.org/zap"
)

// GroupStatus is one HA group as read from ZooKeeper by an observer
// (ReadCluster).
type GroupStatus = core.GroupStatus

// Dial opens a ZooKeeper session for tools (not for election) and waits,
// bounded by ctx, until the session is established.
func Dial(ctx context.Context, servers []string, sessionTimeout time.Duration, log *zap.Logger) (*zk.Conn, error) {
	return DialAccess(ctx, servers, sessionTimeout, log, Access{})
}

// Authenticate adds a's credentials to conn (a tool's own client: a
// Session does this itself).
func Authenticate(conn *zk.Conn, a Access) error {
	for _, c := range a.credentials() {
		if err := conn.AddAuth("digest", c); err != nil {
			return fmt.Errorf("ha: authenticate: %w", err)
		}
	}
	return nil
}

// TLSClient runs the client side of a TLS handshake with address over c
// (a tool's own dialer: a Session's dialer does this itself).
func TLSClient(c net.Conn, cfg *tls.Config, address string, timeout time.Duration) (net.Conn, error) {
	return tlsHandshake(c, cfg, address, timeout)
}

// DialAccess is Dial with access: over TLS if a.TLS is set, and
// authenticated with a.Secrets' credentials before it returns (a tool
// only reads, so nothing is converted or proved).
func DialAccess(ctx context.Context, servers []string, sessionTimeout time.Duration, log *zap.Logger, a Access) (*zk.Conn, error) {
	if log == nil {
		log = zap.NewNop()
	}
	d := &negotiatedDialer{tls: a.TLS, log: log}
	conn, events, err := zk.Connect(servers, sessionTimeout, zk.WithLogger(zkLogger(log)), zk.WithDialer(d.dial))
	if err != nil {
		return nil, fmt.Errorf("ha: connect: %w", err)
	}
	for {
		select {
		case ev := <-events:
			if ev.State != zk.StateHasSession {
				continue
			}
			if err := Authenticate(conn, a); err != nil {
				conn.Close()
				return nil, err
			}
			return conn, nil
		case <-ctx.Done():
			conn.Close()
			if last := d.tlsLastErr.Load(); last != nil {
				return nil, fmt.Errorf("ha: no ZooKeeper session with %v (%s): %w", servers, *last, ctx.Err())
			}
			return nil, fmt.Errorf("ha: no ZooKeeper session with %v: %w", servers, ctx.Err())
		}
	}
}

// ReadCluster reads every HA group under root. Damaged or foreign data is
// reported in the group's Problems and Ignored, never an error.
func ReadCluster(conn *zk.Conn, root string) ([]GroupStatus, error) {
	l := core.NewLayout(root, "")
	ids, _, err := conn.Children(l.GroupsDir())
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ha: list groups: %w", err)
	}
	sort.Strings(ids)
	out := make([]GroupStatus, 0, len(ids))
	for _, id := range ids {
		v, err := readGroup(conn, l.WithGroup(id))
		if err != nil {
			return nil, err
		}
		out = append(out, core.Describe(v))
	}
	return out, nil
}

// readGroup reads a group's znodes as they are; core.Describe judges them.
func readGroup(conn *zk.Conn, l core.Layout) (core.GroupView, error) {
	v := core.GroupView{Layout: l}
	get := func(p string) (core.NodeData, error) {
		data, st, err := conn.Get(p)
		if errors.Is(err, zk.ErrNoNode) {
			return core.NodeData{}, nil
		}
		if err != nil {
			return core.NodeData{}, fmt.Errorf("ha: read %s: %w", p, err)
		}
		return core.NodeData{Exists: true, Data: data, Ephemeral: st.EphemeralOwner != 0}, nil
	}
	var err error
	if v.Group, err = get(l.GroupNode()); err != nil || !v.Group.Exists {
		return v, err
	}
	if v.Leader, err = get(l.LeaderNode()); err != nil {
		return v, err
	}
	children, _, err := conn.Children(l.MembersDir())
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return v, fmt.Errorf("ha: list %s: %w", l.MembersDir(), err)
	}
	for _, name := range children {
		n := core.NodeData{Node: name}
		if core.IsMemberNode(name) {
			if n, err = get(l.MemberNode(name)); err != nil {
				return v, err
			}
			n.Node = name
		}
		v.Members = append(v.Members, n)
	}
	return v, nil
}
