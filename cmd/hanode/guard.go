package main

import (
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

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
// (roles.ServeGuard has the protocol).
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
			// The coordinator passes its stdout as fd 3 for the duty's output.
			out := os.NewFile(3, "duty-stdout")
			if out == nil {
				out = os.Stderr
			}
			sup := roles.NewSupervisor(roles.SupervisorConfig{
				Command: command, StopTimeout: stop, Name: name, Role: role, HAID: haID,
				Env: os.Environ(), Stdout: out, Stderr: os.Stderr, Logger: log,
			})
			ctx, cancel := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer cancel()
			return roles.ServeGuard(ctx, os.Stdin, os.Stdout, sup, log)
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
