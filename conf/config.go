// Package conf loads hanode's configuration.
//
// Four layers are merged, later wins: built-in defaults, the env file
// (/etc/default/hanode, a shell fragment in the NetSpyGlass style, see
// ParseEnvFile), environment variables HANODE_<KEY>, and the command-line
// flags the user set. Every effective value remembers where it came from, so
// that an error and `hanode check-config` can say "ZK_SESSION_TIMEOUT=10x
// (from /etc/default/hanode:7)".
//
// Load reports every problem at once; each matches ErrInvalid. Variables
// that are not keys (JVM_CLI, HANODE_FOO) are ignored and listed in
// Config.Notices, except that a name one typo from a key (HAID for HA_ID)
// is an error: ignored, it would leave the key unset.
package conf

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"

	"github.com/hanode/hanode/roles/catalog"
)

// The configuration keys, as written in the env file.
const (
	KeyName                = "NAME"
	KeyRole                = "ROLE"
	KeyRegion              = "REGION"
	KeyHAID                = "HA_ID"
	KeyZK                  = "ZK"
	KeyZKSessionTimeout    = "ZK_SESSION_TIMEOUT"
	KeyZKRoot              = "ZK_ROOT"
	KeyNetID               = "NET_ID"
	KeyHTTPListen          = "HTTP_LISTEN"
	KeyActiveCmd           = "ACTIVE_CMD"
	KeyActiveCmdMode       = "ACTIVE_CMD_MODE"
	KeyActiveStopTimeout   = "ACTIVE_STOP_TIMEOUT"
	KeyActiveMaxRestarts   = "ACTIVE_MAX_RESTARTS"
	KeyActiveRestartWindow = "ACTIVE_RESTART_WINDOW"
	KeyActiveRestartGrace  = "ACTIVE_RESTART_GRACE"
	KeyDutyContainment     = "DUTY_CONTAINMENT"
	KeyLeaseMargin         = "LEASE_MARGIN"
	KeyFenceCmd            = "FENCE_CMD"
	KeyFenceTimeout        = "FENCE_TIMEOUT"
	KeyFenceMaxTries       = "FENCE_MAX_TRIES"
	// Transition hooks and the standby's command (issue 16).
	KeyNotifyCmd          = "NOTIFY_CMD"
	KeyNotifyTimeout      = "NOTIFY_TIMEOUT"
	KeyStandbyCmd         = "STANDBY_CMD"
	KeyStandbyStopTimeout = "STANDBY_STOP_TIMEOUT"
	// Election policies and health-gated candidacy (issue 16; health.go).
	KeyElectionPolicy   = "ELECTION_POLICY"
	KeyPriority         = "PRIORITY"
	KeyPreempt          = "PREEMPT"
	KeyPreemptDelay     = "PREEMPT_DELAY"
	KeyNoFailover       = "NOFAILOVER"
	KeyHealthCmd        = "HEALTH_CMD"
	KeyHealthInterval   = "HEALTH_INTERVAL"
	KeyHealthTimeout    = "HEALTH_TIMEOUT"
	KeyHealthFailures   = "HEALTH_FAILURES"
	KeyHealthRecoveries = "HEALTH_RECOVERIES"

	KeyLogLevel  = "LOG_LEVEL"
	KeyLogFormat = "LOG_FORMAT"
	// The cluster-wide polling cycle (issue 16).
	KeyPollInterval = "POLL_INTERVAL"
	KeyCycleCmd     = "CYCLE_CMD"
)

// EnvPrefix starts the name of every environment variable that sets a key.
const EnvPrefix = "HANODE_"

// DefaultEnvFile is read when LoadOptions names no env file and this one exists.
const DefaultEnvFile = "/etc/default/hanode"

// keyInfo describes one key; keys lists them in the order Settings prints.
type keyInfo struct {
	name  string
	def   string // static default, "" for none (or computed, see validate)
	usage string
	// emptyIsValue marks keys for which an empty value means "none" (no HA
	// group, no ZooKeeper, no duty) and so overrides lower layers. For every
	// other key an empty value is treated as not set, as ${X:-default} would.
	emptyIsValue bool
	// command marks shell commands (the *_CMD keys), run as
	// /bin/sh -c VALUE: at most maxCommandLen bytes.
	command bool
}

var keys = []keyInfo{
	{name: KeyName, usage: "server name, unique in the cluster (required)"},
	{name: KeyRole, usage: "server role: primary, secondary, monitor, compute, alert, or a combination such as primary,monitor (required)"},
	{name: KeyRegion, def: "world", usage: "region this server serves"},
	{name: KeyHAID, emptyIsValue: true, usage: "HA group id, identical on all servers of the group; empty means standalone (always active)"},
	{name: KeyZK, emptyIsValue: true, usage: "ZooKeeper ensemble host:port[,host:port...][/chroot]; empty or embedded means none"},
	{name: KeyZKSessionTimeout, def: "10s", usage: "ZooKeeper session timeout (2s to 5m)"},
	{name: KeyZKRoot, def: "/hanode", usage: "znode under which hanode keeps its groups"},
	{name: KeyNetID, def: "1", usage: "network id answered under /v2/ping/net/:netid/"},
	{name: KeyHTTPListen, def: ":9640", usage: "host:port of the HTTP health endpoint"},
	{name: KeyActiveCmd, emptyIsValue: true, command: true, usage: "shell command run only while this server is active"},
	{name: KeyActiveCmdMode, def: "simple", usage: "simple: the duty is ACTIVE_CMD's process; forking: ACTIVE_CMD starts a daemon and exits 0, and the duty is the daemon (as systemd's Type=forking)"},
	{name: KeyActiveStopTimeout, usage: "how long the active command gets to stop (default min(2/3 of LEASE_MARGIN, LEASE_MARGIN - 400ms))"},
	{name: KeyActiveMaxRestarts, def: "5", usage: "restarts of a failing active command within ACTIVE_RESTART_WINDOW after which the node hands over; 0 means never give up"},
	{name: KeyActiveRestartWindow, def: "60s", usage: "the window ACTIVE_MAX_RESTARTS counts restarts in"},
	{name: KeyActiveRestartGrace, def: "1s", usage: "how long a leader whose active command is not running (between a crash and its restart) still answers ok"},
	{name: KeyDutyContainment, def: "auto", usage: "how every process of a duty is contained and stopped: auto (cgroup, else subreaper), cgroup, subreaper, or none (only the duty's process group)"},
	{name: KeyLeaseMargin, usage: "how long before the ZooKeeper session could expire the active lease ends (default 30% of ZK_SESSION_TIMEOUT)"},
	{name: KeyFenceCmd, emptyIsValue: true, command: true, usage: "shell command a new leader runs to fence the previous one before its duty starts"},
	{name: KeyFenceTimeout, def: "30s", usage: "how long FENCE_CMD may run before it counts as failed"},
	{name: KeyFenceMaxTries, def: "3", usage: "failed FENCE_CMD runs in one term after which the node steps aside so another member may try"},
	{name: KeyNotifyCmd, emptyIsValue: true, command: true, usage: "shell command run on every change of this server's state, in order, with HANODE_FROM, HANODE_TO, HANODE_TERM, HANODE_LEADER, HANODE_REASON"},
	{name: KeyNotifyTimeout, def: "30s", usage: "how long one NOTIFY_CMD run may take before it is killed"},
	{name: KeyStandbyCmd, emptyIsValue: true, command: true, usage: "shell command run only while this server is a standby of a healthy group, stopped before ACTIVE_CMD starts"},
	{name: KeyStandbyStopTimeout, def: "5s", usage: "SIGTERM, then SIGKILL to STANDBY_CMD after this; a takeover's duty waits for that stop"},
	{name: KeyElectionPolicy, def: "first-come", usage: "who leads: first-come (the member that joined first, no preemption) or priority (the lowest PRIORITY); the same on every member of a group"},
	{name: KeyPriority, def: "0", usage: "with ELECTION_POLICY=priority: this member's priority, lower is preferred (may be negative)"},
	{name: KeyPreempt, def: "false", usage: "with ELECTION_POLICY=priority: the leader hands over gracefully to a preferred member that has been in the group for PREEMPT_DELAY"},
	{name: KeyPreemptDelay, def: "30s", usage: "how long a preferred member must have been in the group before the leader hands over to it (PREEMPT=true)"},
	{name: KeyNoFailover, def: "false", usage: "true: this member joins, follows and serves reads, but never leads"},
	{name: KeyHealthCmd, emptyIsValue: true, command: true, usage: "shell command run every HEALTH_INTERVAL; after HEALTH_FAILURES failures in a row the member leaves the line (a leader hands over first)"},
	{name: KeyHealthInterval, def: "10s", usage: "time between the starts of two HEALTH_CMD runs (and the quiet interval after a lost duty)"},
	{name: KeyHealthTimeout, usage: "a HEALTH_CMD run taking longer is killed and counts as failed (default min(HEALTH_INTERVAL, 10s))"},
	{name: KeyHealthFailures, def: "3", usage: "failed health checks in a row after which the member leaves the line"},
	{name: KeyHealthRecoveries, def: "2", usage: "passing health checks in a row after which an unhealthy member joins again, at the back"},
	{name: KeyLogLevel, def: "info", usage: "log level: debug, info, warn or error"},
	{name: KeyLogFormat, def: "json", usage: "log format: json or console"},
	{name: KeyPollInterval, emptyIsValue: true, usage: "the cluster-wide polling cycle's interval, advanced by the primary group's leader (1s to 24h); empty means no cycle"},
	{name: KeyCycleCmd, emptyIsValue: true, command: true, usage: "shell command run on every node once for each polling cycle, with HANODE_CYCLE and HANODE_CYCLE_STARTED"},
	// Access to ZooKeeper (secret.go, issue 18).
	{name: KeySecretFile, usage: "file holding the cluster's shared secret, the same on every node: every znode hanode creates is protected by a digest ACL derived from it (mode 600)"},
	{name: KeySecret, usage: "the cluster's shared secret itself (prefer CLUSTER_SHARED_SECRET_FILE); never printed"},
	{name: KeySecretOldFile, usage: "during a rotation of the secret, file holding the other secret, accepted next to the current one"},
	{name: KeySecretOld, usage: "during a rotation, the other secret itself (prefer CLUSTER_SHARED_SECRET_OLD_FILE); never printed"},
	{name: KeyZKACLOpen, usage: "yes: keep the tree open to clients without the secret (only while a secret is being introduced, one node at a time)"},
	{name: KeyZKTLSCA, usage: "PEM file of the CA that signed the ZooKeeper servers' certificates: connect over TLS (ZooKeeper's secureClientPort)"},
	{name: KeyZKTLSCert, usage: "PEM file of this node's client certificate for ZooKeeper over TLS"},
	{name: KeyZKTLSKey, usage: "PEM file of the key of ZK_TLS_CERT (mode 600)"},
	{name: KeyAdminTokenFile, usage: "file holding the bearer token of the admin API (POST /v2/admin/..., hanode pause/resume); without one the admin API is off (mode 600)"},
	{name: KeyAdminToken, usage: "the admin API's bearer token itself (prefer ADMIN_TOKEN_FILE); never printed"},
	// The admin socket (adminsocket.go, issue 18).
	{name: KeyAdminSocket, emptyIsValue: true, usage: "path of a Unix socket (mode 600) on which the node serves the admin API and /v2/status, /v2/history to its own user and root without a token; empty means none"},
}

func lookupKey(name string) (keyInfo, bool) {
	for _, k := range keys {
		if k.name == name {
			return k, true
		}
	}
	return lookupJobKey(name) // JOB_<NAME>_CMD, ... (jobs.go)
}

// flagName turns ZK_SESSION_TIMEOUT into zk-session-timeout.
func flagName(key string) string {
	return strings.ToLower(strings.ReplaceAll(key, "_", "-"))
}

// Config is the validated, effective configuration. Each field holds the key
// of the same name (Name is NAME, HAID is HA_ID, ZKSessionTimeout is
// ZK_SESSION_TIMEOUT, ...), trimmed; Role is canonical (catalog.Set.String),
// LogLevel, LogFormat, ActiveCmdMode and DutyContainment are lower case, and
// LeaseMargin and ActiveStopTimeout are computed when unset.
type Config struct {
	Name, Role, Region, HAID, ZK, ZKRoot, NetID, HTTPListen, ActiveCmd, FenceCmd, LogLevel, LogFormat string

	ZKSessionTimeout, LeaseMargin, ActiveStopTimeout, FenceTimeout time.Duration

	// ActiveCmdMode is "simple" (the duty is ACTIVE_CMD's process) or
	// "forking" (ACTIVE_CMD's process starts a daemon and exits 0; the duty
	// is the daemon, as with systemd's Type=forking).
	ActiveCmdMode string
	// ActiveMaxRestarts is how many restarts of a failing duty within
	// ActiveRestartWindow make the node hand over; 0 means never give up.
	ActiveMaxRestarts int
	// ActiveRestartWindow is the sliding window ActiveMaxRestarts counts in
	// (> 0).
	ActiveRestartWindow time.Duration
	// ActiveRestartGrace is how long a leader whose duty is not running
	// (between a crash and its restart) still answers ok (>= 0).
	ActiveRestartGrace time.Duration
	// DutyContainment is how the processes of a duty are contained and
	// stopped: "auto" (a cgroup where one can be had, else a subreaper),
	// "cgroup", "subreaper" or "none" (only the duty's process group, which a
	// process leaving it escapes; Notices warns).
	DutyContainment string
	// FenceMaxTries is how many failed FENCE_CMD runs in one term make the
	// node step aside so another member may try (>= 1).
	FenceMaxTries int

	// NotifyCmd (NOTIFY_CMD) runs on every transition, each run bounded by
	// NotifyTimeout (> 0). StandbyCmd (STANDBY_CMD) runs while the server
	// is a standby, stopped within StandbyStopTimeout (> 0) plus the kill
	// before the duty starts. Empty commands: none.
	NotifyCmd, StandbyCmd             string
	NotifyTimeout, StandbyStopTimeout time.Duration
	// Jobs are the scheduled jobs (JOB_<NAME>_*, jobs.go), sorted by name.
	Jobs []Job
	// PollInterval is how often the primary group's leader advances the
	// cluster-wide polling cycle; 0 means it does not (POLL_INTERVAL).
	PollInterval time.Duration
	// CycleCmd is run on every node once for each cycle (CYCLE_CMD).
	CycleCmd string
	// Candidacy and health (ELECTION_POLICY, PRIORITY, PREEMPT,
	// PREEMPT_DELAY, NOFAILOVER, HEALTH_*; health.go).
	Candidacy

	// EnvFile is the env file actually read, "" if none.
	EnvFile string

	// Access to ZooKeeper (secret.go): the shared secrets (Secrets, never
	// printed), the files they came from, ZK_ACL_OPEN, and the PEM files of
	// TLS (any set: TLS).
	secrets                      []hidden
	adminToken                   hidden
	secretFiles                  map[string]string
	ZKACLOpen                    bool
	ZKTLSCA, ZKTLSCert, ZKTLSKey string
	// AdminSocket is the admin socket's path (ADMIN_SOCKET), "" for none.
	AdminSocket string

	sources map[string]string // key -> where its effective value came from
	notices []Notice
	jobKeys []Setting // the JOB_* keys, for Settings
}

// Notices returns what an operator should know about this configuration
// although it is valid: warnings first (see NoticeWarning), then the
// variables hanode read but does not use, those of the env file in file
// order and then the HANODE_ environment variables by name.
func (c *Config) Notices() []Notice { return slices.Clone(c.notices) }

// Standalone reports whether no external ZooKeeper is configured (ZK empty or
// "embedded"): the server runs alone and is always active.
func (c *Config) Standalone() bool { return c.ZK == "" || c.ZK == "embedded" }

// HA reports whether the server belongs to an HA group (HA_ID set). After
// validation this implies an external ZooKeeper.
func (c *Config) HA() bool { return c.HAID != "" }

// PrimaryRole reports whether ROLE includes primary: such a group's leader
// advances the cluster-wide polling cycle (POLL_INTERVAL).
func (c *Config) PrimaryRole() bool {
	set, err := catalog.Parse(c.Role)
	return err == nil && set.Has(catalog.Primary)
}

// ZKServers returns the host:port list of the ZooKeeper ensemble, nil when
// Standalone.
func (c *Config) ZKServers() []string {
	if c.Standalone() {
		return nil
	}
	servers, _ := splitZK(c.ZK)
	var out []string
	for _, s := range strings.Split(servers, ",") {
		out = append(out, strings.TrimSpace(s))
	}
	return out
}

// ZKChroot returns the chroot suffix of ZK ("/chroot"), or "" if none.
func (c *Config) ZKChroot() string {
	if c.Standalone() {
		return ""
	}
	_, chroot := splitZK(c.ZK)
	return chroot
}

// Setting is one effective key for printing.
type Setting struct{ Key, Value, Source string }

// Settings returns every key in table order with its effective value and the
// place it came from ("default", "/etc/default/hanode:7", "env HANODE_ZK",
// "flag --zk"; computed defaults say how they were computed).
func (c *Config) Settings() []Setting {
	out := make([]Setting, 0, len(keys))
	for _, k := range keys {
		out = append(out, Setting{Key: k.name, Value: c.value(k.name), Source: c.sources[k.name]})
	}
	return append(out, c.jobKeys...)
}

func (c *Config) value(key string) string {
	switch key {
	case KeyName:
		return c.Name
	case KeyRole:
		return c.Role
	case KeyRegion:
		return c.Region
	case KeyHAID:
		return c.HAID
	case KeyZK:
		return c.ZK
	case KeyZKSessionTimeout:
		return c.ZKSessionTimeout.String()
	case KeyZKRoot:
		return c.ZKRoot
	case KeyNetID:
		return c.NetID
	case KeyHTTPListen:
		return c.HTTPListen
	case KeyActiveCmd:
		return c.ActiveCmd
	case KeyActiveCmdMode:
		return c.ActiveCmdMode
	case KeyActiveStopTimeout:
		return c.ActiveStopTimeout.String()
	case KeyActiveMaxRestarts:
		return strconv.Itoa(c.ActiveMaxRestarts)
	case KeyActiveRestartWindow:
		return c.ActiveRestartWindow.String()
	case KeyActiveRestartGrace:
		return c.ActiveRestartGrace.String()
	case KeyDutyContainment:
		return c.DutyContainment
	case KeyLeaseMargin:
		return c.LeaseMargin.String()
	case KeyFenceCmd:
		return c.FenceCmd
	case KeyFenceTimeout:
		return c.FenceTimeout.String()
	case KeyFenceMaxTries:
		return strconv.Itoa(c.FenceMaxTries)
	case KeyNotifyCmd:
		return c.NotifyCmd
	case KeyNotifyTimeout:
		return c.NotifyTimeout.String()
	case KeyStandbyCmd:
		return c.StandbyCmd
	case KeyStandbyStopTimeout:
		return c.StandbyStopTimeout.String()
	case KeyElectionPolicy, KeyPriority, KeyPreempt, KeyPreemptDelay, KeyNoFailover, KeyHealthCmd, KeyHealthInterval,
		KeyHealthTimeout, KeyHealthFailures, KeyHealthRecoveries:
		return c.candidacyValue(key)
	case KeyLogLevel:
		return c.LogLevel
	case KeyLogFormat:
		return c.LogFormat
	case KeyPollInterval:
		if c.PollInterval == 0 {
			return ""
		}
		return c.PollInterval.String()
	case KeyCycleCmd:
		return c.CycleCmd
	case KeyAdminSocket:
		return c.AdminSocket
	}
	if v, ok := c.accessValue(key); ok {
		return v
	}
	return ""
}

// LoadOptions says where Load finds each layer.
type LoadOptions struct {
	// EnvFile is the env file to read (--env-file). When set, a missing or
	// unreadable file is an error. When empty, DefaultEnvFile is read if it
	// exists.
	EnvFile string
	// DefaultEnvFile is the file tried when EnvFile is empty;
	// "" means /etc/default/hanode.
	DefaultEnvFile string
	// Environ is the process environment in os.Environ form; HANODE_<KEY>
	// entries set keys. nil means an empty environment: pass os.Environ() in
	// production.
	Environ []string
	// LookupEnv supplies $VAR in the env file; nil means a lookup in Environ.
	LookupEnv func(string) (string, bool)
	// Flags holds the flags registered by BindFlags; only flags the user set
	// (Changed) count. May be nil.
	Flags *pflag.FlagSet
}

// BindFlags registers one string flag per key (--name, --ha-id,
// --zk-session-timeout, ...) but the secrets themselves (their _FILE keys
// have flags), and nothing else. Durations are strings too, so
// that a bad value is reported by Load together with every other problem.
func BindFlags(fs *pflag.FlagSet) {
	for _, k := range keys {
		if k.name == KeySecret || k.name == KeySecretOld || k.name == KeyAdminToken {
			continue // on a command line, any user could read it (ps): the _FILE flag instead
		}
		usage := fmt.Sprintf("%s (env %s%s", k.usage, EnvPrefix, k.name)
		if k.def != "" {
			usage += "; default " + k.def
		}
		fs.String(flagName(k.name), "", usage+")")
	}
}

// Load merges defaults, the env file, HANODE_ variables and set flags, and
// validates the result. The error joins every problem found, each matching
// ErrInvalid: the env file's refused lines (file:line:col), variables of the
// file, the environment or SERVER_CLI that misspell a key (see resembles),
// and the problems of the merged values. When the env file cannot be read,
// only that is reported. When some of its lines are refused, a missing key
// is not claimed "required": it may be set on a line the parser never
// reached.
//
// Variables that are not keys and misspell none are ignored; the Config
// lists them, with warnings, in Notices.
func Load(opts LoadOptions) (*Config, error) {
	lookupEnv := opts.LookupEnv
	if lookupEnv == nil {
		lookupEnv = environLookup(opts.Environ)
	}

	merged := koanf.New(".")
	sources := map[string]string{}
	// Each layer is loaded alone first so that its keys, and so the source
	// of each effective value, are known; then it is merged over the others.
	layer := func(p koanf.Provider, source func(key string) string) error {
		l := koanf.New(".")
		if err := l.Load(p, nil); err != nil {
			return err
		}
		for _, key := range l.Keys() {
			sources[key] = source(key)
		}
		return merged.Merge(l)
	}

	defaults := map[string]any{}
	for _, k := range keys {
		if k.def != "" {
			defaults[k.name] = k.def
		}
	}
	if err := layer(confmap.Provider(defaults, ""), func(string) string { return "default" }); err != nil {
		return nil, err
	}

	// A file with refused or broken lines still yields the values it
	// could evaluate: check those too, so every problem is reported at once.
	file, fileErr := readEnvFile(opts, lookupEnv)
	if file == nil && fileErr != nil {
		return nil, fileErr
	}
	var problems []error
	var unused []Notice
	if fileErr != nil {
		problems = append(problems, unjoin(fileErr)...)
	}
	if file != nil {
		problems = append(problems, file.errs...)
		unused = append(unused, file.unused...)
		vals := map[string]any{}
		for key, s := range file.settings {
			vals[key] = s.Value
		}
		err := layer(confmap.Provider(vals, ""), func(key string) string { return file.settings[key].Source })
		if err != nil {
			return nil, err
		}
	}

	environ := opts.Environ
	envUnused, envErrs := scanEnviron(environ)
	problems = append(problems, envErrs...)
	unused = append(unused, envUnused...)
	envProvider := env.Provider("", env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, value string) (string, any) {
			key, _ := strings.CutPrefix(name, EnvPrefix)
			return keep(key, value)
		},
	})
	if err := layer(envProvider, func(key string) string { return "env " + EnvPrefix + key }); err != nil {
		return nil, err
	}

	if opts.Flags != nil {
		byFlag := map[string]string{}
		for _, k := range keys {
			byFlag[flagName(k.name)] = k.name
		}
		// A nil koanf instance makes posflag take only the flags the user set.
		flags := posflag.ProviderWithFlag(opts.Flags, ".", nil, func(f *pflag.Flag) (string, any) {
			key, ok := byFlag[f.Name]
			if !ok {
				return "", nil
			}
			return keep(key, f.Value.String())
		})
		if err := layer(flags, func(key string) string { return "flag --" + flagName(key) }); err != nil {
			return nil, err
		}
	}

	var raw []Setting
	for _, k := range keys {
		if merged.Exists(k.name) {
			raw = append(raw, Setting{Key: k.name, Value: merged.String(k.name), Source: sources[k.name]})
		}
	}
	for _, key := range slices.Sorted(slices.Values(merged.Keys())) {
		if _, _, job := jobKey(key); job {
			raw = append(raw, Setting{Key: key, Value: merged.String(key), Source: sources[key]})
		}
	}
	cfg, err := Validate(raw)
	if fileErr != nil {
		err = withoutRequired(err)
	}
	if err != nil {
		problems = append(problems, unjoin(err)...)
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	if file != nil {
		cfg.EnvFile = file.path
	}
	cfg.notices = append(cfg.notices, unused...)
	return cfg, nil
}

// keep filters one value of a layer: unknown keys are dropped, values are
// trimmed, and an empty value is dropped unless empty means something for
// the key (see keyInfo.emptyIsValue). A "" key tells the providers to skip.
func keep(key, value string) (string, any) {
	k, ok := lookupKey(key)
	if !ok {
		return "", nil
	}
	value = strings.TrimSpace(value)
	if value == "" && !k.emptyIsValue {
		return "", nil
	}
	return key, value
}

// withoutRequired drops "required" errors from a validation of a broken
// file: the missing key may well be set on a line the parser never reached.
func withoutRequired(err error) error {
	if err == nil {
		return nil
	}
	var keep []error
	for _, e := range unjoin(err) {
		var fe *FieldError
		if errors.As(e, &fe) && fe.Source == "" && fe.Value == "" {
			continue
		}
		keep = append(keep, e)
	}
	return errors.Join(keep...)
}

// unjoin lists the errors inside an errors.Join.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// environLookup looks names up in an os.Environ-style list (first entry wins,
// as in getenv).
func environLookup(environ []string) func(string) (string, bool) {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if _, seen := m[k]; ok && !seen {
			m[k] = v
		}
	}
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}
