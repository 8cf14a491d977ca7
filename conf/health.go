package conf

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Candidacy is who may lead and who should (issue 16, items 5 and 6): the
// election policy, this member's place in it, and its health check.
type Candidacy struct {
	// ElectionPolicy (ELECTION_POLICY) is "first-come" (the member that
	// joined first leads; no preemption) or "priority" (the lowest
	// Priority leads). Every member of a group must use the same.
	ElectionPolicy string
	// Priority (PRIORITY): lower is preferred; any whole number. Used only
	// with ELECTION_POLICY=priority.
	Priority int
	// Preempt (PREEMPT, priority only): the leader hands over gracefully to
	// a preferred member once it has been in the group for PreemptDelay
	// (PREEMPT_DELAY, >= 0).
	Preempt      bool
	PreemptDelay time.Duration
	// NoFailover (NOFAILOVER): the member follows and never leads.
	NoFailover bool
	// HealthCmd (HEALTH_CMD) runs every HealthInterval (> 0), each run
	// bounded by HealthTimeout (0 < HealthTimeout <= HealthInterval;
	// default min(HealthInterval, 10s)); HealthFailures failed runs in a
	// row take the member out of the line, HealthRecoveries passing ones
	// (each >= 1) bring it back. HealthInterval is also the quiet interval
	// counted after a lost duty when there is no HEALTH_CMD.
	HealthCmd                        string
	HealthInterval, HealthTimeout    time.Duration
	HealthFailures, HealthRecoveries int
}

// The election policies ELECTION_POLICY accepts (ha.PolicyFirstCome,
// ha.PolicyPriority; conf does not import ha).
const (
	PolicyFirstCome = "first-come"
	PolicyPriority  = "priority"
)

// maxHealthTimeout caps HEALTH_TIMEOUT's default.
const maxHealthTimeout = 10 * time.Second

// candidacyValue renders one of the Candidacy keys for Settings.
func (c *Config) candidacyValue(key string) string {
	switch key {
	case KeyElectionPolicy:
		return c.ElectionPolicy
	case KeyPriority:
		return strconv.Itoa(c.Priority)
	case KeyPreempt:
		return strconv.FormatBool(c.Preempt)
	case KeyPreemptDelay:
		return c.PreemptDelay.String()
	case KeyNoFailover:
		return strconv.FormatBool(c.NoFailover)
	case KeyHealthCmd:
		return c.HealthCmd
	case KeyHealthInterval:
		return c.HealthInterval.String()
	case KeyHealthTimeout:
		return c.HealthTimeout.String()
	case KeyHealthFailures:
		return strconv.Itoa(c.HealthFailures)
	case KeyHealthRecoveries:
		return strconv.Itoa(c.HealthRecoveries)
	}
	return ""
}

// candidacy checks the Candidacy keys, computing HEALTH_TIMEOUT when
// unset. Valid keys that do nothing where they are set draw a warning:
// PRIORITY or PREEMPT_DELAY without the policy or PREEMPT that reads it,
// NOFAILOVER or HEALTH_CMD without HA_ID.
func (v *validation) candidacy(c *Config) Candidacy {
	var k Candidacy
	k.ElectionPolicy = v.oneOf(KeyElectionPolicy, PolicyFirstCome, PolicyPriority)
	if n, err := strconv.Atoi(v.get(KeyPriority).Value); err != nil {
		v.fail(KeyPriority, "not a whole number (lower is preferred; negative numbers are allowed)")
	} else {
		k.Priority = n
	}
	k.Preempt = v.boolean(KeyPreempt)
	k.NoFailover = v.boolean(KeyNoFailover)
	if d, ok := v.duration(KeyPreemptDelay); ok {
		if d < 0 {
			v.fail(KeyPreemptDelay, "must not be negative (0: hand over as soon as a preferred member is seen)")
		}
		k.PreemptDelay = d
	}
	priority := k.ElectionPolicy == PolicyPriority
	policy := v.get(KeyElectionPolicy)
	if k.Preempt && !priority {
		v.fail(KeyPreempt, fmt.Sprintf("needs ELECTION_POLICY=priority, but ELECTION_POLICY=%s (from %s): "+
			"under first-come nobody is preferred, so there is nobody to hand over to", policy.Value, policy.Source))
	}
	if p := v.get(KeyPriority); !priority && p.Source != "default" && p.Source != "" {
		c.notices = append(c.notices, Notice{Kind: NoticeWarning, Key: KeyPriority, Value: p.Value, Source: p.Source,
			Msg: fmt.Sprintf("PRIORITY is used only with ELECTION_POLICY=priority, and ELECTION_POLICY=%s (from %s): "+
				"this member leads in the order it joined", policy.Value, policy.Source)})
	}
	if d := v.get(KeyPreemptDelay); !k.Preempt && d.Source != "default" && d.Source != "" {
		c.notices = append(c.notices, Notice{Kind: NoticeWarning, Key: KeyPreemptDelay, Value: d.Value, Source: d.Source,
			Msg: "PREEMPT_DELAY is used only with PREEMPT=true: without it a preferred member waits for the next handover"})
	}
	if nf := v.get(KeyNoFailover); k.NoFailover && !c.HA() {
		c.notices = append(c.notices, Notice{Kind: NoticeWarning, Key: KeyNoFailover, Value: nf.Value, Source: nf.Source,
			Msg: "NOFAILOVER does nothing without HA_ID: a standalone server is always active"})
	}

	k.HealthCmd = v.command(KeyHealthCmd)
	if hc := v.get(KeyHealthCmd); k.HealthCmd != "" && !c.HA() {
		c.notices = append(c.notices, Notice{Kind: NoticeWarning, Key: KeyHealthCmd, Value: hc.Value, Source: hc.Source,
			Msg: "HEALTH_CMD never runs without HA_ID: a standalone server has no line to leave and is always active"})
	}
	k.HealthFailures, _ = v.count(KeyHealthFailures, 1)
	k.HealthRecoveries, _ = v.count(KeyHealthRecoveries, 1)
	interval, intervalOK := v.duration(KeyHealthInterval)
	if intervalOK && interval <= 0 {
		v.fail(KeyHealthInterval, "must be positive")
		intervalOK = false
	}
	k.HealthInterval = interval
	timeout, timeoutOK := v.duration(KeyHealthTimeout)
	if _, set := v.vals[KeyHealthTimeout]; !set && intervalOK {
		timeout, timeoutOK = min(interval, maxHealthTimeout), true
		v.vals[KeyHealthTimeout] = Setting{Key: KeyHealthTimeout, Value: timeout.String(),
			Source: fmt.Sprintf("default (min(HEALTH_INTERVAL, %v))", maxHealthTimeout)}
	}
	switch {
	case !timeoutOK:
	case timeout <= 0:
		v.fail(KeyHealthTimeout, "must be positive")
	case intervalOK && timeout > interval:
		hi := v.get(KeyHealthInterval)
		v.fail(KeyHealthTimeout, fmt.Sprintf("must not exceed HEALTH_INTERVAL=%s (from %s): one check at a time, and a "+
			"member whose check fails leaves within HEALTH_FAILURES × HEALTH_INTERVAL only when a check ends within its interval",
			hi.Value, hi.Source))
	}
	k.HealthTimeout = timeout
	return k
}

// boolean parses a true/false key (also yes/no, on/off, 1/0, any case).
func (v *validation) boolean(key string) bool {
	s := v.get(key)
	switch strings.ToLower(s.Value) {
	case "true", "yes", "on", "1":
		return true
	case "false", "no", "off", "0", "":
		return false
	}
	v.fail(key, "must be true or false")
	return false
}
