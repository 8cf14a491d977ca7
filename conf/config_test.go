package conf

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeFile writes content to a new file in a test directory and returns its path.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hanode")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

// opts returns LoadOptions that never look at /etc or the process
// environment: the default env file is a path that does not exist.
func opts(t *testing.T) LoadOptions {
	return LoadOptions{DefaultEnvFile: filepath.Join(t.TempDir(), "absent"), Environ: []string{}}
}

// flags returns a flag set with the keys bound, after parsing args.
func flags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("hanode", pflag.ContinueOnError)
	BindFlags(fs)
	fs.String("env-file", "", "not a key: Load must ignore it")
	require.NoError(t, fs.Parse(args))
	return fs
}

func setting(t *testing.T, c *Config, key string) Setting {
	t.Helper()
	for _, s := range c.Settings() {
		if s.Key == key {
			return s
		}
	}
	t.Fatalf("no setting %s", key)
	return Setting{}
}

func TestBindFlagsRegistersOneFlagPerKey(t *testing.T) {
	fs := pflag.NewFlagSet("hanode", pflag.ContinueOnError)
	BindFlags(fs)
	var names []string
	fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	assert.ElementsMatch(t, []string{
		"name", "role", "region", "ha-id", "zk", "zk-session-timeout", "zk-root", "net-id",
		"http-listen", "active-cmd", "active-stop-timeout", "lease-margin", "fence-cmd", "fence-timeout", "log-level", "log-format",
		"active-cmd-mode", "active-max-restarts", "active-restart-window", "active-restart-grace", "duty-containment", "fence-max-tries",
		"notify-cmd", "notify-timeout", "standby-cmd", "standby-stop-timeout",
		// Access to ZooKeeper: the secrets themselves have no flag (ps shows a command line).
		"cluster-shared-secret-file", "cluster-shared-secret-old-file", "zk-acl-open", "zk-tls-ca", "zk-tls-cert", "zk-tls-key", "admin-token-file", "admin-socket",
		"poll-interval", "cycle-cmd",
		"election-policy", "priority", "preempt", "preempt-delay", "nofailover",
		"health-cmd", "health-interval", "health-timeout", "health-failures", "health-recoveries",
	}, names)
	assert.Contains(t, fs.Lookup("zk-session-timeout").Usage, "env HANODE_ZK_SESSION_TIMEOUT; default 10s")
}

// TestLoadLayers checks the order default < env file < HANODE_ variable <
// flag, per key, with the source of each effective value.
func TestLoadLayers(t *testing.T) {
	file := "NAME=file-name\nROLE=primary\nREGION=file-region\nHA_ID=file-group\nZK=zk1:2181\nLOG_LEVEL=warn\n"
	cases := []struct {
		name    string
		environ []string
		args    []string
		key     string
		want    Setting
	}{
		{name: "default", key: KeyNetID, want: Setting{KeyNetID, "1", "default"}},
		{name: "file over default", key: KeyRegion, want: Setting{KeyRegion, "file-region", "FILE:3"}},
		{name: "env over file", environ: []string{"HANODE_REGION=env-region"}, key: KeyRegion, want: Setting{KeyRegion, "env-region", "env HANODE_REGION"}},
		{name: "env over default", environ: []string{"HANODE_NET_ID=7"}, key: KeyNetID, want: Setting{KeyNetID, "7", "env HANODE_NET_ID"}},
		{name: "flag over env", environ: []string{"HANODE_REGION=env-region"}, args: []string{"--region=flag-region"}, key: KeyRegion, want: Setting{KeyRegion, "flag-region", "flag --region"}},
		{name: "flag over file", args: []string{"--ha-id", "flag-group"}, key: KeyHAID, want: Setting{KeyHAID, "flag-group", "flag --ha-id"}},
		{name: "flags the user did not set do not count", args: []string{"--net-id=3"}, key: KeyRegion, want: Setting{KeyRegion, "file-region", "FILE:3"}},
		{name: "values are trimmed", environ: []string{"HANODE_REGION=  spaced \t"}, key: KeyRegion, want: Setting{KeyRegion, "spaced", "env HANODE_REGION"}},
		{name: "an empty value is not set", environ: []string{"HANODE_REGION="}, key: KeyRegion, want: Setting{KeyRegion, "file-region", "FILE:3"}},
		{name: "an empty HA_ID switches HA off", environ: []string{"HANODE_HA_ID="}, key: KeyHAID, want: Setting{KeyHAID, "", "env HANODE_HA_ID"}},
		{name: "an empty ZK flag clears ZK", args: []string{"--zk=", "--ha-id="}, key: KeyZK, want: Setting{KeyZK, "", "flag --zk"}},
		{name: "canonical effective value", args: []string{"--log-level=DEBUG"}, key: KeyLogLevel, want: Setting{KeyLogLevel, "debug", "flag --log-level"}},
		{name: "unknown HANODE_ variables are ignored", environ: []string{"HANODE_TERM=4", "HANODE_NAMES=x"}, key: KeyName, want: Setting{KeyName, "file-name", "FILE:1"}},
		{name: "variables without the prefix are ignored", environ: []string{"REGION=plain"}, key: KeyRegion, want: Setting{KeyRegion, "file-region", "FILE:3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, file)
			o := opts(t)
			o.EnvFile = path
			o.Environ = tc.environ
			o.Flags = flags(t, tc.args...)
			c, err := Load(o)
			require.NoError(t, err)
			want := tc.want
			want.Source = strings.Replace(want.Source, "FILE", path, 1)
			assert.Equal(t, want, setting(t, c, tc.key))
			assert.Equal(t, path, c.EnvFile)
		})
	}
}

func TestLoadSettingsInTableOrder(t *testing.T) {
	o := opts(t)
	o.Environ = []string{"HANODE_NAME=n1", "HANODE_ROLE=primary"}
	c, err := Load(o)
	require.NoError(t, err)
	assert.Equal(t, []Setting{
		{KeyName, "n1", "env HANODE_NAME"},
		{KeyRole, "primary", "env HANODE_ROLE"},
		{KeyRegion, "world", "default"},
		{KeyHAID, "", ""},
		{KeyZK, "", ""},
		{KeyZKSessionTimeout, "10s", "default"},
		{KeyZKRoot, "/hanode", "default"},
		{KeyNetID, "1", "default"},
		{KeyHTTPListen, ":9640", "default"},
		{KeyActiveCmd, "", ""},
		{KeyActiveCmdMode, "simple", "default"},
		{KeyActiveStopTimeout, "2s", "default (2/3 of LEASE_MARGIN)"},
		{KeyActiveMaxRestarts, "5", "default"},
		{KeyActiveRestartWindow, "1m0s", "default"},
		{KeyActiveRestartGrace, "1s", "default"},
		{KeyDutyContainment, "auto", "default"},
		{KeyLeaseMargin, "3s", "default (30% of ZK_SESSION_TIMEOUT)"},
		{KeyFenceCmd, "", ""},
		{KeyFenceTimeout, "30s", "default"},
		{KeyFenceMaxTries, "3", "default"},
		{KeyNotifyCmd, "", ""},
		{KeyNotifyTimeout, "30s", "default"},
		{KeyStandbyCmd, "", ""},
		{KeyStandbyStopTimeout, "5s", "default"},
		{KeyElectionPolicy, "first-come", "default"},
		{KeyPriority, "0", "default"},
		{KeyPreempt, "false", "default"},
		{KeyPreemptDelay, "30s", "default"},
		{KeyNoFailover, "false", "default"},
		{KeyHealthCmd, "", ""},
		{KeyHealthInterval, "10s", "default"},
		{KeyHealthTimeout, "10s", "default (min(HEALTH_INTERVAL, 10s))"},
		{KeyHealthFailures, "3", "default"},
		{KeyHealthRecoveries, "2", "default"},
		{KeyLogLevel, "info", "default"},
		{KeyLogFormat, "json", "default"},
		{KeyPollInterval, "", ""},
		{KeyCycleCmd, "", ""},
		{KeySecretFile, "", ""},
		{KeySecret, "", ""},
		{KeySecretOldFile, "", ""},
		{KeySecretOld, "", ""},
		{KeyZKACLOpen, "", ""},
		{KeyZKTLSCA, "", ""},
		{KeyZKTLSCert, "", ""},
		{KeyZKTLSKey, "", ""},
		{KeyAdminTokenFile, "", ""},
		{KeyAdminToken, "", ""},
		{KeyAdminSocket, "", ""},
	}, c.Settings())
	assert.Equal(t, "", c.EnvFile)
}

func TestLoadEnvFileSelection(t *testing.T) {
	t.Run("default file used when present", func(t *testing.T) {
		o := opts(t)
		o.DefaultEnvFile = writeFile(t, "NAME=from-default\nROLE=compute\n")
		c, err := Load(o)
		require.NoError(t, err)
		assert.Equal(t, "from-default", c.Name)
		assert.Equal(t, o.DefaultEnvFile, c.EnvFile)
		assert.Equal(t, o.DefaultEnvFile+":1", setting(t, c, KeyName).Source)
	})
	t.Run("no file when the default is absent", func(t *testing.T) {
		o := opts(t)
		o.Environ = []string{"HANODE_NAME=n", "HANODE_ROLE=alert"}
		c, err := Load(o)
		require.NoError(t, err)
		assert.Equal(t, "", c.EnvFile)
	})
	t.Run("explicit file wins over the default", func(t *testing.T) {
		o := opts(t)
		o.DefaultEnvFile = writeFile(t, "NAME=from-default\nROLE=compute\n")
		o.EnvFile = writeFile(t, "NAME=explicit\nROLE=compute\n")
		c, err := Load(o)
		require.NoError(t, err)
		assert.Equal(t, "explicit", c.Name)
		assert.Equal(t, o.EnvFile, c.EnvFile)
	})
	t.Run("explicit missing file refused", func(t *testing.T) {
		o := opts(t)
		o.EnvFile = filepath.Join(t.TempDir(), "missing")
		o.Environ = []string{"HANODE_NAME=n", "HANODE_ROLE=alert"}
		_, err := Load(o)
		require.Error(t, err)
		assert.ErrorIs(t, err, ErrInvalid)
		assert.ErrorIs(t, err, fs.ErrNotExist)
		assert.Contains(t, err.Error(), o.EnvFile)
	})
	t.Run("default file that exists but cannot be read refused", func(t *testing.T) {
		o := opts(t)
		o.DefaultEnvFile = t.TempDir() // a directory
		_, err := Load(o)
		require.Error(t, err)
		assert.ErrorIs(t, err, ErrInvalid)
		assert.Contains(t, err.Error(), o.DefaultEnvFile)
	})
}

func TestLoadExpandsFromTheGivenEnvironment(t *testing.T) {
	path := writeFile(t, "NAME=\"${HOST_PREFIX}-1\"\nROLE=primary\nACTIVE_CMD=\"$HOME/bin/duty\"\n")
	t.Run("from Environ", func(t *testing.T) {
		o := opts(t)
		o.EnvFile = path
		o.Environ = []string{"HOST_PREFIX=nsg", "HOME=/home/nsg"}
		c, err := Load(o)
		require.NoError(t, err)
		assert.Equal(t, "nsg-1", c.Name)
		assert.Equal(t, "/home/nsg/bin/duty", c.ActiveCmd)
	})
	t.Run("from LookupEnv", func(t *testing.T) {
		o := opts(t)
		o.EnvFile = path
		o.LookupEnv = lookupIn(map[string]string{"HOST_PREFIX": "lk", "HOME": "/h"})
		c, err := Load(o)
		require.NoError(t, err)
		assert.Equal(t, "lk-1", c.Name)
		assert.Equal(t, "/h/bin/duty", c.ActiveCmd)
	})
}

func TestLoadNetSpyGlassServerCLI(t *testing.T) {
	t.Run("keys given only in SERVER_CLI", func(t *testing.T) {
		path := writeFile(t, `NAME="primary-1"
ROLE="primary"
REGION="world"
HA_ID="nsg-primary-ha"
JVM_CLI="-XX:+UseG1GC -XX:MaxPermSize=256m"
SERVER_CLI="$JVM_CLI -DZK=zk1:2181,zk2:2181 -DNAME=$NAME -DROLE=$ROLE -DREGION=$REGION -DHA_ID=$HA_ID"
SERVER_CLI="$SERVER_CLI -DCONFIG=${HOME}/nw2.conf -DLOG_DIR=${HOME}/logs"
`)
		o := opts(t)
		o.EnvFile = path
		o.Environ = []string{"HOME=/home/nsg"}
		c, err := Load(o)
		require.NoError(t, err)
		assert.Equal(t, "zk1:2181,zk2:2181", c.ZK)
		assert.Equal(t, []string{"zk1:2181", "zk2:2181"}, c.ZKServers())
		assert.True(t, c.HA())
		assert.Equal(t, Setting{KeyZK, "zk1:2181,zk2:2181", path + ":7, -DZK in SERVER_CLI"}, setting(t, c, KeyZK))
		assert.Equal(t, Setting{KeyName, "primary-1", path + ":1"}, setting(t, c, KeyName))
	})
	t.Run("a direct assignment wins over -D", func(t *testing.T) {
		path := writeFile(t, "SERVER_CLI=\"-DNAME=from-cli -DROLE=compute -DREGION=eu\"\nREGION=us\n")
		o := opts(t)
		o.EnvFile = path
		c, err := Load(o)
		require.NoError(t, err)
		assert.Equal(t, Setting{KeyName, "from-cli", path + ":1, -DNAME in SERVER_CLI"}, setting(t, c, KeyName))
		assert.Equal(t, Setting{KeyRegion, "us", path + ":2"}, setting(t, c, KeyRegion))
		assert.Equal(t, "compute", c.Role)
	})
	t.Run("the last -D wins, unknown -D keys and flags are ignored", func(t *testing.T) {
		path := writeFile(t, "NAME=n\nSERVER_CLI=\"-Xmx1g -DROLE=alert -DCONFIG=/x -D -DFOO -DROLE=compute\"\n")
		o := opts(t)
		o.EnvFile = path
		c, err := Load(o)
		require.NoError(t, err)
		assert.Equal(t, "compute", c.Role)
	})
	t.Run("the environment still wins over SERVER_CLI", func(t *testing.T) {
		path := writeFile(t, "SERVER_CLI=\"-DNAME=a -DROLE=primary -DZK=embedded\"\n")
		o := opts(t)
		o.EnvFile = path
		o.Environ = []string{"HANODE_ZK=zk9:2181"}
		c, err := Load(o)
		require.NoError(t, err)
		assert.Equal(t, []string{"zk9:2181"}, c.ZKServers())
	})
	t.Run("the verbatim documentation file is refused: HA with embedded ZooKeeper", func(t *testing.T) {
		path := writeFile(t, nsgPrimary1)
		o := opts(t)
		o.EnvFile = path
		o.Environ = []string{"HOME=/home/nsg"}
		_, err := Load(o)
		require.Error(t, err)
		assert.ErrorIs(t, err, ErrInvalid)
		assert.Equal(t, []string{KeyHAID}, fieldErrorKeys(err))
		assert.Equal(t, `HA_ID="nsg-development-primary-ha" (from `+path+`:14): HA needs an external ZooKeeper ensemble, `+
			`but ZK="embedded" (from `+path+`:19, -DZK in SERVER_CLI) means no ZooKeeper: `+
			`set ZK=host:port[,host:port...][/chroot], or remove HA_ID to run standalone`, err.Error())
	})
	t.Run("the verbatim documentation file with an external ensemble from a flag", func(t *testing.T) {
		o := opts(t)
		o.EnvFile = writeFile(t, nsgPrimary1)
		o.Flags = flags(t, "--zk", "zk1:2181,zk2:2181,zk3:2181/nsg")
		c, err := Load(o)
		require.NoError(t, err)
		assert.Equal(t, "primary-1", c.Name)
		assert.Equal(t, "nsg-development-primary-ha", c.HAID)
		assert.Equal(t, "/nsg", c.ZKChroot())
	})
}

func TestLoadReportsEveryProblemWithItsSource(t *testing.T) {
	path := writeFile(t, "NAME=primary-1\nROLE=primary\nREGION=world\n\n\n\nZK_SESSION_TIMEOUT=10x\n")
	o := opts(t)
	o.EnvFile = path
	o.Environ = []string{"HANODE_LOG_LEVEL=loud", "HANODE_ZK=zk1"}
	o.Flags = flags(t, "--http-listen=localhost", "--name=a/b")
	_, err := Load(o)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrInvalid)
	assert.Equal(t, []string{
		`NAME="a/b" (from flag --name): character '/' is not allowed (use letters, digits, '.', '_' and '-')`,
		`ZK="zk1" (from env HANODE_ZK): "zk1" is not host:port (want host:port[,host:port...][/chroot], or empty or embedded for no ZooKeeper)`,
		`HTTP_LISTEN="localhost" (from flag --http-listen): "localhost" is not host:port (examples: :9640, 127.0.0.1:9641, [::1]:9640)`,
		`LOG_LEVEL="loud" (from env HANODE_LOG_LEVEL): must be one of debug, info, warn, error`,
		`ZK_SESSION_TIMEOUT="10x" (from ` + path + `:7): not a duration (examples: 10s, 1500ms)`,
	}, strings.Split(err.Error(), "\n"))
}

func TestLoadReportsEnvFileSyntax(t *testing.T) {
	path := writeFile(t, "NAME=a\nROLE=$(cat /etc/role)\n\n\n\n\n\n\n\n\n\nLOG_DIR=\"$(pwd)\"\n")
	o := opts(t)
	o.EnvFile = path
	_, err := Load(o)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrInvalid)
	assert.Equal(t, []string{
		path + ":2:6: command substitution is not allowed",
		path + ":12:10: command substitution is not allowed",
	}, strings.Split(err.Error(), "\n"))
}

// TestShippedEnvFilesValidate loads every file under etc/default, so the
// documented file and the examples cannot rot.
func TestShippedEnvFilesValidate(t *testing.T) {
	root := filepath.Join("..", "etc", "default")
	var paths []string
	require.NoError(t, filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			paths = append(paths, path)
		}
		return err
	}))
	require.Contains(t, paths, filepath.Join(root, "hanode"))
	require.Len(t, paths, 12)

	loaded := map[string]*Config{}
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			o := opts(t)
			o.EnvFile = path
			o.Environ = []string{"HOME=/home/nsg", "PATH=/usr/bin:/bin"}
			c, err := Load(o)
			require.NoError(t, err)
			loaded[filepath.Base(path)] = c
			if filepath.Base(path) != "primary-2" {
				assert.Empty(t, c.Notices())
			}
		})
	}

	t.Run("the primary group", func(t *testing.T) {
		var names, listens []string
		for i, base := range []string{"primary-1", "primary-2", "primary-3"} {
			c := loaded[base]
			require.NotNil(t, c, base)
			assert.Equal(t, "nsg-primary-ha", c.HAID)
			assert.Equal(t, "primary", c.Role)
			assert.Equal(t, []string{"127.0.0.1:2181"}, c.ZKServers())
			assert.Equal(t, "4s", c.ZKSessionTimeout.String())
			assert.Contains(t, c.ActiveCmd, "$HANODE_TERM")
			assert.Equal(t, "127.0.0.1:964"+string(rune('1'+i)), c.HTTPListen)
			names, listens = append(names, c.Name), append(listens, c.HTTPListen)
		}
		assert.Equal(t, []string{"primary-1", "primary-2", "primary-3"}, names)
		// primary-2 shows the NetSpyGlass form: ZK only inside SERVER_CLI,
		// next to variables hanode does not use.
		assert.Contains(t, setting(t, loaded["primary-2"], KeyZK).Source, "-DZK in SERVER_CLI")
		var unused []string
		for _, n := range loaded["primary-2"].Notices() {
			assert.Equal(t, NoticeUnused, n.Kind)
			unused = append(unused, n.Key)
		}
		assert.Equal(t, []string{"JVM_CLI", "CONFIG", "LOG_DIR"}, unused)
	})
	t.Run("the compute pair", func(t *testing.T) {
		for i, base := range []string{"compute-1", "compute-2"} {
			c := loaded[base]
			require.NotNil(t, c, base)
			assert.Equal(t, "nsg-compute-ha", c.HAID)
			assert.Equal(t, "compute", c.Role)
			assert.Equal(t, base, c.Name)
			assert.Equal(t, "127.0.0.1:965"+string(rune('1'+i)), c.HTTPListen)
		}
	})
	t.Run("the documented file mentions every key", func(t *testing.T) {
		src, err := os.ReadFile(filepath.Join(root, "hanode"))
		require.NoError(t, err)
		for _, k := range keys {
			assert.Contains(t, string(src), k.name+"=", "key %s", k.name)
		}
	})
}

// TestSystemdUnit keeps the unit file in line with the CLI's exit statuses
// (cmd/hanode: 77 and 78 are final, the Go runtime's 2 is restarted) and with
// duty containment (a delegated, writable cgroup subtree).
func TestSystemdUnit(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "etc", "systemd", "hanode.service"))
	require.NoError(t, err)
	lines := strings.Split(string(src), "\n")
	for _, want := range []string{
		"ExecStart=/usr/local/bin/hanode run --env-file /etc/default/hanode",
		"KillMode=control-group",
		"KillSignal=SIGTERM",
		"TimeoutStopSec=15",
		"Restart=on-failure",
		"RestartPreventExitStatus=77 78",
		"Delegate=yes",
		"RuntimeDirectory=hanode", // the admin socket's directory, /run/hanode
	} {
		assert.Contains(t, lines, want)
	}
	// Delegation needs a writable cgroup tree.
	assert.NotContains(t, lines, "ProtectControlGroups=yes")
	assert.False(t, slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "EnvironmentFile=") }))
}

// TestLoadReportsFileErrorsTogetherWithBadValues: a refused line does not
// hide the other keys' problems; "required" is not claimed for a key the
// parser may not have reached.
func TestLoadReportsFileErrorsTogetherWithBadValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hanode")
	require.NoError(t, os.WriteFile(path, []byte("ROLE=bogus\nZK_SESSION_TIMEOUT=10x\nHA_ID=g\nX=$(date)\n"), 0o600))
	_, err := Load(LoadOptions{EnvFile: path})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrInvalid)
	msg := err.Error()
	for _, want := range []string{path + ":4:3: command substitution", `ROLE="bogus"`, `ZK_SESSION_TIMEOUT="10x"`, "HA_ID"} {
		assert.Contains(t, msg, want)
	}
	assert.NotContains(t, msg, "NAME", "NAME may be set after the broken line: not reported as missing")
}
