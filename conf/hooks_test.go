package conf

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestValidateHookKeys: NOTIFY_CMD and STANDBY_CMD are optional commands;
// their timeouts default to 30s and 5s and must be positive, each refusal
// naming its key, all reported at once.
func TestValidateHookKeys(t *testing.T) {
	c, err := Validate(minimal())
	require.NoError(t, err)
	assert.Equal(t, "", c.NotifyCmd)
	assert.Equal(t, "", c.StandbyCmd)
	assert.Equal(t, 30*time.Second, c.NotifyTimeout)
	assert.Equal(t, 5*time.Second, c.StandbyStopTimeout)

	c, err = Validate(minimal(set(KeyNotifyCmd, "logger -t hanode $HANODE_TO"), set(KeyNotifyTimeout, "2s"),
		set(KeyStandbyCmd, "exec follow-primary"), set(KeyStandbyStopTimeout, "750ms"),
		set(KeyHAID, "g1"), set(KeyZK, "zk1:2181")))
	require.NoError(t, err)
	assert.Equal(t, "logger -t hanode $HANODE_TO", c.NotifyCmd)
	assert.Equal(t, 2*time.Second, c.NotifyTimeout)
	assert.Equal(t, "exec follow-primary", c.StandbyCmd)
	assert.Equal(t, 750*time.Millisecond, c.StandbyStopTimeout)
	assert.Empty(t, c.Notices())

	_, err = Validate(minimal(Setting{KeyNotifyTimeout, "0s", "f:3"}, Setting{KeyStandbyStopTimeout, "-1s", "f:4"}))
	require.Error(t, err)
	assert.ErrorContains(t, err, "NOTIFY_TIMEOUT")
	assert.ErrorContains(t, err, "f:3")
	assert.ErrorContains(t, err, "STANDBY_STOP_TIMEOUT")
	assert.ErrorContains(t, err, "f:4")
	assert.ErrorContains(t, err, "must be positive")
}

// TestValidateWarnsStandbyCmdWithoutGroup: STANDBY_CMD on a standalone
// server is valid but never runs, and Validate says so.
func TestValidateWarnsStandbyCmdWithoutGroup(t *testing.T) {
	c, err := Validate(minimal(Setting{KeyStandbyCmd, "exec follow", "f:7"}))
	require.NoError(t, err)
	n := c.Notices()
	require.Len(t, n, 1)
	assert.Equal(t, NoticeWarning, n[0].Kind)
	assert.Equal(t, KeyStandbyCmd, n[0].Key)
	assert.Equal(t, "f:7", n[0].Source)
	assert.Contains(t, n[0].Msg, "never runs without HA_ID")
}
