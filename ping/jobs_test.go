package ping

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/ha"
)

// TestStatusShowsJobsOnlyOnANodeWithJobs: "jobs" lists each job's last run
// and next period; a node without jobs leaves the key out.
func TestStatusShowsEveryJobAndAnEmptyListWithout(t *testing.T) {
	st := ha.Standalone(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), "standalone")
	job := StatusJob{Name: "backup", Schedule: "every 1h", LastPeriod: "2026-03-01T11:00:00Z", LastTerm: 7, LastBy: "nsg-a",
		LastState: "ok", LastExit: "exit status 0", Next: "2026-03-01T12:00:00Z"}
	with := New(testID, st, nil, WithJobs(JobsFunc(func() []StatusJob { return []StatusJob{job} })))
	rec := do(t, with, http.MethodGet, "/v2/status")
	require.Equal(t, http.StatusOK, rec.Code)
	var got map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	assert.JSONEq(t, `[{"name": "backup", "schedule": "every 1h", "last_period": "2026-03-01T11:00:00Z", "last_term": 7,
		"last_by": "nsg-a", "last_state": "ok", "last_exit": "exit status 0", "next": "2026-03-01T12:00:00Z", "running": false}]`,
		string(got["jobs"]))

	without := New(testID, st, nil)
	got = nil
	require.NoError(t, json.Unmarshal(do(t, without, http.MethodGet, "/v2/status").Body.Bytes(), &got))
	assert.JSONEq(t, `[]`, string(got["jobs"]), "every key is always present")
}
