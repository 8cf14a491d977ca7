package core

import (
	"fmt"
	"time"
)

// Pause: the group's maintenance mode (hanode pause / resume). While the
// group record says paused, no member takes the lease over from another:
// rules B, C and D claim nothing, so a leader that dies is not replaced.
// The holder keeps its lease while it lasts and may re-claim its own
// lapsed lease (rule A: no takeover). Every claim by rule B, C or D checks
// the group record at the version its look read unpaused, so a pause
// written while a claim is on its way makes that claim fail: once the
// pause is applied, no takeover commits until a resume is. Pausing only
// withholds claims, which no rule needs for safety; resuming lets the
// rules run as before, so a leader is back within W (ha/doc.go).

// PauseInfo says who paused the group, when and why (the group record's
// "paused").
type PauseInfo struct {
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
}

// groupState is the group record as this member's looks last read it.
type groupState struct {
	known    bool  // read in this epoch: claims check its version
	ver      int32 // its version then
	paused   *PauseInfo
	switchTo *SwitchoverInfo // the switchover asked for (switchover.go), nil none
	watch    uint64          // a data watch on it, 0 none
}

// lookGroup reads the group record with a look, setting a watch on it when
// none is set, so that a pause or a resume is seen at once.
func (c *Core) lookGroup() {
	op := Op{Kind: OpGet, Path: c.l.GroupNode(), Watch: c.view.grp.watch == 0}
	c.view.look.waiting++
	id := c.request(pending{p: pLookGroup, look: c.view.look.id}, op)
	if op.Watch {
		c.view.grp.watch = id
	}
}

// onLookGroup takes a look's read of the group record.
func (c *Core) onLookGroup(id uint64, r Result) bool {
	if r.Err != ErrNone && id == c.view.grp.watch {
		c.view.grp.watch = 0 // no watch was set
	}
	switch r.Err {
	case ErrNone:
		var g groupRecord
		g.Paused = nil
		if StrictJSON(r.Data, &g) != nil {
			g = groupRecord{} // unreadable: not paused; the join path repairs it
		}
		was := c.view.grp.paused
		c.view.grp.known, c.view.grp.ver, c.view.grp.paused = true, r.Stat.Version, g.Paused
		c.view.grp.switchTo = g.Switchover
		switch {
		case was == nil && g.Paused != nil:
			cover("pause: seen")
		case was != nil && g.Paused == nil:
			cover("pause: resume seen")
		}
		return true
	case ErrNoNode:
		c.view.grp.known, c.view.grp.paused, c.view.grp.switchTo = false, nil, nil
		return true
	}
	return false
}

// paused: the group is paused as far as this member knows.
func (c *Core) paused() bool {
	return c.view.grp.paused != nil && !c.cfg.Weaken.has(WeakIgnorePause)
}

// pauseCheck is the op a takeover claim adds: the group record as read
// unpaused (none when it was missing).
func (c *Core) pauseCheck() (Op, bool) {
	if !c.view.grp.known || c.cfg.Weaken.has(WeakIgnorePause) {
		return Op{}, false
	}
	return Op{Kind: OpCheck, Path: c.l.GroupNode(), Version: c.view.grp.ver}, true
}

// pauseReason is a paused member's reason.
func (c *Core) pauseReason() string {
	p := c.view.grp.paused
	why := ""
	if p.Reason != "" {
		why = " (" + p.Reason + ")"
	}
	return fmt.Sprintf("group paused by %s at %s%s: no takeover until resumed", p.By, p.At.UTC().Format(time.RFC3339), why)
}

// GroupRecordPaused returns the group record data with paused set to p
// (nil: resumed), keeping everything else; ok is false when data is not a
// group record (hanode never pauses what it cannot read).
func GroupRecordPaused(data []byte, p *PauseInfo) ([]byte, bool) {
	var g groupRecord
	if err := StrictJSON(data, &g); err != nil || g.Role == "" || g.LeaseMS <= 0 {
		return nil, false
	}
	g.Paused = p
	return MustJSON(g), true
}

// GroupRecordSwitchover returns the group record data with switchover set
// to s (nil: none), keeping everything else; ok is false when data is not a
// group record.
func GroupRecordSwitchover(data []byte, s *SwitchoverInfo) ([]byte, bool) {
	var g groupRecord
	if err := StrictJSON(data, &g); err != nil || g.Role == "" || g.LeaseMS <= 0 {
		return nil, false
	}
	g.Switchover = s
	return MustJSON(g), true
}

// GroupSwitchover reads the switchover from group record data (nil: none,
// or not a group record).
func GroupSwitchover(data []byte) *SwitchoverInfo {
	var g groupRecord
	if StrictJSON(data, &g) != nil {
		return nil
	}
	return g.Switchover
}

// GroupPaused reads the pause from group record data (nil: not paused, or
// not a group record).
func GroupPaused(data []byte) *PauseInfo {
	var g groupRecord
	if StrictJSON(data, &g) != nil {
		return nil
	}
	return g.Paused
}
