package roles

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/testwait"
)

// TestSupervisorRunOnceReportsTheExitAndDoesNotRestart: a job's run (Once)
// ends with its command; the exit is reported once and nothing restarts,
// however long the run stays started.
func TestSupervisorRunOnceReportsTheExitAndDoesNotRestart(t *testing.T) {
	out := &syncBuffer{}
	var starts, exits atomic.Int32
	var exit atomic.Value
	s := NewSupervisor(SupervisorConfig{
		Command: "echo ran; exit 3", Once: true, Stdout: out, Stderr: out, MinBackoff: time.Millisecond,
		OnStart: func(int64, int) { starts.Add(1) },
		OnExit:  func(_ int64, how string) { exits.Add(1); exit.Store(how) },
	})
	s.Start(7)
	testwait.For(t, 5*time.Second, "the run to end", func() bool { return exits.Load() == 1 })
	testwait.For(t, time.Second, "the run's status to say stopped", func() bool { return s.Status().State == DutyStopped })
	// A duty would be restarted after MinBackoff (1 ms); a run never is.
	// Stop waits for the owner, which has handled any restart by then.
	if err := s.Stop("run over"); err != nil {
		t.Fatal(err)
	}
	if starts.Load() != 1 || exits.Load() != 1 || exit.Load() != "exit status 3" || out.String() != "ran\n" {
		t.Fatalf("starts %d, exits %d (%v), output %q: want one run that exited 3", starts.Load(), exits.Load(), exit.Load(), out.String())
	}
	requireNoDutyGoroutines(t)
}
