package testwait

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// fakeT records Fatalf instead of ending the goroutine.
type fakeT struct {
	testing.TB
	fatal string
}

func (f *fakeT) Helper() {}

func (f *fakeT) Fatalf(format string, args ...any) { f.fatal = fmt.Sprintf(format, args...) }

// TestForReturnsOnceTheConditionHolds: For returns as soon as the
// condition holds, here after a few polls, without failing the test.
func TestForReturnsOnceTheConditionHolds(t *testing.T) {
	var calls atomic.Int32
	f := &fakeT{TB: t}
	For(f, 5*time.Second, "the third call", func() bool { return calls.Add(1) >= 3 })
	if f.fatal != "" {
		t.Fatalf("For failed the test: %s", f.fatal)
	}
	if got := calls.Load(); got != 3 {
		t.Fatalf("cond called %d times, want 3", got)
	}
}

// TestForFailsNamingWhatItWaitedFor: a condition that never holds fails
// the test with the timeout and what was awaited.
func TestForFailsNamingWhatItWaitedFor(t *testing.T) {
	f := &fakeT{TB: t}
	For(f, 20*time.Millisecond, "the impossible", func() bool { return false })
	if want := "timed out after 20ms waiting for the impossible"; f.fatal != want {
		t.Fatalf("Fatalf(%q), want %q", f.fatal, want)
	}
}

// TestPollChecksOnceMoreAtTheDeadline: a condition that holds when the
// deadline passes is not a timeout, even if no tick saw it.
func TestPollChecksOnceMoreAtTheDeadline(t *testing.T) {
	start := time.Now()
	err := Poll(20*time.Millisecond, time.Hour, func() bool { return time.Since(start) >= 20*time.Millisecond })
	if err != nil {
		t.Fatalf("Poll: %v, want nil", err)
	}
}

// TestPollTimesOut: a condition that never holds gives ErrTimeout.
func TestPollTimesOut(t *testing.T) {
	if err := Poll(10*time.Millisecond, time.Millisecond, func() bool { return false }); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Poll: %v, want ErrTimeout", err)
	}
}
