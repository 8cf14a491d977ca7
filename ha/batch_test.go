package ha

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/ha/internal/core"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// batchSession opens a session that counts as holding elections in groups
// (joinGroup), so that its batcher batches.
func batchSession(t *testing.T, addr string, groups ...string) *Session {
	t.Helper()
	s, err := OpenSession(SessionConfig{Servers: []string{addr}, Root: "/hanode", Timeout: testTimeout,
		Name: "batch", Host: "h", PID: os.Getpid(), Started: time.Now()})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	testwait.For(t, 10*time.Second, "the session", func() bool { return s.status().up })
	for _, g := range groups {
		require.True(t, s.joinGroup(g))
	}
	return s
}

// TestBatchAnswersEachGroupAsIfAlone: three groups' multis, one of them
// with a stale version, sent as extensions in one window: ZooKeeper refuses
// the batch; the stale one gets its own refusal (op by op, as alone), the
// other two are sent again without it and land exactly once.
func TestBatchAnswersEachGroupAsIfAlone(t *testing.T) {
	zkS := zktest.Start(t)
	s := batchSession(t, zkS.Addr, "g0", "g1", "g2")
	conn := s.conn.Load()
	for i := range 3 {
		_, err := conn.Create(fmt.Sprintf("/batch-%d", i), []byte("v0"), 0, zk.WorldACL(zk.PermAll))
		require.NoError(t, err)
	}
	versions := []int32{0, 7, 0} // the second group's check is stale
	res := make([]core.Result, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			p := fmt.Sprintf("/batch-%d", i)
			res[i], _ = s.batch.do(core.Op{Kind: core.OpMulti, Ops: []core.Op{
				{Kind: core.OpCheck, Path: p, Version: versions[i]},
				{Kind: core.OpSet, Path: p, Data: []byte("v1"), Version: versions[i]}}}, true)
		})
	}
	wg.Wait()

	for _, i := range []int{0, 2} {
		assert.Equal(t, core.ErrNone, res[i].Err, "group %d: %s", i, res[i].Detail)
		require.Len(t, res[i].Multi, 2, "group %d", i)
		assert.Equal(t, int32(1), res[i].Multi[1].Stat.Version, "group %d: the set's stat", i)
		_, st, err := conn.Get(fmt.Sprintf("/batch-%d", i))
		require.NoError(t, err)
		assert.Equal(t, int32(1), st.Version, "group %d: written once", i)
	}
	assert.Equal(t, core.ErrBadVersion, res[1].Err)
	require.Len(t, res[1].Multi, 2)
	assert.Equal(t, core.ErrBadVersion, res[1].Multi[0].Err, "the failed op is marked as when alone")
	assert.NotEqual(t, core.ErrNone, res[1].Multi[1].Err, "the op after it is not applied")
	_, st, err := conn.Get("/batch-1")
	require.NoError(t, err)
	assert.Equal(t, int32(0), st.Version, "the stale group's write did not land")

	stats := s.Stats()
	assert.Equal(t, uint64(2), stats.Batches, "the batch of three, then the two again")
	assert.Equal(t, uint64(5), stats.Batched)
}

// TestBatchWaitsOnlyForCompany: a session with one election sends at once;
// with several, an urgent write (a claim, a release) goes at once and takes
// the waiting extensions with it.
func TestBatchWaitsOnlyForCompany(t *testing.T) {
	zkS := zktest.Start(t)
	set := func(p string) core.Op {
		return core.Op{Kind: core.OpMulti, Ops: []core.Op{{Kind: core.OpSet, Path: p, Data: []byte("x"), Version: -1}}}
	}

	alone := batchSession(t, zkS.Addr, "only")
	conn := alone.conn.Load()
	for _, p := range []string{"/alone", "/ext", "/urgent"} {
		_, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
		require.NoError(t, err)
	}
	start := time.Now()
	r, _ := alone.batch.do(set("/alone"), true)
	require.Equal(t, core.ErrNone, r.Err, r.Detail)
	assert.Less(t, time.Since(start), batchWindow, "a lone election's extension waited for company")
	assert.Zero(t, alone.Stats().Batches)

	s := batchSession(t, zkS.Addr, "g0", "g1")
	ext := make(chan core.Result, 1)
	go func() { r, _ := s.batch.do(set("/ext"), true); ext <- r }()
	testwait.For(t, 5*time.Second, "the extension to wait in the queue", func() bool {
		s.batch.mu.Lock()
		defer s.batch.mu.Unlock()
		return len(s.batch.queue) == 1
	})
	start = time.Now()
	r, _ = s.batch.do(set("/urgent"), false)
	require.Equal(t, core.ErrNone, r.Err, r.Detail)
	assert.Equal(t, core.ErrNone, (<-ext).Err)
	assert.Less(t, time.Since(start), batchWindow, "the urgent write waited for the window")
	assert.Equal(t, SessionStats{Batches: 1, Batched: 2}, SessionStats{Batches: s.Stats().Batches, Batched: s.Stats().Batched})
}

// TestBatchKeepsFencedWritesToTheirConnection: a fenced write goes only on
// the connection its checks were taken on: one fenced on another (a
// replaced connection) is refused, not sent, and never carried in a batch
// with writes fenced on the current one.
func TestBatchKeepsFencedWritesToTheirConnection(t *testing.T) {
	zkS := zktest.Start(t)
	s := batchSession(t, zkS.Addr, "g0", "g1")
	conn := s.conn.Load()
	for _, p := range []string{"/now", "/old"} {
		_, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
		require.NoError(t, err)
	}
	set := func(p string) core.Op {
		return core.Op{Kind: core.OpMulti, Ops: []core.Op{{Kind: core.OpSet, Path: p, Data: []byte("x"), Version: -1}}}
	}
	current := s.dialer.dials.Load()
	// An extension waits for company; the two fenced writes come while it
	// waits and go at once: the current one with it, the old one alone.
	ext := make(chan core.Result, 1)
	go func() { r, _ := s.batch.do(set("/now"), true); ext <- r }()
	testwait.For(t, 5*time.Second, "the extension to wait in the queue", func() bool {
		s.batch.mu.Lock()
		defer s.batch.mu.Unlock()
		return len(s.batch.queue) == 1
	})
	var wg sync.WaitGroup
	var now, old core.Result
	wg.Go(func() { now, _ = s.batch.doIn(current, set("/now"), false) })
	wg.Go(func() { old, _ = s.batch.doIn(current+1, set("/old"), false) })
	wg.Wait()
	assert.Equal(t, core.ErrNone, now.Err, now.Detail)
	assert.Equal(t, core.ErrNotSent, old.Err, "a write fenced on another connection was sent")
	assert.Equal(t, core.ErrNone, (<-ext).Err)
	_, st, err := conn.Get("/old")
	require.NoError(t, err)
	assert.Equal(t, int32(0), st.Version, "the write fenced on another connection landed")
	s.batch.mu.Lock()
	defer s.batch.mu.Unlock()
	assert.True(t, s.batch.lastOwn.IsZero(), "a fenced write or an extension counted as the session's takeover traffic (quiet)")
}

// TestBatchQuietGivesWayToTheSessionsOwnWrites: a write that only records
// (a takeover's history entry) waits until the session's elections have
// asked for no claim, release or rejoin for quietAfter, at most quietMost;
// not at all with one election on the session; and not for fenced writes
// (another record's write does not hold the records back).
func TestBatchQuietGivesWayToTheSessionsOwnWrites(t *testing.T) {
	quiet := func(b *batcher, ctx context.Context) time.Duration {
		start := time.Now()
		b.quiet(ctx)
		return time.Since(start)
	}
	alone := &batcher{s: &Session{groups: map[string]bool{"g0": true}}}
	alone.lastOwn = time.Now()
	assert.Less(t, quiet(alone, context.Background()), quietAfter/2, "one election on the session: no wait")

	many := &batcher{s: &Session{groups: map[string]bool{"g0": true, "g1": true}}}
	assert.Less(t, quiet(many, context.Background()), quietAfter/2, "nothing asked yet: no wait")

	many.lastOwn = time.Now()
	assert.GreaterOrEqual(t, quiet(many, context.Background()), quietAfter*9/10, "a claim just asked: waits for quiet")

	// Claims asked again and again: the wait ends at quietMost all the same.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	many.lastOwn = time.Now()
	wg.Go(func() {
		tick := time.NewTicker(quietAfter / 4)
		defer tick.Stop()
		for {
			many.mu.Lock()
			many.lastOwn = time.Now()
			many.mu.Unlock()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	took := quiet(many, context.Background())
	close(stop)
	wg.Wait()
	assert.GreaterOrEqual(t, took, quietMost*9/10)
	assert.Less(t, took, quietMost+time.Second, "bounded by quietMost")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	many.lastOwn = time.Now()
	assert.Less(t, quiet(many, ctx), quietAfter/2, "a cancelled context ends the wait")
}
