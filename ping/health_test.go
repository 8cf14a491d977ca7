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

// TestUnhealthyNodeAnswersStandbyAndSaysWhy: an unhealthy node answers
// the pings with the usual words (standby; 503 on se/), and its status
// carries the phase "unhealthy" with the reason, the health check, its
// candidacy and why the group has no leader.
func TestUnhealthyNodeAnswersStandbyAndSaysWhy(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := ha.State{Phase: ha.PhaseUnhealthy, Reason: "health check failing: HEALTH_CMD failed 3 times: exit status 1",
		Health: &ha.HealthState{State: "unhealthy", Reason: "HEALTH_CMD failed 3 times: exit status 1", Failures: 4,
			LastCheck: at, LastResult: "exit status 1", Command: true},
		Candidacy:  &ha.CandidacyState{Policy: "priority", Priority: -2, Preempt: true, PreemptDelay: 500 * time.Millisecond},
		LeaderNote: "no leader: every member unhealthy or gone"}
	e := New(testID, ha.StateFunc(func() ha.State { return st }), nil)

	plain := do(t, e, http.MethodGet, "/v2/ping/net/1/")
	assert.Equal(t, http.StatusOK, plain.Code)
	assert.Equal(t, "standby", plain.Body.String())
	se := do(t, e, http.MethodGet, "/v2/ping/net/1/se/")
	assert.Equal(t, http.StatusServiceUnavailable, se.Code)
	assert.Equal(t, "standby", se.Body.String())

	var got map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(do(t, e, http.MethodGet, "/v2/status").Body.Bytes(), &got))
	assert.JSONEq(t, `"unhealthy"`, string(got["state"]))
	assert.JSONEq(t, `"health check failing: HEALTH_CMD failed 3 times: exit status 1"`, string(got["reason"]))
	assert.JSONEq(t, `{"state": "unhealthy", "reason": "HEALTH_CMD failed 3 times: exit status 1", "failures": 4,
		"successes": 0, "last_check": "2026-03-01T12:00:00Z", "last_result": "exit status 1", "command": true}`, string(got["health"]))
	assert.JSONEq(t, `{"policy": "priority", "priority": -2, "preempt": true, "preempt_delay": "500ms", "nofailover": false}`,
		string(got["candidacy"]))
	assert.JSONEq(t, `"no leader: every member unhealthy or gone"`, string(got["leader_note"]))
}

// TestHealthBeforeTheFirstCheckShowsNoTime: unknown, with no check time.
func TestHealthBeforeTheFirstCheckShowsNoTime(t *testing.T) {
	st := ha.State{Phase: ha.PhaseStandby, Health: &ha.HealthState{State: "unknown", Command: true}}
	e := New(testID, ha.StateFunc(func() ha.State { return st }), nil)
	var s Status
	require.NoError(t, json.Unmarshal(do(t, e, http.MethodGet, "/v2/status").Body.Bytes(), &s))
	require.NotNil(t, s.Health)
	assert.Equal(t, StatusHealth{State: "unknown", Command: true}, *s.Health)
	assert.Nil(t, s.Candidacy)
}
