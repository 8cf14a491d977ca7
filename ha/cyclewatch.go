package ha

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hanode/hanode/ha/internal/core"
	"go.uber.org/zap"
)

// CycleConfig configures a Cycle.
type CycleConfig struct {
	// Interval is how often the cycle advances while Election leads; 0
	// means this node only watches. At least MinCycleInterval otherwise.
	Interval time.Duration
	// Election is the membership whose leadership advances the cycle (the
	// primary group's); nil means this node only watches.
	Election *Election
	// OnCycle, when set, hears every new cycle: one above every cycle this
	// node saw before, with how many it missed in between (skipped; they
	// are never reported later). The first cycle read after Run starts is
	// not new: it may have been handled before a restart. OnCycle runs on
	// Run's goroutine and must not block.
	OnCycle func(c CycleInfo, skipped int64)
	// Logger receives every cycle and every problem; nil means none.
	Logger *zap.Logger
}

// Cycle follows the cluster-wide polling cycle (<root>/cycle, see
// cycle.go) on a Session, and advances it while its Election leads. Run is
// its life; Current and Wait may be called from any goroutine.
type Cycle struct {
	s    *Session
	cfg  CycleConfig
	log  *zap.Logger
	path string

	mu      sync.Mutex
	seen    cycleSeen
	epoch   uint64        // the connection that delivered seen.last (0: none current)
	changed chan struct{} // closed (and replaced) when seen.highest grows
	snap    atomic.Pointer[CycleInfo]
}

// NewCycle checks cfg and returns a Cycle on s that has not started.
func NewCycle(s *Session, cfg CycleConfig) (*Cycle, error) {
	if cfg.Interval != 0 && cfg.Interval < MinCycleInterval {
		return nil, fmt.Errorf("ha: cycle interval %s is below %s", cfg.Interval, MinCycleInterval)
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	p := cyclePath(s.cfg.Root)
	c := &Cycle{s: s, cfg: cfg, log: log.With(zap.String("znode", p)), path: p, changed: make(chan struct{})}
	c.snap.Store(&CycleInfo{})
	return c, nil
}

// Snapshot is the highest cycle seen (N 0 before the first) as a shared,
// immutable value: it costs a status reader no lock and no allocation.
// Do not modify it.
func (c *Cycle) Snapshot() *CycleInfo { return c.snap.Load() }

// Current is the highest cycle this node has seen; ok is false before the
// first.
func (c *Cycle) Current() (CycleInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen.highest, c.seen.highest.N > 0
}

// Wait returns the highest cycle seen once it is above after, or when ctx
// ends (then ok says whether it is above after).
func (c *Cycle) Wait(ctx context.Context, after int64) (CycleInfo, bool) {
	for {
		c.mu.Lock()
		h, ch := c.seen.highest, c.changed
		c.mu.Unlock()
		if h.N > after {
			return h, true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return h, false
		}
	}
}

// leads reports whether this node may try to advance now.
func (c *Cycle) leads() bool {
	return c.cfg.Election != nil && c.cfg.Interval > 0 && c.cfg.Election.State().Phase == PhaseActive
}

// Run watches the cycle znode, and advances it while the election leads,
// until ctx ends. The watch is set again after every reconnect and every
// replaced client (a new connection: the read is made again).
func (c *Cycle) Run(ctx context.Context) error {
	notify, unsub := c.s.subscribe()
	defer unsub()
	var feed <-chan Transition
	if c.cfg.Election != nil && c.cfg.Interval > 0 {
		f, stop := c.cfg.Election.Subscribe()
		defer stop()
		feed = f
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var watch <-chan zk.Event
	var readAfter, advanceAfter time.Time // backoffs after a failed read or advance
	var lastRead time.Time
	// A safety net against a lost watch, as the election's relisting.
	relist := 3 * c.s.cfg.Timeout
	for {
		now := time.Now()
		st := c.s.status()
		c.mu.Lock()
		stale := c.epoch != st.epoch || now.Sub(lastRead) >= relist
		c.mu.Unlock()
		if st.up && (watch == nil || stale) && !now.Before(readAfter) {
			var err error
			if watch, err = c.read(); err != nil {
				c.log.Debug("cycle: read failed", zap.Error(err))
				readAfter = now.Add(200 * time.Millisecond)
			} else {
				lastRead, stale = now, false
			}
		}
		wake := now.Add(relist)
		if st.up && (watch == nil || stale) && readAfter.Before(wake) {
			wake = readAfter
		}
		lead := c.leads() && watch != nil
		if lead {
			if w, ok := c.due(); ok {
				wake = minTime(wake, maxTime(now.Add(w), advanceAfter))
			}
		}
		timer.Reset(max(time.Until(wake), 0))
		select {
		case <-ctx.Done():
			return nil
		case <-notify:
		case <-watch:
			watch = nil
		case <-feed:
		case <-timer.C:
			if lead && !time.Now().Before(advanceAfter) {
				if w, ok := c.due(); ok && w == 0 {
					advanceAfter = time.Now().Add(c.advance(ctx))
				}
			}
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// due is how long until this node may write the next cycle.
func (c *Cycle) due() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, w, ok := nextCycle(c.seen, c.cfg.Interval, time.Now())
	return w, ok
}

// read reads the cycle znode with a watch (a data watch, or an exists
// watch while it is absent) and folds what it saw in.
func (c *Cycle) read() (<-chan zk.Event, error) {
	r, watch, epoch, err := c.s.readWatch(c.path)
	if err != nil {
		return nil, err
	}
	c.log.Debug("cycle read", zap.Bool("exists", r.Exists), zap.Int32("version", r.Version), zap.Uint64("epoch", epoch))
	c.fold(r, epoch, time.Now())
	return watch, nil
}

// fold records an observation made at now, on the connection of epoch,
// and reports what it means.
func (c *Cycle) fold(r cycleRead, epoch uint64, now time.Time) {
	c.mu.Lock()
	prev := c.seen.highest
	seen, news := observeCycle(c.seen, r, now)
	c.seen, c.epoch = seen, epoch
	if seen.highest.N != prev.N {
		h := seen.highest
		c.snap.Store(&h)
		close(c.changed)
		c.changed = make(chan struct{})
	}
	c.mu.Unlock()
	h := seen.highest
	switch {
	case news.Bad != "":
		if news.Changed {
			c.log.Warn("cycle record is not valid; the next advance overwrites it", zap.String("problem", news.Bad),
				zap.String("data", core.Quote(r.Data)))
		}
	case news.Back:
		if news.Changed {
			c.log.Warn("cycle went back: ZooKeeper holds a lower cycle than this node saw (lost data, or another client); "+
				"the next advance continues above the highest", zap.Int64("stored", seen.stored.N), zap.Int64("highest", h.N))
		}
	case news.New:
		fields := []zap.Field{zap.Int64("cycle", h.N), zap.Time("started", h.Started), zap.Int64("term", h.Term),
			zap.String("group", h.Group), zap.String("by", h.By)}
		if news.Skipped > 0 {
			c.log.Warn("cycles missed", append(fields, zap.Int64("missed", news.Skipped), zap.Int64("previous", prev.N))...)
		}
		c.log.Info("cycle", fields...)
		if c.cfg.OnCycle != nil {
			c.cfg.OnCycle(h, news.Skipped)
		}
	case prev.N == 0 && h.N > 0:
		c.log.Info("cycle found", zap.Int64("cycle", h.N), zap.Time("started", h.Started), zap.String("by", h.By))
	}
}

// advance writes the next cycle if this node still leads and returns the
// backoff before the next try (0: none needed).
func (c *Cycle) advance(ctx context.Context) time.Duration {
	c.mu.Lock()
	seen, epoch := c.seen, c.epoch
	c.mu.Unlock()
	if st := c.s.status(); !st.up || st.epoch != epoch {
		c.log.Debug("cycle: not advanced yet: no read of this connection", zap.Uint64("read_epoch", epoch),
			zap.Uint64("epoch", st.epoch), zap.Bool("up", st.up))
		return 0 // a read of this connection first (Run does it)
	}
	n, wait, ok := nextCycle(seen, c.cfg.Interval, time.Now())
	if !ok || wait > 0 {
		if !ok && seen.stored.N >= MaxCycle {
			c.log.Error("cycle cannot advance: the counter is at its maximum", zap.Int64("cycle", seen.stored.N),
				zap.String("fix", "delete the znode; every node's highest cycle restarts with its process"))
			return time.Minute
		}
		return 0
	}
	err := c.write(ctx, seen, epoch, n)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrNotLeader), ctx.Err() != nil:
		// The election's next transition says so too; until then, do not
		// ask it again and again.
		c.log.Info("cycle not advanced: no longer the leader", zap.Int64("cycle", n), zap.Error(err))
		return min(c.cfg.Interval, time.Second)
	default:
		// Lost (it may have landed), or the node changed since our read:
		// read it again before anything else.
		c.log.Info("cycle not advanced; reading it again", zap.Int64("cycle", n), zap.Error(err))
		c.mu.Lock()
		c.epoch = 0
		c.mu.Unlock()
		return 100 * time.Millisecond
	}
}

// write makes cycle n, fenced by the election's lease, over the content
// seen (read on the connection of epoch), and folds the acknowledgement in
// as an observation: the write had happened by then.
func (c *Cycle) write(ctx context.Context, seen cycleSeen, epoch uint64, n int64) error {
	var data []byte
	var version int32
	rec := CycleInfo{N: n, Started: time.Now().UTC(), Group: c.cfg.Election.cfg.Group, By: c.s.cfg.Name}
	term, err := c.cfg.Election.Fenced(ctx, func(term int64) []Op {
		rec.Term = term
		data = encodeCycle(rec)
		if seen.last.Exists {
			version = seen.last.Version + 1
			return []Op{{Kind: OpSet, Path: c.path, Data: data, Version: seen.last.Version}}
		}
		version = 0
		return []Op{{Kind: OpCreate, Path: c.path, Data: data}}
	})
	if err != nil {
		return err
	}
	c.fold(cycleRead{Exists: true, Data: data, Version: version}, epoch, time.Now())
	c.log.Debug("cycle advanced", zap.Int64("cycle", n), zap.Int64("term", term))
	return nil
}

// readWatch reads path with a watch: a data watch when it exists, an
// exists watch when it does not. Like do, it fails fast without a session,
// and epoch is the connection that delivered the reply (0: unknown).
func (s *Session) readWatch(path string) (r cycleRead, watch <-chan zk.Event, epoch uint64, err error) {
	conn := s.conn.Load()
	if conn.State() != zk.StateHasSession {
		return cycleRead{}, nil, 0, errNoSession
	}
	before := s.dialer.dials.Load()
	for range 3 { // created or deleted between the two calls: look again
		start := time.Now()
		data, st, ch, gerr := conn.GetW(path)
		s.observe("get", start)
		if gerr == nil {
			r, watch = cycleRead{Exists: true, Data: data, Version: st.Version}, ch
			break
		}
		if !errors.Is(gerr, zk.ErrNoNode) {
			return cycleRead{}, nil, 0, fmt.Errorf("ha: read %s: %w", path, gerr)
		}
		start = time.Now()
		ok, _, ch, eerr := conn.ExistsW(path)
		s.observe("exists", start)
		if eerr != nil {
			return cycleRead{}, nil, 0, fmt.Errorf("ha: watch %s: %w", path, eerr)
		}
		if !ok {
			r, watch = cycleRead{}, ch
			break
		}
	}
	if watch == nil {
		return cycleRead{}, nil, 0, fmt.Errorf("ha: read %s: it keeps appearing and vanishing", path)
	}
	if s.dialer.dials.Load() == before {
		epoch = before
	}
	return r, watch, epoch, nil
}
