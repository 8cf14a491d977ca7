package ping

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/internal/testwait"
)

// fakeCycle is a CycleSource whose cycle the test sets.
type fakeCycle struct {
	mu      sync.Mutex
	cur     ha.CycleInfo
	changed chan struct{}
	waiting atomic.Int32 // calls of Wait that block
}

func newFakeCycle() *fakeCycle { return &fakeCycle{changed: make(chan struct{})} }

func (f *fakeCycle) set(c ha.CycleInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cur = c
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeCycle) Current() (ha.CycleInfo, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur, f.cur.N > 0
}

func (f *fakeCycle) Wait(ctx context.Context, after int64) (ha.CycleInfo, bool) {
	for {
		f.mu.Lock()
		c, ch := f.cur, f.changed
		f.mu.Unlock()
		if c.N > after {
			return c, true
		}
		f.waiting.Add(1)
		select {
		case <-ch:
			f.waiting.Add(-1)
		case <-ctx.Done():
			f.waiting.Add(-1)
			return c, false
		}
	}
}

var cycle7 = ha.CycleInfo{N: 7, Started: time.Date(2026, 12, 6, 19, 0, 0, 5, time.UTC), Term: 42, Group: "nsg-primary-ha", By: "p1"}

func cycleHandler(src CycleSource) *Handler {
	h := New(testID, ha.StateFunc(func() ha.State { return ha.State{Phase: ha.PhaseStandby} }), nil)
	h.HandleCycle(src)
	return h
}

func TestCycleAnswersTheCurrentCycleAtOnce(t *testing.T) {
	src := newFakeCycle()
	h := cycleHandler(src)
	rec := do(t, h, http.MethodGet, "/v2/cycle")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"n":0,"started":"","term":0,"group":"","by":""}`, rec.Body.String())
	src.set(cycle7)
	rec = do(t, h, http.MethodGet, "/v2/cycle")
	assert.JSONEq(t, `{"n":7,"started":"2026-12-06T19:00:00.000000005Z","term":42,"group":"nsg-primary-ha","by":"p1"}`, rec.Body.String())
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	// Already above after: no wait.
	rec = do(t, h, http.MethodGet, "/v2/cycle?after=6&wait=1h")
	assert.Equal(t, http.StatusBadRequest, rec.Code, "wait above the maximum")
	rec = do(t, h, http.MethodGet, "/v2/cycle?after=6")
	assert.JSONEq(t, `{"n":7,"started":"2026-12-06T19:00:00.000000005Z","term":42,"group":"nsg-primary-ha","by":"p1"}`, rec.Body.String())
	head := do(t, h, http.MethodHead, "/v2/cycle?after=7")
	assert.Equal(t, http.StatusOK, head.Code, "HEAD never waits")
	assert.Equal(t, http.StatusMethodNotAllowed, do(t, h, http.MethodOptions, "/v2/cycle").Code)
}

func TestCycleLongPollAnswersWhenTheNextCycleComes(t *testing.T) {
	src := newFakeCycle()
	src.set(cycle7)
	h := cycleHandler(src)
	got := make(chan string, 1)
	go func() { got <- do(t, h, http.MethodGet, "/v2/cycle?after=7&wait=10s").Body.String() }()
	testwait.For(t, 5*time.Second, "the poll to wait", func() bool { return src.waiting.Load() == 1 })
	select {
	case b := <-got:
		t.Fatalf("answered before the next cycle: %s", b)
	default:
	}
	next := cycle7
	next.N = 8
	src.set(next)
	select {
	case b := <-got:
		assert.Contains(t, b, `"n":8`)
	case <-time.After(5 * time.Second):
		t.Fatal("no answer within 5s of the next cycle")
	}
}

func TestCycleLongPollTimesOutWithTheSameCycle(t *testing.T) {
	src := newFakeCycle()
	src.set(cycle7)
	h := cycleHandler(src)
	start := time.Now()
	rec := do(t, h, http.MethodGet, "/v2/cycle?after=7&wait=100ms")
	took := time.Since(start)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Body.String(), `"n":7`)
	assert.GreaterOrEqual(t, took, 100*time.Millisecond)
	assert.Less(t, took, 5*time.Second)
}

func TestCycleRefusesBadParameters(t *testing.T) {
	h := cycleHandler(newFakeCycle())
	for _, q := range []string{"after=x", "after=-1", "after=1&wait=0s", "after=1&wait=soon", "after=1&wait=6m"} {
		rec := do(t, h, http.MethodGet, "/v2/cycle?"+q)
		assert.Equal(t, http.StatusBadRequest, rec.Code, q)
	}
}

func TestStatusShowsTheCycle(t *testing.T) {
	c := cycle7
	st := NewStatus(testID, ha.State{Phase: ha.PhaseStandby, Cycle: &c})
	require.NotNil(t, st.Cycle)
	assert.Equal(t, StatusCycle{N: 7, Started: "2026-12-06T19:00:00.000000005Z", Term: 42, Group: "nsg-primary-ha", By: "p1"}, *st.Cycle)
	assert.Nil(t, NewStatus(testID, ha.State{Phase: ha.PhaseStandby}).Cycle)
}
