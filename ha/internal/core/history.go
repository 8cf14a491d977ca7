package core

import "strings"

// The causes of a change of leader, as the group's history records them
// (ha/history.go): one word an operator can grep for, the same in the
// history, the CLI and the docs.
const (
	CauseFirst      = "first leader"   // no record named anyone before
	CauseGraceful   = "graceful"       // the leader released on shutdown
	CauseSwitchover = "switchover"     // the leader resigned when asked
	CauseHealth     = "health"         // the leader's health check failed
	CausePreemption = "preemption"     // a preferred member joined (PREEMPT)
	CauseDutyLost   = "duty lost"      // the leader's duty could not be kept running
	CauseCrash      = "crash takeover" // the leader was silent or gone: rule C or D
	CauseRenewed    = "lease renewed"  // the same leader re-claimed its lapsed lease (rule A)
	CausePause      = "pause"          // an operator paused the group
	CauseResume     = "resume"         // an operator resumed it
)

// historyCause is why a claim by rule over the record prev could be made.
func historyCause(rule claimRule, prev LeaderRecord) string {
	switch {
	case rule == ruleA:
		return CauseRenewed
	case prev.Name == "":
		return CauseFirst
	case rule != ruleB || prev.State != RecReleased:
		return CauseCrash
	}
	r := prev.Reason
	switch {
	case strings.HasPrefix(r, "resigned: preempted"):
		return CausePreemption
	case strings.HasPrefix(r, "resigned"):
		return CauseSwitchover
	case strings.HasPrefix(r, "health check failing"):
		return CauseHealth
	case strings.HasPrefix(r, "duty lost"):
		return CauseDutyLost
	case strings.HasPrefix(r, "exited"):
		return CauseCrash // released by the dead holder's guard (guard.go)
	}
	return CauseGraceful
}
