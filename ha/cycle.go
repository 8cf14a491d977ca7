package ha

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// The cluster-wide polling cycle.
//
// One persistent znode, <root>/cycle, holds the cycle the cluster is in:
//
//	{"n":42,"started":"2026-12-06T19:10:01.222076Z","term":1796584201251,"group":"nsg-primary-ha","by":"primary-2"}
//
// n counts cycles from 1; started is the advancer's wall clock when it
// wrote it (RFC 3339, UTC); term and group are the leadership it wrote it
// in, by its server name. The leader of the primary group advances it every
// interval; every node watches it (Cycle).
//
// What is promised, and why it holds:
//
//   - The counter never repeats and never skips a number. Every advance is
//     one term-fenced multi (Election.Fenced) that sets the node at the
//     version this node read it at (or creates it when it read it absent):
//     of two would-be advancers one fails, and a leader whose lease ended
//     cannot write at all. A new value is always max(stored, highest this
//     node has seen)+1, so a ZooKeeper that lost the node, or was restored
//     from an older snapshot, does not make the counter repeat a value this
//     node saw (the stored value lower than one seen is reported, with the
//     znode, and overwritten by the next advance); a value that does not
//     parse is reported and overwritten too, never trusted. An advance
//     writes only on a read of the current connection: a read of an earlier
//     connection may predate a rollback that reused its version.
//   - Two cycle starts are never closer than the interval, in real time,
//     whatever the clocks say, across failovers too. A start is the moment
//     ZooKeeper applies a write; a node observes the node's content only
//     after that (the reply or the acknowledgement that carries it). The
//     advancer writes cycle n+1 no earlier than interval×(1+ρ) on its own
//     monotonic clock after it first observed the content it overwrites
//     (ρ = DriftAllowance: its clock may run that much fast). A new leader
//     that watched as a standby counts from when it saw the last cycle; one
//     that sees it only now waits a full interval from now. Any change of
//     the node, valid or not, restarts the count: a foreign write may hide
//     a cycle this node never saw.
//
// nextCycle and observeCycle are the rule, pure, with an explicit clock;
// cyclewatch.go carries them to ZooKeeper.

// CycleInfo is one cycle of the cluster-wide polling cycle.
type CycleInfo struct {
	// N counts cycles from 1; 0 means none is known.
	N int64 `json:"n"`
	// Started is when the advancer wrote it, by its wall clock (UTC).
	Started time.Time `json:"started"`
	// Term and Group are the leadership that wrote it; By is its server name.
	Term  int64  `json:"term"`
	Group string `json:"group"`
	By    string `json:"by"`
}

// MaxCycle is the largest cycle number: it stays exact for JSON consumers,
// like MaxTerm. A stored cycle at it cannot advance and is reported.
const MaxCycle = 1<<53 - 1

// MinCycleInterval is the shortest interval a Cycle accepts.
const MinCycleInterval = 100 * time.Millisecond

// cycleWait is how long, on a clock that may run fast by DriftAllowance,
// the advancer waits after observing a cycle: at least interval of real
// time.
func cycleWait(interval time.Duration) time.Duration {
	return interval + time.Duration(float64(interval)*DriftAllowance+0.999999)
}

// encodeCycle is the znode's data for c.
func encodeCycle(c CycleInfo) []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic("ha: encode cycle: " + err.Error()) // only strings, numbers and a UTC time
	}
	return b
}

// decodeCycle reads the znode's data; why says what is wrong with data it
// will not trust.
func decodeCycle(data []byte) (c CycleInfo, why string) {
	var raw struct {
		N       *int64     `json:"n"`
		Started *time.Time `json:"started"`
		Term    int64      `json:"term"`
		Group   string     `json:"group"`
		By      string     `json:"by"`
	}
	d := json.NewDecoder(bytes.NewReader(data))
	if err := d.Decode(&raw); err != nil {
		return CycleInfo{}, "not a cycle record: " + err.Error()
	}
	if d.More() {
		return CycleInfo{}, "not a cycle record: data after the JSON object"
	}
	switch {
	case raw.N == nil:
		return CycleInfo{}, "no cycle number (n)"
	case *raw.N < 1 || *raw.N > MaxCycle:
		return CycleInfo{}, fmt.Sprintf("cycle number %d is outside 1..%d", *raw.N, int64(MaxCycle))
	case raw.Started == nil || raw.Started.IsZero():
		return CycleInfo{}, "no start time (started)"
	case raw.Term < 0:
		return CycleInfo{}, fmt.Sprintf("negative term %d", raw.Term)
	}
	return CycleInfo{N: *raw.N, Started: raw.Started.UTC(), Term: raw.Term, Group: raw.Group, By: raw.By}, ""
}

// cycleRead is one read of the cycle znode.
type cycleRead struct {
	Exists  bool
	Data    []byte
	Version int32
}

// same reports whether r shows the very write o showed. The data carries
// the advancer's start time in nanoseconds, so two writes never look alike.
func (r cycleRead) same(o cycleRead) bool {
	return r.Exists == o.Exists && r.Version == o.Version && bytes.Equal(r.Data, o.Data)
}

// cycleSeen is what a node knows of the cycle: the last content read, when
// it first saw that content, and the highest cycle it ever saw.
type cycleSeen struct {
	last    cycleRead
	changed time.Time // first observation of last; zero: never read
	stored  CycleInfo // last's cycle (N 0: absent or not valid)
	highest CycleInfo // the highest valid cycle ever seen (N 0: none)
}

// cycleNews is what one observation means.
type cycleNews struct {
	// Changed: the content differs from the last read (or is the first).
	Changed bool
	// New: a cycle above every one seen before, and not the first read
	// (which is the baseline: it may have been run before a restart).
	New bool
	// Skipped counts the cycles between the previous highest and a New one
	// this node never saw (0 when none).
	Skipped int64
	// Back: a valid cycle below the highest seen (ZooKeeper lost data, or
	// another client wrote it).
	Back bool
	// Bad says why the content is not a valid cycle ("" when it is, or
	// when the node is absent).
	Bad string
}

// observeCycle folds a read made at now (the arrival of its reply, or of
// the acknowledgement of this node's own write) into s.
func observeCycle(s cycleSeen, r cycleRead, now time.Time) (cycleSeen, cycleNews) {
	var news cycleNews
	first := s.changed.IsZero()
	if first || !r.same(s.last) {
		news.Changed = true
		s.last, s.changed = r, now
	}
	s.stored = CycleInfo{}
	if r.Exists {
		c, why := decodeCycle(r.Data)
		if why != "" {
			news.Bad = why
			return s, news
		}
		s.stored = c
		switch {
		case c.N > s.highest.N:
			if !first && s.highest.N > 0 {
				news.Skipped = c.N - s.highest.N - 1
			}
			news.New = !first
			s.highest = c
		case c.N < s.highest.N:
			news.Back = true
		}
	}
	return s, news
}

// nextCycle is the rule of the advancer: the number the next cycle takes,
// and how long from now it must wait before it writes it (0: now). ok is
// false when nothing was read yet or the counter cannot grow (MaxCycle).
func nextCycle(s cycleSeen, interval time.Duration, now time.Time) (n int64, wait time.Duration, ok bool) {
	if s.changed.IsZero() {
		return 0, 0, false
	}
	n = max(s.stored.N, s.highest.N)
	if n >= MaxCycle {
		return 0, 0, false
	}
	return n + 1, max(s.changed.Add(cycleWait(interval)).Sub(now), 0), true
}

// cyclePath is the cycle znode under root.
func cyclePath(root string) string {
	if root == "/" {
		return "/cycle"
	}
	return root + "/cycle"
}
