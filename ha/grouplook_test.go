package ha

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// TestReadGroupTellsAnUnhealthyNodeWhoLeads: a leader made unhealthy
// hands over and leaves the line; its election no longer follows the
// group, but ReadGroup, over its session, names the new leader and lists
// only the members in the line. With every member unhealthy the group has
// no leader and no member, and ReadGroup says so; the first to recover
// leads again.
func TestReadGroupTellsAnUnhealthyNodeWhoLeads(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.watchOverlap()
	a, b := g.start("a"), g.start("b")
	first := g.waitLeader(20 * time.Second)
	other := b
	if first == b {
		other = a
	}

	first.el.SetHealth(false, "HEALTH_CMD failed 3 times: exit status 1")
	testwait.For(t, 10*time.Second, "the other member to lead and the first to be unhealthy", func() bool {
		return other.el.State().Active() && first.el.State().Phase == PhaseUnhealthy
	})
	st := first.el.State()
	assert.Equal(t, "health check failing: HEALTH_CMD failed 3 times: exit status 1", st.Reason)
	gs, err := first.el.ReadGroup()
	require.NoError(t, err)
	assert.Equal(t, other.name, gs.Leader)
	require.Len(t, gs.Members, 1)
	assert.Equal(t, other.name, gs.Members[0].Name)
	assert.Equal(t, first.stops.Load(), first.starts.Load(), "the first leader's duty stopped before it left")

	other.el.SetHealth(false, "disk full")
	testwait.For(t, 10*time.Second, "both members unhealthy", func() bool {
		return other.el.State().Phase == PhaseUnhealthy && first.el.State().Phase == PhaseUnhealthy
	})
	for _, m := range []*member{a, b} {
		gs, err := m.el.ReadGroup()
		require.NoError(t, err)
		assert.Empty(t, gs.Leader, "%s: no leader", m.name)
		assert.Empty(t, gs.Members, "%s: nobody in the line", m.name)
		assert.False(t, m.el.State().Active())
	}

	first.el.SetHealth(true, "")
	testwait.For(t, 10*time.Second, "the recovered member to lead", func() bool { return first.el.State().Active() })
	gs, err = other.el.ReadGroup()
	require.NoError(t, err)
	assert.Equal(t, first.name, gs.Leader)
}
