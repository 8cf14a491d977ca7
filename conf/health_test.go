package conf

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// inGroup makes a minimal configuration a member of an HA group.
func inGroup(extra ...Setting) []Setting {
	return minimal(append([]Setting{set(KeyHAID, "g1"), set(KeyZK, "zk1:2181")}, extra...)...)
}

// TestValidateCandidacyDefaults: first-come, priority 0, no preemption (a
// 30s delay if turned on), may lead; health checked every 10s, 3 failures
// out, 2 passes back, each check bounded by the interval.
func TestValidateCandidacyDefaults(t *testing.T) {
	c, err := Validate(inGroup())
	require.NoError(t, err)
	assert.Equal(t, Candidacy{ElectionPolicy: "first-come", PreemptDelay: 30 * time.Second,
		HealthInterval: 10 * time.Second, HealthTimeout: 10 * time.Second, HealthFailures: 3, HealthRecoveries: 2}, c.Candidacy)
	assert.Empty(t, c.Notices())
	assert.Equal(t, Setting{KeyHealthTimeout, "10s", "default (min(HEALTH_INTERVAL, 10s))"}, setting(t, c, KeyHealthTimeout))
}

// TestValidateCandidacyKeys: every key read and spelled as documented;
// HEALTH_TIMEOUT defaults to the interval when that is shorter than 10s
// and to 10s when it is longer.
func TestValidateCandidacyKeys(t *testing.T) {
	c, err := Validate(inGroup(set(KeyElectionPolicy, "Priority"), set(KeyPriority, "-3"), set(KeyPreempt, "yes"),
		set(KeyPreemptDelay, "500ms"), set(KeyNoFailover, "TRUE"), set(KeyHealthCmd, "exec check"),
		set(KeyHealthInterval, "200ms"), set(KeyHealthFailures, "1"), set(KeyHealthRecoveries, "4")))
	require.NoError(t, err)
	assert.Equal(t, Candidacy{ElectionPolicy: "priority", Priority: -3, Preempt: true, PreemptDelay: 500 * time.Millisecond,
		NoFailover: true, HealthCmd: "exec check", HealthInterval: 200 * time.Millisecond, HealthTimeout: 200 * time.Millisecond,
		HealthFailures: 1, HealthRecoveries: 4}, c.Candidacy)
	assert.Equal(t, "true", setting(t, c, KeyPreempt).Value)
	assert.Equal(t, "-3", setting(t, c, KeyPriority).Value)

	c, err = Validate(inGroup(set(KeyHealthInterval, "1m")))
	require.NoError(t, err)
	assert.Equal(t, 10*time.Second, c.HealthTimeout)
	c, err = Validate(inGroup(set(KeyHealthInterval, "1m"), set(KeyHealthTimeout, "45s")))
	require.NoError(t, err)
	assert.Equal(t, 45*time.Second, c.HealthTimeout)
}

// TestValidateCandidacyRefusesAllProblemsAtOnce: each bad value is named
// with its key and file:line, in one error.
func TestValidateCandidacyRefusesAllProblemsAtOnce(t *testing.T) {
	_, err := Validate(inGroup(
		Setting{KeyElectionPolicy, "random", "f:1"},
		Setting{KeyPriority, "high", "f:2"},
		Setting{KeyPreempt, "maybe", "f:3"},
		Setting{KeyPreemptDelay, "-1s", "f:4"},
		Setting{KeyNoFailover, "2", "f:5"},
		Setting{KeyHealthInterval, "0s", "f:6"},
		Setting{KeyHealthFailures, "0", "f:7"},
		Setting{KeyHealthRecoveries, "x", "f:8"},
		Setting{KeyHealthTimeout, "-2s", "f:9"},
	))
	require.Error(t, err)
	for _, want := range []string{
		`ELECTION_POLICY="random" (from f:1): must be one of first-come, priority`,
		`PRIORITY="high" (from f:2): not a whole number`,
		`PREEMPT="maybe" (from f:3): must be true or false`,
		`PREEMPT_DELAY="-1s" (from f:4): must not be negative`,
		`NOFAILOVER="2" (from f:5): must be true or false`,
		`HEALTH_INTERVAL="0s" (from f:6): must be positive`,
		`HEALTH_FAILURES="0" (from f:7): must be at least 1`,
		`HEALTH_RECOVERIES="x" (from f:8): not a whole number`,
		`HEALTH_TIMEOUT="-2s" (from f:9): must be positive`,
	} {
		assert.ErrorContains(t, err, want)
	}
	assert.ErrorIs(t, err, ErrInvalid)
}

// TestValidatePreemptNeedsThePriorityPolicy: PREEMPT under first-come is
// refused, naming where the policy came from.
func TestValidatePreemptNeedsThePriorityPolicy(t *testing.T) {
	_, err := Validate(inGroup(Setting{KeyPreempt, "true", "f:3"}))
	require.Error(t, err)
	assert.ErrorContains(t, err, `PREEMPT="true" (from f:3): needs ELECTION_POLICY=priority, but ELECTION_POLICY=first-come (from default)`)
}

// TestValidateHealthTimeoutMustFitTheInterval: a check longer than its
// interval would break the HEALTH_FAILURES × HEALTH_INTERVAL bound.
func TestValidateHealthTimeoutMustFitTheInterval(t *testing.T) {
	_, err := Validate(inGroup(Setting{KeyHealthInterval, "1s", "f:1"}, Setting{KeyHealthTimeout, "2s", "f:2"}))
	require.Error(t, err)
	assert.ErrorContains(t, err, `HEALTH_TIMEOUT="2s" (from f:2): must not exceed HEALTH_INTERVAL=1s (from f:1)`)
}

// TestValidateWarnsCandidacyKeysThatDoNothing: PRIORITY without the
// priority policy, PREEMPT_DELAY without PREEMPT, NOFAILOVER and
// HEALTH_CMD without HA_ID are valid but do nothing, and Validate says so.
func TestValidateWarnsCandidacyKeysThatDoNothing(t *testing.T) {
	c, err := Validate(inGroup(Setting{KeyPriority, "1", "f:2"}, Setting{KeyPreemptDelay, "1s", "f:3"}))
	require.NoError(t, err)
	n := c.Notices()
	require.Len(t, n, 2)
	assert.Equal(t, Notice{Kind: NoticeWarning, Key: KeyPriority, Value: "1", Source: "f:2",
		Msg: "PRIORITY is used only with ELECTION_POLICY=priority, and ELECTION_POLICY=first-come (from default): " +
			"this member leads in the order it joined"}, n[0])
	assert.Equal(t, KeyPreemptDelay, n[1].Key)
	assert.Contains(t, n[1].Msg, "only with PREEMPT=true")

	c, err = Validate(minimal(Setting{KeyNoFailover, "true", "f:4"}, Setting{KeyHealthCmd, "exec check", "f:5"}))
	require.NoError(t, err)
	n = c.Notices()
	require.Len(t, n, 2)
	assert.Equal(t, KeyNoFailover, n[0].Key)
	assert.Equal(t, "f:4", n[0].Source)
	assert.Contains(t, n[0].Msg, "without HA_ID")
	assert.Equal(t, KeyHealthCmd, n[1].Key)
	assert.Contains(t, n[1].Msg, "never runs without HA_ID")

	c, err = Validate(inGroup(set(KeyElectionPolicy, "priority"), set(KeyPriority, "1")))
	require.NoError(t, err)
	assert.Empty(t, c.Notices(), "PRIORITY with its policy")
}
