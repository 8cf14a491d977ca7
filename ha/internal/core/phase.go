package core

import (
	"errors"
	"time"
)

// Phase is where a node stands in its HA group. Phases grow with the product
// (draining, paused); readers must treat an unknown phase as not active.
type Phase string

const (
	// PhaseStarting: the process runs but has not yet joined its group.
	PhaseStarting Phase = "starting"
	// PhaseStandby: a live member of the group that is not the leader.
	PhaseStandby Phase = "standby"
	// PhaseWaiting: the next leader, waiting until it can prove that no
	// earlier leader may still be acting (ha/doc.go), then claiming.
	PhaseWaiting Phase = "waiting"
	// PhaseFencing: the leader's claim is committed; it fences the previous
	// leader before it acts.
	PhaseFencing Phase = "fencing"
	// PhaseActive: the leader, with an unexpired lease. The only phase in
	// which duties run and the ping endpoints answer "ok".
	PhaseActive Phase = "active"
	// PhaseDisconnected: no healthy ZooKeeper session, or the lease lapsed.
	PhaseDisconnected Phase = "disconnected"
	// PhaseUnhealthy: the node's health check fails: it left the line (a
	// leader hands over first) and joins again, at the back, once healthy.
	PhaseUnhealthy Phase = "unhealthy"
	// PhaseStopped: the election ended (shutdown or refusal).
	PhaseStopped Phase = "stopped"
)

// MemberInfo is what a member publishes about itself in its znode. It is the
// JSON payload of every member node; fields may be added, never renamed.
type MemberInfo struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Region  string    `json:"region"`
	Host    string    `json:"host"`
	HTTP    string    `json:"http,omitempty"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	// Priority orders who should lead under PolicyPriority (lower is
	// preferred); NoFailover marks a member that never leads (policy.go).
	// Health is reserved; "" means healthy.
	Priority   int    `json:"priority,omitempty"`
	NoFailover bool   `json:"nofailover,omitempty"`
	Health     string `json:"health,omitempty"`
	// SeenTerm is the highest term this member had observed when it joined,
	// so a new leader can keep terms growing even if ZooKeeper lost its data.
	SeenTerm int64 `json:"seen_term,omitempty"`
}

// Member is one live member of a group as last listed by this node.
type Member struct {
	MemberInfo
	// Seq is the ZooKeeper sequence number of the member node; the lowest leads.
	Seq int64 `json:"seq"`
	// Leader is true for the member that holds the group's lease as far as
	// this node last read it (the leader record names it and it has not
	// released).
	Leader bool `json:"leader"`
}

// Ignored is a znode under members/ that is not a live hanode member: a
// foreign or hand-made node, or one whose data is not a member record. It
// takes no part in the election; status shows it so an operator can remove it.
type Ignored struct {
	Znode  string `json:"znode"`
	Reason string `json:"reason"`
}

// ErrGroupMismatch: the HA_ID is recorded with another role, region or
// session timeout (the lease every member waits out). A refusal: final for
// the process.
var ErrGroupMismatch = errors.New("ha: HA group recorded with another role, region or session timeout")
