package ha

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"go.uber.org/zap"

	"github.com/hanode/hanode/ha/internal/core"
)

// The guard's release (ha/doc.go, "Release by the guard"): a coordinator
// process that provably exited — SIGKILL, the OOM killer, a Go panic — had a
// lease the group would otherwise wait out (W after its last extension),
// although the one process that could act on it is gone. Its duty guard, a
// process of its own that saw the exit through the kernel (a pidfd) and has
// stopped the duty and confirmed it gone, writes the release instead, with
// the ticket the coordinator sent it at its last extension: the same
// versioned multi a graceful release uses, checking the member node and the
// leader record at the versions the holder's last writes left. If either
// changed — an extension that was on its way when the process died landed
// after all, or another member claimed — the write fails and the group
// falls back to the lease: nothing is assumed.

// ErrTicketStale is a guard's release refused by ZooKeeper: the holder's
// member node or the leader record changed since the ticket was written
// (the group waits the lease out).
var ErrTicketStale = errors.New("ha: the release ticket is stale")

// releaseTicket is a GuardTicket as the coordinator hands it to its guard:
// everything the guard needs to write the release alone.
type releaseTicket struct {
	Servers []string      `json:"servers"`
	Timeout time.Duration `json:"timeout"`
	// Auth are the digest credentials ("user:password", the password
	// derived from the shared secret, never the secret itself).
	Auth  []string  `json:"auth,omitempty"`
	Group string    `json:"group"`
	Name  string    `json:"name"`
	Term  int64     `json:"term"`
	Ops   []core.Op `json:"ops"`
}

// encodeTicket is the ticket the guard gets for t, nil for none.
func (e *Election) encodeTicket(t *core.GuardTicket) []byte {
	if t == nil {
		return nil
	}
	rt := releaseTicket{Servers: e.s.cfg.Servers, Timeout: e.s.cfg.Timeout, Group: e.cfg.Group,
		Name: e.s.cfg.Name, Term: t.Term, Ops: t.Ops}
	for _, c := range e.s.cfg.Access.credentials() {
		rt.Auth = append(rt.Auth, string(c))
	}
	b, err := json.Marshal(rt)
	if err != nil {
		return nil
	}
	return b
}

// ReleaseAfterExit writes the release a guard holds a ticket for, once its
// coordinator has provably exited and the duty is stopped: the caller
// promises both, and gives ctx the lease's end as its deadline (the release
// is never sent after it, nor on a second connection). tlsCfg dials
// ZooKeeper's secure port (nil: plain TCP). It returns ErrTicketStale when ZooKeeper refused the versions (the holder
// extended after its ticket, or another member claimed): the group then
// waits the lease out, as after any crash.
func ReleaseAfterExit(ctx context.Context, ticket []byte, tlsCfg *tls.Config, log *zap.Logger) (term int64, err error) {
	var rt releaseTicket
	if err := json.Unmarshal(ticket, &rt); err != nil || len(rt.Ops) != 2 || len(rt.Servers) == 0 {
		return 0, fmt.Errorf("ha: a release ticket that does not decode: %v", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	// One connection only, once it has a session: go-zookeeper sends a
	// request queued when its connection broke on the next one, and that
	// one may reach a ZooKeeper restored to before another member's claim.
	// A release is sent only on the connection it was made for.
	d := &negotiatedDialer{tls: tlsCfg, log: log}
	var session atomic.Bool
	dial := func(network, address string, timeout time.Duration) (net.Conn, error) {
		if session.Load() {
			return nil, errors.New("ha: a guard's release has one connection only")
		}
		return d.dial(network, address, timeout)
	}
	conn, events, err := zk.Connect(rt.Servers, rt.Timeout, zk.WithLogger(zkLogger(log)), zk.WithDialer(dial))
	if err != nil {
		return rt.Term, fmt.Errorf("ha: connect: %w", err)
	}
	defer conn.Close()
	for !session.Load() {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				session.Store(true)
			}
		case <-ctx.Done():
			return rt.Term, fmt.Errorf("ha: no ZooKeeper session with %v before the lease ended: %w", rt.Servers, ctx.Err())
		}
	}
	for _, c := range rt.Auth {
		if err := conn.AddAuth("digest", []byte(c)); err != nil {
			return rt.Term, fmt.Errorf("ha: authenticate: %w", err)
		}
	}
	// Never sent after the lease (ctx's deadline): past it another member
	// may have claimed, and ZooKeeper may since have lost that claim.
	if err := ctx.Err(); err != nil {
		return rt.Term, fmt.Errorf("ha: release of term %d not sent: %w", rt.Term, err)
	}
	r, _ := do(conn, nil, core.Op{Kind: core.OpMulti, Ops: rt.Ops})
	switch r.Err {
	case core.ErrNone:
		return rt.Term, nil
	case core.ErrBadVersion, core.ErrNoNode:
		return rt.Term, fmt.Errorf("%w: %s", ErrTicketStale, r.Detail)
	}
	return rt.Term, fmt.Errorf("ha: release of term %d: %s", rt.Term, r.Detail)
}
