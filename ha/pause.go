package ha

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/hanode/hanode/ha/internal/core"
)

// PauseInfo says who paused a group, when and why.
type PauseInfo = core.PauseInfo

// ErrGroupUnreadable: the group record is not a hanode group record, so
// hanode will not write a pause into it (hanode never writes over what it
// cannot read); the error names the znode.
var ErrGroupUnreadable = errors.New("ha: the group record is not readable")

// Pause puts the group in maintenance mode: while it is paused no member
// takes the lease over from another (a leader that dies is not replaced),
// and the leader keeps its duty while its lease holds. It is stored in the
// group record, so it outlives every member; any member may pause or
// resume, with a leader or without. What pause can and cannot promise:
// README, "Operating". reason is shown to operators ("" none).
func (e *Election) Pause(ctx context.Context, reason string) error {
	return e.setPause(ctx, &PauseInfo{By: e.s.cfg.Name, At: time.Now().UTC(), Reason: reason})
}

// Resume ends the group's maintenance mode: members take over again by the
// usual rules, so a group whose leader died while paused leads again
// within the takeover bound.
func (e *Election) Resume(ctx context.Context) error { return e.setPause(ctx, nil) }

// setPause writes p into the group record by compare-and-set: a plain
// write, not a fenced one, because a paused group may have no leader to
// fence it, and a pause only ever withholds claims (core/pause.go).
func (e *Election) setPause(ctx context.Context, p *PauseInfo) error {
	path := core.NewLayout(e.s.cfg.Root, e.cfg.Group).GroupNode()
	what := "resume"
	if p != nil {
		what = "pause"
	}
	for tries := 0; ; tries++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if tries == 8 {
			return fmt.Errorf("ha: %s %s: the group record kept changing", what, path)
		}
		r, _, _ := e.s.do(core.Op{Kind: core.OpGet, Path: path})
		if r.Err != core.ErrNone {
			return fmt.Errorf("ha: %s: read %s: %s", what, path, r.Detail)
		}
		if (core.GroupPaused(r.Data) != nil) == (p != nil) && (p == nil || core.GroupPaused(r.Data).Reason == p.Reason) {
			return nil // already so
		}
		next, ok := core.GroupRecordPaused(r.Data, p)
		if !ok {
			return fmt.Errorf("%w: %s holds %s; a member rewrites it when it joins, or delete it with every member stopped",
				ErrGroupUnreadable, path, core.Quote(r.Data))
		}
		w, _, _ := e.s.do(core.Op{Kind: core.OpSet, Path: path, Data: next, Version: r.Stat.Version})
		switch w.Err {
		case core.ErrNone:
			fields := []zap.Field{zap.String("znode", path)}
			if p != nil {
				fields = append(fields, zap.String("reason", p.Reason))
			}
			e.log.Warn("group "+map[bool]string{true: "paused: no takeover until resumed", false: "resumed"}[p != nil], fields...)
			entry := HistoryEntry{At: time.Now().UTC(), To: e.s.cfg.Name, Cause: CauseResume}
			if p != nil {
				entry.Cause, entry.Reason = CausePause, p.Reason
			}
			if err := e.appendHistory(ctx, entry, false); err != nil {
				e.log.Warn("pause or resume not recorded in the group's history", zap.Error(err))
			}
			return nil
		case core.ErrBadVersion, core.ErrLost:
			continue // changed meanwhile, or outcome unknown: read it again
		default:
			return fmt.Errorf("ha: %s: write %s: %s", what, path, w.Detail)
		}
	}
}
