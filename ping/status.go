package ping

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hanode/hanode/ha"
)

// Status is the JSON body of GET /v2/status. Every key is always present, so
// scripts can rely on the shape; a standalone node (no HA group) has empty
// members, an empty ha_id and zk.connected false.
type Status struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	Region  string `json:"region"`
	HAID    string `json:"ha_id"`
	NetID   string `json:"net_id"`
	Version string `json:"version"`
	// State is the ha phase verbatim: active, standby, starting,
	// disconnected, or a phase added later (only "active" pings "ok").
	State  string `json:"state"`
	Reason string `json:"reason"`
	// Cause says why a node that is not active has no healthy session:
	// "disconnected", "expired" or "no quorum" ("" when healthy).
	Cause string `json:"cause"`
	// Leader is the name of the group's leader, "" when unknown.
	Leader string `json:"leader"`
	Term   int64  `json:"term"`
	// Since is when the node entered State, RFC 3339 with nanoseconds in
	// UTC; "" when unknown.
	Since string `json:"since"`
	// LeaseLeft is a Go duration string ("2.5s", "0s").
	LeaseLeft string         `json:"lease_left"`
	Members   []StatusMember `json:"members"`
	// Ignored lists znodes under the group's members/ that take no part in
	// the election (foreign, hand-made or damaged), and under its state/
	// that hold no state record (their reason starts "state: "), each with
	// why; empty when there are none.
	Ignored []StatusIgnored `json:"ignored"`
	// Problem is what an operator must repair for the group to lead again
	// (a leader record whose term cannot grow), naming the znode and the
	// fix; "" when there is none.
	Problem string   `json:"problem"`
	ZK      StatusZK `json:"zk"`
	// Duty is the node's ACTIVE_CMD as it runs now; null when the node
	// has none. An active node whose duty is not serving answers standby.
	Duty *StatusDuty `json:"duty"`
	// Standby is the node's STANDBY_CMD; null when it has none.
	Standby *StatusStandby `json:"standby"`
	// Hook is the node's latest NOTIFY_CMD run; null when it has none.
	Hook *StatusHook `json:"hook"`
	// Cycle is the highest cluster-wide polling cycle this node has seen
	// (n 0 before the first); null when the node follows none (standalone).
	Cycle *StatusCycle `json:"cycle"`
	// Jobs are the node's scheduled jobs (JOB_<NAME>_*; jobs.go), each
	// with its last run as recorded in ZooKeeper; empty when it has none.
	Jobs []StatusJob `json:"jobs"`
	// Health is the node's health check (health.go); null when it has
	// none. Candidacy is its place in the election policy; null outside a
	// group. LeaderNote says why leader is "" ("no leader: every member
	// unhealthy or gone"); "" when there is a leader or nothing to say.
	Health     *StatusHealth    `json:"health"`
	Candidacy  *StatusCandidacy `json:"candidacy"`
	LeaderNote string           `json:"leader_note"`
	// Paused is the group's maintenance mode (hanode pause): who paused it,
	// when (RFC 3339 UTC) and why; null when the group is not paused. While
	// paused no member takes over from another.
	Paused *StatusPaused `json:"paused"`
}

// StatusStandby describes the node's STANDBY_CMD.
type StatusStandby struct {
	// State is running, restarting, stopped or failed.
	State    string `json:"state"`
	Restarts int    `json:"restarts"`
	LastExit string `json:"last_exit"`
	// LastExitAt is RFC 3339 with nanoseconds in UTC; "" when it never
	// ended on its own.
	LastExitAt string `json:"last_exit_at"`
	// Held is true once it is confirmed stopped for the current
	// leadership: an active node answers ok only then.
	Held bool `json:"held"`
	// Problem is a stop that could not be confirmed ("" if none).
	Problem string `json:"problem"`
}

// StatusHook describes the latest NOTIFY_CMD run.
type StatusHook struct {
	From string `json:"from"`
	To   string `json:"to"`
	Term int64  `json:"term"`
	// Exit is how it ended ("exit status 0", "timed out after 30s"); ""
	// when none ran yet.
	Exit string `json:"exit"`
	OK   bool   `json:"ok"`
	// At is when it started, RFC 3339 with nanoseconds in UTC ("" when
	// none ran yet); Took is a Go duration string.
	At      string `json:"at"`
	Took    string `json:"took"`
	Queued  int    `json:"queued"`
	Dropped int64  `json:"dropped"`
}

// StatusPaused is a paused group's pause.
type StatusPaused struct {
	By     string `json:"by"`
	At     string `json:"at"`
	Reason string `json:"reason"`
}

// StatusDuty describes the node's duty.
type StatusDuty struct {
	// State is running, starting, restarting, stopped or failed.
	State    string `json:"state"`
	Restarts int    `json:"restarts"`
	LastExit string `json:"last_exit"`
	// LastExitAt is RFC 3339 with nanoseconds in UTC; "" when it never
	// ended on its own.
	LastExitAt string `json:"last_exit_at"`
	// Containment is cgroup, subreaper or none.
	Containment string `json:"containment"`
	// Serving is false while the node must not answer ok for its duty.
	Serving bool `json:"serving"`
}

// StatusIgnored is one znode the election ignores.
type StatusIgnored struct {
	Znode  string `json:"znode"`
	Reason string `json:"reason"`
}

// StatusMember is one live member of the group, as this node last listed it,
// in the order ha lists them.
type StatusMember struct {
	Name string `json:"name"`
	Host string `json:"host"`
	HTTP string `json:"http"`
	// State is "active" for the member holding the lowest sequence, else
	// "standby". It is this node's view of the group, not the member's own
	// answer.
	State string `json:"state"`
	Seq   int64  `json:"seq"`
}

// StatusZK describes this node's ZooKeeper session.
type StatusZK struct {
	Connected bool   `json:"connected"`
	SessionID string `json:"session_id"`
	State     string `json:"state"`
}

// NewStatus builds the status document of a node from one state snapshot.
func NewStatus(id Identity, st ha.State) Status {
	s := Status{
		Name:      id.Name,
		Role:      id.Role,
		Region:    id.Region,
		HAID:      id.HAID,
		NetID:     id.NetID,
		Version:   id.Version,
		State:     string(st.Phase),
		Reason:    st.Reason,
		Cause:     st.Cause,
		Leader:    st.Leader,
		Term:      st.Term,
		LeaseLeft: st.LeaseLeft.String(),
		Members:   make([]StatusMember, 0, len(st.Members)),
		Ignored:   make([]StatusIgnored, 0, len(st.Ignored)),
		Problem:   st.Problem,
		ZK: StatusZK{
			Connected: st.ZK.Connected,
			SessionID: st.ZK.SessionID,
			State:     st.ZK.State,
		},
	}
	if !st.Since.IsZero() {
		s.Since = st.Since.UTC().Format(time.RFC3339Nano)
	}
	if d := st.Duty; d != nil {
		s.Duty = &StatusDuty{State: d.State, Restarts: d.Restarts, LastExit: d.LastExit,
			Containment: d.Containment, Serving: d.Serving}
		if !d.LastExitAt.IsZero() {
			s.Duty.LastExitAt = d.LastExitAt.UTC().Format(time.RFC3339Nano)
		}
	}
	if sb := st.Standby; sb != nil {
		s.Standby = &StatusStandby{State: sb.State, Restarts: sb.Restarts, LastExit: sb.LastExit, Held: sb.Held, Problem: sb.Problem}
		if !sb.LastExitAt.IsZero() {
			s.Standby.LastExitAt = sb.LastExitAt.UTC().Format(time.RFC3339Nano)
		}
	}
	if h := st.Hook; h != nil {
		s.Hook = &StatusHook{From: h.From, To: h.To, Term: h.Term, Exit: h.Exit, OK: h.OK, Took: h.Took.String(),
			Queued: h.Queued, Dropped: h.Dropped}
		if !h.At.IsZero() {
			s.Hook.At = h.At.UTC().Format(time.RFC3339Nano)
		}
	}
	if st.Cycle != nil {
		s.Cycle = NewStatusCycle(*st.Cycle)
	}
	s.Health, s.Candidacy, s.LeaderNote = statusHealth(st.Health), statusCandidacy(st.Candidacy), st.LeaderNote
	if p := st.Paused; p != nil {
		s.Paused = &StatusPaused{By: p.By, At: p.At.UTC().Format(time.RFC3339Nano), Reason: p.Reason}
	}
	for _, ig := range st.Ignored {
		s.Ignored = append(s.Ignored, StatusIgnored{Znode: ig.Znode, Reason: ig.Reason})
	}
	for _, m := range st.Members {
		state := string(ha.PhaseStandby)
		if m.Leader {
			state = string(ha.PhaseActive)
		}
		s.Members = append(s.Members, StatusMember{
			Name:  m.Name,
			Host:  m.Host,
			HTTP:  m.HTTP,
			State: state,
			Seq:   m.Seq,
		})
	}
	return s
}

// status answers the node's status as indented JSON (it is read by people
// more than by programs, and asked rarely), with a trailing newline.
func (h *handler) status(c echo.Context) error {
	st := NewStatus(h.id, h.src.State())
	st.Jobs = []StatusJob{}
	if h.jobs != nil {
		st.Jobs = append(st.Jobs, h.jobs.Jobs()...)
	}
	st.Ignored = append(st.Ignored, h.stateIgnored()...) // the state area's (state.go)
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err // unreachable: Status holds only strings, numbers and bools
	}
	return write(c, http.StatusOK, echo.MIMEApplicationJSON, append(b, '\n'))
}
