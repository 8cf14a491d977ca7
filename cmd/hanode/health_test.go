package main

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/hanode/hanode/ha"
)

func mem(name string, nofailover bool) ha.Member {
	return ha.Member{MemberInfo: ha.MemberInfo{Name: name, Role: "primary", NoFailover: nofailover}}
}

// TestLeaderNoteSaysWhyThereIsNoLeader: a node that names no leader says
// whether anyone may lead; out of the line, from its read of the group.
func TestLeaderNoteSaysWhyThereIsNoLeader(t *testing.T) {
	read := &groupLook{gs: ha.GroupStatus{}}
	for _, tc := range []struct {
		name string
		st   ha.State
		look *groupLook
		want string
	}{
		{"a leader", ha.State{Phase: ha.PhaseStandby, Leader: "a"}, nil, ""},
		{"active", ha.State{Phase: ha.PhaseActive}, nil, ""},
		{"disconnected knows nothing", ha.State{Phase: ha.PhaseDisconnected}, nil, ""},
		{"a member may lead", ha.State{Phase: ha.PhaseWaiting, Members: []ha.Member{mem("a", false)}}, nil,
			"no leader at the moment: a member is taking over"},
		{"only NOFAILOVER members left", ha.State{Phase: ha.PhaseWaiting, Members: []ha.Member{mem("n", true)}}, nil,
			"no leader: every member that may lead is unhealthy or gone (1 NOFAILOVER member never leads)"},
		{"unhealthy, the group empty", ha.State{Phase: ha.PhaseUnhealthy}, read,
			"no leader: every member unhealthy or gone"},
		{"unhealthy, not read yet", ha.State{Phase: ha.PhaseUnhealthy}, nil,
			"unknown: this node is out of the line and has not read the group yet"},
		{"unhealthy, read failed", ha.State{Phase: ha.PhaseUnhealthy}, &groupLook{err: errors.New("ha: no ZooKeeper session")},
			"unknown: this node is out of the line and could not read the group: ha: no ZooKeeper session"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, leaderNote(tc.st, tc.look))
		})
	}
}

// TestWithHealthShowsTheGroupReadOutOfTheLine: an unhealthy node shows the
// leader and members of its latest fresh read, never what its election
// last saw; a stale read shows nothing known. A NOFAILOVER standby says it
// never leads.
func TestWithHealthShowsTheGroupReadOutOfTheLine(t *testing.T) {
	stale := ha.State{Phase: ha.PhaseUnhealthy, Leader: "me", Term: 3, Members: []ha.Member{mem("me", false)}}
	looker := &groupLooker{}
	w := withHealth{src: ha.StateFunc(func() ha.State { return stale }), candidacy: ha.CandidacyState{Policy: "first-come"},
		look: looker}

	st := w.State()
	assert.Empty(t, st.Leader, "no read yet: the election's own view is stale")
	assert.Empty(t, st.Members)
	assert.Equal(t, "unknown: this node is out of the line and has not read the group yet", st.LeaderNote)
	assert.Equal(t, &ha.CandidacyState{Policy: "first-come"}, st.Candidacy)
	assert.Nil(t, st.Health)

	looker.last.Store(&groupLook{gs: ha.GroupStatus{Leader: "b", Term: 9, Members: []ha.Member{mem("b", false)}}, at: time.Now()})
	st = w.State()
	assert.Equal(t, "b", st.Leader)
	assert.Equal(t, int64(9), st.Term)
	assert.Equal(t, []ha.Member{mem("b", false)}, st.Members)
	assert.Empty(t, st.LeaderNote)

	looker.last.Store(&groupLook{gs: ha.GroupStatus{Leader: "b"}, at: time.Now().Add(-groupLookFresh - time.Second)})
	st = w.State()
	assert.Empty(t, st.Leader, "a stale read is not shown")
	assert.Equal(t, "unknown: this node is out of the line and has not read the group yet", st.LeaderNote)

	nf := withHealth{src: ha.StateFunc(func() ha.State {
		return ha.State{Phase: ha.PhaseWaiting, Reason: "lowest member", Members: []ha.Member{mem("n", true)}}
	}), candidacy: ha.CandidacyState{NoFailover: true}}
	st = nf.State()
	assert.Equal(t, "lowest member (NOFAILOVER: this node never leads)", st.Reason)
	assert.Contains(t, st.LeaderNote, "every member that may lead is unhealthy or gone")

	gone := withHealth{src: ha.StateFunc(func() ha.State {
		return ha.State{Phase: ha.PhaseWaiting, Leader: "b", Members: []ha.Member{mem("n", true)}}
	}), candidacy: ha.CandidacyState{NoFailover: true}}
	st = gone.State()
	assert.Empty(t, st.Leader, "the record names a leader that is gone, and nobody left may take over")
	assert.Equal(t, "no leader: every member that may lead is unhealthy or gone (1 NOFAILOVER member never leads)", st.LeaderNote)
	taking := withHealth{src: ha.StateFunc(func() ha.State {
		return ha.State{Phase: ha.PhaseStandby, Leader: "b", Members: []ha.Member{mem("a", false)}}
	})}
	assert.Equal(t, "b", taking.State().Leader, "a member may take over: the election's view stands")
}
