package ha

import (
	"time"

	"github.com/hanode/hanode/ha/internal/core"
)

// The types a member publishes and reads are the decision core's own
// (ha/internal/core); these aliases are how a library user names them.
type (
	// Phase is where a node stands in its HA group. Phases grow with the
	// product (draining, paused); readers must treat an unknown phase as
	// not active.
	Phase = core.Phase
	// MemberInfo is what a member publishes about itself in its znode (the
	// JSON payload of every member node).
	MemberInfo = core.MemberInfo
	// Member is one live member of a group as last listed by this node.
	Member = core.Member
	// Ignored is a znode under members/ that is not a live hanode member;
	// status shows it so an operator can remove it.
	Ignored = core.Ignored
	// FenceRequest is what a new leader asks Callbacks.Fence to make safe.
	FenceRequest = core.FenceRequest
	// LeaderInfo names a leader that may have acted: its server name,
	// host and term.
	LeaderInfo = core.LeaderInfo
	// Transition is one change of a node's phase (Election.Subscribe).
	Transition = core.Transition
	// Op is one ZooKeeper request of a fenced write (Election.Fenced).
	Op = core.Op
	// OpKind is an Op's request type.
	OpKind = core.OpKind
)

// The request types a fenced write may use.
const (
	OpCreate = core.OpCreate
	OpDelete = core.OpDelete
	OpSet    = core.OpSet
	OpCheck  = core.OpCheck
)

// Limits of the lease arithmetic (ha/doc.go).
const (
	// MinLease is the shortest lease (session timeout) hanode accepts.
	MinLease = core.MinLease
	// MaxTerm is the largest term hanode issues: terms stay exact for
	// JSON consumers.
	MaxTerm = core.MaxTerm
	// DriftAllowance is the clock-rate difference between two members
	// that the lease arithmetic tolerates.
	DriftAllowance = core.DriftAllowance
)

// The election policies (ElectionConfig.Policy).
const (
	// PolicyFirstCome: the member that joined first leads; no preemption.
	PolicyFirstCome = core.PolicyFirstCome
	// PolicyPriority: the member with the lowest Priority that may lead
	// should lead (ElectionConfig.Priority, Preempt).
	PolicyPriority = core.PolicyPriority
)

// The phases (see core.Phase... for each one's meaning).
const (
	PhaseStarting     = core.PhaseStarting
	PhaseStandby      = core.PhaseStandby
	PhaseWaiting      = core.PhaseWaiting
	PhaseFencing      = core.PhaseFencing
	PhaseActive       = core.PhaseActive
	PhaseDisconnected = core.PhaseDisconnected
	PhaseUnhealthy    = core.PhaseUnhealthy
	PhaseStopped      = core.PhaseStopped
)

// ZKStatus describes this node's ZooKeeper session.
type ZKStatus struct {
	Connected bool   `json:"connected"`
	SessionID string `json:"session_id,omitempty"`
	// State is go-zookeeper's connection state, for operators.
	State string `json:"state,omitempty"`
}

// State is an immutable snapshot of a node's position in its group, already
// evaluated against the clock at the moment it was read: a node whose lease
// ran out reports PhaseDisconnected even if no event has arrived yet.
type State struct {
	Phase Phase `json:"state"`
	// Reason says why the node is in this phase ("lowest member",
	// "lease expired", "session expired", ...).
	Reason string `json:"reason,omitempty"`
	// Cause classifies an unhealthy session while not active:
	// "disconnected" (ZooKeeper unreachable or silent), "expired" (the
	// session was lost), "no quorum" (servers answer but do not serve).
	Cause string `json:"cause,omitempty"`
	// Term is the fencing token of the current leadership in the group, as
	// far as this node knows (0: none observed yet).
	Term int64 `json:"term"`
	// Leader is the name of the group's leader, "" when unknown.
	Leader string `json:"leader"`
	// Since is when this node entered Phase.
	Since time.Time `json:"since"`
	// LeaseLeft is how long this node's lease has left (0 when it holds none).
	LeaseLeft time.Duration `json:"lease_left_ns"`
	Members   []Member      `json:"members"`
	// Ignored lists znodes under members/ that take no part (see Ignored).
	Ignored []Ignored `json:"ignored,omitempty"`
	// Problem is the latest unresolved problem an operator should act on
	// (damaged data hanode will not repair, a refusal to lead), "" if none.
	Problem string   `json:"problem,omitempty"`
	ZK      ZKStatus `json:"zk"`
	// Paused is the group's maintenance mode as this node last read it
	// (Election.Pause); nil: not paused.
	Paused *PauseInfo `json:"paused,omitempty"`
	// Duty is the node's duty as whoever runs it reports it; nil when the
	// node has none (no ACTIVE_CMD). The election does not fill it.
	Duty *DutyState `json:"duty,omitempty"`
	// Standby is STANDBY_CMD as its runner reports it; nil when the node
	// has none. The election does not fill it.
	Standby *StandbyState `json:"standby,omitempty"`
	// Hook is the latest NOTIFY_CMD run; nil when the node has none.
	Hook *HookState `json:"hook,omitempty"`
	// Cycle is the highest cluster-wide polling cycle the node has seen
	// (N 0: none yet); nil when it follows none. The election does not
	// fill it (Cycle.Current does).
	Cycle *CycleInfo `json:"cycle,omitempty"`
	// Health is the node's health check and Candidacy its place in the
	// election policy (health.go); nil when the node has none. The
	// election fills neither. LeaderNote says why Leader is "" (see
	// health.go), "" when there is a leader or nothing to say.
	Health     *HealthState    `json:"health,omitempty"`
	Candidacy  *CandidacyState `json:"candidacy,omitempty"`
	LeaderNote string          `json:"leader_note,omitempty"`
}

// StandbyState is what a node's STANDBY_CMD runner reports (see roles).
type StandbyState struct {
	// State is running, restarting, stopped or failed.
	State      string    `json:"state"`
	Restarts   int       `json:"restarts"`
	LastExit   string    `json:"last_exit,omitempty"`
	LastExitAt time.Time `json:"last_exit_at,omitzero"`
	// Held is true once STANDBY_CMD is confirmed stopped for the current
	// leadership: an active node answers ok only then.
	Held bool `json:"held"`
	// Problem is a stop that could not be confirmed ("" if none).
	Problem string `json:"problem,omitempty"`
}

// HookState is the latest NOTIFY_CMD run (see roles).
type HookState struct {
	From string `json:"from"`
	To   string `json:"to"`
	Term int64  `json:"term"`
	// Exit is "exit status 0", "timed out after 30s", ...
	Exit string `json:"exit"`
	OK   bool   `json:"ok"`
	// At is when it started (zero: none ran yet); Took how long it ran.
	At   time.Time     `json:"at,omitzero"`
	Took time.Duration `json:"took_ns"`
	// Queued counts the transitions waiting for their hook; Dropped those
	// dropped so far because the queue was full.
	Queued  int   `json:"queued"`
	Dropped int64 `json:"dropped"`
}

// DutyState is what a node's duty runner reports (see roles).
type DutyState struct {
	// State is running, starting, restarting, stopped or failed.
	State      string    `json:"state"`
	Restarts   int       `json:"restarts"`
	LastExit   string    `json:"last_exit,omitempty"`
	LastExitAt time.Time `json:"last_exit_at,omitzero"`
	// Containment is how its processes are kept together: cgroup,
	// subreaper or none.
	Containment string `json:"containment"`
	// Serving is false when the duty has not been running for longer
	// than its restart grace: the node is not active for balancers then.
	Serving bool `json:"serving"`
}

// Active reports whether the node may act as leader right now: it holds
// the lease and its duty, if it has one, runs (or is within its restart
// grace). A leader whose duty is down answers standby: no "ok" without a
// duty. Nor while its STANDBY_CMD may still run.
func (s State) Active() bool {
	return s.Phase == PhaseActive && (s.Duty == nil || s.Duty.Serving) && (s.Standby == nil || s.Standby.Held)
}

// StateReader is the one thing HTTP handlers and duties need from an elector.
type StateReader interface {
	// State returns the node's state evaluated at the moment of the call.
	// It never blocks on ZooKeeper.
	State() State
}

// StateFunc adapts a function to StateReader.
type StateFunc func() State

// State calls f.
func (f StateFunc) State() State { return f() }

// Standalone returns a StateReader for a node with no HA group: always active.
func Standalone(since time.Time, reason string) StateReader {
	s := State{Phase: PhaseActive, Reason: reason, Since: since}
	return StateFunc(func() State { return s })
}
