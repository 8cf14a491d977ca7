package main

import (
	"context"
	"os"

	"go.uber.org/zap"

	"github.com/hanode/hanode/conf"
	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/roles"
)

// nodeCycle is this node's part in the cluster-wide polling cycle: it
// follows ZK_ROOT/cycle, advances it while it leads a primary group with
// POLL_INTERVAL, and runs CYCLE_CMD for each new cycle.
type nodeCycle struct {
	cyc    *ha.Cycle
	runner *roles.CycleRunner // nil without CYCLE_CMD
	output *childLog
	cancel context.CancelFunc
	done   chan struct{}
}

// newNodeCycle makes the node's cycle on sess; el advances it only when
// ROLE includes primary and POLL_INTERVAL is set.
func newNodeCycle(cfg *conf.Config, sess *ha.Session, el *ha.Election, jailer *roles.Jailer, log *zap.Logger) (*nodeCycle, error) {
	log = log.Named("cycle")
	n := &nodeCycle{done: make(chan struct{})}
	if cfg.CycleCmd != "" {
		out, err := newChildLog(log, cfg.LogFormat, "output", os.Stderr)
		if err != nil {
			return nil, err
		}
		n.output = out
		n.runner = roles.NewCycleRunner(roles.CycleConfig{Command: cfg.CycleCmd, Name: cfg.Name, Role: cfg.Role, HAID: cfg.HAID,
			Env: childEnv(), Output: out.w, Jailer: jailer, Logger: log})
	}
	cc := ha.CycleConfig{Logger: log}
	if cfg.PollInterval > 0 && cfg.PrimaryRole() {
		cc.Interval, cc.Election = cfg.PollInterval, el
	}
	if n.runner != nil {
		cc.OnCycle = func(c ha.CycleInfo, _ int64) { n.runner.Cycle(c.N, c.Started) }
	}
	cyc, err := ha.NewCycle(sess, cc)
	if err != nil {
		n.close()
		return nil, err
	}
	n.cyc = cyc
	return n, nil
}

// start follows the cycle until stop.
func (n *nodeCycle) start() {
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() {
		defer close(n.done)
		_ = n.cyc.Run(ctx)
	}()
}

// stop ends the watch, and kills a CYCLE_CMD still running.
func (n *nodeCycle) stop() {
	if n.cancel != nil {
		n.cancel()
		<-n.done
	}
	n.close()
}

func (n *nodeCycle) close() {
	if n.runner != nil {
		n.runner.Close()
	}
	if n.output != nil {
		n.output.Close(childLogDrain)
	}
}

// withCycle adds the cycle to the state /v2/status shows.
type withCycle struct {
	src ha.StateReader
	cyc *ha.Cycle
}

func (w withCycle) State() ha.State {
	st := w.src.State()
	st.Cycle = w.cyc.Snapshot()
	return st
}
