package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hanode/hanode/conf"
	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/metrics"
	"github.com/hanode/hanode/ping"
	"github.com/hanode/hanode/roles"
)

func newRunCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run this node: join its HA group, serve the ping endpoints, run ACTIVE_CMD while active",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			armDebugPanic(cmd)
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			return run(cmd.Context(), cfg, func() (*conf.Config, error) { return loadConfig(cmd) })
		},
	}
	addConfigFlags(cmd.Flags())
	addDebugFlags(cmd)
	return cmd
}

// run wires the parts: listener first (a busy port fails before anything
// joins the group), then the duty supervisor, then the elector or the
// standalone state, with the ping server reading state from either.
// reload reads the configuration again, for SIGHUP.
func run(ctx context.Context, cfg *conf.Config, reload func() (*conf.Config, error)) error {
	log, level, err := newLevelLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	log = log.With(zap.String("name", cfg.Name))
	// systemd (notify.go): STOPPING=1 as soon as a shutdown starts, and in
	// any case before the process exits.
	sd := newNotifier(log)
	defer sd.Stopping()
	ctx, stopSignals := notifySignals(ctx, log, newReloader(cfg, reload, level, log, sd).reload)
	defer stopSignals()
	defer context.AfterFunc(ctx, sd.Stopping)()
	watchdog := watchdogInterval(log)

	ln, err := ping.Listen(ctx, cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("listen %s (HTTP_LISTEN): %w", cfg.HTTPListen, err)
	}
	// The admin socket (adminsocket.go): taken before anything else runs,
	// removed on the way out.
	sock, err := listenAdminSocket(cfg)
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer closeAdminSocket(sock)
	host, _ := os.Hostname()
	httpAddr := advertised(ln.Addr(), host)
	log.Info("hanode starting", zap.String("version", version), zap.String("role", cfg.Role),
		zap.String("region", cfg.Region), zap.String("ha_id", cfg.HAID), zap.String("http", httpAddr),
		zap.String("env_file", cfg.EnvFile))
	for _, n := range cfg.Notices() {
		if n.Kind == conf.NoticeWarning {
			log.Warn("configuration warning", zap.String("key", n.Key), zap.String("value", n.Value),
				zap.String("source", n.Source), zap.String("detail", n.Msg))
		} else {
			log.Info("key not used by hanode", zap.String("key", n.Key), zap.String("source", n.Source))
		}
	}

	id := ping.Identity{Name: cfg.Name, Role: cfg.Role, Region: cfg.Region, HAID: cfg.HAID, NetID: cfg.NetID, Version: version}
	m := metrics.New(metrics.Config{HAID: cfg.HAID, Name: cfg.Name, Role: cfg.Role, Version: version})
	jailer, err := newJailer(cfg, log)
	if err != nil {
		_ = ln.Close()
		return err
	}
	// NOTIFY_CMD (hooks.go): every transition, standalone or in a group.
	hooks, hooksDone, err := newHooks(cfg, jailer, log)
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer hooksDone()
	defer hooks.Close(hookDrain(cfg)) // a no-op once closed below
	if !cfg.HA() {
		stdout, stderr, err := childLogs(log.Named("duty"), cfg.LogFormat)
		if err != nil {
			_ = ln.Close()
			return err
		}
		defer stdout.Close(childLogDrain)
		defer stderr.Close(childLogDrain)
		duty := roles.NewSupervisor(roles.SupervisorConfig{
			Command: cfg.ActiveCmd, StopTimeout: cfg.ActiveStopTimeout,
			Name: cfg.Name, Role: cfg.Role, HAID: cfg.HAID,
			Env: childEnv(), Logger: log.Named("duty"), Stdout: stdout.w, Stderr: stderr.w,
			Jailer: jailer, Forking: cfg.ActiveCmdMode == "forking",
			MaxRestarts: cfg.ActiveMaxRestarts, RestartWindow: cfg.ActiveRestartWindow, RestartGrace: cfg.ActiveRestartGrace,
			OnStart: m.DutyStarted, OnExit: m.DutyExited,
		})
		return runStandalone(ctx, log, ln, sock, id, duty, cfg.ActiveRestartGrace, jailer.Mode(), m, sd, watchdog, hooks, hookDrain(cfg))
	}

	// One ZooKeeper session for the process: it reserves the server name
	// and carries the election (and, later, every other user of ZooKeeper).
	started := time.Now().UTC()
	// Shared secret and TLS (access.go, issue 18).
	access, err := zkAccess(cfg)
	if err != nil {
		_ = ln.Close()
		return err
	}
	log.Info("zookeeper access", zap.Bool("tls", access.TLS != nil), zap.Strings("secret_fingerprints", fingerprints(access)),
		zap.Bool("acl_open", len(access.Secrets) == 0 || access.KeepOpen))
	sess, err := ha.OpenSession(ha.SessionConfig{
		Access:  access,
		Servers: cfg.ZKServers(), Root: cfg.ZKChroot() + cfg.ZKRoot, Timeout: cfg.ZKSessionTimeout,
		Name: cfg.Name, ReserveName: true, Host: host, PID: os.Getpid(), Started: started, Logger: log,
		ObserveRequest: m.ObserveRequest,
	})
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer sess.Close()
	m.WatchSession(sess)

	// In a group the duty runs under a guard process that holds its own copy
	// of the lease: it stops the duty even if this process freezes or dies.
	var el *ha.Election
	var gate *roles.Standby  // STANDBY_CMD's gate in front of the duty; nil: none
	var health *roles.Health // the health check (health.go); nil: none
	duty := noDuty
	var report func() ha.DutyState
	if cfg.ActiveCmd != "" {
		guard := roles.NewGuard(roles.GuardConfig{
			// The very binary running now, even after an upgrade replaced the
			// file: a replacement guard speaks this coordinator's protocol.
			Path:  "/proc/self/exe",
			Argv0: "hanode",
			Args: guardOptions{command: cfg.ActiveCmd, stop: cfg.ActiveStopTimeout,
				name: cfg.Name, role: cfg.Role, haID: cfg.HAID, logLevel: cfg.LogLevel, logFormat: cfg.LogFormat,
				containment: jailer.Mode(), forking: cfg.ActiveCmdMode == "forking",
				maxRestarts: cfg.ActiveMaxRestarts, restartWindow: cfg.ActiveRestartWindow,
				coordinatorPID: os.Getpid(), tlsCA: cfg.ZKTLSCA, tlsCert: cfg.ZKTLSCert, tlsKey: cfg.ZKTLSKey}.args(),
			// A guard that does not acknowledge a stop at once is frozen, and
			// one that has not confirmed it by ACTIVE_STOP_TIMEOUT plus the
			// slack is killed with its jail: conf has checked that this fits
			// in LEASE_MARGIN.
			StopTimeout:  cfg.ActiveStopTimeout + conf.GuardAnswerSlack,
			AnswerSlack:  conf.GuardAnswerSlack,
			RestartGrace: cfg.ActiveRestartGrace,
			Jailer:       jailer,
			// Called only after Start, by which time el is set.
			OnDutyLost: func(term int64, reason string) {
				if gate != nil { // STANDBY_CMD waits for the lost duty's confirmed stop
					gate.DutyLost(term)
				}
				el.DutyLost(term, reason)
				if health != nil { // a lost duty is a failed health check
					health.Fail(reason)
				}
			},
			OnStart: m.DutyStarted,
			OnExit:  m.DutyExited,
			Logger:  log.Named("duty"),
		})
		if err := guard.Ready(); err != nil {
			_ = ln.Close()
			return err
		}
		defer func() { _ = guard.Close() }()
		duty = guard
		report = func() ha.DutyState { return dutyState(guard.Duty(), cfg.ActiveRestartGrace, jailer.Mode()) }
	}
	// STANDBY_CMD (hooks.go): the duty starts only once it is confirmed
	// stopped, and it starts only once the duty is.
	gate, standbyDone, err := newStandby(cfg, jailer, duty, func(term int64, reason string) {
		el.DutyLost(term, reason)
		if health != nil {
			health.Fail(reason)
		}
	}, log)
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer standbyDone()
	if gate != nil {
		defer gate.Close() // a no-op once closed below
		duty = gatedDuty{gate: gate, inner: duty}
	}
	var fence func(context.Context, ha.FenceRequest) error
	if cfg.FenceCmd != "" {
		output, err := newChildLog(log.Named("fence"), cfg.LogFormat, "output", os.Stderr)
		if err != nil {
			_ = ln.Close()
			return err
		}
		defer output.Close(childLogDrain)
		fc := roles.FenceConfig{Command: cfg.FenceCmd, Timeout: cfg.FenceTimeout,
			Name: cfg.Name, Role: cfg.Role, HAID: cfg.HAID, Env: childEnv(), Jailer: jailer, Output: output.w}
		fence = func(ctx context.Context, req ha.FenceRequest) error {
			p := req.Previous
			prev := roles.Previous{Name: p.Name, Host: p.Host, HTTP: p.HTTP, Term: p.Term, Known: req.PreviousKnown}
			for _, m := range req.Candidates {
				prev.Candidates = append(prev.Candidates, roles.Candidate{Name: m.Name, Host: m.Host, HTTP: m.HTTP, Term: m.Term})
			}
			return roles.Fence(ctx, fc, req.Term, prev)
		}
	}
	fence = m.Fence(fence)
	// Leader-only scheduled jobs (JOB_*): each run recorded in ZooKeeper
	// before it starts, under a guard of its own (jobs.go).
	jobList, err := scheduledJobs(cfg)
	if err != nil {
		_ = ln.Close()
		return err
	}
	var jobs *roles.Jobs // set once el exists, before Run calls anything
	cand := candidacyOf(cfg)
	el, err = ha.NewElection(sess, ha.ElectionConfig{
		Group: cfg.HAID, Role: cfg.Role, Region: cfg.Region, HTTP: httpAddr,
		Margin: cfg.LeaseMargin, FenceMaxTries: cfg.FenceMaxTries,
		Policy: cand.Policy, Priority: cand.Priority, Preempt: cand.Preempt, PreemptDelay: cand.PreemptDelay,
		NoFailover: cand.NoFailover,
		Logger:     log,
		Callbacks: ha.Callbacks{
			StartDuty: func(ctx context.Context, term int64) { duty.Start(term); jobs.Start(ctx, term) },
			// An error (the duty's jail not confirmed empty) makes the node
			// leave without a release: no successor starts at once.
			StopDuty:      func(reason string) error { return stopBoth(reason, duty, jobs) },
			LeaseExtended: func(until time.Time) { duty.ExtendUntil(until); jobs.ExtendUntil(until) },
			ReleaseTicket: duty.SetTicket,
			Fence:         fence,
		},
	})
	if err != nil {
		_ = ln.Close()
		return err
	}
	jobs = roles.NewJobs(roles.JobsConfig{Jobs: jobList, Store: el, Guard: jobGuard(cfg, jailer), OnResult: m.JobRun,
		Logger: log.Named("jobs")})
	jobsCtx, stopJobs := context.WithCancel(context.Background())
	defer stopJobs()
	go jobs.Refresh(jobsCtx)
	// The cluster-wide polling cycle (cycle.go): followed by every node of
	// a group, advanced by a primary group's leader with POLL_INTERVAL.
	cycle, err := newNodeCycle(cfg, sess, el, jailer, log)
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer cycle.stop() // after the election has left: its CYCLE_CMD is killed
	cycle.start()
	// HEALTH_CMD (health.go): its verdict takes the node out of the line
	// and back; out of it, the status reads who leads from ZooKeeper.
	health, healthDone, err := newHealth(cfg, jailer, el.SetHealth, log)
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer healthDone()
	if health != nil {
		defer health.Close() // a no-op once closed below
	}
	srvDone := make(chan error, 1)
	srvCtx, stopSrv := context.WithCancel(context.Background())
	var state ha.StateReader = el
	if report != nil {
		state = withDuty{el, report}
	}
	if gate != nil || hooks.Configured() {
		state = withHooks{src: state, standby: gate, hooks: hooks}
	}
	state = withCycle{state, cycle.cyc}
	looker := &groupLooker{read: el.ReadGroup}
	lookFeed, lookUnsubscribe := el.Subscribe()
	defer lookUnsubscribe()
	lookCtx, stopLook := context.WithCancel(context.Background())
	defer stopLook()
	go looker.follow(lookCtx, lookFeed)
	state = withHealth{src: state, health: health, candidacy: cand, look: looker}
	m.WatchState(state)
	feed, unsubscribe := el.Subscribe() // before Run: every transition counts
	defer unsubscribe()
	hookFeed, hookUnsubscribe := el.Subscribe()
	hooksFollowed := make(chan struct{})
	go followHooks(hookFeed, hooks, cfg.Name, func() string { return el.Leader().Name }, hooksFollowed)
	if gate != nil {
		standbyFeed, standbyUnsubscribe := el.Subscribe()
		defer standbyUnsubscribe()
		go followStandby(standbyFeed, gate)
	}
	go m.Follow(feed)
	// The status page's live stream hears of each transition as it happens.
	opts := []ping.Option{ping.WithTransitions(el.Subscribe)}
	if len(jobList) > 0 {
		opts = append(opts, ping.WithJobs(jobsStatus(jobs)))
	}
	h := httpHandler(id, state, m, log, opts...)
	h.HandleCycle(cycle.cyc)
	// The group's state area: read on any member, written by the leader.
	h.MountState(el)
	// The admin API (pause, resume): only with ADMIN_TOKEN.
	h.MountAdmin(el, cfg.AdminToken())
	// The group's history of leadership changes, read-only like status.
	h.MountHistory(el)
	go func() { srvDone <- ping.Serve(srvCtx, ln, h, log.Named("http")) }()
	sockDone := serveAdminSocket(srvCtx, sock, h, log.Named("http"))

	// systemd hears of every transition, and the watchdog asks the
	// election's goroutine; a stuck one gets no more pings. The limit is
	// half the watchdog's: a duty's stop (within LEASE_MARGIN) must fit.
	sdFeed, sdUnsubscribe := el.Subscribe()
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		sd.follow(sdFeed, el.State, time.Second)
	}()
	wdCtx, stopWatchdog := context.WithCancel(context.Background())
	wdDone := make(chan struct{})
	go func() {
		defer close(wdDone)
		sd.Watchdog(wdCtx, watchdog, electionAlive(el, watchdog/2))
	}()

	// The election stops the duty and leaves the group before it returns;
	// the HTTP server goes last so balancers see "standby", not a refused
	// port, while the member leaves.
	runErr := withAccessHint(el.Run(ctx))
	stopWatchdog()
	// The last transitions (stopped) are queued in the feed by now: let
	// systemd hear them before the feed ends (bounded: a follower that
	// never sees "stopped" must not hold the exit up).
	select {
	case <-followed:
	case <-time.After(time.Second):
	}
	sdUnsubscribe()
	<-wdDone
	<-followed
	// NOTIFY_CMD hears "stopped" too (bounded like systemd's follower), and
	// the queued hooks get one NOTIFY_TIMEOUT; STANDBY_CMD, if it runs,
	// stops with the node.
	select {
	case <-hooksFollowed:
	case <-time.After(time.Second):
	}
	hookUnsubscribe()
	<-hooksFollowed
	hooks.Close(hookDrain(cfg))
	if gate != nil {
		gate.Close()
	}
	if health != nil {
		health.Close()
	}
	stopSrv()
	if err := <-srvDone; err != nil && runErr == nil {
		runErr = err
	}
	if err := sockDone(); err != nil && runErr == nil {
		runErr = err
	}
	log.Info("hanode stopped", zap.Error(runErr))
	return runErr
}

// leaseDuty is what the elector drives: the duty guard, or nothing.
type leaseDuty interface {
	Start(term int64)
	Stop(reason string) error
	ExtendUntil(deadline time.Time)
	// SetTicket hands the guard the release it may write once this
	// process has provably exited (ha.Callbacks.ReleaseTicket).
	SetTicket(ticket []byte)
}

// noDuty stands in when there is no ACTIVE_CMD.
var noDuty leaseDuty = nopDuty{}

type nopDuty struct{}

func (nopDuty) Start(int64)           {}
func (nopDuty) Stop(string) error     { return nil }
func (nopDuty) ExtendUntil(time.Time) {}
func (nopDuty) SetTicket([]byte)      {}

// runStandalone serves a node with no HA group: always active, duty always
// on, ready for systemd once it serves.
func runStandalone(ctx context.Context, log *zap.Logger, ln net.Listener, sock *ping.SocketListener, id ping.Identity,
	duty *roles.Supervisor, grace time.Duration, contain roles.Containment, m *metrics.Metrics, sd *notifier, watchdog time.Duration,
	hooks *roles.Hooks, drain time.Duration) error {
	const reason = "standalone: no HA_ID"
	log.Info("state change", zap.String("from", string(ha.PhaseStarting)), zap.String("to", string(ha.PhaseActive)),
		zap.Int64("term", 0), zap.String("reason", reason))
	// Its one transition, and at the end "stopped", reach NOTIFY_CMD as a
	// group member's do.
	hooks.Notify(roles.HookEvent{From: string(ha.PhaseStarting), To: string(ha.PhaseActive), Leader: id.Name, Reason: reason, At: time.Now()})
	var state ha.StateReader = ha.Standalone(time.Now().UTC(), reason)
	begun := time.Now()
	if duty.Configured() {
		state = withDuty{state, func() ha.DutyState { return supervisorState(duty.Status(), begun, grace, contain) }}
	}
	if hooks.Configured() {
		state = withHooks{src: state, hooks: hooks}
	}
	m.WatchState(state)
	duty.Start(0)
	wdCtx, stopWatchdog := context.WithCancel(context.Background())
	wdDone := make(chan struct{})
	go func() {
		defer close(wdDone)
		sd.Watchdog(wdCtx, watchdog, func() (bool, string) { return true, "standalone: serving" })
	}()
	defer func() { stopWatchdog(); <-wdDone }()
	// The listener is bound: connections wait in its backlog until Serve
	// accepts them.
	sd.Status("active (standalone: no HA_ID)", true)
	h := httpHandler(id, state, m, log)
	sockDone := serveAdminSocket(ctx, sock, h, log.Named("http")) // /v2/status only: no group to administer
	err := errors.Join(ping.Serve(ctx, ln, h, log.Named("http")), sockDone())
	if serr := duty.Stop("shutdown"); serr != nil {
		log.Error("duty did not stop", zap.Error(serr))
	}
	log.Info("state change", zap.String("from", string(ha.PhaseActive)), zap.String("to", string(ha.PhaseStopped)),
		zap.Int64("term", 0), zap.String("reason", "shutdown"))
	hooks.Notify(roles.HookEvent{From: string(ha.PhaseActive), To: string(ha.PhaseStopped), Reason: "shutdown", At: time.Now()})
	hooks.Close(drain)
	log.Info("hanode stopped", zap.Error(err))
	return err
}

// httpHandler is the node's HTTP side: the ping and status routes, the
// status page, and the metrics at /metrics.
func httpHandler(id ping.Identity, state ha.StateReader, m *metrics.Metrics, log *zap.Logger, opts ...ping.Option) *ping.Handler {
	h := ping.New(id, state, log.Named("http"), opts...)
	h.Handle(ping.PathMetrics, m.Handler())
	return h
}

// newJailer resolves DUTY_CONTAINMENT for this process when it runs
// commands (ACTIVE_CMD, FENCE_CMD, NOTIFY_CMD, STANDBY_CMD, JOB_*_CMD or, in a group, CYCLE_CMD), says which containment is in force,
// and ends what a dead hanode of this cgroup left behind. It refuses to
// start when DUTY_CONTAINMENT=cgroup cannot be had.
func newJailer(cfg *conf.Config, log *zap.Logger) (*roles.Jailer, error) {
	if cfg.ActiveCmd == "" && cfg.FenceCmd == "" && cfg.NotifyCmd == "" && cfg.StandbyCmd == "" && len(cfg.Jobs) == 0 &&
		(cfg.CycleCmd == "" || !cfg.HA()) && cfg.HealthCmd == "" {
		return nil, nil
	}
	want, err := roles.ParseContainment(cfg.DutyContainment)
	if err != nil {
		return nil, fmt.Errorf("%w: DUTY_CONTAINMENT: %v", conf.ErrInvalid, err)
	}
	j, why, err := roles.NewJailer(want, fmt.Sprintf("%s%d-", jailStem, os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("%w: %v; set DUTY_CONTAINMENT=auto to fall back to a child subreaper", conf.ErrInvalid, err)
	}
	switch {
	case j.Mode() == roles.ContainNone:
		log.Warn("duty containment is off (DUTY_CONTAINMENT=none): a duty process that leaves its process group "+
			"(setsid, a daemon, GNU timeout) is not stopped when leadership ends", zap.String("containment", "none"))
	case why != nil:
		log.Warn("duty containment: no cgroup here; every descendant is tracked as a child subreaper instead",
			zap.String("containment", string(j.Mode())), zap.String("why", why.Error()))
	default:
		log.Info("duty containment", zap.String("containment", string(j.Mode())), zap.String("cgroup", j.Base()))
	}
	for _, dir := range j.Sweep(jailStem, time.Now().Add(roles.KillGrace)) {
		log.Warn("ended what a dead hanode left running", zap.String("cgroup", dir))
	}
	return j, nil
}

// jailStem starts the name of every cgroup hanode makes: jailStem, the pid
// of the hanode process that made it, "-", a number.
const jailStem = "hanode-"

// withDuty adds the duty's state to the election's: no "ok" without a duty.
type withDuty struct {
	src  ha.StateReader
	duty func() ha.DutyState
}

func (w withDuty) State() ha.State {
	st := w.src.State()
	d := w.duty()
	st.Duty = &d
	return st
}

// dutyState is the guard's report as the HTTP side shows it.
func dutyState(r roles.DutyReport, grace time.Duration, contain roles.Containment) ha.DutyState {
	return ha.DutyState{State: r.State, Restarts: r.Restarts, LastExit: r.LastExit, LastExitAt: r.LastExitAt,
		Containment: string(contain), Serving: r.Serving(time.Now(), grace)}
}

// supervisorState is a standalone duty's status as the HTTP side shows it;
// begun is when the node started it.
func supervisorState(st roles.DutyStatus, begun time.Time, grace time.Duration, contain roles.Containment) ha.DutyState {
	since := st.LastExitAt
	if since.IsZero() {
		since = begun
	}
	r := roles.DutyReport{State: st.State, Restarts: st.Restarts, LastExit: st.LastExit, LastExitAt: st.LastExitAt, Since: since,
		RunningSince: st.RunningSince, DownSince: st.DownSince}
	if st.State == roles.DutyStopped && st.LastExitAt.IsZero() {
		r.State = roles.DutyStarting // not yet started by its owner goroutine
	}
	return dutyState(r, grace, contain)
}

// advertised is the HTTP address others can reach us on: the bound port with
// the host name when we listen on every interface.
func advertised(addr net.Addr, hostname string) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	if tcp.IP == nil || tcp.IP.IsUnspecified() {
		return net.JoinHostPort(hostname, fmt.Sprint(tcp.Port))
	}
	return tcp.String()
}

// childLogDrain bounds how long hanode, as it exits, waits for its
// children's last lines to be logged.
const childLogDrain = 500 * time.Millisecond

// childLogs are a standalone duty's stdout and stderr (see childLog).
func childLogs(log *zap.Logger, format string) (stdout, stderr *childLog, err error) {
	if stdout, err = newChildLog(log, format, "stdout", os.Stdout); err != nil {
		return nil, nil, err
	}
	if stderr, err = newChildLog(log, format, "stderr", os.Stderr); err != nil {
		stdout.Close(0)
		return nil, nil, err
	}
	return stdout, stderr, nil
}

// newLogger builds the process logger from LOG_LEVEL and LOG_FORMAT, which
// conf has validated. No entry carries a stack trace but a panic's: every
// error hanode logs is a condition of its environment (ZooKeeper away, a
// duty that would not stop), which the message and fields describe, and a
// stack would only bury them.
func newLogger(level, format string) (*zap.Logger, error) {
	log, _, err := newLevelLogger(level, format)
	return log, err
}

// newLevelLogger is newLogger that also returns the level, which a reload
// changes.
func newLevelLogger(level, format string) (*zap.Logger, zap.AtomicLevel, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, zap.AtomicLevel{}, err
	}
	cfg := zap.NewProductionConfig()
	if format == "console" {
		cfg = zap.NewDevelopmentConfig()
		cfg.EncoderConfig.EncodeLevel = zapcore.CapitalLevelEncoder
	}
	atom := zap.NewAtomicLevelAt(lvl)
	cfg.Level = atom
	cfg.Sampling = nil // every state change must be logged
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.EncoderConfig.EncodeDuration = zapcore.StringDurationEncoder // "2.8s", as in /v2/status
	cfg.OutputPaths = []string{"stderr"}
	cfg.DisableStacktrace = true
	log, err := cfg.Build(zap.AddStacktrace(zapcore.DPanicLevel))
	return log, atom, err
}
