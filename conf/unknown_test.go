package conf

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOSADistance(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"ha_id", "ha_id", 0},
		{"haid", "ha_id", 1},   // deletion
		{"haa_id", "ha_id", 1}, // insertion
		{"ha-id", "ha_id", 1},  // substitution
		{"ha_di", "ha_id", 1},  // adjacent swap
		{"ca", "abc", 3},       // OSA edits no substring twice (unrestricted Damerau–Levenshtein says 2)
		{"tz", "zk", 2},        // swap, then substitution
		{"db_session_timeout", "zk_session_timeout", 2}, // one short word for another
		{"ĥa_id", "ha_id", 1},                           // counts runes, not bytes
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, osaDistance(tc.a, tc.b), "%q %q", tc.a, tc.b)
		assert.Equal(t, tc.want, osaDistance(tc.b, tc.a), "%q %q", tc.b, tc.a)
	}
}

// TestResemblesCatchesTypos: a name one edit from a key of 5 characters or
// more, or differing from any key only in case, misspells that key.
func TestResemblesCatchesTypos(t *testing.T) {
	cases := []struct {
		name, key string
		caseOnly  bool
	}{
		{"HAID", KeyHAID, false},
		{"HA_DI", KeyHAID, false},
		{"H_AID", KeyHAID, false},
		{"HAA_ID", KeyHAID, false},
		{"HA-ID", KeyHAID, false}, // not a variable name: the parser refuses it, Load names HA_ID
		{"HA_IP", KeyHAID, false}, // the price of the rule: another variable this close must be renamed
		{"ha_id", KeyHAID, true},
		{"Ha_Id", KeyHAID, true},
		{"zk", KeyZK, true},
		{"name", KeyName, true},
		{"Role", KeyRole, true},
		{"ZK_SESION_TIMEOUT", KeyZKSessionTimeout, false},
		{"ZK_SESSION_TIMEOTU", KeyZKSessionTimeout, false},
		{"zk_session_timeout", KeyZKSessionTimeout, true},
		{"ZKROOT", KeyZKRoot, false},
		{"NETID", KeyNetID, false},
		{"REGOIN", KeyRegion, false},
		{"REGIONS", KeyRegion, false},
		{"HTTPLISTEN", KeyHTTPListen, false},
		{"ACTIVECMD", KeyActiveCmd, false},
		{"ACTIVE_STOP_TIMOUT", KeyActiveStopTimeout, false},
		{"LEASE_MARGN", KeyLeaseMargin, false},
		{"FENCECMD", KeyFenceCmd, false},
		{"FENCE_TIMEOUTS", KeyFenceTimeout, false},
		{"LOGLEVEL", KeyLogLevel, false},
		{"LOG_FROMAT", KeyLogFormat, false},
		{"HA_I€", KeyHAID, false}, // one rune, three bytes
	}
	for _, tc := range cases {
		key, caseOnly, ok := resembles(tc.name)
		if assert.True(t, ok, "%s should misspell %s", tc.name, tc.key) {
			assert.Equal(t, tc.key, key, tc.name)
			assert.Equal(t, tc.caseOnly, caseOnly, tc.name)
		}
	}
}

// TestResemblesLeavesOtherVariablesAlone: the settings of other programs
// found in /etc/default files and environments, the variables hanode itself
// sets for its commands, and one-edit neighbours of short keys are not taken
// for typos.
func TestResemblesLeavesOtherVariablesAlone(t *testing.T) {
	for _, name := range []string{
		// NetSpyGlass and Java
		"JVM_CLI", "SERVER_CLI", "CONFIG", "LOG_DIR", "JAVA_HOME", "JAVA_OPTS", "JVM_OPTS", "CLASSPATH",
		// the usual environment
		"HOME", "PATH", "LD_LIBRARY_PATH", "MANPATH", "PYTHONPATH", "LANG", "LANGUAGE", "LC_ALL", "TZ",
		"USER", "LOGNAME", "HOSTNAME", "SHELL", "TERM", "PWD", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
		// near short keys: NAME, ROLE and ZK only match by case
		"NAMES", "FNAME", "ROLES", "RULE", "NODE", "MODE", "ZONE", "KZ", "Z", "ZKK",
		// other programs' settings one word away
		"DB_SESSION_TIMEOUT", "FETCH_TIMEOUT", "ZK_HOST", "ZK_PORT", "LOG_FILE", "HA", "ID", "NET", "ACTIVE",
		// what hanode sets for ACTIVE_CMD and FENCE_CMD, and the test harness's HANODE_ variables
		"PREV_NAME", "PREV_HOST", "PREV_HTTP", "PREV_TERM", "PREV_KNOWN",
		"PREV_COUNT", "PREV_1_NAME", "PREV_1_HOST", "PREV_1_HTTP", "PREV_1_TERM", "PREV_2_NAME", "PREV_12_TERM",
		"ZK_IMAGE", "SOAK_SEED", "SOAK_FAULTS", "BIN",
		"",
	} {
		key, _, ok := resembles(name)
		assert.False(t, ok, "%s taken for %s", name, key)
	}
}

// TestLoadRefusesMisspeltKeys: a variable that misspells a key is refused
// wherever it is set, with its value, its source and the key to write there.
func TestLoadRefusesMisspeltKeys(t *testing.T) {
	const hint = " (a name this close to a key is refused, not ignored; rename it if it is not meant for hanode)"
	cases := []struct {
		name    string
		file    string
		environ []string
		want    string // FILE stands for the env file's path
	}{
		{
			name: "in the env file",
			file: "NAME=n\nROLE=primary\nZK=zk1:2181\nHAID=g\n",
			want: `HAID="g" (from FILE:4): unknown key, one typo away from HA_ID: write HA_ID` + hint,
		},
		{
			name: "with an empty value",
			file: "NAME=n\nROLE=primary\nHAID=\n",
			want: `HAID="" (from FILE:3): unknown key, one typo away from HA_ID: write HA_ID` + hint,
		},
		{
			name: "a long key",
			file: "NAME=n\nROLE=primary\nZK_SESION_TIMEOUT=4s\n",
			want: `ZK_SESION_TIMEOUT="4s" (from FILE:3): unknown key, one typo away from ZK_SESSION_TIMEOUT: write ZK_SESSION_TIMEOUT` + hint,
		},
		{
			name: "in another case",
			file: "NAME=n\nROLE=primary\nZK=zk1:2181\nha_id=g\n",
			want: `ha_id="g" (from FILE:4): unknown key; keys are case-sensitive: write HA_ID`,
		},
		{
			name: "with the environment's prefix in the env file",
			file: "NAME=n\nROLE=primary\nZK=zk1:2181\nHANODE_HA_ID=g\n",
			want: `HANODE_HA_ID="g" (from FILE:4): keys in the env file have no HANODE_ prefix (that is for environment variables): write HA_ID`,
		},
		{
			name: "misspelt after the environment's prefix in the env file",
			file: "NAME=n\nROLE=primary\nZK=zk1:2181\nHANODE_HAID=g\n",
			want: `HANODE_HAID="g" (from FILE:4): keys in the env file have no HANODE_ prefix (that is for environment variables): write HA_ID`,
		},
		{
			name:    "in the environment",
			file:    "NAME=n\nROLE=primary\nZK=zk1:2181\n",
			environ: []string{"HANODE_HAID=g"},
			want:    `HAID="g" (from env HANODE_HAID): unknown key, one typo away from HA_ID: write HANODE_HA_ID` + hint,
		},
		{
			name:    "in the environment, in another case",
			file:    "NAME=n\nROLE=primary\n",
			environ: []string{"HANODE_zk=zk1:2181"},
			want:    `zk="zk1:2181" (from env HANODE_zk): unknown key; keys are case-sensitive: write HANODE_ZK`,
		},
		{
			name: "as -D in SERVER_CLI",
			file: "NAME=n\nROLE=primary\nSERVER_CLI=\"-Xmx1g -DZK=zk1:2181 -DHAID=g -DCONFIG=/x\"\n",
			want: `HAID="g" (from FILE:3, -DHAID in SERVER_CLI): unknown key, one typo away from HA_ID: write -DHA_ID` + hint,
		},
		{
			name: "twice as -D in SERVER_CLI, reported once",
			file: "NAME=n\nROLE=primary\nSERVER_CLI=\"-DHAID=g -DHAID=h\"\n",
			want: `HAID="g" (from FILE:3, -DHAID in SERVER_CLI): unknown key, one typo away from HA_ID: write -DHA_ID` + hint,
		},
		{
			name: "not a variable name",
			file: "NAME=n\nROLE=primary\nZK=zk1:2181\nHA-ID=\"g\"\n",
			want: `FILE:4:1: "HA-ID" is not a variable name (letters, digits and '_', not starting with a digit): ` +
				`an env file may only assign variables (KEY=value); HA-ID is one typo away from HA_ID: write HA_ID`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := opts(t)
			o.EnvFile = writeFile(t, tc.file)
			o.Environ = tc.environ
			c, err := Load(o)
			require.Error(t, err)
			assert.Nil(t, c)
			assert.ErrorIs(t, err, ErrInvalid)
			assert.Equal(t, strings.ReplaceAll(tc.want, "FILE", o.EnvFile), err.Error())
		})
	}
}

// TestLoadReportsMisspeltKeysWithEveryOtherProblem: typos, refused lines and
// bad values come out of one Load, in that order: the file's lines, then
// the typos in file order and the environment's, then the merged values.
func TestLoadReportsMisspeltKeysWithEveryOtherProblem(t *testing.T) {
	path := writeFile(t, "name=n\nROLE=primary\nLOG_LEVEL=loud\nX=$(id)\nZKROOT=/x\nSERVER_CLI=\"-DNETID=2\"\n")
	o := opts(t)
	o.EnvFile = path
	o.Environ = []string{"HANODE_REGOIN=eu", "HANODE_NAMES=ignored"}
	_, err := Load(o)
	require.Error(t, err)
	msgs := strings.Split(err.Error(), "\n")
	require.Len(t, msgs, 6, err.Error())
	for i, want := range []string{
		path + ":4:3: command substitution is not allowed",
		`name="n" (from ` + path + `:1): unknown key; keys are case-sensitive: write NAME`,
		`ZKROOT="/x" (from ` + path + `:5): unknown key, one typo away from ZK_ROOT: write ZK_ROOT`,
		`NETID="2" (from ` + path + `:6, -DNETID in SERVER_CLI): unknown key, one typo away from NET_ID: write -DNET_ID`,
		`REGOIN="eu" (from env HANODE_REGOIN): unknown key, one typo away from REGION: write HANODE_REGION`,
		`LOG_LEVEL="loud" (from ` + path + `:3): must be one of debug, info, warn, error`,
	} {
		assert.True(t, strings.HasPrefix(msgs[i], want), "message %d is\n%s\nwant prefix\n%s", i, msgs[i], want)
	}
	// NAME is not claimed "required": line 4 is refused, so the file may
	// set it on a line the parser did not evaluate.
	assert.NotContains(t, err.Error(), "required")

	t.Run("without refused lines, a misspelt required key is also missing", func(t *testing.T) {
		o := opts(t)
		o.EnvFile = writeFile(t, "name=n\nROLE=primary\n")
		_, err := Load(o)
		require.Error(t, err)
		assert.Equal(t, []string{"name", KeyName}, fieldErrorKeys(err))
	})
}

// TestLoadListsUnusedVariables: variables that are neither keys nor typos
// are ignored; Notices lists each with its source, not its value.
func TestLoadListsUnusedVariables(t *testing.T) {
	t.Run("the NetSpyGlass example with an ensemble from the environment", func(t *testing.T) {
		o := opts(t)
		o.EnvFile = writeFile(t, nsgPrimary1)
		o.Environ = []string{"HOME=/home/nsg", "HANODE_ZK=zk1:2181,zk2:2181", "HANODE_TERM=4", "HANODE_NAMES=x"}
		c, err := Load(o)
		require.NoError(t, err)
		assert.True(t, c.HA())
		p := o.EnvFile
		assert.Equal(t, []Notice{
			{Kind: NoticeUnused, Key: "JVM_CLI", Source: p + ":17", Msg: "not a hanode key, ignored"},
			// SERVER_CLI is read (-DNAME, -DZK, ...): only its other -D words are listed.
			{Kind: NoticeUnused, Key: "CONFIG", Source: p + ":19, -DCONFIG in SERVER_CLI", Msg: "not a hanode key, ignored"},
			{Kind: NoticeUnused, Key: "LOG_DIR", Source: p + ":19, -DLOG_DIR in SERVER_CLI", Msg: "not a hanode key, ignored"},
			{Kind: NoticeUnused, Key: "NAMES", Source: "env HANODE_NAMES", Msg: "not a hanode key, ignored"},
			{Kind: NoticeUnused, Key: "TERM", Source: "env HANODE_TERM", Msg: "not a hanode key, ignored"},
		}, c.Notices())
		assert.Equal(t, "JVM_CLI (from "+p+":17): not a hanode key, ignored", c.Notices()[0].String())
	})
	t.Run("SERVER_CLI without a key is itself unused; Java's dotted properties are not looked at", func(t *testing.T) {
		path := writeFile(t, "NAME=n\nROLE=primary\nDB_PASSWORD=secret\nSERVER_CLI=\"-Dfile.encoding=UTF-8 -DCONFIG=/x -Dha.id=y\"\n")
		o := opts(t)
		o.EnvFile = path
		c, err := Load(o)
		require.NoError(t, err)
		assert.Equal(t, []Notice{
			{Kind: NoticeUnused, Key: "DB_PASSWORD", Source: path + ":3", Msg: "not a hanode key, ignored"},
			{Kind: NoticeUnused, Key: "SERVER_CLI", Source: path + ":4", Msg: "not a hanode key, ignored"},
		}, c.Notices())
	})
	t.Run("a key set empty is a key, not an unused variable", func(t *testing.T) {
		o := opts(t)
		o.EnvFile = writeFile(t, "NAME=n\nROLE=primary\nREGION=\n")
		c, err := Load(o)
		require.NoError(t, err)
		assert.Empty(t, c.Notices())
	})
	t.Run("variables without the prefix are not hanode's", func(t *testing.T) {
		o := opts(t)
		o.Environ = []string{"HANODE_NAME=n", "HANODE_ROLE=primary", "HAID=g", "HANODE_=x"}
		c, err := Load(o)
		require.NoError(t, err)
		assert.Empty(t, c.Notices())
	})
}

// TestLoadWarnsZKWithoutHAID: an ensemble without HA_ID is valid, but the
// node runs standalone and always active; Notices says so first.
func TestLoadWarnsZKWithoutHAID(t *testing.T) {
	path := writeFile(t, "NAME=n\nROLE=primary\nZK=zk1:2181\nJVM_CLI=x\n")
	o := opts(t)
	o.EnvFile = path
	c, err := Load(o)
	require.NoError(t, err)
	assert.False(t, c.HA())
	notices := c.Notices()
	require.Len(t, notices, 2)
	assert.Equal(t, Notice{Kind: NoticeWarning, Key: KeyZK, Value: "zk1:2181", Source: path + ":3",
		Msg: "HA_ID is not set: this server joins no HA group and does not use ZooKeeper; it runs standalone and is always active. " +
			"Set HA_ID to the group's id, or remove ZK"}, notices[0])
	assert.True(t, strings.HasPrefix(notices[0].String(), `ZK="zk1:2181" (from `+path+`:3): HA_ID is not set: `), notices[0].String())
	assert.Equal(t, "JVM_CLI", notices[1].Key)
}
