package main

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/roles"
)

// guardOptions are what `hanode run` starts its duty guard with.
type guardOptions struct {
	command                               string
	stop, restartWindow                   time.Duration
	name, role, haID, logLevel, logFormat string
	containment                           roles.Containment // resolved: cgroup, subreaper or none
	forking                               bool
	maxRestarts                           int
	// once and env are for a scheduled job's run: the command runs once
	// (its exit ends the run), with env (KEY=value) added.
	once bool
	env  []string
	// coordinatorPID, for the duty's guard: the guard may release the
	// lease once this process has provably exited (roles.GuardExit),
	// dialing ZooKeeper as the coordinator does (the tls* files).
	coordinatorPID         int
	tlsCA, tlsCert, tlsKey string
}

// args are the guard's command-line arguments.
func (o guardOptions) args() []string {
	a := []string{roles.GuardCommand, "--command", o.command, "--stop-timeout", o.stop.String(),
		"--name", o.name, "--role", o.role, "--ha-id", o.haID, "--log-level", o.logLevel, "--log-format", o.logFormat,
		"--containment", string(o.containment), "--max-restarts", strconv.Itoa(o.maxRestarts),
		"--restart-window", o.restartWindow.String()}
	if o.forking {
		a = append(a, "--forking")
	}
	if o.once {
		a = append(a, "--once")
	}
	if o.coordinatorPID != 0 {
		a = append(a, "--coordinator-pid", strconv.Itoa(o.coordinatorPID))
	}
	for _, f := range [][2]string{{"--zk-tls-ca", o.tlsCA}, {"--zk-tls-cert", o.tlsCert}, {"--zk-tls-key", o.tlsKey}} {
		if f[1] != "" {
			a = append(a, f[0], f[1])
		}
	}
	for _, kv := range o.env {
		a = append(a, "--env", kv)
	}
	return a
}

// guardComm is the guard's process name (/proc/PID/comm, what ps and top
// show): the binary runs as /proc/self/exe, which would show as "exe".
const guardComm = "hanode-guard"

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
		command, name, role, haID, level, format, containment string
		stop, window                                          time.Duration
		forking, once                                         bool
		maxRestarts, coordinatorPID                           int
		tlsCA, tlsCert, tlsKey                                string
		env                                                   []string
	)
	cmd := &cobra.Command{
		Use:    roles.GuardCommand,
		Short:  "Run the active duty for `hanode run` (internal)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			base, err := newLogger(level, format)
			if err != nil {
				return usageError{err}
			}
			log := base.Named("guard").With(zap.String("name", name), zap.Int("pid", os.Getpid()))
			_ = os.WriteFile("/proc/self/comm", []byte(guardComm), 0) // a name is a convenience only
			// NOTIFY_SOCKET and the watchdog's variables are hanode's
			// alone (notify.go): neither the guard nor the duty speaks
			// for the unit.
			unsetNotifyVars()
			ctx, cancel := notifySignals(cmd.Context(), log, nil)
			defer cancel()
			want, err := roles.ParseContainment(containment)
			if err != nil {
				return usageError{err}
			}
			// The coordinator resolved the containment and started this
			// process in its jail; duties get jails inside it.
			jailer, _, err := roles.NewJailer(want, "duty-")
			if err != nil {
				return err
			}
			// The coordinator passes its stdout as fd 3 for the duty's
			// output; the duty gets it as its stdout, not as a stray fd 3.
			out := os.Stderr
			if _, err := unix.FcntlInt(3, unix.F_GETFD, 0); err == nil {
				unix.CloseOnExec(3)
				out = os.NewFile(3, "duty-stdout")
			}
			dutyLog := base.Named("duty").With(zap.String("name", name))
			stdout, err := newChildLog(dutyLog, format, "stdout", out)
			if err != nil {
				return err
			}
			defer stdout.Close(childLogDrain)
			stderr, err := newChildLog(dutyLog, format, "stderr", os.Stderr)
			if err != nil {
				return err
			}
			defer stderr.Close(childLogDrain)
			exit := guardExit(coordinatorPID, once, tlsCA, tlsCert, tlsKey, log)
			defer exit.close()
			return roles.ServeGuard(ctx, os.Stdin, os.Stdout, roles.SupervisorConfig{
				Command: command, StopTimeout: stop, Name: name, Role: role, HAID: haID,
				Env: withEnv(os.Environ(), env), Stdout: stdout.w, Stderr: stderr.w, Logger: log,
				Jailer: jailer, Forking: forking, MaxRestarts: maxRestarts, RestartWindow: window, Once: once,
				Exit: exit.GuardExit,
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
	f.StringVar(&containment, "containment", "none", "cgroup, subreaper or none (DUTY_CONTAINMENT, resolved)")
	f.BoolVar(&forking, "forking", false, "the command starts a daemon and exits 0 (ACTIVE_CMD_MODE=forking)")
	f.IntVar(&maxRestarts, "max-restarts", 0, "ACTIVE_MAX_RESTARTS (0: no bound)")
	f.DurationVar(&window, "restart-window", time.Minute, "ACTIVE_RESTART_WINDOW")
	f.BoolVar(&once, "once", false, "run the command once: its exit ends the run (a scheduled job's run)")
	f.StringArrayVar(&env, "env", nil, "KEY=value added to the command's environment (repeatable)")
	f.IntVar(&coordinatorPID, "coordinator-pid", 0, "the coordinator (this process's parent): release its lease once it provably exited")
	f.StringVar(&tlsCA, "zk-tls-ca", "", "ZK_TLS_CA, for the release")
	f.StringVar(&tlsCert, "zk-tls-cert", "", "ZK_TLS_CERT, for the release")
	f.StringVar(&tlsKey, "zk-tls-key", "", "ZK_TLS_KEY, for the release")
	return cmd
}

// releaseTimeout bounds a guard's release: a dial, the authentication and
// one multi. A release that does not land leaves the group to the lease.
const releaseTimeout = 5 * time.Second

// exitRelease is a guard's roles.GuardExit and what it holds open.
type exitRelease struct {
	*roles.GuardExit
	proof *roles.ExitProof
}

func (e exitRelease) close() { _ = e.proof.Close() }

// guardExit makes the duty guard's release for a coordinator that provably
// exited: nil (never) for a job's run-once guard, without a coordinator
// pid, or when its pidfd cannot be had (the guard then only stops the
// duty, and the group waits the lease out).
func guardExit(pid int, once bool, ca, cert, key string, log *zap.Logger) exitRelease {
	if once || pid == 0 {
		return exitRelease{}
	}
	proof, err := roles.ParentExitProof(pid)
	if err != nil {
		log.Warn("no proof of the coordinator's exit: the guard will not release its lease", zap.Error(err))
		return exitRelease{}
	}
	var tlsCfg *tls.Config
	if ca != "" {
		if tlsCfg, err = ha.LoadTLS(ca, cert, key); err != nil {
			log.Warn("the guard cannot load the ZooKeeper TLS files: it will not release the lease", zap.Error(err))
			return exitRelease{proof: proof}
		}
	}
	return exitRelease{proof: proof, GuardExit: &roles.GuardExit{Proof: proof, Release: func(ticket []byte, leaseEnd time.Time) {
		ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		defer cancel()
		ctx, cancelLease := context.WithDeadline(ctx, leaseEnd) // never sent after the lease
		defer cancelLease()
		start := time.Now()
		term, err := ha.ReleaseAfterExit(ctx, ticket, tlsCfg, log.Named("release"))
		switch {
		case errors.Is(err, ha.ErrTicketStale):
			log.Info("the coordinator exited; its lease was not released (it extended or another member claimed since): the group waits it out",
				zap.Int("coordinator_pid", pid), zap.Int64("term", term), zap.Error(err))
		case err != nil:
			log.Warn("the coordinator exited; releasing its lease failed: the group waits it out",
				zap.Int("coordinator_pid", pid), zap.Int64("term", term), zap.Error(err))
		default:
			log.Info("the coordinator exited; its duty stopped; lease released for it",
				zap.Int("coordinator_pid", pid), zap.Int64("term", term), zap.Duration("took", time.Since(start)))
		}
	}}}
}
