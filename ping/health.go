package ping

import (
	"time"

	"github.com/hanode/hanode/ha"
)

// The ping routes say nothing new about health: an unhealthy node is not
// active, so it answers standby like any other (the words balancers match
// stay "ok" and "standby"), and /v2/status says why. No extra header either:
// the fast path writes prebuilt answers, which the echo handlers must match
// byte for byte, and a balancer needs nothing but the status code and body.

// StatusHealth describes the node's health check (HEALTH_CMD, and lost
// duties).
type StatusHealth struct {
	// State is healthy, unhealthy (out of the line) or unknown (no check
	// has ended yet; the node counts as healthy meanwhile).
	State  string `json:"state"`
	Reason string `json:"reason"`
	// Failures counts the failed checks in a row, Successes the passing
	// ones since the last failure.
	Failures  int `json:"failures"`
	Successes int `json:"successes"`
	// LastCheck is when the last check ended, RFC 3339 with nanoseconds in
	// UTC ("" when none has); LastResult how it ended.
	LastCheck  string `json:"last_check"`
	LastResult string `json:"last_result"`
	// Command is false when only lost duties are counted (no HEALTH_CMD).
	Command bool `json:"command"`
}

// StatusCandidacy is the node's place in its group's election policy.
type StatusCandidacy struct {
	// Policy is first-come or priority.
	Policy   string `json:"policy"`
	Priority int    `json:"priority"`
	Preempt  bool   `json:"preempt"`
	// PreemptDelay is a Go duration string.
	PreemptDelay string `json:"preempt_delay"`
	// NoFailover: the node follows and never leads.
	NoFailover bool `json:"nofailover"`
}

func statusHealth(h *ha.HealthState) *StatusHealth {
	if h == nil {
		return nil
	}
	s := &StatusHealth{State: h.State, Reason: h.Reason, Failures: h.Failures, Successes: h.Successes,
		LastResult: h.LastResult, Command: h.Command}
	if !h.LastCheck.IsZero() {
		s.LastCheck = h.LastCheck.UTC().Format(time.RFC3339Nano)
	}
	return s
}

func statusCandidacy(c *ha.CandidacyState) *StatusCandidacy {
	if c == nil {
		return nil
	}
	return &StatusCandidacy{Policy: c.Policy, Priority: c.Priority, Preempt: c.Preempt,
		PreemptDelay: c.PreemptDelay.String(), NoFailover: c.NoFailover}
}
