package conf

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hanode/hanode/roles/catalog"
)

// ErrInvalid matches every configuration problem Load and Validate report
// (errors.Is); the CLI maps it to exit status 78 (EX_CONFIG).
var ErrInvalid = errors.New("conf: invalid configuration")

// FieldError is a problem with one key: its value, where that value came
// from, and what is wrong.
type FieldError struct {
	Key, Value, Source, Msg string
}

// Error renders the error as `KEY="value" (from source): msg`; a key that was
// never set has no source and renders as `KEY: msg`. A value longer than
// 256 bytes is shown by its first 64 and its length:
// `KEY="first 64 bytes"... (70000 bytes) (from source): msg`.
func (e *FieldError) Error() string {
	if e.Source == "" {
		return fmt.Sprintf("%s: %s", e.Key, e.Msg)
	}
	if isSecretKey(e.Key) {
		return fmt.Sprintf("%s=%s (from %s): %s", e.Key, hiddenValue, e.Source, e.Msg)
	}
	return fmt.Sprintf("%s=%s (from %s): %s", e.Key, shownValue(e.Value), e.Source, e.Msg)
}

// shownValue quotes a value for a message, shortened when long.
func shownValue(s string) string {
	const long, shown = 256, 64
	if len(s) <= long {
		return strconv.Quote(s)
	}
	cut := shown
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(s[:cut]), len(s))
}

// Is makes every FieldError match ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// invalidError is a configuration problem that is not about one key, such as
// an unreadable env file; it matches both ErrInvalid and its cause.
type invalidError struct {
	msg string
	err error
}

func (e *invalidError) Error() string   { return e.msg + ": " + e.err.Error() }
func (e *invalidError) Unwrap() []error { return []error{ErrInvalid, e.err} }

// Limits of ZK_SESSION_TIMEOUT. ZooKeeper itself clamps the session to 2 to
// 20 ticks of the server; these bounds only catch values that make no sense.
const (
	minSessionTimeout = 2 * time.Second
	maxSessionTimeout = 5 * time.Minute
)

// Validate checks merged raw values and builds the Config. raw lists values
// with their sources; when a key appears twice the later entry wins. A key
// that is missing, or empty where empty does not mean "none", takes its
// default (source "default"). Values are trimmed. Every problem is reported,
// joined, each as a *FieldError matching ErrInvalid. A valid configuration
// that is probably not what was meant (ZK without HA_ID) gets a
// NoticeWarning in Config.Notices.
func Validate(raw []Setting) (*Config, error) {
	v := &validation{vals: map[string]Setting{}}
	for _, s := range raw {
		k, ok := lookupKey(s.Key)
		if !ok {
			v.errs = append(v.errs, &FieldError{Key: s.Key, Value: s.Value, Source: s.Source, Msg: "unknown key"})
			continue
		}
		s.Value = strings.TrimSpace(s.Value)
		if s.Value == "" && !k.emptyIsValue {
			delete(v.vals, s.Key)
			continue
		}
		v.vals[s.Key] = s
	}
	for _, k := range keys {
		if _, ok := v.vals[k.name]; !ok && k.def != "" {
			v.vals[k.name] = Setting{Key: k.name, Value: k.def, Source: "default"}
		}
	}

	c := &Config{sources: map[string]string{}}
	c.Name = v.name(KeyName, true)
	c.Role = v.role()
	c.Region = v.name(KeyRegion, true)
	c.HAID = v.name(KeyHAID, false)
	c.ZK = v.zk()
	c.ZKRoot = v.znodePath(KeyZKRoot)
	c.NetID = v.netID()
	c.HTTPListen = v.listen()
	c.ActiveCmd = v.command(KeyActiveCmd)
	c.FenceCmd = v.command(KeyFenceCmd)
	if d, ok := v.duration(KeyFenceTimeout); ok {
		if d <= 0 {
			v.fail(KeyFenceTimeout, "must be positive")
		}
		c.FenceTimeout = d
	}
	c.NotifyCmd = v.command(KeyNotifyCmd)
	c.StandbyCmd = v.command(KeyStandbyCmd)
	for _, d := range []struct {
		key string
		to  *time.Duration
	}{{KeyNotifyTimeout, &c.NotifyTimeout}, {KeyStandbyStopTimeout, &c.StandbyStopTimeout}} {
		if got, ok := v.duration(d.key); ok {
			if got <= 0 {
				v.fail(d.key, "must be positive")
			}
			*d.to = got
		}
	}
	c.LogLevel = v.oneOf(KeyLogLevel, "debug", "info", "warn", "error")
	c.LogFormat = v.oneOf(KeyLogFormat, "json", "console")
	c.ActiveCmdMode = v.oneOf(KeyActiveCmdMode, "simple", "forking")
	c.DutyContainment = v.oneOf(KeyDutyContainment, "auto", "cgroup", "subreaper", "none")
	c.ActiveMaxRestarts, _ = v.count(KeyActiveMaxRestarts, 0)
	c.FenceMaxTries, _ = v.count(KeyFenceMaxTries, 1)
	if d, ok := v.duration(KeyActiveRestartWindow); ok {
		if d <= 0 {
			v.fail(KeyActiveRestartWindow, "must be positive")
		}
		c.ActiveRestartWindow = d
	}
	if d, ok := v.duration(KeyActiveRestartGrace); ok {
		if d < 0 {
			v.fail(KeyActiveRestartGrace, "must not be negative (0 means: no ok while the duty is not running)")
		}
		c.ActiveRestartGrace = d
	}
	c.Candidacy = v.candidacy(c) // health.go
	c.Jobs = v.jobs(c.HA())      // before timing: a job's stop must fit in the margin too
	v.timing(c)
	v.cycle(c)
	v.access(c)
	c.AdminSocket = v.adminSocket()
	if c.ActiveCmdMode == "forking" && c.DutyContainment == "none" {
		dc := v.get(KeyDutyContainment)
		v.fail(KeyActiveCmdMode, fmt.Sprintf("needs a containment that sees the daemon, but DUTY_CONTAINMENT=%s (from %s): "+
			"a daemon leaves its starter's process group, so with none it could be neither watched nor stopped; use auto",
			dc.Value, dc.Source))
	}

	if c.DutyContainment == "none" {
		dc := v.get(KeyDutyContainment)
		c.notices = append(c.notices, Notice{Kind: NoticeWarning, Key: KeyDutyContainment, Value: dc.Value, Source: dc.Source,
			Msg: "duty processes are not contained: a process that leaves the duty's process group (setsid, a daemon, " +
				"a command such as timeout that moves to a group of its own) is not stopped when the duty is, " +
				"and can go on acting after this node lost its lease, next to the new leader. Use auto unless no cgroup and no subreaper can be had"})
	}

	if c.HA() && c.Standalone() {
		zk := v.get(KeyZK)
		have := "ZK is not set, which means"
		if zk.Source != "" {
			have = fmt.Sprintf("ZK=%q (from %s) means", zk.Value, zk.Source)
		}
		v.fail(KeyHAID, fmt.Sprintf("HA needs an external ZooKeeper ensemble, but %s no ZooKeeper: set ZK=host:port[,host:port...][/chroot], or remove HA_ID to run standalone", have))
	}
	if !c.HA() && !c.Standalone() {
		// Valid, but an ensemble is named for a reason: most likely HA_ID
		// was forgotten, and this server would be a second active one.
		zk, haID := v.get(KeyZK), v.get(KeyHAID)
		unset := "HA_ID is not set"
		if haID.Source != "" {
			unset = fmt.Sprintf("HA_ID is empty (from %s)", haID.Source)
		}
		c.notices = append(c.notices, Notice{Kind: NoticeWarning, Key: KeyZK, Value: zk.Value, Source: zk.Source,
			Msg: unset + ": this server joins no HA group and does not use ZooKeeper; it runs standalone and is always active. " +
				"Set HA_ID to the group's id, or remove ZK"})
	}

	if !c.HA() && c.StandbyCmd != "" {
		// Valid (the same env file may serve a group later), but it never runs.
		sc := v.get(KeyStandbyCmd)
		c.notices = append(c.notices, Notice{Kind: NoticeWarning, Key: KeyStandbyCmd, Value: sc.Value, Source: sc.Source,
			Msg: "STANDBY_CMD never runs without HA_ID: a standalone server is always active"})
	}

	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	for _, k := range keys {
		c.sources[k.name] = v.get(k.name).Source
	}
	c.jobKeys = v.jobSettings()
	return c, nil
}

// validation collects the problems of one Validate call.
type validation struct {
	vals map[string]Setting
	errs []error
}

// get returns a key's setting; an unset key has an empty Source.
func (v *validation) get(key string) Setting {
	if s, ok := v.vals[key]; ok {
		return s
	}
	return Setting{Key: key}
}

func (v *validation) fail(key, msg string) {
	s := v.get(key)
	v.errs = append(v.errs, &FieldError{Key: key, Value: s.Value, Source: s.Source, Msg: msg})
}

// name checks a value that becomes a znode name (NAME, REGION, HA_ID).
func (v *validation) name(key string, required bool) string {
	s := v.get(key)
	if s.Value == "" {
		if required {
			v.fail(key, fmt.Sprintf("required: set %s in the env file, %s%s in the environment, or --%s", key, EnvPrefix, key, flagName(key)))
		}
		return ""
	}
	if msg := checkName(s.Value); msg != "" {
		v.fail(key, msg)
	}
	return s.Value
}

// checkName returns what is wrong with a znode-safe name, or "".
func checkName(s string) string {
	switch {
	case len(s) > 128:
		return fmt.Sprintf("too long (%d characters, at most 128)", len(s))
	case s == "." || s == "..":
		return "must not be . or .."
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Sprintf("character %q is not allowed (use letters, digits, '.', '_' and '-')", r)
		}
	}
	return ""
}

func (v *validation) role() string {
	s := v.get(KeyRole)
	if s.Value == "" {
		v.fail(KeyRole, fmt.Sprintf("required: one of %s, or a combination such as primary,monitor", catalog.Set(catalog.All)))
		return ""
	}
	set, err := catalog.Parse(s.Value)
	if err != nil {
		v.fail(KeyRole, strings.TrimPrefix(err.Error(), "catalog: "))
		return ""
	}
	return set.String()
}

// splitZK splits "h1:p1,h2:p2/chroot" at the first '/'.
func splitZK(s string) (servers, chroot string) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i:]
	}
	return s, ""
}

func (v *validation) zk() string {
	s := v.get(KeyZK)
	if s.Value == "" || s.Value == "embedded" {
		return s.Value
	}
	servers, chroot := splitZK(s.Value)
	var problems []string
	if strings.TrimSpace(servers) == "" {
		problems = append(problems, "no host:port before the chroot")
	} else {
		for _, hp := range strings.Split(servers, ",") {
			if msg := checkHostPort(strings.TrimSpace(hp), false); msg != "" {
				problems = append(problems, msg)
			}
		}
	}
	if chroot != "" {
		if msg := checkZnodePath(chroot); msg != "" {
			problems = append(problems, "chroot "+msg)
		}
	}
	if len(problems) > 0 {
		v.fail(KeyZK, strings.Join(problems, "; ")+" (want host:port[,host:port...][/chroot], or empty or embedded for no ZooKeeper)")
	}
	return s.Value
}

// checkHostPort checks one host:port; HTTP_LISTEN may leave the host empty
// and use port 0 (any free port).
func checkHostPort(hp string, listen bool) string {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return fmt.Sprintf("%q is not host:port", hp)
	}
	if host == "" && !listen {
		return fmt.Sprintf("%q has no host", hp)
	}
	if strings.ContainsAny(host, " \t/,") {
		return fmt.Sprintf("%q has a bad host", hp)
	}
	low := 1
	if listen {
		low = 0
	}
	n, err := strconv.Atoi(port)
	if err != nil || strings.TrimLeft(port, "0123456789") != "" || n < low || n > 65535 {
		return fmt.Sprintf("%q: port must be a number from %d to 65535", hp, low)
	}
	return ""
}

// checkZnodePath returns what is wrong with an absolute znode path hanode
// will create (ZK_ROOT, the chroot of ZK), or "". It refuses what
// ZooKeeper's PathUtils.validatePath refuses (a path hanode sends that the
// server refuses would fail every request, and the node would retry
// forever), plus "/" alone, and ZooKeeper's reserved tree /zookeeper.
func checkZnodePath(p string) string {
	if p == "/" {
		return `must not be "/" alone`
	}
	if msg := validatePath(p); msg != "" {
		return msg
	}
	if p == reservedTree || strings.HasPrefix(p, reservedTree+"/") {
		return fmt.Sprintf("%q is in %s, the tree ZooKeeper reserves for itself (quotas, the ensemble's configuration)", p, reservedTree)
	}
	return ""
}

// reservedTree is ZooKeeper's own subtree (Quotas.procZookeeper).
const reservedTree = "/zookeeper"

// validatePath returns why ZooKeeper would refuse p as a znode path, or "".
// It is org.apache.zookeeper.common.PathUtils.validatePath (3.4 to 3.9),
// rule for rule: p starts with '/', does not end with '/' (unless it is
// "/"), and has no empty component, no "." or ".." component, and no
// character in U+0000-U+001F, U+007F-U+009F, U+D800-U+F8FF or
// U+FFF0-U+FFFF. Java checks UTF-16 code units, so a character above
// U+FFFF (a surrogate pair, U+D800-U+DFFF) is refused too, and the server
// decodes bytes that are not UTF-8 as U+FFFD, refused as well.
// go-zookeeper's own check differs (it allows U+D800-U+EFFF and U+FFFF), so
// hanode checks before it connects.
func validatePath(p string) string {
	switch {
	case p == "":
		return "must not be empty"
	case p[0] != '/':
		return fmt.Sprintf("%q must start with /", p)
	case p == "/":
		return ""
	case strings.HasSuffix(p, "/"):
		return fmt.Sprintf("%q must not end with /", p)
	}
	for _, seg := range strings.Split(p[1:], "/") {
		switch {
		case seg == "":
			return fmt.Sprintf("%q has an empty segment (//)", p)
		case seg == "." || seg == "..":
			return fmt.Sprintf("%q has a %q segment", p, seg)
		}
		for i, r := range seg {
			if r == utf8.RuneError {
				if _, size := utf8.DecodeRuneInString(seg[i:]); size <= 1 {
					return fmt.Sprintf("%q is not valid UTF-8", p)
				}
			}
			if msg := zkRefusedRune(r); msg != "" {
				return fmt.Sprintf("%q has %s, which ZooKeeper refuses in a znode path", p, msg)
			}
		}
	}
	return ""
}

// zkRefusedRune describes r when ZooKeeper refuses it in a path, else "".
func zkRefusedRune(r rune) string {
	switch {
	case r == 0:
		return "a NUL character"
	case r <= 0x1f, r >= 0x7f && r <= 0x9f:
		return fmt.Sprintf("a control character (%U)", r)
	case r >= 0xd800 && r <= 0xf8ff:
		return fmt.Sprintf("character %U (U+D800 to U+F8FF: surrogates and private use)", r)
	case r >= 0xfff0 && r <= 0xffff:
		return fmt.Sprintf("character %U (U+FFF0 to U+FFFF: specials)", r)
	case r > 0xffff:
		return fmt.Sprintf("character %U (above U+FFFF: Java sees a surrogate pair)", r)
	}
	return ""
}

func (v *validation) znodePath(key string) string {
	s := v.get(key)
	if msg := checkZnodePath(s.Value); msg != "" {
		v.fail(key, "znode path "+msg)
	}
	return s.Value
}

// maxCommandLen bounds a command key (ACTIVE_CMD, FENCE_CMD). Each runs as
// one argument, of the duty guard (--command) and of /bin/sh -c, and Linux
// refuses an argument longer than MAX_ARG_STRLEN (131072 bytes) with
// "argument list too long", naming no key. Half of that leaves room for the
// rest of the arguments and the environment, which share ARG_MAX; a real
// command that needs more belongs in a script.
const maxCommandLen = 65536

// command checks a shell command key.
func (v *validation) command(key string) string {
	s := v.get(key)
	if len(s.Value) > maxCommandLen {
		v.fail(key, fmt.Sprintf("%d bytes, longer than the %d bytes hanode accepts for a command "+
			"(it is passed as one argument to the duty guard and to /bin/sh -c, and Linux takes at most 131072 bytes in one): "+
			"put the command in a script and run that", len(s.Value), maxCommandLen))
	}
	return s.Value
}

func (v *validation) netID() string {
	s := v.get(KeyNetID)
	for _, r := range s.Value {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			v.fail(KeyNetID, fmt.Sprintf("character %q is not allowed (use letters, digits, '_' and '-')", r))
			break
		}
	}
	return s.Value
}

func (v *validation) listen() string {
	s := v.get(KeyHTTPListen)
	if msg := checkHostPort(s.Value, true); msg != "" {
		v.fail(KeyHTTPListen, msg+" (examples: :9640, 127.0.0.1:9641, [::1]:9640)")
	}
	return s.Value
}

func (v *validation) oneOf(key string, allowed ...string) string {
	s := v.get(key)
	val := strings.ToLower(s.Value)
	for _, a := range allowed {
		if val == a {
			return val
		}
	}
	v.fail(key, "must be one of "+strings.Join(allowed, ", "))
	return s.Value
}

// count parses a whole-number key of at least low; ok is false when it is
// invalid (and then the problem has been recorded).
func (v *validation) count(key string, low int) (n int, ok bool) {
	s := v.get(key)
	n, err := strconv.Atoi(s.Value)
	if err != nil {
		v.fail(key, "not a whole number")
		return 0, false
	}
	if n < low {
		v.fail(key, fmt.Sprintf("must be at least %d", low))
		return n, false
	}
	return n, true
}

// duration parses a key; ok is false when it is missing or invalid (and
// then the problem has been recorded, unless the key is computed).
func (v *validation) duration(key string) (d time.Duration, ok bool) {
	s := v.get(key)
	if s.Value == "" {
		return 0, false
	}
	d, err := time.ParseDuration(s.Value)
	if err != nil {
		v.fail(key, "not a duration (examples: 10s, 1500ms)")
		return 0, false
	}
	return d, true
}

// The stop of a duty in an HA group, beyond ACTIVE_STOP_TIMEOUT; the
// duty's whole stop must fit in LEASE_MARGIN (see timing).
const (
	// GuardAnswerSlack is how long the coordinator waits beyond
	// ACTIVE_STOP_TIMEOUT for its duty guard to confirm a stop before it
	// kills the guard and the duty's whole cgroup.
	GuardAnswerSlack = 300 * time.Millisecond
	// KillSlack is the room left, after GuardAnswerSlack, for that kill to
	// take effect.
	KillSlack = 100 * time.Millisecond
)

// stopSlack is what a duty's stop takes beyond ACTIVE_STOP_TIMEOUT at worst.
const stopSlack = GuardAnswerSlack + KillSlack

// minGuardedMargin is the smallest margin whose default stop timeout is at
// least 1ms: m - stopSlack - m/8 >= 1ms.
var minGuardedMargin = ((stopSlack+time.Millisecond)*8/7 + time.Millisecond - 1).Truncate(time.Millisecond)

// stallReserve is the part of the margin a host stall too short to be
// noticed may eat (ha/doc.go, "Clocks and host pauses": M/8).
func stallReserve(margin time.Duration) time.Duration { return margin / 8 }

// defaultStopTimeout is ACTIVE_STOP_TIMEOUT when unset: 2/3 of the margin,
// but at most the margin less stopSlack and the stall reserve, so that the
// default always fits; 0 when the margin cannot hold them. It says how it
// was computed.
func defaultStopTimeout(margin time.Duration) (time.Duration, string) {
	third, rest := (margin * 2 / 3).Truncate(time.Millisecond), margin-stopSlack-stallReserve(margin)
	if third <= rest {
		return third, "default (2/3 of LEASE_MARGIN)"
	}
	return max(rest, 0).Truncate(time.Millisecond),
		fmt.Sprintf("default (LEASE_MARGIN - %v guard answer slack and kill - LEASE_MARGIN/8 for unnoticed stalls)", stopSlack)
}

// timing checks ZK_SESSION_TIMEOUT, LEASE_MARGIN and ACTIVE_STOP_TIMEOUT,
// computing the last two when unset, and the inequalities that keep one
// active server: 0 < ACTIVE_STOP_TIMEOUT < LEASE_MARGIN < ZK_SESSION_TIMEOUT/2,
// and, in an HA group with ACTIVE_CMD, ACTIVE_STOP_TIMEOUT +
// GuardAnswerSlack + KillSlack <= LEASE_MARGIN: the coordinator's longest
// wait for a guard that does not confirm the stop, plus the kill, ends
// before the lease. The default stop timeout always fits; a margin too
// small to leave it any time (400ms or less) is refused on LEASE_MARGIN.
// A problem in one duration skips the checks that depend on it, so one
// typo gives one message.
func (v *validation) timing(c *Config) {
	session, sessionOK := v.duration(KeyZKSessionTimeout)
	if sessionOK && (session < minSessionTimeout || session > maxSessionTimeout) {
		v.fail(KeyZKSessionTimeout, fmt.Sprintf("must be between %v and %v", minSessionTimeout, "5m"))
		sessionOK = false
	}

	margin, marginOK := v.duration(KeyLeaseMargin)
	if _, set := v.vals[KeyLeaseMargin]; !set && sessionOK {
		margin, marginOK = (session * 3 / 10).Truncate(time.Millisecond), true
		v.vals[KeyLeaseMargin] = Setting{Key: KeyLeaseMargin, Value: margin.String(), Source: "default (30% of ZK_SESSION_TIMEOUT)"}
	} else if marginOK && margin <= 0 {
		v.fail(KeyLeaseMargin, "must be positive")
		marginOK = false
	}

	guarded := c.HA() && (c.ActiveCmd != "" || len(c.Jobs) > 0) // a job's run has a guard too
	stop, stopOK := v.duration(KeyActiveStopTimeout)
	if _, set := v.vals[KeyActiveStopTimeout]; !set && marginOK {
		var source string
		stop, source = defaultStopTimeout(margin)
		stopOK = stop > 0
		v.vals[KeyActiveStopTimeout] = Setting{Key: KeyActiveStopTimeout, Value: stop.String(), Source: source}
		if !stopOK {
			hint := ""
			if !guarded {
				hint = ", or set ACTIVE_STOP_TIMEOUT"
			}
			v.fail(KeyLeaseMargin, fmt.Sprintf("leaves the active command no time to stop: the default ACTIVE_STOP_TIMEOUT is "+
				"min(2/3 of LEASE_MARGIN, LEASE_MARGIN - %v guard answer slack - %v kill - LEASE_MARGIN/8 for unnoticed stalls) = 0s; "+
				"raise LEASE_MARGIN to at least %v (or ZK_SESSION_TIMEOUT, whose 30%% it is by default)%s",
				GuardAnswerSlack, KillSlack, minGuardedMargin, hint))
		}
	} else if stopOK && stop <= 0 {
		v.fail(KeyActiveStopTimeout, "must be positive")
		stopOK = false
	}

	c.ZKSessionTimeout, c.LeaseMargin, c.ActiveStopTimeout = session, margin, stop
	if !sessionOK || !marginOK || !stopOK {
		return
	}
	if margin >= session/2 {
		v.fail(KeyLeaseMargin, fmt.Sprintf("must be less than half of ZK_SESSION_TIMEOUT; %s", v.leaseRule()))
	}
	switch {
	case guarded && stop+stopSlack+stallReserve(margin) > margin:
		v.fail(KeyActiveStopTimeout, v.stopRule(stop))
	case stop >= margin:
		v.fail(KeyActiveStopTimeout, fmt.Sprintf("must be more than 0 and less than LEASE_MARGIN; %s", v.leaseRule()))
	}
}

// stopRule explains, with the values in force, why a duty's stop must fit
// in the margin.
func (v *validation) stopRule(stop time.Duration) string {
	s, m := v.get(KeyActiveStopTimeout), v.get(KeyLeaseMargin)
	margin := stop // only to type the sum below
	if d, err := time.ParseDuration(m.Value); err == nil {
		margin = d
	}
	return fmt.Sprintf("ACTIVE_STOP_TIMEOUT=%s (from %s) + %v guard answer slack + %v kill + %v (LEASE_MARGIN/8, for stalls too short to notice) = %v "+
		"must fit in LEASE_MARGIN=%s (from %s): "+
		"the duty could outlive the lease (the coordinator waits that long for its duty guard to confirm the stop before it kills the duty); "+
		"lower ACTIVE_STOP_TIMEOUT or raise LEASE_MARGIN/ZK_SESSION_TIMEOUT",
		s.Value, s.Source, GuardAnswerSlack, KillSlack, stallReserve(margin), stop+stopSlack+stallReserve(margin), m.Value, m.Source)
}

// leaseRule explains the timing inequality with the three values in force.
func (v *validation) leaseRule() string {
	show := func(key string) string {
		s := v.get(key)
		return fmt.Sprintf("%s=%s (from %s)", key, s.Value, s.Source)
	}
	return fmt.Sprintf("need 0 < ACTIVE_STOP_TIMEOUT < LEASE_MARGIN < ZK_SESSION_TIMEOUT/2, have %s, %s, %s: "+
		"the active lease ends LEASE_MARGIN before the ZooKeeper session could expire, "+
		"and the active command must stop within that margin, so that it has stopped before another server can take over",
		show(KeyActiveStopTimeout), show(KeyLeaseMargin), show(KeyZKSessionTimeout))
}

// Bounds of POLL_INTERVAL.
const (
	minPollInterval = time.Second
	maxPollInterval = 24 * time.Hour
)

// cycle checks the cluster-wide polling cycle's keys (POLL_INTERVAL,
// CYCLE_CMD). Both need an HA group (a ZooKeeper session); POLL_INTERVAL
// acts only in a group whose role includes primary. Either set where it
// cannot act is a warning, not an error: the node runs, without it.
func (v *validation) cycle(c *Config) {
	c.CycleCmd = v.command(KeyCycleCmd)
	if d, ok := v.duration(KeyPollInterval); ok {
		if d < minPollInterval || d > maxPollInterval {
			v.fail(KeyPollInterval, fmt.Sprintf("must be from %s to %s (empty: no polling cycle)", minPollInterval, maxPollInterval))
		}
		c.PollInterval = d
	}
	warn := func(key, msg string) {
		s := v.get(key)
		c.notices = append(c.notices, Notice{Kind: NoticeWarning, Key: key, Value: s.Value, Source: s.Source, Msg: msg})
	}
	switch {
	case !c.HA() && c.PollInterval > 0:
		warn(KeyPollInterval, "no polling cycle without an HA group: only the leader of a primary group advances it (set HA_ID and ZK)")
	case c.PollInterval > 0 && !c.PrimaryRole():
		warn(KeyPollInterval, fmt.Sprintf("ROLE=%s does not include primary: only the leader of a primary group advances the cycle, so this has no effect", c.Role))
	}
	if !c.HA() && c.CycleCmd != "" {
		warn(KeyCycleCmd, "never run: a node without an HA group does not follow the polling cycle (set HA_ID and ZK)")
	}
}
