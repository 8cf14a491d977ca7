package ha

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/hanode/hanode/ha/internal/core"
)

// SwitchoverInfo is a switchover asked for: its target, who asked and when.
type SwitchoverInfo = core.SwitchoverInfo

// ErrSwitchoverRefused: the switchover cannot be made; the error says why
// (no such member, it may not lead, it already leads, nobody else may).
var ErrSwitchoverRefused = errors.New("ha: switchover refused")

// ErrSwitchoverTargetGone: the switchover was asked, but its target left
// the group (died, or became unhealthy) before it led, and another member
// leads now; the request lapses by itself.
var ErrSwitchoverTargetGone = errors.New("ha: switchover target left the group before it led")

// Switchover hands the group's leadership to the member named to, or to the
// next member that may lead when to is "": a planned handover without
// overlap. It records the request in the group record; the members ahead
// of the target step behind it, the leader hands over as Resign does, and
// the target claims the released lease. It returns once this node sees the
// target lead, with its name; ctx bounds the wait (the request then
// stands until it is older than two leases and W, and is ignored). When
// another member leads first and the target is no longer in the line, it
// returns ErrSwitchoverTargetGone at once, naming that leader.
func (e *Election) Switchover(ctx context.Context, to string) (string, error) {
	st := e.State()
	if st.Leader == "" {
		return "", fmt.Errorf("%w: the group has no leader to hand over from", ErrSwitchoverRefused)
	}
	if st.Paused != nil {
		return "", fmt.Errorf("%w: the group is paused (hanode resume first)", ErrSwitchoverRefused)
	}
	// The members as ZooKeeper has them now: a leader lists them only
	// every few leases, and members that stepped back have new nodes.
	gs, err := e.ReadGroup()
	if err != nil {
		return "", err
	}
	target, err := switchoverTarget(st.Leader, gs.Members, to)
	if err != nil {
		return "", err
	}
	path := core.NewLayout(e.s.cfg.Root, e.cfg.Group).GroupNode()
	req := &SwitchoverInfo{To: target, By: e.s.cfg.Name, At: time.Now().UTC()}
	if err := e.writeGroup(ctx, path, "switchover", func(data []byte) ([]byte, bool) {
		return core.GroupRecordSwitchover(data, req)
	}); err != nil {
		return "", err
	}
	e.log.Info("switchover asked", zap.String("from", st.Leader), zap.String("to", target), zap.Int64("term", st.Term))
	obs := e.Observe(ctx)
	for {
		select {
		case l, ok := <-obs:
			if !ok {
				return "", ctx.Err()
			}
			if l.Name == target && l.Term > st.Term {
				return target, nil
			}
			if l.Name != "" && l.Term > st.Term && !e.inLine(target) {
				// Nobody will hand over to a target that left: waiting for
				// ctx would only end in a timeout that hides what happened.
				return "", fmt.Errorf("%w: %s; %s leads (term %d)", ErrSwitchoverTargetGone, target, l.Name, l.Term)
			}
		case <-ctx.Done():
			return "", fmt.Errorf("ha: switchover to %s: %w", target, ctx.Err())
		}
	}
}

// inLine reports whether name is, as ZooKeeper has it now, a member that
// may lead; true when the group cannot be read (keep waiting).
func (e *Election) inLine(name string) bool {
	gs, err := e.ReadGroup()
	if err != nil {
		return true
	}
	for _, m := range gs.Members {
		if m.Name == name && !m.NoFailover {
			return true
		}
	}
	return false
}

// switchoverTarget checks to against the members, in line order, or picks
// the next member that may lead after the leader.
func switchoverTarget(leader string, members []Member, to string) (string, error) {
	var names []string
	for _, m := range members {
		names = append(names, m.Name)
	}
	if to == leader {
		return "", fmt.Errorf("%w: %s already leads", ErrSwitchoverRefused, to)
	}
	for _, m := range members {
		switch {
		case to != "" && m.Name != to:
		case m.Name == leader || m.Leader:
		case m.NoFailover:
			if to != "" {
				return "", fmt.Errorf("%w: %s never leads (NOFAILOVER)", ErrSwitchoverRefused, to)
			}
		default:
			return m.Name, nil
		}
	}
	if to != "" {
		return "", fmt.Errorf("%w: %s is not a member of the group (members: %s; an unhealthy member is out of the line)",
			ErrSwitchoverRefused, to, strings.Join(names, ", "))
	}
	return "", fmt.Errorf("%w: no other member may lead (members: %s)", ErrSwitchoverRefused, strings.Join(names, ", "))
}

// clearSwitchover removes a switchover request that named this node, once
// it leads: the request is done.
func (e *Election) clearSwitchover(ctx context.Context) {
	path := core.NewLayout(e.s.cfg.Root, e.cfg.Group).GroupNode()
	r, _, _ := e.s.do(core.Op{Kind: core.OpGet, Path: path})
	if r.Err != core.ErrNone {
		return
	}
	if s := core.GroupSwitchover(r.Data); s == nil || s.To != e.s.cfg.Name {
		return
	}
	if err := e.writeGroup(ctx, path, "switchover done", func(data []byte) ([]byte, bool) {
		if s := core.GroupSwitchover(data); s == nil || s.To != e.s.cfg.Name {
			return nil, true // changed meanwhile: not ours to clear
		}
		return core.GroupRecordSwitchover(data, nil)
	}); err != nil {
		e.log.Info("switchover request not cleared; it lapses by itself", zap.Error(err))
	}
}

// writeGroup rewrites the group record with edit, by compare-and-set.
// edit returns the new data, nil for nothing to write, and ok false when
// the record is not one it can edit (ErrGroupUnreadable).
func (e *Election) writeGroup(ctx context.Context, path, what string, edit func([]byte) ([]byte, bool)) error {
	for tries := 0; tries < 8; tries++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		r, _, _ := e.s.do(core.Op{Kind: core.OpGet, Path: path})
		if r.Err != core.ErrNone {
			return fmt.Errorf("ha: %s: read %s: %s", what, path, r.Detail)
		}
		next, ok := edit(r.Data)
		if !ok {
			return fmt.Errorf("%w: %s holds %s", ErrGroupUnreadable, path, core.Quote(r.Data))
		}
		if next == nil {
			return nil
		}
		w, _, _ := e.s.do(core.Op{Kind: core.OpSet, Path: path, Data: next, Version: r.Stat.Version})
		switch w.Err {
		case core.ErrNone:
			return nil
		case core.ErrBadVersion, core.ErrLost:
			continue
		default:
			return fmt.Errorf("ha: %s: write %s: %s", what, path, w.Detail)
		}
	}
	return fmt.Errorf("ha: %s %s: the group record kept changing", what, path)
}
