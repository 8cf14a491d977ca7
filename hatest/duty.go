package hatest

import (
	"context"
	"fmt"
	"time"

	"github.com/hanode/hanode/roles"
)

// Lead is what a duty learns when its member becomes active.
type Lead struct {
	// Node is the member's name (hanode's HANODE_NAME).
	Node string
	// Group and Role are the HA group's id and role (HANODE_HA_ID,
	// HANODE_ROLE).
	Group, Role string
	// Term is this leadership's fencing token (HANODE_TERM): it grows with
	// every leadership of the group.
	Term int64
	// StopWithin is how long the duty has, once its context ends, to stop
	// everything it started: the lease margin.
	StopWithin time.Duration
}

// Duty is your active duty: the work only the leader may do. It runs in a
// goroutine of its own from the moment its member becomes active, and its
// context ends when the leadership ends (lease running out, Kill, Freeze,
// Stop, Switchover, the end of the test). It must return once all it
// started has stopped, within l.StopWithin: the member releases its lease
// only then, and a duty that takes longer fails the test. An error it
// returns fails the test too.
type Duty func(ctx context.Context, l Lead) error

// Command returns a Duty that runs command with /bin/sh -c while its member
// leads, as `hanode run` runs ACTIVE_CMD: HANODE_NAME, HANODE_ROLE,
// HANODE_HA_ID and HANODE_TERM in its environment, output to the test's
// stdout and stderr, restarted with backoff if it exits, and stopped with
// SIGTERM to its process group, then SIGKILL, when the leadership ends. It
// is hanode's own duty supervisor (roles), without the duty guard process
// and the cgroup containment of `hanode run`: a process of the command that
// leaves its process group (setsid, a daemon) is not stopped.
func Command(command string) Duty {
	return func(ctx context.Context, l Lead) error {
		// The supervisor sends SIGKILL StopTimeout after SIGTERM and then
		// takes up to KillGrace to confirm: both within the margin.
		stop := max(l.StopWithin-roles.KillGrace-100*time.Millisecond, 0)
		sup := roles.NewSupervisor(roles.SupervisorConfig{
			Command: command, StopTimeout: stop, Name: l.Node, Role: l.Role, HAID: l.Group,
		})
		sup.Start(l.Term)
		<-ctx.Done()
		if err := sup.Stop("leadership ended"); err != nil {
			return fmt.Errorf("hatest: the command of %s did not stop: %w", l.Node, err)
		}
		return nil
	}
}
