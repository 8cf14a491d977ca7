package roles

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestMonoOfConvertsGoTimeToCLOCK_MONOTONIC: a time.Now reading converts to
// the CLOCK_MONOTONIC reading taken around it, never later, and durations
// carry over.
func TestMonoOfConvertsGoTimeToCLOCK_MONOTONIC(t *testing.T) {
	before := monoNow()
	now := time.Now()
	after := monoNow()
	got := monoOf(now)
	assert.GreaterOrEqual(t, got, before-int64(time.Millisecond))
	assert.LessOrEqual(t, got, after)
	assert.InDelta(t, got+int64(3*time.Second), monoOf(now.Add(3*time.Second)), float64(time.Millisecond))
	assert.InDelta(t, 3*time.Second, monoUntil(monoOf(now.Add(3*time.Second))), float64(100*time.Millisecond))
}
