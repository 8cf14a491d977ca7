package ping

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/ha"
)

type fakeHistory struct {
	entries []ha.HistoryEntry
	asked   int
	err     error
}

func (f *fakeHistory) History(limit int) ([]ha.HistoryEntry, error) {
	f.asked = limit
	return f.entries, f.err
}

// TestHistoryAnswersTheEntriesAndChecksTheLimit: GET /v2/history answers
// {"history": [...]}, asks for 100 by default or the limit given, refuses
// a limit out of range with 400, and a failed read with 503.
func TestHistoryAnswersTheEntriesAndChecksTheLimit(t *testing.T) {
	at := time.Date(2026, 12, 6, 22, 0, 0, 0, time.UTC)
	f := &fakeHistory{entries: []ha.HistoryEntry{{At: at, From: "a", To: "b", Term: 7, Cause: ha.CauseSwitchover, Seq: 3}}}
	h := New(testID, ha.StateFunc(func() ha.State { return ha.State{} }), nil)
	h.MountHistory(f)

	rec := do(t, h, http.MethodGet, PathHistory)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, 100, f.asked)
	var doc struct{ History []ha.HistoryEntry }
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &doc))
	assert.Equal(t, f.entries, doc.History)

	do(t, h, http.MethodGet, PathHistory+"?limit=5")
	assert.Equal(t, 5, f.asked)
	for _, bad := range []string{"0", "1001", "x"} {
		assert.Equal(t, http.StatusBadRequest, do(t, h, http.MethodGet, PathHistory+"?limit="+bad).Code, bad)
	}
	f.err = errors.New("ha: read /hanode/groups/g/history: no session")
	assert.Equal(t, http.StatusServiceUnavailable, do(t, h, http.MethodGet, PathHistory).Code)
	assert.Equal(t, http.StatusMethodNotAllowed, do(t, h, http.MethodPost, PathHistory).Code)
}
