package ping

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/ha"
)

// fakeStore is a state area in memory: it leads when leading is true.
type fakeStore struct {
	mu      sync.Mutex
	leading bool
	fail    error // the next write's error
	term    int64
	version int64
	entries map[string]ha.StateEntry
	ignored []ha.Ignored
	changed chan struct{}
	puts    int
}

func newFakeStore(leading bool) *fakeStore {
	return &fakeStore{leading: leading, term: 7, version: 100, entries: map[string]ha.StateEntry{}, changed: make(chan struct{})}
}

func (f *fakeStore) GetState(key string) (ha.StateEntry, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	en, ok := f.entries[key]
	return en, ok
}

func (f *fakeStore) ListState() ha.StateList {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := ha.StateList{Synced: true, Ignored: f.ignored}
	for _, k := range []string{"a", "b", "epoch"} {
		if en, ok := f.entries[k]; ok {
			en.Value = nil
			l.Entries = append(l.Entries, en)
		}
	}
	return l
}

func (f *fakeStore) WaitState(ctx context.Context, key string, after int64) (ha.StateEntry, bool, error) {
	for {
		f.mu.Lock()
		en, ok := f.entries[key]
		ch := f.changed
		f.mu.Unlock()
		if en.Version != after {
			return en, ok, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return en, ok, ctx.Err()
		}
	}
}

func (f *fakeStore) PutState(_ context.Context, key string, value []byte) (ha.StateEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts++
	if err := f.writeErr(); err != nil {
		return ha.StateEntry{}, err
	}
	f.version++
	en := ha.StateEntry{Key: key, Value: value, Term: f.term, By: "nsg-a", Version: f.version, Size: len(value) + 50}
	f.entries[key] = en
	close(f.changed)
	f.changed = make(chan struct{})
	en.Value = nil
	return en, nil
}

func (f *fakeStore) DeleteState(_ context.Context, key string) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.writeErr(); err != nil {
		return 0, err
	}
	if _, ok := f.entries[key]; !ok {
		return 0, fmt.Errorf("%w: %q", ha.ErrStateNotFound, key)
	}
	delete(f.entries, key)
	close(f.changed)
	f.changed = make(chan struct{})
	return f.term, nil
}

func (f *fakeStore) writeErr() error {
	if err := f.fail; err != nil {
		f.fail = nil
		return err
	}
	if !f.leading {
		return fmt.Errorf("%w: nsg-b leads in term 7", ha.ErrNotLeader)
	}
	return nil
}

// stateNode is a handler with the state routes, seen as phase with leader.
func stateNode(store *fakeStore, phase ha.Phase, leader string) *Handler {
	st := ha.State{Phase: phase, Leader: leader, Term: 7, Members: []ha.Member{
		{MemberInfo: ha.MemberInfo{Name: "nsg-a", HTTP: "10.0.0.1:9640"}, Seq: 1, Leader: leader == "nsg-a"},
		{MemberInfo: ha.MemberInfo{Name: "nsg-b", HTTP: "10.0.0.2:9640"}, Seq: 2, Leader: leader == "nsg-b"},
	}}
	h := New(testID, ha.StateFunc(func() ha.State { return st }), nil)
	h.MountState(store)
	return h
}

func send(t *testing.T, h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, strings.NewReader(body)))
	return rec
}

func TestStatePutOnTheLeaderIsReadBack(t *testing.T) {
	store := newFakeStore(true)
	h := stateNode(store, ha.PhaseActive, "nsg-a")

	rec := send(t, h, http.MethodPut, "/v2/state/epoch", "v1")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.JSONEq(t, `{"key":"epoch","term":7,"version":101,"by":"nsg-a","size":52}`, rec.Body.String())
	assert.Equal(t, "7", rec.Header().Get(HeaderStateTerm))

	rec = send(t, h, http.MethodGet, "/v2/state/epoch", "")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "v1", rec.Body.String())
	assert.Equal(t, "application/octet-stream", rec.Header().Get("Content-Type"))
	assert.Equal(t, "7", rec.Header().Get(HeaderStateTerm))
	assert.Equal(t, "101", rec.Header().Get(HeaderStateVersion))
	assert.Equal(t, "nsg-a", rec.Header().Get(HeaderStateBy))

	rec = send(t, h, http.MethodGet, "/v2/state/epoch?format=json", "")
	assert.JSONEq(t, `{"key":"epoch","value":"djE=","term":7,"version":101,"by":"nsg-a","size":52}`, rec.Body.String())

	head := send(t, h, http.MethodHead, "/v2/state/epoch", "")
	assert.Equal(t, http.StatusOK, head.Code)
	assert.Empty(t, head.Body.String())
	assert.Equal(t, "2", head.Header().Get("Content-Length"))

	rec = send(t, h, http.MethodGet, "/v2/state", "")
	assert.JSONEq(t, `{"synced":true,"keys":[{"key":"epoch","term":7,"version":101,"by":"nsg-a","size":52}],"ignored":[]}`, rec.Body.String())

	rec = send(t, h, http.MethodDelete, "/v2/state/epoch", "")
	assert.Equal(t, http.StatusNoContent, rec.Code)
	assert.Equal(t, "7", rec.Header().Get(HeaderStateTerm))
	rec = send(t, h, http.MethodGet, "/v2/state/epoch", "")
	assert.Equal(t, http.StatusNotFound, rec.Code)
	assert.JSONEq(t, `{"error":"no such key","key":"epoch"}`, rec.Body.String())
	assert.Equal(t, "0", rec.Header().Get(HeaderStateVersion))
	assert.Equal(t, http.StatusNotFound, send(t, h, http.MethodDelete, "/v2/state/epoch", "").Code)
}

func TestStateWriteOnAStandbyNamesTheLeader(t *testing.T) {
	h := stateNode(newFakeStore(false), ha.PhaseStandby, "nsg-b")
	for _, method := range []string{http.MethodPut, http.MethodDelete} {
		rec := send(t, h, method, "/v2/state/epoch", "v")
		require.Equal(t, http.StatusConflict, rec.Code, method)
		var body map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		assert.Equal(t, "nsg-b", body["leader"], method)
		assert.Equal(t, "10.0.0.2:9640", body["leader_http"], method)
		assert.EqualValues(t, 7, body["term"], method)
		assert.Contains(t, body["error"], "not the leader", method)
	}
	// A node that cannot tell who leads cannot send the client anywhere.
	rec := send(t, stateNode(newFakeStore(false), ha.PhaseDisconnected, ""), http.MethodPut, "/v2/state/epoch", "v")
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "1", rec.Header().Get("Retry-After"))
}

func TestStateRefusesTooMuchAndBadRequests(t *testing.T) {
	store := newFakeStore(true)
	h := stateNode(store, ha.PhaseActive, "nsg-a")

	rec := send(t, h, http.MethodPut, "/v2/state/big", strings.Repeat("x", ha.MaxStateValue+1))
	assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
	assert.Contains(t, rec.Body.String(), "at most 65536")
	assert.Zero(t, store.puts, "refused before the store")
	assert.Equal(t, http.StatusOK, send(t, h, http.MethodPut, "/v2/state/big", strings.Repeat("x", ha.MaxStateValue)).Code)

	store.fail = fmt.Errorf("%w: it holds 1040000 of 1048576 bytes", ha.ErrStateFull)
	rec = send(t, h, http.MethodPut, "/v2/state/more", "x")
	assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
	assert.Contains(t, rec.Body.String(), "it holds 1040000 of 1048576 bytes")

	store.fail = fmt.Errorf("%w: connection lost", ha.ErrOutcomeUnknown)
	assert.Equal(t, http.StatusServiceUnavailable, send(t, h, http.MethodPut, "/v2/state/more", "x").Code)

	for _, target := range []string{"/v2/state/a:b", "/v2/state/..", "/v2/state/a%2Fb", "/v2/state/" + strings.Repeat("k", 129)} {
		rec := send(t, h, http.MethodGet, target, "")
		assert.Equal(t, http.StatusBadRequest, rec.Code, target)
		assert.Contains(t, rec.Body.String(), "A-Z a-z 0-9", target)
	}
	for _, target := range []string{"/v2/state/k?after=x", "/v2/state/k?after=-1", "/v2/state/k?after=1&wait=2h", "/v2/state/k?format=xml"} {
		assert.Equal(t, http.StatusBadRequest, send(t, h, http.MethodGet, target, "").Code, target)
	}
	rec = send(t, h, http.MethodPost, "/v2/state/k", "")
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	assert.Equal(t, "GET, HEAD, PUT, DELETE", rec.Header().Get("Allow"))
	assert.Equal(t, http.StatusMethodNotAllowed, send(t, h, http.MethodPut, "/v2/state", "").Code)
}

func TestStateLongPollWakesOnChange(t *testing.T) {
	store := newFakeStore(true)
	h := stateNode(store, ha.PhaseActive, "nsg-a")
	require.Equal(t, http.StatusOK, send(t, h, http.MethodPut, "/v2/state/epoch", "v1").Code) // version 101

	srv := httptest.NewServer(h)
	defer srv.Close()
	type answer struct {
		code          int
		body, version string
	}
	got := make(chan answer, 1)
	go func() {
		res, err := http.Get(srv.URL + "/v2/state/epoch?after=101&wait=20s")
		if err != nil {
			t.Error(err)
			got <- answer{}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Error(err)
		}
		got <- answer{res.StatusCode, string(b), res.Header.Get(HeaderStateVersion)}
	}()
	// The poll waits: nothing changed yet.
	select {
	case a := <-got:
		t.Fatalf("the poll answered %+v before any change", a)
	case <-time.After(50 * time.Millisecond):
	}
	require.Equal(t, http.StatusOK, send(t, h, http.MethodPut, "/v2/state/epoch", "v2").Code)
	select {
	case a := <-got:
		assert.Equal(t, answer{200, "v2", "102"}, a)
	case <-time.After(10 * time.Second):
		t.Fatal("the poll did not wake on the change")
	}

	// A poll whose wait ends answers the key as it is.
	rec := send(t, h, http.MethodGet, "/v2/state/epoch?after=102&wait=10ms", "")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "102", rec.Header().Get(HeaderStateVersion))
	// after=0 waits for a key to exist; an absent key that differs answers 404 at once.
	assert.Equal(t, http.StatusNotFound, send(t, h, http.MethodGet, "/v2/state/none?after=5", "").Code)
}

func TestStatusListsForeignStateZnodes(t *testing.T) {
	store := newFakeStore(true)
	store.ignored = []ha.Ignored{{Znode: "/hanode/groups/ha-1/state/junk", Reason: "no header line"}}
	h := stateNode(store, ha.PhaseActive, "nsg-a")
	var st Status
	require.NoError(t, json.Unmarshal(send(t, h, http.MethodGet, "/v2/status", "").Body.Bytes(), &st))
	assert.Equal(t, []StatusIgnored{{Znode: "/hanode/groups/ha-1/state/junk", Reason: "state: no header line"}}, st.Ignored)
	rec := send(t, h, http.MethodGet, "/v2/state", "")
	assert.Contains(t, rec.Body.String(), `"ignored":[{"znode":"/hanode/groups/ha-1/state/junk","reason":"no header line"}]`)
}

// BenchmarkStateGet: the handler's own cost of GET /v2/state/:key, without
// the server's pacing (Serve starts such requests at most one per 2 ms).
//
//	go test ./ping -run '^$' -bench BenchmarkStateGet -benchmem
func BenchmarkStateGet(b *testing.B) {
	store := newFakeStore(true)
	h := stateNode(store, ha.PhaseStandby, "nsg-b")
	store.entries["epoch"] = ha.StateEntry{Key: "epoch", Value: []byte(strings.Repeat("v", 100)), Term: 7, By: "nsg-b", Version: 9, Size: 150}
	req := httptest.NewRequest(http.MethodGet, "/v2/state/epoch", nil)
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}
