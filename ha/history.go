package ha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/hanode/hanode/ha/internal/core"
)

// The group's history (issue 18): every change of leader, and every pause
// and resume, as sequential znodes under groups/<HA_ID>/history, the last
// HistoryLimit kept. A new leader records its own takeover with a fenced
// write (so a leader whose lease moved on cannot), naming whom it took over
// from and why (the cause: core.Cause*), once: the history's directory
// holds the term of the last takeover recorded, set with each entry by
// compare-and-set; a pause or resume is recorded by the member that wrote
// it. A takeover is recorded only while its leader still leads when the
// write lands (a leadership that ends within a round trip of its start may
// leave no entry, and the next one names it as the leader it took over
// from). With elections of many groups on one session, a takeover's entry
// waits for the session's claims and releases to quiet down, at most a
// second (batcher.quiet).

// HistoryLimit is how many entries the history keeps.
const HistoryLimit = 1000

// The causes, one word each (HistoryEntry.Cause).
const (
	CauseFirst      = core.CauseFirst
	CauseGraceful   = core.CauseGraceful
	CauseSwitchover = core.CauseSwitchover
	CauseHealth     = core.CauseHealth
	CausePreemption = core.CausePreemption
	CauseDutyLost   = core.CauseDutyLost
	CauseCrash      = core.CauseCrash
	CausePause      = core.CausePause
	CauseResume     = core.CauseResume
)

// HistoryEntry is one change in a group's history.
type HistoryEntry struct {
	// At is when it happened, by the writer's wall clock (UTC).
	At time.Time `json:"at"`
	// From and To are the leaders before and after ("" none); for a pause
	// or a resume, To is who did it.
	From string `json:"from,omitempty"`
	To   string `json:"to"`
	// Term is the new leadership's term (0 for a pause or a resume).
	Term int64 `json:"term,omitempty"`
	// Cause is why, one word (Cause*); Reason the details.
	Cause  string `json:"cause"`
	Reason string `json:"reason,omitempty"`
	// Seq orders the entries (the znode's sequence number).
	Seq int64 `json:"seq"`
}

func historyDir(root, group string) string {
	return core.NewLayout(root, group).GroupNode() + "/history"
}

// recordHistory writes, for the rest of Run, each takeover of this node to
// the history. Runs on its own goroutine.
func (e *Election) recordHistory(ctx context.Context, feed <-chan Transition) {
	for {
		select {
		case <-ctx.Done():
			return
		case t, ok := <-feed:
			if !ok {
				return
			}
			if !recordsTakeover(t) {
				continue
			}
			if t.Cause == CauseSwitchover {
				e.clearSwitchover(ctx) // a request to us that is now done
			}
			entry := takeoverEntry(t, e.s.cfg.Name, time.Now().UTC())
			e.s.batch.quiet(ctx) // the session's takeovers first (batch.go)
			if err := e.appendHistory(ctx, entry, true); err != nil {
				e.log.Warn("takeover not recorded in the group's history", zap.Int64("term", t.Term), zap.Error(err))
			}
		}
	}
}

// recordsTakeover: t is a takeover the history records, a move to active
// by a claim (not our own lapsed lease re-claimed by rule A).
func recordsTakeover(t Transition) bool {
	return t.To == PhaseActive && t.Cause != "" && t.Cause != core.CauseRenewed
}

// takeoverEntry is the entry recording t, a takeover by the member named
// name, at at (its term is the one the fenced write lands in).
func takeoverEntry(t Transition, name string, at time.Time) HistoryEntry {
	return HistoryEntry{At: at, From: t.Previous, To: name, Term: t.Term, Cause: t.Cause}
}

// entryCreate is the write that appends entry to the history under dir.
func entryCreate(dir string, entry HistoryEntry) Op {
	return Op{Kind: core.OpCreate, Path: dir + "/t-", Data: core.MustJSON(entry), Sequence: true}
}

// historyMark is the data of the history's directory: the term of the
// last takeover recorded. A takeover's write sets it by compare-and-set
// with its entry, so that a write tried again after an unknown outcome
// cannot record the takeover twice.
type historyMark struct {
	Term int64 `json:"term"`
}

// markedTerm is the term the history's directory data records (0 none, or
// not a mark).
func markedTerm(data []byte) int64 {
	var m historyMark
	if json.Unmarshal(data, &m) != nil {
		return 0
	}
	return m.Term
}

// takeoverOps are the ops of the fenced write that records entry, a
// takeover, when the write is fenced by term and the history's directory
// is at version ver: the entry, and the directory's mark set to its term
// from ver. None when term is a later one (the leadership that took over
// ended while the write waited, and the next records its own takeover;
// under the later term the entry would name a takeover that term did not
// start, and that term twice).
func takeoverOps(dir string, entry HistoryEntry, term int64, ver int32) []Op {
	if term != entry.Term {
		return nil
	}
	return []Op{entryCreate(dir, entry),
		{Kind: core.OpSet, Path: dir, Data: core.MustJSON(historyMark{Term: term}), Version: ver}}
}

// takeoverTries bounds the reads of the mark and the writes of one
// takeover's entry.
const takeoverTries = 8

// appendHistory writes entry, fenced by this node's lease when fenced (a
// takeover: appendTakeover), and trims the history to HistoryLimit. A
// write that fails (the group's first entry, or ZooKeeper lost the tree)
// makes the history's directory and tries once more.
func (e *Election) appendHistory(ctx context.Context, entry HistoryEntry, fenced bool) error {
	dir := historyDir(e.s.cfg.Root, e.cfg.Group)
	if fenced {
		return e.appendTakeover(ctx, dir, entry)
	}
	var err error
	for try := 0; try < 2; try++ {
		if try > 0 {
			e.s.do(core.Op{Kind: core.OpCreate, Path: dir}) // the group's first entry, or the tree was lost
		}
		r, _, _ := e.s.do(entryCreate(dir, entry))
		if r.Err == core.ErrNone {
			e.trimHistory(dir)
			return nil
		}
		err = fmt.Errorf("ha: history %s: %s", dir, r.Detail)
		if ctx.Err() != nil {
			return err
		}
	}
	return err
}

// appendTakeover records entry, our takeover, once. The first try writes
// the entry with the mark of the history's directory set to its term, fenced
// by our lease, without reading the mark first (no earlier try of ours can
// have landed). A try whose outcome is unknown, or that failed, is followed
// by one that reads the mark (the last takeover recorded: ours when the
// earlier try landed after all) and writes the entry with the mark by
// compare-and-set from the version it read (so that an earlier try landing
// late makes it fail, and the mark is read again).
func (e *Election) appendTakeover(ctx context.Context, dir string, entry HistoryEntry) error {
	err := fmt.Errorf("ha: history %s: the takeover of term %d not recorded", dir, entry.Term)
	ver := int32(-1) // the first try: the mark set whatever its version
	for try := 0; try < takeoverTries; try++ {
		if try > 0 {
			r, _, _ := e.s.do(core.Op{Kind: core.OpGet, Path: dir})
			switch r.Err {
			case core.ErrNone:
			case core.ErrNotSent:
				// No session now: as Fenced does, ask again while we lead.
				if _, err := e.fenceOf(ctx); err != nil {
					return err
				}
				if err := fenceRetryPause(ctx); err != nil {
					return err
				}
				try--
				continue
			case core.ErrNoNode:
				e.s.do(core.Op{Kind: core.OpCreate, Path: dir}) // the group's first entry, or the tree was lost
				continue
			default:
				err = fmt.Errorf("ha: history %s: %s", dir, r.Detail)
				continue
			}
			switch last := markedTerm(r.Data); {
			case last == entry.Term:
				return nil // an earlier try landed
			case last > entry.Term:
				return fmt.Errorf("%w: the takeover of term %d is recorded", ErrNotLeader, last)
			}
			ver = r.Stat.Version
		}
		stale := false
		var res core.Result
		_, res, err = e.fencedWrite(ctx, func(term int64) []Op {
			ops := takeoverOps(dir, entry, term, ver)
			stale = ops == nil
			return ops
		})
		switch {
		case err == nil && stale:
			return fmt.Errorf("%w: the leadership of term %d ended before its takeover was recorded", ErrNotLeader, entry.Term)
		case err == nil:
			if mayNeedTrim(createdSeq(dir, res), HistoryLimit) {
				e.trimHistory(dir)
			}
			return nil
		case errors.Is(err, ErrNotLeader) || ctx.Err() != nil:
			return err
		}
		// The outcome unknown, the directory missing, or the mark moved
		// on: read it, and try again.
	}
	return err
}

// createdSeq is the sequence number of the entry a takeover's write
// created under dir (its answer r), -1 when r names none.
func createdSeq(dir string, r core.Result) int64 {
	for _, m := range r.Multi {
		if name, ok := strings.CutPrefix(m.Path, dir+"/"); ok {
			if n, ok := entrySeq(name); ok {
				return n
			}
		}
	}
	return -1
}

// mayNeedTrim reports whether a history whose newest entry has sequence
// number seq (-1: not known) can hold more than limit entries. Its entries
// are at most the creates under its directory, and a sequence number is the
// directory's count of creates and deletes before it: at most seq + 1.
// Until then a takeover lists nothing to trim.
func mayNeedTrim(seq int64, limit int) bool { return seq < 0 || seq+1 > int64(limit) }

// trimHistory deletes the oldest entries beyond HistoryLimit.
func (e *Election) trimHistory(dir string) {
	r, _, _ := e.s.do(core.Op{Kind: core.OpChildren, Path: dir})
	if r.Err != core.ErrNone {
		return
	}
	for _, op := range trimDeletes(dir, r.Children, HistoryLimit) {
		e.s.do(op)
	}
}

// trimDeletes are the deletes, oldest first, that leave the newest limit
// entries of dir, whose children are children (none when there are no
// more than limit entries; nodes that are not entries are neither deleted
// nor counted).
func trimDeletes(dir string, children []string, limit int) []Op {
	if len(children) <= limit {
		return nil
	}
	names := sortedEntries(children)
	if len(names) <= limit {
		return nil // others' nodes made up the rest
	}
	var ops []Op
	for _, n := range names[:len(names)-limit] {
		ops = append(ops, Op{Kind: core.OpDelete, Path: dir + "/" + n, Version: -1})
	}
	return ops
}

// sortedEntries orders history znode names by sequence, ignoring others.
func sortedEntries(children []string) []string {
	var out []string
	for _, c := range children {
		if _, ok := entrySeq(c); ok {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { a, _ := entrySeq(out[i]); b, _ := entrySeq(out[j]); return a < b })
	return out
}

// entrySeq is a history znode's sequence number.
func entrySeq(name string) (int64, bool) {
	s, ok := strings.CutPrefix(name, "t-")
	if !ok || len(s) != 10 {
		return 0, false
	}
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// History reads the group's last limit entries (all kept with limit <= 0),
// oldest first. An entry that is not a history record is skipped (and
// named in the error only when nothing could be read).
func (e *Election) History(limit int) ([]HistoryEntry, error) {
	return readHistory(func(op core.Op) core.Result { r, _, _ := e.s.do(op); return r },
		historyDir(e.s.cfg.Root, e.cfg.Group), limit)
}

// readHistory reads the history under dir through do.
func readHistory(do func(core.Op) core.Result, dir string, limit int) ([]HistoryEntry, error) {
	r := do(core.Op{Kind: core.OpChildren, Path: dir})
	switch r.Err {
	case core.ErrNone:
	case core.ErrNoNode:
		return []HistoryEntry{}, nil
	default:
		return nil, fmt.Errorf("ha: read %s: %s", dir, r.Detail)
	}
	names := sortedEntries(r.Children)
	if limit > 0 && len(names) > limit {
		names = names[len(names)-limit:]
	}
	out := make([]HistoryEntry, 0, len(names))
	for _, n := range names {
		g := do(core.Op{Kind: core.OpGet, Path: dir + "/" + n})
		if g.Err != core.ErrNone {
			continue // trimmed meanwhile
		}
		var h HistoryEntry
		if json.Unmarshal(g.Data, &h) != nil || h.Cause == "" {
			continue // not ours: never trusted
		}
		h.Seq, _ = entrySeq(n)
		out = append(out, h)
	}
	return out, nil
}
