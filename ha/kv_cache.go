package ha

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"
)

// Every member keeps the group's state area in memory and follows it with
// watches: a child watch on state/ (an exists watch while state/ does not
// exist) and a data watch on each key. Reads (GetState, ListState,
// WaitState) are served from that copy and never touch ZooKeeper.
//
// One goroutine (stateArea.run) owns the watches and is the only writer of
// the copy, so its updates to a key are in the order ZooKeeper answered
// them. Watches belong to a session: go-zookeeper re-arms them itself after
// a reconnect within the session, and ends them all (EventNotWatching) when
// the session expires or the client is replaced. The loop then lists and
// reads everything again in the new session, and until it has, the copy is
// reported not synced (StateList.Synced): it is what this member last saw.

// StateEntry is one key of the group's state as this member last read it.
type StateEntry struct {
	Key string
	// Value is the value's bytes. It is shared with the member's copy:
	// do not modify it.
	Value []byte
	// Term is the leadership that wrote the value; By is the writer's name.
	Term int64
	By   string
	// Version is the key's znode's modification zxid (Stat.Mzxid). Every
	// change of the key gives it a larger one, a delete and re-create
	// included (Stat.Version restarts at 0 there, and would repeat):
	// WaitState compares it. 0 means the key does not exist.
	Version int64
	// Size is what the key takes in ZooKeeper, in bytes, header included.
	Size int
}

// StateList is the group's state area as this member last read it.
type StateList struct {
	// Entries are the keys in order, without their values.
	Entries []StateEntry
	// Ignored are znodes under state/ that are not state records (a bad
	// name or data that does not parse): never served, listed here for an
	// operator to remove.
	Ignored []Ignored
	// Synced reports that the copy follows ZooKeeper now: false without a
	// session, or while it is being read again after one was replaced.
	Synced bool
}

// stateCache is a member's copy of the state area.
type stateCache struct {
	mu      sync.Mutex
	entries map[string]StateEntry
	ignored map[string]Ignored // by child name
	synced  bool
	changed chan struct{} // closed (and replaced) on every change
}

func newStateCache() stateCache {
	return stateCache{entries: map[string]StateEntry{}, ignored: map[string]Ignored{}, changed: make(chan struct{})}
}

// notifyLocked wakes every WaitState.
func (c *stateCache) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *stateCache) get(key string) (StateEntry, bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	en, ok := c.entries[key]
	return en, ok, c.changed
}

func (c *stateCache) list() StateList {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := StateList{Entries: make([]StateEntry, 0, len(c.entries)), Ignored: make([]Ignored, 0, len(c.ignored)), Synced: c.synced}
	for _, en := range c.entries {
		en.Value = nil
		l.Entries = append(l.Entries, en)
	}
	for _, ig := range c.ignored {
		l.Ignored = append(l.Ignored, ig)
	}
	sort.Slice(l.Entries, func(i, j int) bool { return l.Entries[i].Key < l.Entries[j].Key })
	sort.Slice(l.Ignored, func(i, j int) bool { return l.Ignored[i].Znode < l.Ignored[j].Znode })
	return l
}

// GetState returns key's value as this member last read it from ZooKeeper
// (false when it has none). It never blocks: every member, standby or
// leader, serves it from its copy, which follows the leader's writes
// within a watch's delay (FACTS.md: 1 to 6 ms).
func (e *Election) GetState(key string) (StateEntry, bool) {
	en, ok, _ := e.kv.cache.get(key)
	return en, ok
}

// ListState returns every key (without values), the foreign znodes under
// state/, and whether the copy is synced.
func (e *Election) ListState() StateList { return e.kv.cache.list() }

// WaitState waits until key's version differs from after (0: absent) and
// returns the key then: at once when it already differs; when it changes,
// is deleted or created. When ctx ends first it returns the key as it is
// and ctx.Err(). A client that read version V waits with after=V for the
// next change.
func (e *Election) WaitState(ctx context.Context, key string, after int64) (StateEntry, bool, error) {
	for {
		en, ok, changed := e.kv.cache.get(key)
		if en.Version != after {
			return en, ok, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return en, ok, ctx.Err()
		}
	}
}

// kvEvent is a watch's notification; key "" is state/ itself.
type kvEvent struct {
	gen uint64
	key string
	ev  zk.Event
}

// kvFollow is the state of the loop that follows the area (run's).
type kvFollow struct {
	gen      uint64          // watches of older generations are ignored
	session  int64           // the session the watches were set in (0: none)
	dirArmed bool            // a child or exists watch on state/ is set
	needList bool            // state/ must be listed again
	needGet  map[string]bool // keys to read (and watch) again
	armed    map[string]bool // keys with a data watch set
}

// run follows the state area until quit closes.
func (a *stateArea) run() {
	defer close(a.done)
	notify, unsub := a.s.subscribe()
	defer unsub()
	events := make(chan kvEvent, 64)
	f := kvFollow{needGet: map[string]bool{}, armed: map[string]bool{}}
	var retry <-chan time.Time
	var backoff time.Duration
	for {
		st := a.s.status()
		if st.up && st.id != f.session {
			// A new session: every watch of the old one is gone.
			f.gen++
			f.session, f.dirArmed, f.needList = st.id, false, true
			clear(f.needGet)
			clear(f.armed)
		}
		if st.up && retry == nil && (f.needList || len(f.needGet) > 0) {
			if err := a.refresh(&f, events); err != nil {
				backoff = min(max(2*backoff, 50*time.Millisecond), 2*time.Second)
				retry = time.After(backoff)
				a.log.Debug("state area: read failed, retrying", zap.Duration("in", backoff), zap.Error(err))
			} else {
				backoff = 0
			}
		}
		a.setSynced(st.up && f.session == st.id && !f.needList && len(f.needGet) == 0)
		select {
		case <-a.quit:
			return
		case <-notify:
		case <-retry:
			retry = nil
		case ev := <-events:
			switch {
			case ev.gen != f.gen:
			case ev.ev.Type == zk.EventNotWatching:
				f.session = 0 // read everything again once a session is up
			case ev.key == "":
				f.dirArmed, f.needList = false, true
			default:
				f.armed[ev.key] = false
				f.needGet[ev.key] = true
			}
		}
	}
}

func (a *stateArea) setSynced(v bool) {
	c := &a.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.synced == v {
		return
	}
	c.synced = v
	c.notifyLocked()
	if v {
		a.log.Info("state area synced", zap.Int("keys", len(c.entries)), zap.Int("ignored", len(c.ignored)))
	} else {
		a.log.Info("state area not synced: serving what this member last read")
	}
}

// refresh lists state/ (setting its watch) when needed, then reads and
// watches every key that needs it.
func (a *stateArea) refresh(f *kvFollow, events chan<- kvEvent) error {
	conn, err := a.s.kvConn()
	if err != nil {
		return err
	}
	watch := func(ch <-chan zk.Event, key string) {
		gen := f.gen
		go func() {
			var ev zk.Event
			select {
			case e, ok := <-ch:
				ev = e
				if !ok {
					ev = zk.Event{Type: zk.EventNotWatching}
				}
			case <-a.quit:
				return
			}
			select {
			case events <- kvEvent{gen: gen, key: key, ev: ev}:
			case <-a.quit:
			}
		}()
	}
	for f.needList {
		start := time.Now()
		children, _, ch, err := conn.ChildrenW(a.dir)
		a.s.observe("children", start)
		if errors.Is(err, zk.ErrNoNode) {
			start = time.Now()
			exists, _, ch, err := conn.ExistsW(a.dir)
			a.s.observe("exists", start)
			if err != nil {
				return err
			}
			watch(ch, "")
			if exists {
				continue // created in between: list it
			}
			f.dirArmed, f.needList = true, false
			a.keep(f, nil)
			break
		}
		if err != nil {
			return err
		}
		watch(ch, "")
		f.dirArmed, f.needList = true, false
		a.keep(f, children)
	}
	keys := make([]string, 0, len(f.needGet))
	for k := range f.needGet {
		keys = append(keys, k)
	}
	type got struct {
		data []byte
		st   *zk.Stat
		ch   <-chan zk.Event
		err  error
	}
	res := make([]got, len(keys))
	parallel(len(keys), kvReaders, func(i int) {
		start := time.Now()
		r := &res[i]
		r.data, r.st, r.ch, r.err = conn.GetW(a.path(keys[i]))
		a.s.observe("get", start)
	})
	var failed error
	for i, k := range keys {
		r := res[i]
		switch {
		case errors.Is(r.err, zk.ErrNoNode):
			delete(f.needGet, k)
			a.drop(k)
		case r.err != nil:
			failed = r.err
		default:
			watch(r.ch, k)
			f.armed[k] = true
			delete(f.needGet, k)
			a.put(k, r.data, r.st)
		}
	}
	return failed
}

// kvReaders bounds the reads a member has in flight at once.
const kvReaders = 32

// parallel runs fn(0..n-1) on at most workers goroutines and waits.
func parallel(n, workers int, fn func(i int)) {
	if n <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(n, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// keep makes the copy hold exactly children: the keys gone are dropped,
// and new ones are to be read; a child that is not a valid key is ignored.
func (a *stateArea) keep(f *kvFollow, children []string) {
	names := make(map[string]bool, len(children))
	for _, n := range children {
		names[n] = true
		if err := ValidStateKey(n); err != nil {
			a.ignore(n, "not a valid state key ("+StateKeyRule+")")
			continue
		}
		if !f.armed[n] {
			f.needGet[n] = true
		}
	}
	c := &a.cache
	c.mu.Lock()
	var gone []string
	for k := range c.entries {
		if !names[k] {
			gone = append(gone, k)
		}
	}
	for k := range c.ignored {
		if !names[k] {
			gone = append(gone, k)
		}
	}
	c.mu.Unlock()
	for _, k := range gone {
		delete(f.needGet, k)
		f.armed[k] = false
		a.drop(k)
	}
}

// put records a key's data as read in a reply of stat st.
func (a *stateArea) put(key string, data []byte, st *zk.Stat) {
	h, value, err := decodeStateRecord(data)
	if err != nil {
		a.ignore(key, err.Error())
		return
	}
	c := &a.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[key]; ok && old.Version >= st.Mzxid {
		return // older than what we hold (read from a lagging server)
	}
	if ig, ok := c.ignored[key]; ok {
		delete(c.ignored, key)
		a.log.Info("state: znode holds a state record again", zap.String("znode", ig.Znode))
	}
	c.entries[key] = StateEntry{Key: key, Value: value, Term: h.Term, By: h.By, Version: st.Mzxid, Size: len(data)}
	c.notifyLocked()
	if ce := a.log.Check(zap.DebugLevel, "state: key changed"); ce != nil {
		ce.Write(zap.String("key", key), zap.Int64("term", h.Term), zap.String("by", h.By),
			zap.Int64("version", st.Mzxid), zap.Int("size", len(data)))
	}
}

// ignore records a znode under state/ that is not served, and logs it once.
func (a *stateArea) ignore(key, reason string) {
	c := &a.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	_, had := c.entries[key]
	delete(c.entries, key)
	ig := Ignored{Znode: a.path(key), Reason: reason}
	if c.ignored[key] != ig {
		c.ignored[key] = ig
		a.log.Warn("state: ignoring a znode that is not a hanode state record; remove it or write the key again",
			zap.String("znode", ig.Znode), zap.String("reason", reason))
	}
	if had {
		c.notifyLocked()
	}
}

// drop forgets a key that no longer exists.
func (a *stateArea) drop(key string) {
	c := &a.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.ignored[key]; ok {
		delete(c.ignored, key)
		a.log.Info("state: ignored znode gone", zap.String("znode", a.path(key)))
	}
	if _, ok := c.entries[key]; ok {
		delete(c.entries, key)
		c.notifyLocked()
		if ce := a.log.Check(zap.DebugLevel, "state: key deleted"); ce != nil {
			ce.Write(zap.String("key", key))
		}
	}
}
