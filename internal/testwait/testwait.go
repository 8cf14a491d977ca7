// Package testwait waits, in tests, for a condition to hold: it polls the
// condition on a ticker until it holds or a deadline passes, and fails the
// test naming what it waited for. Tests synchronize on conditions this way,
// never by sleeping.
//
// It imports only the standard library, so that every test package can use
// it, whatever it tests.
package testwait

import (
	"errors"
	"testing"
	"time"
)

// Tick is how often For polls its condition: a wait ends within a few
// milliseconds of the condition holding.
const Tick = 5 * time.Millisecond

// ErrTimeout is Poll's error when the condition did not hold in time.
var ErrTimeout = errors.New("testwait: timed out")

// For polls cond every Tick until it holds. If it does not hold within
// timeout, For fails the test with "timed out after TIMEOUT waiting for
// WHAT" (t.Fatalf: call it from the test's goroutine). what names the
// condition, as in "the standby to take over".
func For(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	Every(t, timeout, Tick, what, cond)
}

// Every is For polling every interval instead of every Tick: a shorter
// interval for a wait that measures a time, a longer one for a condition
// that costs something to evaluate (many nodes asked over HTTP).
func Every(t testing.TB, timeout, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := Poll(timeout, interval, cond); err != nil {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// Poll calls cond at once and then every interval until it holds, and
// returns nil; when timeout passes first, it calls cond one last time and
// returns ErrTimeout unless that call holds. It is for waits that report a
// timeout their own way (with what they observed last) or that do not run
// on a test's goroutine.
func Poll(timeout, interval time.Duration, cond func() bool) error {
	if cond() {
		return nil
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-deadline.C:
			if cond() {
				return nil
			}
			return ErrTimeout
		case <-tick.C:
			if cond() {
				return nil
			}
		}
	}
}
