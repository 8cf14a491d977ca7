package conf

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// group is a valid HA member's settings plus extra.
func group(role string, extra ...Setting) []Setting {
	return append([]Setting{set(KeyName, "p1"), set(KeyRole, role), set(KeyHAID, "g"), set(KeyZK, "zk1:2181")}, extra...)
}

func TestValidatePollCycle(t *testing.T) {
	c, err := Validate(group("primary"))
	require.NoError(t, err)
	assert.Zero(t, c.PollInterval, "off unless set")
	assert.Empty(t, c.CycleCmd)

	c, err = Validate(group("primary,monitor", set(KeyPollInterval, "30s"), set(KeyCycleCmd, "echo $HANODE_CYCLE")))
	require.NoError(t, err)
	assert.Equal(t, 30*time.Second, c.PollInterval)
	assert.Equal(t, "echo $HANODE_CYCLE", c.CycleCmd)
	assert.Empty(t, c.Notices())
	assert.True(t, c.PrimaryRole())
	assert.Equal(t, "30s", c.value(KeyPollInterval))

	for _, tc := range []struct{ value, msg string }{
		{"soon", "not a duration"},
		{"999ms", "must be from 1s to 24h0m0s"},
		{"25h", "must be from 1s to 24h0m0s"},
		{"-1s", "must be from 1s"},
	} {
		_, err := Validate(group("primary", Setting{KeyPollInterval, tc.value, "f:3"}))
		require.Error(t, err, tc.value)
		assert.ErrorContains(t, err, `POLL_INTERVAL="`+tc.value+`" (from f:3): `+tc.msg)
	}
}

// TestValidateWarnsCycleKeysThatCannotAct: a cycle key where it has no
// effect is valid, with a warning that says why.
func TestValidateWarnsCycleKeysThatCannotAct(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []Setting
		key  string
		msg  string
	}{
		{"interval on a monitor group", group("monitor", set(KeyPollInterval, "10s")), KeyPollInterval, "does not include primary"},
		{"interval standalone", minimal(set(KeyPollInterval, "10s")), KeyPollInterval, "without an HA group"},
		{"command standalone", minimal(set(KeyCycleCmd, "true")), KeyCycleCmd, "without an HA group"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Validate(tc.in)
			require.NoError(t, err)
			n := c.Notices()
			require.Len(t, n, 1)
			assert.Equal(t, NoticeWarning, n[0].Kind)
			assert.Equal(t, tc.key, n[0].Key)
			assert.Contains(t, n[0].Msg, tc.msg)
		})
	}
	c, err := Validate(group("compute", set(KeyCycleCmd, "true")))
	require.NoError(t, err)
	assert.Empty(t, c.Notices(), "every group follows the cycle")
}
