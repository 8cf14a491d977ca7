package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hanode/hanode/conf"
	"github.com/hanode/hanode/ha"
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
			return run(cmd.Context(), cfg)
		},
	}
	addConfigFlags(cmd.Flags())
	addDebugFlags(cmd)
	return cmd
}

// run wires the parts: listener first (a busy port fails before anything
// joins the group), then the duty supervisor, then the elector or the
// standalone state, with the ping server reading state from either.
func run(ctx context.Context, cfg *conf.Config) error {
	log, err := newLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	log = log.With(zap.String("name", cfg.Name))
	ctx, stopSignals := notifySignals(ctx, log)
	defer stopSignals()

	ln, err := ping.Listen(ctx, cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("listen %s (HTTP_LISTEN): %w", cfg.HTTPListen, err)
	}
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
	if !cfg.HA() {
		duty := roles.NewSupervisor(roles.SupervisorConfig{
			Command: cfg.ActiveCmd, StopTimeout: cfg.ActiveStopTimeout,
			Name: cfg.Name, Role: cfg.Role, HAID: cfg.HAID,
			Env: os.Environ(), Logger: log.Named("duty"),
		})
		return runStandalone(ctx, log, ln, id, duty)
	}

	// One ZooKeeper session for the process: it reserves the server name
	// and carries the election (and, later, every other user of ZooKeeper).
	started := time.Now().UTC()
	sess, err := ha.OpenSession(ha.SessionConfig{
		Servers: cfg.ZKServers(), Root: cfg.ZKChroot() + cfg.ZKRoot, Timeout: cfg.ZKSessionTimeout,
		Name: cfg.Name, Host: host, PID: os.Getpid(), Started: started, Logger: log,
	})
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer sess.Close()

	// In a group the duty runs under a guard process that holds its own copy
	// of the lease: it stops the duty even if this process freezes or dies.
	var el *ha.Election
	duty := noDuty
	if cfg.ActiveCmd != "" {
		guard := roles.NewGuard(roles.GuardConfig{
			// The very binary running now, even after an upgrade replaced the
			// file: a replacement guard speaks this coordinator's protocol.
			Path:        "/proc/self/exe",
			Args:        guardArgs(cfg.ActiveCmd, cfg.ActiveStopTimeout, cfg.Name, cfg.Role, cfg.HAID, cfg.LogLevel, cfg.LogFormat),
			StopTimeout: cfg.ActiveStopTimeout + roles.KillGrace + time.Second,
			// Called only after Start, by which time el is set.
			OnDutyLost: func(term int64, reason string) { el.DutyLost(term, reason) },
			Logger:     log.Named("duty"),
		})
		if err := guard.Ready(); err != nil {
			_ = ln.Close()
			return err
		}
		defer func() { _ = guard.Close() }()
		duty = guard
	}
	var fence func(context.Context, ha.FenceRequest) error
	if cfg.FenceCmd != "" {
		fc := roles.FenceConfig{Command: cfg.FenceCmd, Timeout: cfg.FenceTimeout,
			Name: cfg.Name, Role: cfg.Role, HAID: cfg.HAID, Env: os.Environ()}
		fence = func(ctx context.Context, req ha.FenceRequest) error {
			p := req.Previous
			prev := roles.Previous{Name: p.Name, Host: p.Host, HTTP: p.HTTP, Term: p.Term, Known: req.PreviousKnown}
			for _, m := range req.Candidates {
				prev.Candidates = append(prev.Candidates, roles.Candidate{Name: m.Name, Host: m.Host, HTTP: m.HTTP, Term: m.Term})
			}
			return roles.Fence(ctx, fc, req.Term, prev)
		}
	}
	el, err = ha.NewElection(sess, ha.ElectionConfig{
		Group: cfg.HAID, Role: cfg.Role, Region: cfg.Region, HTTP: httpAddr,
		Margin: cfg.LeaseMargin,
		Logger: log,
		Callbacks: ha.Callbacks{
			OnStartedLeading: func(_ context.Context, term int64) { duty.Start(term) },
			OnStoppedLeading: func(reason string) {
				if err := duty.Stop(reason); err != nil {
					log.Error("duty did not stop", zap.Error(err))
				}
			},
			OnLeaseExtended: duty.ExtendUntil,
			Fence:           fence,
		},
	})
	if err != nil {
		_ = ln.Close()
		return err
	}
	srvDone := make(chan error, 1)
	srvCtx, stopSrv := context.WithCancel(context.Background())
	go func() { srvDone <- ping.Serve(srvCtx, ln, ping.New(id, el, log.Named("http")), log.Named("http")) }()

	// The election stops the duty and leaves the group before it returns;
	// the HTTP server goes last so balancers see "standby", not a refused
	// port, while the member leaves.
	runErr := el.Run(ctx)
	stopSrv()
	if err := <-srvDone; err != nil && runErr == nil {
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
}

// noDuty stands in when there is no ACTIVE_CMD.
var noDuty leaseDuty = nopDuty{}

type nopDuty struct{}

func (nopDuty) Start(int64)           {}
func (nopDuty) Stop(string) error     { return nil }
func (nopDuty) ExtendUntil(time.Time) {}

// runStandalone serves a node with no HA group: always active, duty always on.
func runStandalone(ctx context.Context, log *zap.Logger, ln net.Listener, id ping.Identity, duty *roles.Supervisor) error {
	log.Info("state change", zap.String("from", string(ha.PhaseStarting)), zap.String("to", string(ha.PhaseActive)),
		zap.Int64("term", 0), zap.String("reason", "standalone: no HA_ID"))
	state := ha.Standalone(time.Now().UTC(), "standalone: no HA_ID")
	duty.Start(0)
	err := ping.Serve(ctx, ln, ping.New(id, state, log.Named("http")), log.Named("http"))
	if serr := duty.Stop("shutdown"); serr != nil {
		log.Error("duty did not stop", zap.Error(serr))
	}
	log.Info("hanode stopped", zap.Error(err))
	return err
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

// newLogger builds the process logger from LOG_LEVEL and LOG_FORMAT, which
// conf has validated.
func newLogger(level, format string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	cfg := zap.NewProductionConfig()
	if format == "console" {
		cfg = zap.NewDevelopmentConfig()
		cfg.EncoderConfig.EncodeLevel = zapcore.CapitalLevelEncoder
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Sampling = nil // every state change must be logged
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.EncoderConfig.EncodeDuration = zapcore.StringDurationEncoder // "2.8s", as in /v2/status
	cfg.OutputPaths = []string{"stderr"}
	return cfg.Build()
}
