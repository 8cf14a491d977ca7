package ha

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hanode/hanode/ha/internal/core"
	"go.uber.org/zap"
)

// The group's state area: a small key/value store in ZooKeeper that only
// the current leader writes, each write term-fenced (Fenced), and that
// every member reads from its own copy (kv_cache.go). A warm standby
// follows what the leader publishes there; a leader whose lease has moved
// on cannot write, not even a write it sent before it froze: ZooKeeper
// refuses the multi, whose checks name the lease it no longer holds.
//
// Writes are serialised on the leader (a few ms each: one fenced multi,
// then a read back for the version). The leader counts the area's bytes
// itself: at its first write in a term it reads the size of every znode
// under state/ (a previous leader, or anyone, may have written since), and
// then adds its own writes, which are the only ones while its lease holds.

// stateArea is an election's state area: the copy (cache) and the writer.
type stateArea struct {
	e     *Election
	s     *Session
	dir   string
	name  string
	log   *zap.Logger
	cache stateCache

	quit, done chan struct{}

	wmu   sync.Mutex
	sizes stateSizes // guarded by wmu

	// hookBuild, set by tests before any write, runs when a write has its
	// fence and is about to be sent: a test freezes the writer there.
	hookBuild func()
}

// stateSizes is the leader's count of the area's bytes in one term.
type stateSizes struct {
	term  int64 // 0: not counted (or no longer to be trusted)
	dir   bool  // state/ exists
	size  map[string]int
	total int
}

func newStateArea(e *Election) *stateArea {
	l := core.NewLayout(e.s.cfg.Root, e.cfg.Group)
	return &stateArea{e: e, s: e.s, dir: l.GroupNode() + "/state", name: e.s.cfg.Name,
		log: e.log.Named("state"), cache: newStateCache(), quit: make(chan struct{}), done: make(chan struct{})}
}

func (a *stateArea) path(key string) string { return a.dir + "/" + key }

// start follows the area until the returned function is called; that
// function returns once the follower has stopped.
func (a *stateArea) start() (stop func()) {
	go a.run()
	return func() {
		close(a.quit)
		<-a.done
		a.setSynced(false)
	}
}

// kvConn returns the client when it has a session: requests fail fast
// without one, as every request of the session does (Session.do).
func (s *Session) kvConn() (*zk.Conn, error) {
	conn := s.conn.Load()
	if conn.State() != zk.StateHasSession {
		return nil, errNoSession
	}
	return conn, nil
}

// observe counts a request made outside do (the state area's and the
// cycle's reads with watches) and reports its time to ObserveRequest.
func (s *Session) observe(op string, start time.Time) {
	s.requests.Add(1)
	if f := s.cfg.ObserveRequest; f != nil {
		f(op, time.Since(start))
	}
}

// PutState sets key to value in the group's state area. Only the leader
// may: the write is one term-fenced multi (Fenced), recorded with the term
// and this node's name. It returns the key as written (its Term and
// Version; Version 0 if the read back failed), once this node's own copy
// shows it (bounded: a second), so the leader reads its own write.
//
// Refusals: ErrBadStateKey, ErrStateTooLarge (above MaxStateValue),
// ErrStateFull (the area would exceed MaxStateTotal; the message says how
// much it holds), ErrNotLeader (naming the leader this node knows of),
// ErrStateUnavailable (ZooKeeper could not be read; nothing written).
// ErrOutcomeUnknown: the connection broke with the write outstanding; it
// may have landed: read the key (GetState, WaitState) before writing again.
func (e *Election) PutState(ctx context.Context, key string, value []byte) (StateEntry, error) {
	if err := ValidStateKey(key); err != nil {
		return StateEntry{}, err
	}
	if len(value) > MaxStateValue {
		return StateEntry{}, fmt.Errorf("%w: %q is %d bytes, at most %d", ErrStateTooLarge, key, len(value), MaxStateValue)
	}
	a := e.kv
	term, err := a.write(ctx, key, value, false)
	if err != nil {
		return StateEntry{}, err
	}
	en := StateEntry{Key: key, Value: value, Term: term, By: a.name, Size: len(encodeStateRecord(term, a.name, value))}
	if conn, err := a.s.kvConn(); err == nil {
		start := time.Now()
		data, st, err := conn.Get(a.path(key))
		a.s.observe("get", start)
		if h, _, derr := decodeStateRecord(data); err == nil && derr == nil && h.Term == term && h.By == a.name {
			en.Version = st.Mzxid
		}
	}
	a.awaitCopy(ctx, func() bool {
		got, ok, _ := a.cache.get(key)
		return en.Version == 0 || ok && got.Version >= en.Version
	})
	a.log.Debug("state: key written", zap.String("key", key), zap.Int64("term", term),
		zap.Int64("version", en.Version), zap.Int("size", en.Size))
	return en, nil
}

// DeleteState deletes key from the group's state area and returns the term
// it was deleted in. Only the leader may (see PutState for the refusals);
// ErrStateNotFound when the key does not exist.
func (e *Election) DeleteState(ctx context.Context, key string) (int64, error) {
	if err := ValidStateKey(key); err != nil {
		return 0, err
	}
	a := e.kv
	term, err := a.write(ctx, key, nil, true)
	if err != nil {
		return 0, err
	}
	a.awaitCopy(ctx, func() bool {
		_, ok, _ := a.cache.get(key)
		return !ok
	})
	a.log.Debug("state: key deleted", zap.String("key", key), zap.Int64("term", term))
	return term, nil
}

// awaitCopy waits, a second at most, until done holds for this node's copy.
func (a *stateArea) awaitCopy(ctx context.Context, done func() bool) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	for {
		_, _, changed := a.cache.get("")
		if done() {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// kvWriteTries bounds the attempts of one write: a retry follows a write
// whose premises (the term, a key's existence) changed under it.
const kvWriteTries = 3

// write makes one fenced write of key: value, or its deletion.
func (a *stateArea) write(ctx context.Context, key string, value []byte, del bool) (int64, error) {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	var last error
	for tries := 0; tries < kvWriteTries; tries++ {
		st := a.e.State()
		if st.Phase != PhaseActive {
			return 0, notLeader(st)
		}
		term := st.Term
		if a.sizes.term != term {
			if err := a.count(term); err != nil {
				return 0, err
			}
		}
		old, exists := a.sizes.size[key]
		if del && !exists {
			return 0, fmt.Errorf("%w: %q", ErrStateNotFound, key)
		}
		var data []byte
		if !del {
			data = encodeStateRecord(term, a.name, value)
			if after := a.sizes.total - old + len(data); after > MaxStateTotal {
				return 0, fmt.Errorf("%w: it holds %d of %d bytes; %q would take %d bytes (now %d)",
					ErrStateFull, a.sizes.total, MaxStateTotal, key, len(data), old)
			}
		}
		p, dir := a.path(key), a.sizes.dir
		landed, err := a.e.Fenced(ctx, func(t int64) []Op {
			if a.hookBuild != nil {
				a.hookBuild()
			}
			if t != term {
				return nil // counted for another term: count again (below)
			}
			var ops []Op
			if !dir {
				ops = append(ops, Op{Kind: OpCreate, Path: a.dir})
			}
			switch {
			case del:
				ops = append(ops, Op{Kind: OpDelete, Path: p, Version: -1})
			case exists:
				ops = append(ops, Op{Kind: OpSet, Path: p, Data: data, Version: -1})
			default:
				ops = append(ops, Op{Kind: OpCreate, Path: p, Data: data})
			}
			return ops
		})
		switch {
		case errors.Is(err, ErrNotLeader):
			return 0, err
		case err != nil && (errors.Is(err, ErrOutcomeUnknown) || ctx.Err() != nil):
			a.sizes.term = 0 // it may have landed: count again
			return 0, err
		case err != nil:
			// One of our ops failed: state/ or the key is not as counted
			// (someone else wrote there). Count again and retry.
			a.log.Warn("state: write failed, counting the area again", zap.String("key", key), zap.Error(err))
			a.sizes.term, last = 0, err
			continue
		case landed != term:
			a.sizes.term = 0
			continue
		}
		a.sizes.dir = true
		a.sizes.total -= old
		if del {
			delete(a.sizes.size, key)
		} else {
			a.sizes.size[key] = len(data)
			a.sizes.total += len(data)
		}
		return term, nil
	}
	return 0, fmt.Errorf("ha: state write of %q: %w", key, last)
}

// notLeader is the refusal of a write on a node that does not lead.
func notLeader(st State) error {
	if st.Leader == "" {
		return fmt.Errorf("%w: no leader known (this node is %s)", ErrNotLeader, st.Phase)
	}
	return fmt.Errorf("%w: %s leads in term %d (this node is %s)", ErrNotLeader, st.Leader, st.Term, st.Phase)
}

// count reads the size of every znode under state/ for a write in term.
func (a *stateArea) count(term int64) error {
	a.sizes = stateSizes{}
	conn, err := a.s.kvConn()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrStateUnavailable, err)
	}
	start := time.Now()
	children, _, err := conn.Children(a.dir)
	a.s.observe("children", start)
	if errors.Is(err, zk.ErrNoNode) {
		a.sizes = stateSizes{term: term, size: map[string]int{}}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: list %s: %v", ErrStateUnavailable, a.dir, err)
	}
	sizes := make([]int, len(children))
	errs := make([]error, len(children))
	parallel(len(children), kvReaders, func(i int) {
		start := time.Now()
		ok, st, err := conn.Exists(a.path(children[i]))
		a.s.observe("exists", start)
		switch {
		case err != nil:
			errs[i] = err
		case ok:
			sizes[i] = int(st.DataLength)
		default:
			sizes[i] = -1 // gone since the listing
		}
	})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: read sizes under %s: %v", ErrStateUnavailable, a.dir, err)
	}
	s := stateSizes{term: term, dir: true, size: make(map[string]int, len(children))}
	for i, c := range children {
		if sizes[i] >= 0 {
			s.size[c] = sizes[i]
			s.total += sizes[i]
		}
	}
	a.sizes = s
	a.log.Info("state: counted the area for this term", zap.Int64("term", term),
		zap.Int("znodes", len(s.size)), zap.Int("bytes", s.total))
	return nil
}
