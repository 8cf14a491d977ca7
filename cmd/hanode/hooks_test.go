package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/roles"
)

// TestFollowHooksTellsEachTransitionWithItsLeader: every transition of the
// feed reaches NOTIFY_CMD in order; on a move to active the leader is this
// node, otherwise the leader the node knows; the follower ends at
// "stopped", the last transition there is.
func TestFollowHooksTellsEachTransitionWithItsLeader(t *testing.T) {
	out := filepath.Join(t.TempDir(), "hooks")
	h := roles.NewHooks(roles.HookConfig{Command: `echo "$HANODE_FROM $HANODE_TO $HANODE_TERM $HANODE_LEADER" >> "$OUT"`,
		Timeout: 10 * time.Second, Env: []string{"PATH=/usr/bin:/bin", "OUT=" + out}})
	feed := make(chan ha.Transition, 8)
	for _, tr := range []ha.Transition{
		{From: ha.PhaseStarting, To: ha.PhaseStandby, Term: 3},
		{From: ha.PhaseStandby, To: ha.PhaseWaiting, Term: 3},
		{From: ha.PhaseWaiting, To: ha.PhaseActive, Term: 4},
		{From: ha.PhaseActive, To: ha.PhaseStopped, Term: 4},
		{From: ha.PhaseStopped, To: ha.PhaseStandby, Term: 5}, // never: nothing follows stopped
	} {
		feed <- tr
	}
	followed := make(chan struct{})
	go followHooks(feed, h, "me", func() string { return "other" }, followed)
	select {
	case <-followed:
	case <-time.After(5 * time.Second):
		t.Fatal("the follower did not end at stopped")
	}
	h.Close(10 * time.Second)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, "starting standby 3 other\nstandby waiting 3 other\nwaiting active 4 me\nactive stopped 4 other\n", string(b))
}
