package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/hanode/hanode/roles"
)

// guardArgs are the arguments `hanode run` starts its duty guard with.
func guardArgs(command string, stop time.Duration, name, role, haID, logLevel, logFormat string) []string {
	return []string{"duty-guard", "--command", command, "--stop-timeout", stop.String(),
		"--name", name, "--role", role, "--ha-id", haID, "--log-level", logLevel, "--log-format", logFormat}
}

// newGuardCmd is the hidden duty guard: started by `hanode run` for an HA
// node's ACTIVE_CMD, it owns the duty and stops it when the lease the
// coordinator passes it runs out, or when the coordinator goes away
// (roles.ServeGuard has the protocol). SIGTERM and SIGINT stop the duty and
// end the guard (an active node's coordinator then starts a new one, as for
// any guard that dies); SIGHUP is ignored and a broken stdout or stderr is
// harmless (notifySignals), so a terminal's hangup or a closed log pipe
// never takes the guard away from its duty.
func newGuardCmd() *cobra.Command {
	var (
		command, name, role, haID, level, format string
		stop                                     time.Duration
	)
	cmd := &cobra.Command{
		Use:    "duty-guard",
		Short:  "Run the active duty for `hanode run` (internal)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(level, format)
			if err != nil {
				return usageError{err}
			}
			log = log.Named("guard").With(zap.String("name", name), zap.Int("pid", os.Getpid()))
			ctx, cancel := notifySignals(cmd.Context(), log)
			defer cancel()
			// The coordinator passes its stdout as fd 3 for the duty's
			// output; the duty gets it as its stdout, not as a stray fd 3.
			out := os.Stderr
			if _, err := unix.FcntlInt(3, unix.F_GETFD, 0); err == nil {
				unix.CloseOnExec(3)
				out = os.NewFile(3, "duty-stdout")
			}
			return roles.ServeGuard(ctx, os.Stdin, os.Stdout, roles.SupervisorConfig{
				Command: command, StopTimeout: stop, Name: name, Role: role, HAID: haID,
				Env: os.Environ(), Stdout: out, Stderr: os.Stderr, Logger: log,
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&command, "command", "", "the duty: run with /bin/sh -c")
	f.DurationVar(&stop, "stop-timeout", 2*time.Second, "SIGTERM, then SIGKILL after this")
	f.StringVar(&name, "name", "", "HANODE_NAME")
	f.StringVar(&role, "role", "", "HANODE_ROLE")
	f.StringVar(&haID, "ha-id", "", "HANODE_HA_ID")
	f.StringVar(&level, "log-level", "info", "log level")
	f.StringVar(&format, "log-format", "json", "log format")
	return cmd
}
