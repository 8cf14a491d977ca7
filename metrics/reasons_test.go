package metrics

import "testing"

// TestReasonClassBoundsTheCoresReasons: every reason the core gives a
// transition (ha/internal/core) falls in a small fixed class; a phrase
// that names a claim rule without a claim is a position in line.
func TestReasonClassBoundsTheCoresReasons(t *testing.T) {
	for _, c := range []struct{ reason, want string }{
		{"claiming term 1764504000000: rule D (silent leader)", ReasonRuleD},
		{"term 1764504000000 claimed (rule C (no member below))", ReasonRuleC},
		{"term 5 claimed (rule B (leader released)); fencing the previous leader", ReasonRuleB},
		{"leading in term 5, claimed by rule A (own lease lapsed)", ReasonRuleA},
		{"leading in term 5, claimed by rule D (silent leader)", ReasonRuleD},
		{"lowest member: rule B (leader released)", ReasonPosition},
		{"lowest member; an earlier leader may still hold its lease: claiming in 4.081s", ReasonPosition},
		{"lowest member; refusing to lead: the leader record's term cannot grow", ReasonPosition},
		{"lowest member", ReasonPosition},
		{"standby behind a (seq 3)", ReasonPosition},
		{"standby", ReasonPosition},
		{"lease expired: no acknowledged extension for 2.8s", ReasonLeaseExpired},
		{"no ZooKeeper session; lease expired: no acknowledged extension for 2.8s", ReasonLeaseExpired},
		{"monotonic clock stalled by 2.5s (host paused?): lease treated as lost", ReasonClockStall},
		{"shutting down", ReasonShutdown},
		{"shut down", ReasonShutdown},
		{"resigned: asked to", ReasonResigned},
		{"rejoining after resigning", ReasonResigned},
		{"duty lost: the duty guard died and the lease has run out", ReasonDutyLost},
		{"rejoining after handing over", ReasonDutyLost},
		{"fencing failed 3 times in term 5 (last: exit status 1); stepping aside so another member may fence and lead", ReasonFenceFailed},
		{"rejoining after fencing failed", ReasonFenceFailed},
		{"no ZooKeeper session", ReasonSessionLost},
		{"ZooKeeper session 0x1000001 ended; now 0x1000002", ReasonSessionLost},
		{"ZooKeeper session back", ReasonSessionBack},
		{"member node _c_0f-m-0000000001 is gone", ReasonMembershipLost},
		{"member node _c_0f-m-0000000001 deleted (by another client, or its session ended)", ReasonMembershipLost},
		{"member node _c_0f-m-0000000001 is owned by session 0x1000003, not ours", ReasonMembershipLost},
		{"member node written by another client", ReasonMembershipLost},
		{"rejoining: member node written by another client", ReasonMembershipLost},
		{"/hanode/groups/g/members was deleted", ReasonMembershipLost},
		{"leader record overwritten with a higher term", ReasonSuperseded},
		{"leader record overwritten with a term that cannot grow", ReasonSuperseded},
		{"a member appeared below this leader", ReasonSuperseded},
		{"joined as seq 3", ReasonJoined},
		{"connecting to ZooKeeper", ReasonStarting},
		{"a reason from a later version", ReasonOther},
		{"", ReasonOther},
	} {
		if got := ReasonClass(c.reason); got != c.want {
			t.Errorf("ReasonClass(%q) = %q, want %q", c.reason, got, c.want)
		}
	}
}
