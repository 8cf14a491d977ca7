package metrics

import "strings"

// The reason classes of hanode_transitions_total: a bounded label in place
// of the core's free-text reasons, which carry terms, durations, session
// ids and znode names.
const (
	ReasonRuleA          = "rule_a"          // claimed by rule A (own lease lapsed)
	ReasonRuleB          = "rule_b"          // claimed by rule B (leader released)
	ReasonRuleC          = "rule_c"          // claimed by rule C (no member below)
	ReasonRuleD          = "rule_d"          // claimed by rule D (silent leader)
	ReasonPosition       = "position"        // the member's place in line changed
	ReasonJoined         = "joined"          // the member node was created
	ReasonStarting       = "starting"        // connecting to ZooKeeper at start
	ReasonLeaseExpired   = "lease_expired"   // no acknowledged extension in time
	ReasonClockStall     = "clock_stall"     // the monotonic clock stalled: the lease is treated as lost
	ReasonShutdown       = "shutdown"        // the process is stopping
	ReasonResigned       = "resigned"        // handed over on request
	ReasonDutyLost       = "duty_lost"       // the duty could not be kept running: handed over
	ReasonFenceFailed    = "fence_failed"    // FENCE_CMD failed too often: stepped aside
	ReasonSessionLost    = "session_lost"    // the ZooKeeper session is gone or was replaced
	ReasonSessionBack    = "session_back"    // the ZooKeeper session is back
	ReasonMembershipLost = "membership_lost" // the member node is gone, deleted or written by another client
	ReasonSuperseded     = "superseded"      // a higher term or a member below ended this leadership
	ReasonOther          = "other"           // a reason this version does not know
)

// reasonRules map the core's reasons (ha/internal/core) to their class,
// first match wins: a phrase that names a claim rule in passing ("lowest
// member: rule B ...") is a position, not a claim.
var reasonRules = []struct {
	prefix   bool // match at the start, else anywhere
	phrase   string
	class    string
	andClaim bool // the reason must also speak of a claim
}{
	{prefix: true, phrase: "lowest member", class: ReasonPosition},
	{prefix: true, phrase: "standby", class: ReasonPosition},
	{phrase: "rule A (", class: ReasonRuleA, andClaim: true},
	{phrase: "rule B (", class: ReasonRuleB, andClaim: true},
	{phrase: "rule C (", class: ReasonRuleC, andClaim: true},
	{phrase: "rule D (", class: ReasonRuleD, andClaim: true},
	{phrase: "lease expired", class: ReasonLeaseExpired},
	{phrase: "clock stalled", class: ReasonClockStall},
	{prefix: true, phrase: "shut", class: ReasonShutdown},
	{prefix: true, phrase: "resigned", class: ReasonResigned},
	{prefix: true, phrase: "rejoining after resigning", class: ReasonResigned},
	{prefix: true, phrase: "duty lost", class: ReasonDutyLost},
	{prefix: true, phrase: "rejoining after handing over", class: ReasonDutyLost},
	{prefix: true, phrase: "fencing failed", class: ReasonFenceFailed},
	{prefix: true, phrase: "rejoining after fencing failed", class: ReasonFenceFailed},
	{prefix: true, phrase: "ZooKeeper session back", class: ReasonSessionBack},
	{prefix: true, phrase: "no ZooKeeper session", class: ReasonSessionLost},
	{prefix: true, phrase: "ZooKeeper session ", class: ReasonSessionLost},
	{prefix: true, phrase: "leader record overwritten", class: ReasonSuperseded},
	{prefix: true, phrase: "a member appeared below", class: ReasonSuperseded},
	{phrase: "member node", class: ReasonMembershipLost},
	{phrase: "was deleted", class: ReasonMembershipLost},
	{prefix: true, phrase: "joined as seq", class: ReasonJoined},
	{prefix: true, phrase: "connecting to ZooKeeper", class: ReasonStarting},
}

// ReasonClass reduces a transition's reason (ha.Transition.Reason) to one
// of the Reason* classes; ReasonOther when it knows none.
func ReasonClass(reason string) string {
	for _, r := range reasonRules {
		var hit bool
		if r.prefix {
			hit = strings.HasPrefix(reason, r.phrase)
		} else {
			hit = strings.Contains(reason, r.phrase)
		}
		if hit && (!r.andClaim || strings.Contains(reason, "claim")) {
			return r.class
		}
	}
	return ReasonOther
}
