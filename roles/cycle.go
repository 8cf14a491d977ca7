package roles

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
)

// CycleConfig configures CYCLE_CMD, run on every node of the cluster once
// for each polling cycle it sees (ha.Cycle).
type CycleConfig struct {
	Command          string // run via /bin/sh -c; empty = none
	Name, Role, HAID string
	Env              []string  // base environment (os.Environ() in production)
	Output           io.Writer // the command's stdout and stderr (nil = os.Stderr)
	// Jailer keeps every process a run starts together, so that none
	// outlives it (nil: its process group only).
	Jailer *Jailer
	Logger *zap.Logger
}

// CycleRunner runs CYCLE_CMD once for each cycle it is told of, one run at
// a time. A cycle that arrives while a run is going waits for it; a newer
// one replaces a cycle still waiting, which is then never run (logged):
// at most one run and one waiting cycle, whatever the command does, and a
// cycle is never run twice, nor one older than a cycle already run. Each
// run sees HANODE_NAME, HANODE_ROLE, HANODE_HA_ID, HANODE_CYCLE (the
// number) and HANODE_CYCLE_STARTED (RFC 3339, UTC, the advancer's clock).
// When the shell exits, whatever it left running in its jail is killed: a
// run is over when its shell is (start long-lived work through a service
// manager).
type CycleRunner struct {
	cfg CycleConfig
	log *zap.Logger

	mu      sync.Mutex
	pending *cycleRun // the cycle waiting for the current run to end
	last    int64     // the highest cycle handed to a run
	wake    chan struct{}

	ctx    context.Context // ends every run (Close)
	cancel context.CancelFunc
	done   chan struct{}
}

type cycleRun struct {
	n        int64
	started  time.Time
	received time.Time
}

// NewCycleRunner starts the runner's goroutine; Close ends it.
func NewCycleRunner(cfg CycleConfig) *CycleRunner {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &CycleRunner{cfg: cfg, log: log, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go r.loop()
	return r
}

// Cycle asks for a run for cycle n, started at started. It never blocks.
func (r *CycleRunner) Cycle(n int64, started time.Time) {
	if r.cfg.Command == "" {
		return
	}
	r.mu.Lock()
	if n <= r.last || r.pending != nil && n <= r.pending.n {
		r.mu.Unlock()
		return // seen already: never twice
	}
	if p := r.pending; p != nil {
		r.log.Warn("CYCLE_CMD not run for a cycle: the previous run was still going when a newer cycle came",
			zap.Int64("cycle", p.n), zap.Int64("newer", n))
	}
	r.pending = &cycleRun{n: n, started: started, received: time.Now()}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Close kills a run still going (its whole jail) and waits for the runner
// to end.
func (r *CycleRunner) Close() {
	r.cancel()
	<-r.done
}

func (r *CycleRunner) loop() {
	defer close(r.done)
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.wake:
		}
		for {
			r.mu.Lock()
			p := r.pending
			r.pending = nil
			if p != nil {
				r.last = p.n
			}
			r.mu.Unlock()
			if p == nil || r.ctx.Err() != nil {
				break
			}
			r.run(p)
		}
	}
}

// run runs the command for one cycle and logs how it went.
func (r *CycleRunner) run(c *cycleRun) {
	fields := []zap.Field{zap.Int64("cycle", c.n), zap.Time("started", c.started)}
	if late := time.Since(c.received); late > 10*time.Millisecond {
		fields = append(fields, zap.Duration("waited", late)) // behind a previous run
	}
	r.log.Info("CYCLE_CMD started", fields...)
	begun := time.Now()
	err := runCycleCmd(r.ctx, r.cfg, c.n, c.started)
	fields = append(fields[:2], zap.Duration("took", time.Since(begun)))
	if err != nil {
		r.log.Warn("CYCLE_CMD failed", append(fields, zap.Error(err))...)
		return
	}
	r.log.Info("CYCLE_CMD done", fields...)
}

// cycleEnv is what a run adds to the command's environment.
func cycleEnv(cfg CycleConfig, n int64, started time.Time) []string {
	return []string{"HANODE_NAME=" + cfg.Name, "HANODE_ROLE=" + cfg.Role, "HANODE_HA_ID=" + cfg.HAID,
		"HANODE_CYCLE=" + strconv.FormatInt(n, 10), "HANODE_CYCLE_STARTED=" + started.UTC().Format(time.RFC3339Nano)}
}

// runCycleCmd runs the command once, in its own process group (and jail),
// killed whole when ctx ends; it returns once nothing of it runs.
func runCycleCmd(ctx context.Context, cfg CycleConfig, n int64, started time.Time) error {
	out := cfg.Output
	if out == nil {
		out = os.Stderr
	}
	cmd := exec.Command("/bin/sh", "-c", cfg.Command)
	cmd.Env = setEnv(cfg.Env, cycleEnv(cfg, n, started)...)
	cmd.Stdout, cmd.Stderr = out, out
	err, killErr := runOnce(ctx, cmd, cfg.Jailer)
	switch {
	case killErr != nil:
		return fmt.Errorf("roles: CYCLE_CMD left processes that could not be killed: %w", killErr)
	case ctx.Err() != nil:
		return errors.New("roles: CYCLE_CMD killed: hanode is stopping")
	case err != nil:
		return fmt.Errorf("roles: CYCLE_CMD: %w", err)
	}
	return nil
}
