package ha

import "time"

// HealthState is a node's health check as its runner reports it (roles.Health;
// Election.SetHealth hears only its verdict's flips).
type HealthState struct {
	// State is "healthy", "unhealthy" or "unknown" (no check has ended yet;
	// the node counts as healthy meanwhile).
	State string `json:"state"`
	// Reason is why the node is unhealthy ("" otherwise).
	Reason string `json:"reason,omitempty"`
	// Failures counts the failed checks in a row, Successes the passing
	// ones since the last failure.
	Failures  int `json:"failures"`
	Successes int `json:"successes"`
	// LastCheck is when the last check ended (zero: none yet), LastResult
	// how it ended.
	LastCheck  time.Time `json:"last_check,omitzero"`
	LastResult string    `json:"last_result,omitempty"`
	// Command is false when only lost duties are counted (no HEALTH_CMD).
	Command bool `json:"command"`
}

// CandidacyState is a node's place in its group's election policy, as
// configured (ElectionConfig).
type CandidacyState struct {
	Policy       string        `json:"policy"`
	Priority     int           `json:"priority"`
	Preempt      bool          `json:"preempt"`
	PreemptDelay time.Duration `json:"preempt_delay_ns"`
	// NoFailover: the node follows and never leads.
	NoFailover bool `json:"nofailover"`
}
