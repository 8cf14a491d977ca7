package conf

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// minimal is the smallest valid input: the two required keys.
func minimal(extra ...Setting) []Setting {
	return append([]Setting{{KeyName, "primary-1", "test"}, {KeyRole, "primary", "test"}}, extra...)
}

func set(key, value string) Setting { return Setting{Key: key, Value: value, Source: "test"} }

// cmdOf is a shell command of n bytes (n >= 10).
func cmdOf(n int) string { return "exec true " + strings.Repeat("#", n-10) }

func TestValidateDefaults(t *testing.T) {
	c, err := Validate(minimal())
	require.NoError(t, err)
	assert.Equal(t, "primary-1", c.Name)
	assert.Equal(t, "primary", c.Role)
	assert.Equal(t, "world", c.Region)
	assert.Equal(t, "", c.HAID)
	assert.Equal(t, "", c.ZK)
	assert.Equal(t, 10*time.Second, c.ZKSessionTimeout)
	assert.Equal(t, "/hanode", c.ZKRoot)
	assert.Equal(t, "1", c.NetID)
	assert.Equal(t, ":9640", c.HTTPListen)
	assert.Equal(t, "", c.ActiveCmd)
	assert.Equal(t, 3*time.Second, c.LeaseMargin)
	assert.Equal(t, 2*time.Second, c.ActiveStopTimeout)
	assert.Equal(t, "info", c.LogLevel)
	assert.Equal(t, "json", c.LogFormat)
	assert.Equal(t, "simple", c.ActiveCmdMode)
	assert.Equal(t, 5, c.ActiveMaxRestarts)
	assert.Equal(t, 60*time.Second, c.ActiveRestartWindow)
	assert.Equal(t, time.Second, c.ActiveRestartGrace)
	assert.Equal(t, "auto", c.DutyContainment)
	assert.Equal(t, 3, c.FenceMaxTries)
	assert.Empty(t, c.Notices())
	assert.True(t, c.Standalone())
	assert.False(t, c.HA())
	assert.Nil(t, c.ZKServers())
	assert.Equal(t, "", c.ZKChroot())
}

// TestValidateKeys checks each key's rule: the accepted value (and its
// canonical form) or the refusal message.
func TestValidateKeys(t *testing.T) {
	long := strings.Repeat("a", 128)
	cases := []struct {
		name    string
		in      Setting
		get     func(*Config) string // nil when the value is refused
		want    string               // canonical value, or the message's tail
		wantErr bool
	}{
		{"name with every allowed character", set(KeyName, "Nsg_primary-1.b"), func(c *Config) string { return c.Name }, "Nsg_primary-1.b", false},
		{"name of 128 characters", set(KeyName, long), func(c *Config) string { return c.Name }, long, false},
		{"name is trimmed", set(KeyName, "  primary-2 \t"), func(c *Config) string { return c.Name }, "primary-2", false},
		{"name of 129 characters", set(KeyName, long+"a"), nil, "too long (129 characters, at most 128)", true},
		{"name with a slash", set(KeyName, "a/b"), nil, `character '/' is not allowed`, true},
		{"name with a space", set(KeyName, "a b"), nil, `character ' ' is not allowed`, true},
		{"name dot", set(KeyName, "."), nil, "must not be . or ..", true},
		{"name dot dot", set(KeyName, ".."), nil, "must not be . or ..", true},
		{"empty name is missing", set(KeyName, "  "), nil, "NAME: required", true},
		{"role canonical order", set(KeyRole, "monitor, Primary"), func(c *Config) string { return c.Role }, "primary,monitor", false},
		{"role unknown", set(KeyRole, "primry"), nil, `unknown role "primry"`, true},
		{"role bad combination", set(KeyRole, "primary,secondary"), nil, "roles cannot be combined", true},
		{"region", set(KeyRegion, "eu-west"), func(c *Config) string { return c.Region }, "eu-west", false},
		{"empty region takes the default", set(KeyRegion, ""), func(c *Config) string { return c.Region }, "world", false},
		{"region with a colon", set(KeyRegion, "eu:1"), nil, `character ':' is not allowed`, true},
		{"ha id with a slash", set(KeyHAID, "a/b"), nil, `character '/' is not allowed`, true},
		{"zk one server", set(KeyZK, "zk1:2181"), func(c *Config) string { return c.ZK }, "zk1:2181", false},
		{"zk ensemble with chroot", set(KeyZK, "zk1:2181,10.0.0.2:2182,[::1]:2183/nsg/prod"), func(c *Config) string { return c.ZK }, "zk1:2181,10.0.0.2:2182,[::1]:2183/nsg/prod", false},
		{"zk embedded", set(KeyZK, "embedded"), func(c *Config) string { return c.ZK }, "embedded", false},
		{"zk without port", set(KeyZK, "zk1"), nil, `"zk1" is not host:port`, true},
		{"zk without host", set(KeyZK, ":2181"), nil, `":2181" has no host`, true},
		{"zk port 0", set(KeyZK, "zk1:0"), nil, "port must be a number from 1 to 65535", true},
		{"zk port too big", set(KeyZK, "zk1:65536"), nil, "port must be a number from 1 to 65535", true},
		{"zk port not a number", set(KeyZK, "zk1:+21"), nil, "port must be a number from 1 to 65535", true},
		{"zk empty server", set(KeyZK, "zk1:2181,"), nil, `"" is not host:port`, true},
		{"zk chroot only", set(KeyZK, "/nsg"), nil, "no host:port before the chroot", true},
		{"zk chroot trailing slash", set(KeyZK, "zk1:2181/nsg/"), nil, `chroot "/nsg/" must not end with /`, true},
		{"zk chroot slash alone", set(KeyZK, "zk1:2181/"), nil, `chroot must not be "/" alone`, true},
		{"zk chroot empty segment", set(KeyZK, "zk1:2181/a//b"), nil, `chroot "/a//b" has an empty segment`, true},
		{"zk several problems in one message", set(KeyZK, "zk1,zk2:0"), nil, `"zk1" is not host:port; "zk2:0": port must be`, true},
		{"session timeout", set(KeyZKSessionTimeout, "4s"), func(c *Config) string { return c.ZKSessionTimeout.String() }, "4s", false},
		{"session timeout minimum", set(KeyZKSessionTimeout, "2s"), func(c *Config) string { return c.ZKSessionTimeout.String() }, "2s", false},
		{"session timeout maximum", set(KeyZKSessionTimeout, "5m"), func(c *Config) string { return c.ZKSessionTimeout.String() }, "5m0s", false},
		{"session timeout too short", set(KeyZKSessionTimeout, "1999ms"), nil, "must be between 2s and 5m", true},
		{"session timeout too long", set(KeyZKSessionTimeout, "301s"), nil, "must be between 2s and 5m", true},
		{"session timeout without unit", set(KeyZKSessionTimeout, "10"), nil, "not a duration (examples: 10s, 1500ms)", true},
		{"zk root", set(KeyZKRoot, "/nsg/hanode"), func(c *Config) string { return c.ZKRoot }, "/nsg/hanode", false},
		{"zk root relative", set(KeyZKRoot, "hanode"), nil, `znode path "hanode" must start with /`, true},
		{"zk root trailing slash", set(KeyZKRoot, "/hanode/"), nil, `must not end with /`, true},
		{"zk root empty segment", set(KeyZKRoot, "/a//b"), nil, `has an empty segment`, true},
		{"zk root dot dot", set(KeyZKRoot, "/a/.."), nil, `has a ".." segment`, true},
		{"zk root three dots is a name", set(KeyZKRoot, "/a/..."), func(c *Config) string { return c.ZKRoot }, "/a/...", false},
		{"zk root with a space", set(KeyZKRoot, "/nsg prod/hanode"), func(c *Config) string { return c.ZKRoot }, "/nsg prod/hanode", false},
		{"zk root with U+FFEF", set(KeyZKRoot, "/a\uffef"), func(c *Config) string { return c.ZKRoot }, "/a\uffef", false},
		{"zk root /zookeeper", set(KeyZKRoot, "/zookeeper"), nil, `znode path "/zookeeper" is in /zookeeper, the tree ZooKeeper reserves for itself`, true},
		{"zk root under /zookeeper", set(KeyZKRoot, "/zookeeper/hanode"), nil, `"/zookeeper/hanode" is in /zookeeper`, true},
		{"zk root next to /zookeeper", set(KeyZKRoot, "/zookeeper2"), func(c *Config) string { return c.ZKRoot }, "/zookeeper2", false},
		{"zk root with DEL", set(KeyZKRoot, "/a\x7f"), nil, "has a control character (U+007F), which ZooKeeper refuses in a znode path", true},
		{"zk root with a C1 control", set(KeyZKRoot, "/a\u0085b"), nil, "has a control character (U+0085)", true},
		{"zk root with U+009F", set(KeyZKRoot, "/a\u009f"), nil, "has a control character (U+009F)", true},
		{"zk root with private use", set(KeyZKRoot, "/a\ue000"), nil, "has character U+E000 (U+D800 to U+F8FF", true},
		{"zk root with U+F8FF", set(KeyZKRoot, "/a\uf8ff"), nil, "has character U+F8FF", true},
		{"zk root with U+FFF0", set(KeyZKRoot, "/a\ufff0"), nil, "has character U+FFF0 (U+FFF0 to U+FFFF", true},
		{"zk root with U+FFFD", set(KeyZKRoot, "/a\ufffd"), nil, "has character U+FFFD", true},
		{"zk root above the BMP", set(KeyZKRoot, "/a\U0001F600"), nil, "has character U+1F600 (above U+FFFF: Java sees a surrogate pair)", true},
		{"zk root not UTF-8", set(KeyZKRoot, "/a\xff"), nil, "is not valid UTF-8", true},
		{"zk chroot /zookeeper", set(KeyZK, "zk1:2181/zookeeper"), nil, `chroot "/zookeeper" is in /zookeeper, the tree ZooKeeper reserves for itself`, true},
		{"zk chroot under /zookeeper", set(KeyZK, "zk1:2181/zookeeper/quota/nsg"), nil, `chroot "/zookeeper/quota/nsg" is in /zookeeper`, true},
		{"zk chroot with a C1 control", set(KeyZK, "zk1:2181/nsg\u0090"), nil, `has a control character (U+0090)`, true},
		{"zk chroot above the BMP", set(KeyZK, "zk1:2181/\U00010000"), nil, `has character U+10000`, true},
		{"zk chroot dot", set(KeyZK, "zk1:2181/a/./b"), nil, `chroot "/a/./b" has a "." segment`, true},
		{"net id", set(KeyNetID, "net_2-b"), func(c *Config) string { return c.NetID }, "net_2-b", false},
		{"net id with a dot", set(KeyNetID, "1.2"), nil, `character '.' is not allowed`, true},
		{"listen all addresses", set(KeyHTTPListen, ":9641"), func(c *Config) string { return c.HTTPListen }, ":9641", false},
		{"listen port 0", set(KeyHTTPListen, "127.0.0.1:0"), func(c *Config) string { return c.HTTPListen }, "127.0.0.1:0", false},
		{"listen ipv6", set(KeyHTTPListen, "[::1]:9640"), func(c *Config) string { return c.HTTPListen }, "[::1]:9640", false},
		{"listen without port", set(KeyHTTPListen, "localhost"), nil, `"localhost" is not host:port`, true},
		{"listen port too big", set(KeyHTTPListen, ":70000"), nil, "port must be a number from 0 to 65535", true},
		{"active cmd kept as written", set(KeyActiveCmd, `echo "$HANODE_TERM" | logger`), func(c *Config) string { return c.ActiveCmd }, `echo "$HANODE_TERM" | logger`, false},
		{"active cmd of 65536 bytes", set(KeyActiveCmd, cmdOf(65536)), func(c *Config) string { return fmt.Sprint(len(c.ActiveCmd)) }, "65536", false},
		{"active cmd of 65537 bytes", set(KeyActiveCmd, cmdOf(65537)), nil,
			`ACTIVE_CMD="exec true ` + strings.Repeat("#", 54) + `"... (65537 bytes) (from test): 65537 bytes, longer than the 65536 bytes hanode accepts for a command`, true},
		{"active cmd longer than Linux takes", set(KeyActiveCmd, cmdOf(131073)), nil, "131073 bytes, longer than the 65536 bytes", true},
		{"fence cmd of 65536 bytes", set(KeyFenceCmd, cmdOf(65536)), func(c *Config) string { return fmt.Sprint(len(c.FenceCmd)) }, "65536", false},
		{"fence cmd of 65537 bytes", set(KeyFenceCmd, cmdOf(65537)), nil, `FENCE_CMD="exec true #`, true},
		{"log level any case", set(KeyLogLevel, "DEBUG"), func(c *Config) string { return c.LogLevel }, "debug", false},
		{"log level unknown", set(KeyLogLevel, "trace"), nil, "must be one of debug, info, warn, error", true},
		{"log format console", set(KeyLogFormat, "console"), func(c *Config) string { return c.LogFormat }, "console", false},
		{"log format unknown", set(KeyLogFormat, "text"), nil, "must be one of json, console", true},
		{"active cmd mode forking", set(KeyActiveCmdMode, "Forking"), func(c *Config) string { return c.ActiveCmdMode }, "forking", false},
		{"active cmd mode simple", set(KeyActiveCmdMode, "simple"), func(c *Config) string { return c.ActiveCmdMode }, "simple", false},
		{"active cmd mode unknown", set(KeyActiveCmdMode, "oneshot"), nil, "must be one of simple, forking", true},
		{"max restarts 0 never gives up", set(KeyActiveMaxRestarts, "0"), func(c *Config) string { return fmt.Sprint(c.ActiveMaxRestarts) }, "0", false},
		{"max restarts", set(KeyActiveMaxRestarts, "12"), func(c *Config) string { return fmt.Sprint(c.ActiveMaxRestarts) }, "12", false},
		{"max restarts negative", set(KeyActiveMaxRestarts, "-1"), nil, "must be at least 0", true},
		{"max restarts not a number", set(KeyActiveMaxRestarts, "five"), nil, "not a whole number", true},
		{"max restarts with a unit", set(KeyActiveMaxRestarts, "5x"), nil, "not a whole number", true},
		{"restart window", set(KeyActiveRestartWindow, "5m"), func(c *Config) string { return c.ActiveRestartWindow.String() }, "5m0s", false},
		{"restart window zero", set(KeyActiveRestartWindow, "0s"), nil, "must be positive", true},
		{"restart window not a duration", set(KeyActiveRestartWindow, "60"), nil, "not a duration", true},
		{"restart grace zero", set(KeyActiveRestartGrace, "0s"), func(c *Config) string { return c.ActiveRestartGrace.String() }, "0s", false},
		{"restart grace", set(KeyActiveRestartGrace, "250ms"), func(c *Config) string { return c.ActiveRestartGrace.String() }, "250ms", false},
		{"restart grace negative", set(KeyActiveRestartGrace, "-1s"), nil, "must not be negative", true},
		{"duty containment cgroup", set(KeyDutyContainment, "CGROUP"), func(c *Config) string { return c.DutyContainment }, "cgroup", false},
		{"duty containment subreaper", set(KeyDutyContainment, "subreaper"), func(c *Config) string { return c.DutyContainment }, "subreaper", false},
		{"duty containment none", set(KeyDutyContainment, "none"), func(c *Config) string { return c.DutyContainment }, "none", false},
		{"duty containment unknown", set(KeyDutyContainment, "pgroup"), nil, "must be one of auto, cgroup, subreaper, none", true},
		{"fence max tries 1", set(KeyFenceMaxTries, "1"), func(c *Config) string { return fmt.Sprint(c.FenceMaxTries) }, "1", false},
		{"fence max tries 0", set(KeyFenceMaxTries, "0"), nil, "must be at least 1", true},
		{"fence max tries not a number", set(KeyFenceMaxTries, "3.5"), nil, "not a whole number", true},
		{"unknown key", set("ZOOKEEPER", "x"), nil, `ZOOKEEPER="x" (from test): unknown key`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Validate(minimal(tc.in))
			if !tc.wantErr {
				require.NoError(t, err)
				assert.Equal(t, tc.want, tc.get(c))
				return
			}
			require.Error(t, err)
			assert.Nil(t, c)
			assert.ErrorIs(t, err, ErrInvalid)
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tc.in.Key, fe.Key)
			assert.Contains(t, err.Error(), tc.want)
			if strings.TrimSpace(tc.in.Value) != "" {
				// Every message names the key, the value and the source.
				assert.Contains(t, err.Error(), tc.in.Key+"=")
				assert.Contains(t, err.Error(), "(from test)")
			}
		})
	}
}

func TestValidateRequiredKeys(t *testing.T) {
	_, err := Validate(nil)
	require.Error(t, err)
	msgs := strings.Split(err.Error(), "\n")
	require.Len(t, msgs, 2)
	assert.Equal(t, "NAME: required: set NAME in the env file, HANODE_NAME in the environment, or --name", msgs[0])
	assert.True(t, strings.HasPrefix(msgs[1], "ROLE: required: one of primary,secondary,monitor,compute,alert"), msgs[1])
}

func TestValidateLaterEntryWins(t *testing.T) {
	c, err := Validate(minimal(set(KeyRegion, "eu"), Setting{KeyRegion, "us", "later"}))
	require.NoError(t, err)
	assert.Equal(t, "us", c.Region)
	assert.Contains(t, c.Settings(), Setting{KeyRegion, "us", "later"})
}

// guardedDuty makes a node whose ACTIVE_CMD runs under the duty guard: an
// HA group with a duty.
var guardedDuty = []Setting{set(KeyZK, "zk1:2181"), set(KeyHAID, "g"), set(KeyActiveCmd, "exec duty")}

// TestValidateTiming covers the computed defaults of LEASE_MARGIN and
// ACTIVE_STOP_TIMEOUT and the inequalities
// 0 < ACTIVE_STOP_TIMEOUT < LEASE_MARGIN < ZK_SESSION_TIMEOUT/2 and, for a
// guarded duty, ACTIVE_STOP_TIMEOUT + GuardAnswerSlack + KillSlack <=
// LEASE_MARGIN.
func TestValidateTiming(t *testing.T) {
	const minusSlack = "default (LEASE_MARGIN - 400ms guard answer slack and kill - LEASE_MARGIN/8 for unnoticed stalls)"
	cases := []struct {
		name                       string
		extra                      []Setting
		session, margin, stop      string
		wantMargin, wantStop       time.Duration
		wantMarginSrc, wantStopSrc string
		wantErrKeys                []string
		wantErrContains            []string
	}{
		{
			name:       "both computed from the default session",
			wantMargin: 3 * time.Second, wantStop: 2 * time.Second,
			wantMarginSrc: "default (30% of ZK_SESSION_TIMEOUT)", wantStopSrc: "default (2/3 of LEASE_MARGIN)",
		},
		{
			name: "both computed from a 4s session", session: "4s",
			wantMargin: 1200 * time.Millisecond, wantStop: 650 * time.Millisecond,
			wantMarginSrc: "default (30% of ZK_SESSION_TIMEOUT)", wantStopSrc: minusSlack,
		},
		{
			name: "computed values are whole milliseconds", session: "2001ms",
			wantMargin: 600 * time.Millisecond, wantStop: 125 * time.Millisecond,
			wantMarginSrc: "default (30% of ZK_SESSION_TIMEOUT)", wantStopSrc: minusSlack,
		},
		{
			name: "defaults fit a guarded duty at the default session", extra: guardedDuty,
			wantMargin: 3 * time.Second, wantStop: 2 * time.Second,
			wantMarginSrc: "default (30% of ZK_SESSION_TIMEOUT)", wantStopSrc: "default (2/3 of LEASE_MARGIN)",
		},
		{
			name: "defaults fit a guarded duty exactly at 4s", extra: guardedDuty, session: "4s",
			wantMargin: 1200 * time.Millisecond, wantStop: 650 * time.Millisecond,
			wantMarginSrc: "default (30% of ZK_SESSION_TIMEOUT)", wantStopSrc: minusSlack,
		},
		{
			name: "defaults fit a guarded duty at the shortest session", extra: guardedDuty, session: "2s",
			wantMargin: 600 * time.Millisecond, wantStop: 125 * time.Millisecond,
			wantMarginSrc: "default (30% of ZK_SESSION_TIMEOUT)", wantStopSrc: minusSlack,
		},
		{
			name: "a guarded stop set to the last millisecond that fits", extra: guardedDuty, session: "4s", stop: "650ms",
			wantMargin: 1200 * time.Millisecond, wantStop: 650 * time.Millisecond,
			wantMarginSrc: "default (30% of ZK_SESSION_TIMEOUT)", wantStopSrc: "test",
		},
		{
			name: "a computed stop of 1ms still fits", extra: guardedDuty, margin: "459ms",
			wantMargin: 459 * time.Millisecond, wantStop: time.Millisecond,
			wantMarginSrc: "test", wantStopSrc: minusSlack,
		},
		{
			name: "standalone, the stop needs no slack", extra: []Setting{set(KeyActiveCmd, "exec duty")}, session: "4s", stop: "1s",
			wantMargin: 1200 * time.Millisecond, wantStop: time.Second,
			wantMarginSrc: "default (30% of ZK_SESSION_TIMEOUT)", wantStopSrc: "test",
		},
		{
			name: "a group without a duty, the stop needs no slack", extra: guardedDuty[:2], session: "4s", stop: "1s",
			wantMargin: 1200 * time.Millisecond, wantStop: time.Second,
			wantMarginSrc: "default (30% of ZK_SESSION_TIMEOUT)", wantStopSrc: "test",
		},
		{
			name: "a small margin with a stop set, standalone", margin: "300ms", stop: "100ms",
			wantMargin: 300 * time.Millisecond, wantStop: 100 * time.Millisecond,
			wantMarginSrc: "test", wantStopSrc: "test",
		},
		{
			name: "a guarded stop one millisecond too long", extra: guardedDuty, session: "4s", stop: "651ms",
			wantErrKeys: []string{KeyActiveStopTimeout},
			wantErrContains: []string{
				`ACTIVE_STOP_TIMEOUT="651ms" (from test): ACTIVE_STOP_TIMEOUT=651ms (from test) + 300ms guard answer slack + 100ms kill + ` +
					"150ms (LEASE_MARGIN/8, for stalls too short to notice) = 1.201s " +
					"must fit in LEASE_MARGIN=1.2s (from default (30% of ZK_SESSION_TIMEOUT)): the duty could outlive the lease",
				"lower ACTIVE_STOP_TIMEOUT or raise LEASE_MARGIN/ZK_SESSION_TIMEOUT",
			},
		},
		{
			name: "a guarded stop as long as the margin gets one message", extra: guardedDuty, session: "4s", stop: "3s", margin: "1200ms",
			wantErrKeys:     []string{KeyActiveStopTimeout},
			wantErrContains: []string{"ACTIVE_STOP_TIMEOUT=3s (from test) + 300ms guard answer slack + 100ms kill + 150ms (LEASE_MARGIN/8, for stalls too short to notice) = 3.55s must fit in LEASE_MARGIN=1200ms (from test)"},
		},
		{
			name: "a guarded margin too small for any stop", extra: guardedDuty, margin: "458ms",
			wantErrKeys: []string{KeyLeaseMargin},
			wantErrContains: []string{
				`LEASE_MARGIN="458ms" (from test): leaves the active command no time to stop: the default ACTIVE_STOP_TIMEOUT is ` +
					"min(2/3 of LEASE_MARGIN, LEASE_MARGIN - 300ms guard answer slack - 100ms kill - LEASE_MARGIN/8 for unnoticed stalls) = 0s; " +
					"raise LEASE_MARGIN to at least 459ms " +
					"(or ZK_SESSION_TIMEOUT, whose 30% it is by default)\n",
			},
		},
		{
			name: "a guarded margin too small, with a stop set", extra: guardedDuty, margin: "400ms", stop: "100ms",
			wantErrKeys:     []string{KeyActiveStopTimeout},
			wantErrContains: []string{"ACTIVE_STOP_TIMEOUT=100ms (from test) + 300ms guard answer slack + 100ms kill + 50ms (LEASE_MARGIN/8, for stalls too short to notice) = 550ms must fit in LEASE_MARGIN=400ms (from test)"},
		},
		{
			name: "stop computed from a set margin", margin: "1500ms",
			wantMargin: 1500 * time.Millisecond, wantStop: 912 * time.Millisecond, // 1.5s - 400ms - 187.5ms
			wantMarginSrc: "test", wantStopSrc: minusSlack,
		},
		{
			name: "stop set, margin computed", stop: "2500ms",
			wantMargin: 3 * time.Second, wantStop: 2500 * time.Millisecond,
			wantMarginSrc: "default (30% of ZK_SESSION_TIMEOUT)", wantStopSrc: "test",
		},
		{
			name: "all three set at the limits", session: "10s", margin: "4999ms", stop: "4998ms",
			wantMargin: 4999 * time.Millisecond, wantStop: 4998 * time.Millisecond,
			wantMarginSrc: "test", wantStopSrc: "test",
		},
		{
			name: "margin of half the session", margin: "5s",
			wantErrKeys:     []string{KeyLeaseMargin},
			wantErrContains: []string{`LEASE_MARGIN="5s" (from test): must be less than half of ZK_SESSION_TIMEOUT`},
		},
		{
			name: "stop as long as the margin", stop: "3s",
			wantErrKeys: []string{KeyActiveStopTimeout},
			wantErrContains: []string{
				`ACTIVE_STOP_TIMEOUT="3s" (from test): must be more than 0 and less than LEASE_MARGIN`,
				"ACTIVE_STOP_TIMEOUT=3s (from test), LEASE_MARGIN=3s (from default (30% of ZK_SESSION_TIMEOUT)), ZK_SESSION_TIMEOUT=10s (from default)",
			},
		},
		{
			name: "both sides broken", session: "4s", margin: "3s", stop: "3s",
			wantErrKeys: []string{KeyLeaseMargin, KeyActiveStopTimeout},
		},
		{
			name: "margin too small to leave a computed stop", margin: "1ms",
			wantErrKeys:     []string{KeyLeaseMargin},
			wantErrContains: []string{`LEASE_MARGIN="1ms" (from test): leaves the active command no time to stop`, "raise LEASE_MARGIN to at least 459ms", "or set ACTIVE_STOP_TIMEOUT"},
		},
		{
			name: "negative margin", margin: "-1s",
			wantErrKeys: []string{KeyLeaseMargin}, wantErrContains: []string{"must be positive"},
		},
		{
			name: "zero stop", stop: "0s",
			wantErrKeys: []string{KeyActiveStopTimeout}, wantErrContains: []string{"must be positive"},
		},
		{
			name: "a bad session skips the checks that depend on it", session: "10x",
			wantErrKeys: []string{KeyZKSessionTimeout}, wantErrContains: []string{`ZK_SESSION_TIMEOUT="10x" (from test): not a duration (examples: 10s, 1500ms)`},
		},
		{
			name: "a bad margin skips the checks that depend on it", margin: "soon",
			wantErrKeys: []string{KeyLeaseMargin},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := minimal(tc.extra...)
			for key, v := range map[string]string{KeyZKSessionTimeout: tc.session, KeyLeaseMargin: tc.margin, KeyActiveStopTimeout: tc.stop} {
				if v != "" {
					in = append(in, set(key, v))
				}
			}
			c, err := Validate(in)
			if len(tc.wantErrKeys) == 0 {
				require.NoError(t, err)
				assert.Equal(t, tc.wantMargin, c.LeaseMargin)
				assert.Equal(t, tc.wantStop, c.ActiveStopTimeout)
				settings := c.Settings()
				assert.Contains(t, settings, Setting{KeyLeaseMargin, tc.wantMargin.String(), tc.wantMarginSrc})
				assert.Contains(t, settings, Setting{KeyActiveStopTimeout, tc.wantStop.String(), tc.wantStopSrc})
				return
			}
			require.Error(t, err)
			assert.Equal(t, tc.wantErrKeys, fieldErrorKeys(err))
			for _, want := range tc.wantErrContains {
				assert.Contains(t, err.Error()+"\n", want)
			}
		})
	}
}

// TestValidateTimingMessageExplains checks that the cross-field message names
// all three keys with their values and says why the rule exists.
func TestValidateTimingMessageExplains(t *testing.T) {
	_, err := Validate(minimal(set(KeyZKSessionTimeout, "4s"), Setting{KeyLeaseMargin, "2500ms", "flag --lease-margin"}))
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		`LEASE_MARGIN="2500ms" (from flag --lease-margin)`,
		"need 0 < ACTIVE_STOP_TIMEOUT < LEASE_MARGIN < ZK_SESSION_TIMEOUT/2",
		"ACTIVE_STOP_TIMEOUT=1.666s (from default (2/3 of LEASE_MARGIN))",
		"LEASE_MARGIN=2500ms (from flag --lease-margin)",
		"ZK_SESSION_TIMEOUT=4s (from test)",
		"the active lease ends LEASE_MARGIN before the ZooKeeper session could expire",
		"must stop within that margin",
	} {
		assert.Contains(t, msg, want)
	}
}

func TestValidateHANeedsExternalZooKeeper(t *testing.T) {
	cases := []struct {
		name    string
		zk      []Setting
		wantErr string
	}{
		{"no ZK at all", nil, `HA_ID="g" (from test): HA needs an external ZooKeeper ensemble, but ZK is not set, which means no ZooKeeper`},
		{"ZK embedded", []Setting{{KeyZK, "embedded", "f:3"}}, `HA needs an external ZooKeeper ensemble, but ZK="embedded" (from f:3) means no ZooKeeper`},
		{"ZK cleared", []Setting{{KeyZK, "", "env HANODE_ZK"}}, `but ZK="" (from env HANODE_ZK) means no ZooKeeper`},
		{"external ZK", []Setting{set(KeyZK, "zk1:2181,zk2:2181/nsg")}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Validate(minimal(append([]Setting{set(KeyHAID, "g")}, tc.zk...)...))
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Equal(t, []string{KeyHAID}, fieldErrorKeys(err))
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.True(t, c.HA())
			assert.False(t, c.Standalone())
			assert.Equal(t, []string{"zk1:2181", "zk2:2181"}, c.ZKServers())
			assert.Equal(t, "/nsg", c.ZKChroot())
		})
	}
}

// TestValidateWarnsZKWithoutHAID: an external ensemble without HA_ID is
// valid, but the node runs standalone and always active, so Validate warns.
func TestValidateWarnsZKWithoutHAID(t *testing.T) {
	cases := []struct {
		name string
		in   []Setting
		want []Notice
	}{
		{"no ZK, no HA_ID", nil, nil},
		{"embedded ZK", []Setting{set(KeyZK, "embedded")}, nil},
		{"HA group", []Setting{set(KeyZK, "zk1:2181"), set(KeyHAID, "g")}, nil},
		{
			name: "ZK without HA_ID",
			in:   []Setting{{KeyZK, "zk1:2181,zk2:2181", "f:3"}},
			want: []Notice{{Kind: NoticeWarning, Key: KeyZK, Value: "zk1:2181,zk2:2181", Source: "f:3",
				Msg: "HA_ID is not set: this server joins no HA group and does not use ZooKeeper; it runs standalone and is always active. " +
					"Set HA_ID to the group's id, or remove ZK"}},
		},
		{
			name: "ZK with HA_ID cleared",
			in:   []Setting{{KeyZK, "zk1:2181", "f:3"}, {KeyHAID, "", "flag --ha-id"}},
			want: []Notice{{Kind: NoticeWarning, Key: KeyZK, Value: "zk1:2181", Source: "f:3",
				Msg: "HA_ID is empty (from flag --ha-id): this server joins no HA group and does not use ZooKeeper; it runs standalone and is always active. " +
					"Set HA_ID to the group's id, or remove ZK"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Validate(minimal(tc.in...))
			require.NoError(t, err)
			assert.Equal(t, tc.want, c.Notices())
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	_, err := Validate([]Setting{
		{KeyRole, "boss", "f:2"},
		{KeyZK, "zk1", "env HANODE_ZK"},
		{KeyZKSessionTimeout, "10x", "f:7"},
		{KeyHTTPListen, "9640", "flag --http-listen"},
		{KeyLogFormat, "xml", "f:9"},
	})
	require.Error(t, err)
	assert.Equal(t, []string{KeyName, KeyRole, KeyZK, KeyHTTPListen, KeyLogFormat, KeyZKSessionTimeout}, fieldErrorKeys(err))
	assert.Contains(t, err.Error(), `ZK_SESSION_TIMEOUT="10x" (from f:7): not a duration (examples: 10s, 1500ms)`)
	assert.Contains(t, err.Error(), `HTTP_LISTEN="9640" (from flag --http-listen)`)
	assert.Contains(t, err.Error(), `ZK="zk1" (from env HANODE_ZK)`)
}

func TestZKHelpers(t *testing.T) {
	cases := []struct {
		zk         string
		standalone bool
		servers    []string
		chroot     string
	}{
		{"", true, nil, ""},
		{"embedded", true, nil, ""},
		{"zk1:2181", false, []string{"zk1:2181"}, ""},
		{"zk1:2181, zk2:2181/a/b", false, []string{"zk1:2181", "zk2:2181"}, "/a/b"},
	}
	for _, tc := range cases {
		c := &Config{ZK: tc.zk}
		assert.Equal(t, tc.standalone, c.Standalone(), tc.zk)
		assert.Equal(t, tc.servers, c.ZKServers(), tc.zk)
		assert.Equal(t, tc.chroot, c.ZKChroot(), tc.zk)
	}
}

// fieldErrorKeys lists the keys of the FieldErrors joined in err, in order.
func fieldErrorKeys(err error) []string {
	var keys []string
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		return nil
	}
	for _, e := range joined.Unwrap() {
		var fe *FieldError
		if errors.As(e, &fe) {
			keys = append(keys, fe.Key)
		}
	}
	return keys
}

// TestValidatePathAgreesWithZooKeeper: validatePath accepts and refuses what
// ZooKeeper's PathUtils.validatePath does: the cases of ZooKeeper's
// PathUtilsTest, and the edges of each rule.
func TestValidatePathAgreesWithZooKeeper(t *testing.T) {
	valid := []string{
		"/", "/this is / a valid/path", "/name/with.period.", "/test\u0020", "/test\u007e", "/test\uffef",
		"/...", "/a/.b", "/a/b.", "/..a", "/a\u00a0", "/a\u07ff", "/a\ud7ff", "/a\uf900", "/zookeeper",
	}
	invalid := []string{
		"", "not/valid", "/ends/with/slash/", "/test\u0000", "/double//slash", "/single/./period",
		"/double/../period", "/.", "/..", "/a/.", "/a/..", "/test\u0001", "/test\u001f", "/test\u007f",
		"/test\u0080", "/test\u009f", "/test\ue000", "/test\uf8ff", "/test\ufff0", "/test\uffff",
		"/test\U00010000", "/test\U0010FFFF", "/test\xed\xa0\x80", "/test\xc0", "//",
	}
	for _, p := range valid {
		assert.Empty(t, validatePath(p), "%q", p)
	}
	for _, p := range invalid {
		assert.NotEmpty(t, validatePath(p), "%q", p)
	}
}

// FuzzNamesAreZnodeNames: a NAME or HA_ID that Validate accepts is a znode
// name ZooKeeper accepts, so every path hanode builds from them is valid.
func FuzzNamesAreZnodeNames(f *testing.F) {
	for _, s := range []string{"primary-1", ".", "..", "...", "-", "_c_", "a.b", strings.Repeat("z", 128), "zookeeper", "\u00e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if checkName(name) != "" {
			return
		}
		if msg := validatePath("/" + name); msg != "" {
			t.Fatalf("checkName accepts %q, ZooKeeper refuses it: %s", name, msg)
		}
	})
}

// TestValidatedPathsAreZnodePaths: every znode path hanode creates from a
// valid configuration (ha/internal/core/znodes.go: chroot + ZK_ROOT, then names/NAME,
// groups/HA_ID, its members/ and leader) passes ZooKeeper's check.
func TestValidatedPathsAreZnodePaths(t *testing.T) {
	for _, in := range [][]Setting{
		{set(KeyZK, "zk1:2181"), set(KeyHAID, "g")},
		{set(KeyZK, "zk1:2181/nsg/prod"), set(KeyHAID, "..."), set(KeyZKRoot, "/zookeeper2/a b")},
		{set(KeyZK, "zk1:2181/a\uffef"), set(KeyHAID, strings.Repeat("x", 128)), set(KeyName, "-.-")},
	} {
		c, err := Validate(minimal(in...))
		require.NoError(t, err)
		root := c.ZKChroot() + c.ZKRoot
		group := root + "/groups/" + c.HAID
		for _, p := range []string{root, root + "/names/" + c.Name, group, group + "/members",
			group + "/members/_c_0123456789abcdef0123456789abcdef-m-0000000001", group + "/leader"} {
			assert.Empty(t, validatePath(p), "%q", p)
		}
	}
}

// TestFieldErrorShortensLongValues: a long value is shown by its start and
// its length, cut on a character boundary.
func TestFieldErrorShortensLongValues(t *testing.T) {
	short := strings.Repeat("a", 256)
	assert.Equal(t, `K="`+short+`" (from f:1): bad`, (&FieldError{Key: "K", Value: short, Source: "f:1", Msg: "bad"}).Error())
	long := strings.Repeat("a", 63) + "é" + strings.Repeat("b", 300)
	assert.Equal(t, `K="`+strings.Repeat("a", 63)+`"... (365 bytes) (from f:1): bad`, (&FieldError{Key: "K", Value: long, Source: "f:1", Msg: "bad"}).Error())
}

// TestCommandKeysAreBounded: every shell command key is bounded, so a new
// *_CMD key cannot be added without the bound.
func TestCommandKeysAreBounded(t *testing.T) {
	for _, k := range keys {
		if strings.HasSuffix(k.name, "_CMD") {
			assert.True(t, k.command, "%s is a command key", k.name)
			_, err := Validate(minimal(set(k.name, cmdOf(maxCommandLen+1))))
			assert.ErrorContains(t, err, k.name+"=", "%s", k.name)
		}
	}
}

// TestValidateWarnsDutyContainmentNone: DUTY_CONTAINMENT=none is valid, but
// a duty process that leaves the duty's process group is then not stopped,
// and Validate says so.
func TestValidateWarnsDutyContainmentNone(t *testing.T) {
	c, err := Validate(minimal(Setting{KeyDutyContainment, "none", "f:9"}))
	require.NoError(t, err)
	n := c.Notices()
	require.Len(t, n, 1)
	assert.Equal(t, NoticeWarning, n[0].Kind)
	assert.Equal(t, KeyDutyContainment, n[0].Key)
	assert.Equal(t, "none", n[0].Value)
	assert.Equal(t, "f:9", n[0].Source)
	assert.Contains(t, n[0].Msg, "a process that leaves the duty's process group")
	assert.Contains(t, n[0].Msg, "is not stopped")
	for _, mode := range []string{"auto", "cgroup", "subreaper"} {
		c, err := Validate(minimal(set(KeyDutyContainment, mode)))
		require.NoError(t, err)
		assert.Empty(t, c.Notices(), mode)
	}
}

// TestDefaultStopTimeoutAlwaysFits: for every margin that can hold the
// stop slack, the computed ACTIVE_STOP_TIMEOUT is positive, at most 2/3 of
// the margin, and fits with the slack; below that it is 0, which Validate
// refuses on LEASE_MARGIN.
func TestDefaultStopTimeoutAlwaysFits(t *testing.T) {
	for margin := time.Millisecond; margin < maxSessionTimeout/2; margin += 7 * time.Millisecond {
		stop, _ := defaultStopTimeout(margin)
		if margin < minGuardedMargin {
			assert.Zero(t, stop, "margin %v", margin)
			continue
		}
		assert.Positive(t, stop, "margin %v", margin)
		assert.LessOrEqual(t, stop, margin*2/3, "margin %v", margin)
		assert.LessOrEqual(t, stop+GuardAnswerSlack+KillSlack+margin/8, margin, "margin %v", margin)
	}
	// Every session timeout with its default margin gives a valid guarded
	// configuration.
	for session := minSessionTimeout; session <= maxSessionTimeout; session += 997 * time.Millisecond {
		_, err := Validate(minimal(append(guardedDuty, set(KeyZKSessionTimeout, session.String()))...))
		assert.NoError(t, err, "session %v", session)
	}
}

// TestValidateForkingNeedsContainment: a forking duty with no containment
// is refused, naming both keys.
func TestValidateForkingNeedsContainment(t *testing.T) {
	_, err := Validate(minimal(set(KeyActiveCmd, "start-daemon"), set(KeyActiveCmdMode, "forking"), set(KeyDutyContainment, "none")))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `ACTIVE_CMD_MODE="forking" (from test): needs a containment that sees the daemon, but DUTY_CONTAINMENT=none (from test)`)
	_, err = Validate(minimal(set(KeyActiveCmd, "start-daemon"), set(KeyActiveCmdMode, "forking")))
	assert.NoError(t, err)
}
