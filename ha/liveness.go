package ha

import (
	"time"

	"github.com/hanode/hanode/internal/clockwatch"
)

// LoopAge is how long ago Run's goroutine last went round its loop: it
// reads the clocks before every event it handles and, between events, at
// least every clockCheckEvery (100 ms at most). ok is false until Run has
// started.
//
// A supervisor's watchdog asks it (systemd's WATCHDOG=1 in cmd/hanode): an
// age far above 100 ms means the goroutine that decides is stuck, in a
// callback that does not return or behind a lock, and nothing else in the
// process would show it. A duty's stop blocks the loop legitimately, for at
// most the stop timeout the margin holds, so a watchdog's limit must lie
// above that.
func (e *Election) LoopAge() (age time.Duration, ok bool) {
	last := e.clockLast.Load()
	if last == nil {
		return 0, false
	}
	return max(clockwatch.Now().Mono-last.Mono, 0), true
}
