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

// TestNoOKWhileStandbyCmdMayRun: a leader whose STANDBY_CMD is not yet
// confirmed stopped answers standby on both routes, whatever its duty
// says, and its status shows the standby command and the last hook run.
func TestNoOKWhileStandbyCmdMayRun(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	hook := &ha.HookState{From: "waiting", To: "active", Term: 9, Exit: "exit status 0", OK: true, At: at,
		Took: 15 * time.Millisecond, Dropped: 2}
	const hookJSON = `{"from": "waiting", "to": "active", "term": 9, "exit": "exit status 0", "ok": true,
		"at": "2026-03-01T12:00:00Z", "took": "15ms", "queued": 0, "dropped": 2}`
	for _, tc := range []struct {
		name    string
		standby *ha.StandbyState
		ok      bool
		status  string
	}{
		{"no STANDBY_CMD", nil, true, `null`},
		{"stopping", &ha.StandbyState{State: "running"}, false,
			`{"state": "running", "restarts": 0, "last_exit": "", "last_exit_at": "", "held": false, "problem": ""}`},
		{"not confirmed stopped", &ha.StandbyState{State: "stopped", LastExit: "still running", LastExitAt: at, Problem: "STANDBY_CMD not confirmed stopped"}, false,
			`{"state": "stopped", "restarts": 0, "last_exit": "still running", "last_exit_at": "2026-03-01T12:00:00Z", "held": false, "problem": "STANDBY_CMD not confirmed stopped"}`},
		{"confirmed stopped", &ha.StandbyState{State: "stopped", Held: true}, true,
			`{"state": "stopped", "restarts": 0, "last_exit": "", "last_exit_at": "", "held": true, "problem": ""}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := ha.State{Phase: ha.PhaseActive, Duty: &ha.DutyState{State: "running", Serving: true}, Standby: tc.standby, Hook: hook}
			e := New(testID, ha.StateFunc(func() ha.State { return st }), nil)
			want, code := "standby", http.StatusServiceUnavailable
			if tc.ok {
				want, code = "ok", http.StatusOK
			}
			assert.Equal(t, want, do(t, e, http.MethodGet, "/v2/ping/net/1/").Body.String())
			rec := do(t, e, http.MethodGet, "/v2/ping/net/1/se/")
			assert.Equal(t, code, rec.Code)
			assert.Equal(t, want, rec.Body.String())
			var got map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(do(t, e, http.MethodGet, "/v2/status").Body.Bytes(), &got))
			assert.JSONEq(t, tc.status, string(got["standby"]))
			assert.JSONEq(t, hookJSON, string(got["hook"]))
		})
	}
}
