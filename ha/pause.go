package ha

import (
	"context"
	"errors"
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
	already := false
	err := e.writeGroup(ctx, path, what, func(data []byte) ([]byte, bool) {
		if cur := core.GroupPaused(data); (cur != nil) == (p != nil) && (p == nil || cur.Reason == p.Reason) {
			already = true
			return nil, true // already so
		}
		return core.GroupRecordPaused(data, p)
	})
	if err != nil || already {
		return err
	}
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
}
