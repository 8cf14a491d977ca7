package ha

// The group's history in the simulator (history.go, issue 18): every
// running process records each takeover of its own as Election does, with
// history.go's own functions for the entry, its writes and the trim: on
// the history goroutine (one takeover after the other), after the read of
// the group record that clearSwitchover makes, by appendTakeover: the mark
// of the history's directory read, then the entry and the mark written by
// a write fenced with the core's checks (Election.Fenced: asked again
// while the core says wait or the connection was replaced, refused when a
// check fails), read and written again while the outcome is unknown or the
// mark moved on; then the oldest entries beyond the limit deleted. A
// writer may be frozen between taking the checks and sending, like the
// other fenced writes, and the adversary now and then cuts its connection
// with its write applied and the reply not yet sent. An operator's pause
// or resume is recorded, unfenced, by the member that wrote it. Every
// request goes through the process's simulated client, so it meets every
// fault the election meets; another client puts foreign nodes under the
// history (fForeignNodes).
//
// Invariants:
//   - (i) after every step and at the end: an entry whose create its writer
//     saw acknowledged is in ZooKeeper's data, unless at least limit newer
//     entries are (the trim's right to delete it), while ZooKeeper keeps its
//     data; a restore or a wipe, or another client deleting the tree,
//     starts a new stretch, in which only what survived it is still owed
//     (and a trim's delete listed before it acts on a history it never
//     saw: not counted against the trim);
//   - (ii) when a takeover's entry lands, every takeover entry before it
//     has a lower term: a leader whose lease moved on cannot write after a
//     later term's entry, and no term is recorded twice;
//   - (iii) when a takeover's entry lands, it names the member whose duty
//     ran in that term, and the leader record names that member in that
//     term (the write is fenced, as sim_fenced_test.go checks for the
//     others; a write carried to a later connection that lands after
//     ZooKeeper forgot is doc.go's uncovered case, counted, not checked).

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"path"
	"slices"
	"strconv"
	"time"

	"github.com/hanode/hanode/ha/internal/core"
	"github.com/hanode/hanode/internal/simzk"
)

// histIDBase numbers the history writers' requests apart from the cores'
// and the other fenced writers'.
const histIDBase = uint64(1) << 61

// histConfig is a scenario's history: how many entries it keeps and the
// simulator's own weakenings of the writer (mutation tests).
type histConfig struct {
	limit      int  // HistoryLimit in production; a few here, so that runs trim
	unfenced   bool // mutation: the takeover's write sent without the core's checks
	trimNewest bool // mutation: the trim deletes the newest entries, not the oldest
	noMark     bool // mutation: the takeover's write neither reads nor sets the history's mark
}

// randomHistConfig draws a seed's history limit, from its own stream so
// that the other draws stay as they were.
func randomHistConfig(seed int64) histConfig {
	return histConfig{limit: []int{1, 2, 4, 8}[rand.New(rand.NewSource(seed^0x4157_0e1a)).Intn(4)]}
}

// simHistory is the simulator's record of the history writes.
type simHistory struct {
	next    uint64
	gen     int                 // the stretch: bumped whenever ZooKeeper may have forgotten
	pending map[uint64]histCall // requests sent, by id
	procs   map[*simNode]*histProc
	landed  map[string]bool  // entries created in this stretch whose acknowledgement may come
	acked   map[string]int64 // entries acknowledged to their writer in this stretch: path -> sequence
	holders map[int64]string // term -> the member whose duty ran in it
	// basis is the stretch in which each takeover write's checks were
	// taken, by its multi's first op (shared by every copy of the write).
	basis  map[*core.Op]int
	rng    *rand.Rand // the adversary's draws at the history's writes
	memo   histMemo   // what the last check of (i) saw
	ackGen int        // bumped by every acknowledgement
	counts simHistCounts
}

// histCall is a history request waiting for its reply.
type histCall struct {
	n   *simNode
	inc int
	op  core.Op
	f   func(core.Result)
}

// histProc is one process's history goroutine.
type histProc struct {
	inc   int
	busy  bool
	queue []HistoryEntry
}

// histMemo: nothing to check again while the history's directory and the
// acknowledgements are as they were.
type histMemo struct {
	pzxid, czxid int64
	ok           bool
	ackGen       int
}

// simHistCounts are the history's statistics.
type simHistCounts struct {
	acked, ackedTakeovers, refused, unknown, notSent, dropped, found, trimmed, staleTrims, carried, cut int
}

func (c *simHistCounts) add(o simHistCounts) {
	c.acked += o.acked
	c.ackedTakeovers += o.ackedTakeovers
	c.refused += o.refused
	c.unknown += o.unknown
	c.notSent += o.notSent
	c.dropped += o.dropped
	c.found += o.found
	c.carried += o.carried
	c.cut += o.cut
	c.staleTrims += o.staleTrims
	c.trimmed += o.trimmed
}

func (c simHistCounts) String() string {
	return fmt.Sprintf("history writes acknowledged %d (takeovers %d), refused by checks %d, "+
		"connections cut with a takeover's write applied %d, outcome unknown %d, "+
		"not sent (connection replaced) %d, dropped (a later term by then) %d, found recorded when tried again %d, "+
		"landed after ZooKeeper forgot %d, entries trimmed %d (of them listed before ZooKeeper forgot %d)", c.acked,
		c.ackedTakeovers, c.refused, c.cut, c.unknown, c.notSent, c.dropped, c.found, c.carried, c.trimmed, c.staleTrims)
}

func (s *sim) historyDir() string { return historyDir(s.root, s.group) }

// --- the writers ------------------------------------------------------------------

// histDo sends op through n's client; f gets its reply (dropped if the
// process ended meanwhile).
func (s *sim) histDo(n *simNode, op core.Op, f func(core.Result)) {
	h := &s.hist
	if h.pending == nil {
		h.pending = map[uint64]histCall{}
	}
	h.next++
	id := histIDBase + h.next
	h.pending[id] = histCall{n: n, inc: n.inc, op: op, f: f}
	n.send(id, op)
}

// histReply takes a reply meant for a history writer (false: not one).
func (s *sim) histReply(n *simNode, r core.EvReply) bool {
	if r.ID < histIDBase || r.ID >= fencedIDBase {
		return false
	}
	c, ok := s.hist.pending[r.ID]
	delete(s.hist.pending, r.ID)
	if ok && c.n == n && c.inc == n.inc {
		s.histAck(n, c.op, r.Result)
		c.f(r.Result)
		s.check()
	}
	return true
}

// proc is n's history goroutine, new with each process.
func (s *sim) proc(n *simNode) *histProc {
	if s.hist.procs == nil {
		s.hist.procs = map[*simNode]*histProc{}
	}
	p := s.hist.procs[n]
	if p == nil || p.inc != n.inc {
		p = &histProc{inc: n.inc}
		s.hist.procs[n] = p
	}
	return p
}

// histTransition hears n's transitions (recordHistory's feed).
func (s *sim) histTransition(n *simNode, t core.Transition) {
	if !recordsTakeover(t) {
		return
	}
	p := s.proc(n)
	p.queue = append(p.queue, takeoverEntry(t, n.name, n.wall()))
	if !p.busy {
		s.histNext(n, p)
	}
}

// histNext records the next takeover in p's queue, after clearSwitchover's
// read of the group record.
func (s *sim) histNext(n *simNode, p *histProc) {
	if len(p.queue) == 0 || p.inc != n.inc {
		p.busy = false
		return
	}
	p.busy = true
	entry := p.queue[0]
	p.queue = p.queue[1:]
	s.histDo(n, core.Op{Kind: core.OpGet, Path: core.NewLayout(s.root, s.group).GroupNode()}, func(core.Result) {
		s.histAppend(n, entry, true, 0, func() { s.histNext(n, p) })
	})
}

// histPause records an operator's pause (p) or resume (nil), written by n
// (or the first member running, if n is not), as Election.setPause does:
// unfenced.
func (s *sim) histPause(n *simNode, p *core.PauseInfo) {
	for _, m := range s.nodes {
		if n.running && n.core != nil {
			break
		}
		n = m
	}
	if !n.running || n.core == nil {
		return
	}
	entry := HistoryEntry{At: n.wall(), To: n.name, Cause: CauseResume}
	if p != nil {
		entry.Cause, entry.Reason = CausePause, p.Reason
	}
	n.at(s.now, func() { s.histAppend(n, entry, false, 0, func() {}) })
}

// histAppend is appendHistory: a takeover is histTakeover's; a pause or
// a resume is tried once more after making the directory.
func (s *sim) histAppend(n *simNode, entry HistoryEntry, fenced bool, try int, done func()) {
	if fenced {
		s.histTakeover(n, entry, 0, done)
		return
	}
	dir := s.historyDir()
	write := func() {
		s.histDo(n, entryCreate(dir, entry), func(r core.Result) {
			s.tracef("%s: history: %s: %s %s", n.name, entry.Cause, r.Err, s.createdPathOr(entryCreate(dir, entry), r))
			switch {
			case r.Err == core.ErrNone:
				s.histTrim(n, done)
			case try+1 < 2:
				s.histAppend(n, entry, fenced, try+1, done)
			default:
				done()
			}
		})
	}
	if try > 0 {
		s.histDo(n, core.Op{Kind: core.OpCreate, Path: dir}, func(core.Result) { write() })
		return
	}
	write()
}

// histTakeover is appendTakeover: the fenced write of the entry and the
// mark, at once on the first try; then, while the outcome is unknown or the
// write failed, the mark read and the write from the version read.
func (s *sim) histTakeover(n *simNode, entry HistoryEntry, try int, done func()) {
	if try >= takeoverTries {
		done()
		return
	}
	dir := s.historyDir()
	written := func(ok, notLeader bool, r core.Result) {
		switch {
		case ok && !mayNeedTrim(createdSeq(dir, r), s.cfg.hist.limit):
			done() // as appendTakeover: nothing to trim yet
		case ok:
			s.histTrim(n, done)
		case notLeader:
			done()
		default:
			s.histTakeover(n, entry, try+1, done)
		}
	}
	if try == 0 {
		s.histFenced(n, entry, -1, written)
		return
	}
	s.histDo(n, core.Op{Kind: core.OpGet, Path: dir}, func(r core.Result) {
		switch r.Err {
		case core.ErrNone:
		case core.ErrNotSent:
			if fb := n.core.Fence(n.local(s.now)); fb.Checks == nil && !fb.Wait {
				done()
				return
			}
			n.at(s.now+5*time.Millisecond, func() { s.histTakeover(n, entry, try, done) })
			return
		case core.ErrNoNode:
			s.histDo(n, core.Op{Kind: core.OpCreate, Path: dir}, func(core.Result) { s.histTakeover(n, entry, try+1, done) })
			return
		default:
			s.histTakeover(n, entry, try+1, done)
			return
		}
		last := markedTerm(r.Data)
		if s.cfg.hist.noMark {
			last = 0
		}
		switch {
		case last == entry.Term:
			s.tracef("%s: history: takeover of term %d found recorded", n.name, entry.Term)
			s.hist.counts.found++
			done()
			return
		case last > entry.Term:
			done()
			return
		}
		s.histFenced(n, entry, r.Stat.Version, written)
	})
}

// histFenced is Election.Fenced writing entry with the mark from version
// ver; done learns whether it landed, or else whether the lease moved on
// (ErrNotLeader).
func (s *sim) histFenced(n *simNode, entry HistoryEntry, ver int32, done func(ok, notLeader bool, r core.Result)) {
	if n.core == nil {
		return
	}
	pause := func() { n.at(s.now+5*time.Millisecond, func() { s.histFenced(n, entry, ver, done) }) }
	fb := n.core.Fence(n.local(s.now))
	switch {
	case fb.Checks == nil && !fb.Wait:
		s.tracef("%s: history: not leader (%s)", n.name, entry.Cause)
		done(false, true, core.Result{})
		return
	case fb.Wait:
		pause()
		return
	}
	checks := fb.Checks
	if s.cfg.hist.unfenced {
		checks = nil
	}
	ops := takeoverOps(s.historyDir(), entry, fb.Term, ver)
	if s.cfg.hist.noMark && ops != nil {
		ops = ops[:1]
	}
	op := core.Op{Kind: core.OpMulti, Ops: append(checks, ops...)}
	if len(op.Ops) > 0 {
		if s.hist.basis == nil {
			s.hist.basis = map[*core.Op]int{}
		}
		s.hist.basis[&op.Ops[0]] = s.hist.gen
	}
	send := func() {
		// Session.doIn: never on a later connection than the checks'.
		if n.epoch != fb.Epoch {
			s.hist.counts.notSent++
			pause()
			return
		}
		if n.connected {
			s.tracef("%s: history: takeover of term %d sent (%d checks)", n.name, entry.Term, len(checks))
		}
		s.histDo(n, op, func(r core.Result) {
			if r.Err != core.ErrNotSent {
				s.tracef("%s: history: takeover of term %d: %s %s", n.name, entry.Term, r.Err, s.createdPathOr(op, r))
			}
			if r.Err == core.ErrNone {
				if ops == nil {
					s.hist.counts.dropped++ // the checks alone: that leadership ended
				}
				done(ops != nil, ops == nil, r)
				return
			}
			if r.Err == core.ErrNotSent {
				pause()
				return
			}
			i, _ := core.FailedOp(r)
			if i == 0 && r.Multi[0].Err == core.ErrBadVersion && len(checks) > 0 {
				// Our member node moved on: an extension landed first, or
				// our lease did. Ask the core which.
				if g := n.core.Fence(n.local(s.now)); g.Wait || len(g.Checks) > 0 && g.Checks[0].Version != checks[0].Version {
					s.histFenced(n, entry, ver, done)
					return
				}
			}
			switch {
			case i >= 0 && i < len(checks):
				s.hist.counts.refused++
				done(false, true, r)
			case r.Err == core.ErrLost:
				s.hist.counts.unknown++
				done(false, false, r)
			default:
				done(false, false, r)
			}
		})
	}
	if s.rng.Intn(8) == 0 {
		// Frozen between the checks and the send.
		n.at(s.now+s.dur(0, 2*s.cfg.lease), send)
		return
	}
	send()
}

// histTrim is trimHistory: the oldest entries beyond the limit deleted, one
// after the other.
func (s *sim) histTrim(n *simNode, done func()) {
	dir := s.historyDir()
	gen := s.hist.gen
	s.histDo(n, core.Op{Kind: core.OpChildren, Path: dir}, func(r core.Result) {
		if r.Err != core.ErrNone {
			done()
			return
		}
		ops, ok := s.trimOps(n, dir, r.Children)
		if !ok {
			return
		}
		for i := range ops {
			// Tagged with the stretch of the listing (ZooKeeper ignores a
			// delete's data): a delete listed before ZooKeeper forgot
			// acts on a history the listing never saw.
			ops[i].Data = []byte(strconv.Itoa(gen))
		}
		var del func(i int)
		del = func(i int) {
			if i == len(ops) {
				done()
				return
			}
			s.histDo(n, ops[i], func(r core.Result) {
				s.tracef("%s: history: trim %s: %s", n.name, ops[i].Path, r.Err)
				if r.Err == core.ErrNone {
					s.hist.counts.trimmed++
				}
				del(i + 1)
			})
		}
		del(0)
	})
}

// trimOps are the trim's deletes (history.go's, or the mutation's); a
// panic there is a violation, as it would end the process.
func (s *sim) trimOps(n *simNode, dir string, children []string) (ops []core.Op, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			s.violate("%s: the history's trim panicked (%v) on the children %v, limit %d", n.name, r, children, s.cfg.hist.limit)
			ok = false
		}
	}()
	if s.cfg.hist.trimNewest {
		names := sortedEntries(children)
		for len(names) > s.cfg.hist.limit {
			ops = append(ops, core.Op{Kind: core.OpDelete, Path: dir + "/" + names[len(names)-1], Version: -1})
			names = names[:len(names)-1]
		}
		return ops, true
	}
	return trimDeletes(dir, children, s.cfg.hist.limit), true
}

// wall is n's wall clock now, as its process reads it.
func (n *simNode) wall() time.Time { return n.local(n.s.now).Add(n.adv.wallAhead).UTC() }

// --- the invariants -------------------------------------------------------------

// histNode is one history entry as ZooKeeper holds it.
type histNode struct {
	seq   int64
	path  string
	entry HistoryEntry
}

// histEntries are the entries under the history's directory, by sequence
// (a node whose data is not an entry has a zero entry).
func (s *sim) histEntries() []histNode {
	dir := s.historyDir()
	_, st, ok := s.zk.Get(dir)
	if !ok {
		return nil
	}
	created := int64(st.Cversion+st.NumChildren) / 2 // the directory's sequence counter
	var out []histNode
	for q := int64(0); q < created && len(out) < int(st.NumChildren); q++ {
		p := dir + "/t-" + fmt.Sprintf("%010d", q)
		data, _, ok := s.zk.Get(p)
		if !ok {
			continue
		}
		h := histNode{seq: q, path: p}
		_ = json.Unmarshal(data, &h.entry)
		out = append(out, h)
	}
	return out
}

// histCreate finds an entry's create in op: its index in a multi (-1: op
// itself) and the entry.
func (s *sim) histCreate(op core.Op) (int, HistoryEntry, bool) {
	i, c := -1, op
	if op.Kind == core.OpMulti {
		i = slices.IndexFunc(op.Ops, func(o core.Op) bool { return o.Kind == core.OpCreate && o.Sequence })
		if i < 0 {
			return 0, HistoryEntry{}, false
		}
		c = op.Ops[i]
	}
	if c.Kind != core.OpCreate || !c.Sequence || c.Path != s.historyDir()+"/t-" {
		return 0, HistoryEntry{}, false
	}
	var e HistoryEntry
	_ = json.Unmarshal(c.Data, &e)
	return i, e, true
}

// createdPath is the path op's create of an entry made (index i: histCreate).
func createdPath(op core.Op, i int, r core.Result) string {
	if i >= 0 {
		return r.Multi[i].Path
	}
	return r.Path
}

// createdPathOr is createdPath when op succeeded, else what failed.
func (s *sim) createdPathOr(op core.Op, r core.Result) string {
	if r.Err != core.ErrNone {
		return r.Detail
	}
	if i, _, ok := s.histCreate(op); ok {
		return createdPath(op, i, r)
	}
	return "(no entry)"
}

// afterHistory checks an entry ZooKeeper just applied, (ii) and (iii),
// and follows the trim's deletes.
func (s *sim) afterHistory(op core.Op, r core.Result) {
	if r.Err != core.ErrNone {
		return
	}
	if op.Kind == core.OpDelete && op.Data != nil && path.Dir(op.Path) == s.historyDir() {
		if gen, _ := strconv.Atoi(string(op.Data)); gen != s.hist.gen {
			// Listed before ZooKeeper forgot: the new stretch's history
			// is not the one the trim counted (a new entry may even
			// have the name it deleted). Rollbacks lose entries anyway.
			s.hist.counts.staleTrims++
			if _, owed := s.hist.acked[op.Path]; owed {
				s.tracef("history: %s deleted by a trim listed before ZooKeeper forgot", op.Path)
				delete(s.hist.acked, op.Path)
			}
		}
		return
	}
	i, entry, ok := s.histCreate(op)
	if !ok {
		return
	}
	p := createdPath(op, i, r)
	if s.hist.landed == nil {
		s.hist.landed = map[string]bool{}
	}
	s.hist.landed[p] = true
	if entry.Term == 0 {
		return // a pause or a resume
	}
	// Fenced: the leader record names its writer in its term as it lands;
	// except for a write carried to a later connection that lands after
	// ZooKeeper forgot, where another client may have brought both checked
	// versions back (doc.go, "Fenced writes": not covered).
	gen, known := 0, false
	if op.Kind == core.OpMulti {
		gen, known = s.hist.basis[&op.Ops[0]]
		delete(s.hist.basis, &op.Ops[0])
	}
	if known && gen != s.hist.gen {
		s.hist.counts.carried++
	} else if data, _, ok := s.zk.Get(core.NewLayout(s.root, s.group).LeaderNode()); !s.recordNames(data, ok, entry) {
		rec, _, _ := core.DecodeLeader(data)
		s.violate("history entry %s of term %d by %s landed while the leader record says term %d, %s (%v)", p,
			entry.Term, entry.To, rec.Term, rec.Name, ok)
	}
	if held := s.hist.holders[entry.Term]; held != entry.To {
		s.violate("history entry %s says %s took term %d (%s), but that term's duty ran on %q", p, entry.To,
			entry.Term, entry.Cause, held)
	}
	seq, _ := entrySeq(path.Base(p))
	for _, h := range s.histEntries() {
		if h.seq < seq && h.entry.Term >= entry.Term {
			s.violate("history entry %s (term %d, %s) landed after %s (term %d, %s): terms must grow with the sequence",
				p, entry.Term, entry.To, h.path, h.entry.Term, h.entry.To)
		}
	}
}

// recordNames: the leader record (data; ok: it exists) names entry's
// writer in entry's term.
func (s *sim) recordNames(data []byte, ok bool, entry HistoryEntry) bool {
	rec, kind, _ := core.DecodeLeader(data)
	return ok && kind == core.RecOK && rec.Term == entry.Term && rec.Name == entry.To
}

// histLanded sees a multi of n's client that ZooKeeper applied: at a
// takeover's write, now and then (while the faults last), the adversary
// cuts n's connection before the reply leaves, so that the writer learns
// nothing of the outcome and must not record the takeover twice.
func (s *sim) histLanded(n *simNode, f *flight) {
	if _, entry, ok := s.histCreate(f.op); !ok || entry.Term == 0 || s.now >= s.healAt || !n.connected ||
		f.epoch != n.epoch {
		return
	}
	if s.hist.rng == nil {
		s.hist.rng = rand.New(rand.NewSource(s.cfg.seed ^ 0x4157_c0de))
	}
	if s.hist.rng.Intn(4) == 0 {
		s.hist.counts.cut++
		s.tracef("ADVERSARY %s: connection cut with its history write applied", n.name)
		n.breakConn("cut with its history write applied")
	}
}

// histHeld notes that n's duty runs in term.
func (s *sim) histHeld(n *simNode, term int64) {
	if s.hist.holders == nil {
		s.hist.holders = map[int64]string{}
	}
	s.hist.holders[term] = n.name
}

// histAck is a history create's reply reaching its writer.
func (s *sim) histAck(n *simNode, op core.Op, r core.Result) {
	i, entry, ok := s.histCreate(op)
	if !ok || r.Err != core.ErrNone {
		return
	}
	s.hist.counts.acked++
	if entry.Cause != CausePause && entry.Cause != CauseResume {
		s.hist.counts.ackedTakeovers++
	}
	p := createdPath(op, i, r)
	if !s.hist.landed[p] {
		return // applied before ZooKeeper forgot it
	}
	delete(s.hist.landed, p)
	if s.hist.acked == nil {
		s.hist.acked = map[string]int64{}
	}
	s.hist.acked[p], _ = entrySeq(path.Base(p))
	s.hist.ackGen++
}

// histForgot: ZooKeeper may have lost data (restored, wiped, or the tree
// deleted by another client): a new stretch, owing only what survived.
func (s *sim) histForgot() {
	for p := range s.hist.acked {
		if _, _, ok := s.zk.Get(p); !ok {
			delete(s.hist.acked, p)
		}
	}
	for p := range s.hist.landed {
		if _, _, ok := s.zk.Get(p); !ok {
			delete(s.hist.landed, p)
		}
	}
	s.hist.memo = histMemo{}
	s.hist.gen++
}

// checkHistory is (i), after every step and at the end.
func (s *sim) checkHistory() {
	h := &s.hist
	if len(h.acked) == 0 {
		return
	}
	_, st, ok := s.zk.Get(s.historyDir())
	memo := histMemo{pzxid: st.Pzxid, czxid: st.Czxid, ok: ok, ackGen: h.ackGen}
	if memo == h.memo {
		return
	}
	h.memo = memo
	var gone []string
	for p := range h.acked {
		if _, _, ok := s.zk.Get(p); !ok {
			gone = append(gone, p)
		}
	}
	if len(gone) == 0 {
		return
	}
	slices.Sort(gone)
	entries := s.histEntries()
	for _, p := range gone {
		seq := h.acked[p]
		newer := 0
		for _, e := range entries {
			if e.seq > seq {
				newer++
			}
		}
		if newer >= s.cfg.hist.limit {
			delete(h.acked, p) // trimmed, as it may be
			continue
		}
		s.violate("the history lost %s, acknowledged to its writer, with %d newer entries (it keeps %d): %s",
			p, newer, s.cfg.hist.limit, histList(entries))
		return
	}
}

func histList(entries []histNode) string {
	out := "["
	for i, e := range entries {
		if i > 0 {
			out += " "
		}
		out += strconv.FormatInt(e.seq, 10) + ":" + e.entry.To + "/" + strconv.FormatInt(e.entry.Term, 10)
	}
	return out + "]"
}

// histForeign has another client put two nodes that are not entries under
// the history's directory, when it exists (readHistory skips them; the
// trim must not count them as entries).
func (s *sim) histForeign() {
	dir := s.historyDir()
	if _, _, ok := s.zk.Get(dir); !ok {
		return
	}
	s.adversary(simzk.Op{Kind: simzk.Create, Path: dir + "/foreign", Data: []byte("x")})
	s.adversary(simzk.Op{Kind: simzk.Create, Path: dir + "/t-junk", Data: []byte("not json")})
}
