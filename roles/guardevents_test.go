package roles

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/internal/testwait"
)

// onceFailingDuty exits 3 on its first run and runs on from its second.
const onceFailingDuty = `if [ -e "$DIR/failed-once" ]; then ` + execDuty + `; fi; touch "$DIR/failed-once"; exit 3`

// TestGuardTellsEachStartAndExitOfItsDuty: OnStart hears every start of
// the wanted duty (restarts included) and OnExit every end on its own,
// the guard's death included, but not a stop the coordinator asked for.
func TestGuardTellsEachStartAndExitOfItsDuty(t *testing.T) {
	var mu sync.Mutex
	var events []string
	note := func(format string, args ...any) {
		mu.Lock()
		events = append(events, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	seen := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), events...)
	}
	c := newGuardClient(t, onceFailingDuty, 2*time.Second, func(cfg *GuardConfig) {
		cfg.OnStart = func(term int64, _ int) { note("start %d", term) }
		cfg.OnExit = func(term int64, exit string) { note("exit %d %s", term, exit) }
	})
	c.g.Extend(time.Minute)
	c.g.Start(7)
	d := c.waitDuty(t, 0) // the second run: the first exited
	c.waitReported(t, d.pid)
	testwait.For(t, 5*time.Second, "the restart to be told", func() bool { return len(seen()) == 3 })
	require.Equal(t, []string{"start 7", "exit 7 exit status 3", "start 7"}, seen())

	require.NoError(t, syscall.Kill(parentOf(t, d.pid), syscall.SIGKILL))
	c.waitDuty(t, d.pid)
	testwait.For(t, 5*time.Second, "the restart after the guard's death to be told", func() bool { return len(seen()) == 5 })
	require.Equal(t, "exit 7 the duty guard died (exited)", seen()[3])
	require.Equal(t, "start 7", seen()[4])

	require.NoError(t, c.g.Stop("test over"))
	require.Len(t, seen(), 5, "a stop asked for is no exit: %v", seen())
	c.requireNotLost(t)
}
