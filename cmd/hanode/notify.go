package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"

	"github.com/hanode/hanode/conf"
	"github.com/hanode/hanode/ha"
)

// hanode under systemd as a Type=notify unit (sd_notify(3)):
//
//   - READY=1 once the node has joined its group: its first transition to
//     standby, waiting, fencing or active, never to disconnected (ZooKeeper
//     unreachable at start is not joined). A standalone node is ready when
//     it serves.
//   - STATUS= on every transition: "active in term 7", "standby behind
//     primary-1 (term 7)", ... (systemctl status shows it).
//   - WATCHDOG=1 every half WATCHDOG_USEC, from a ticker that asks the
//     election's own goroutine whether it still goes round its loop
//     (ha.Election.LoopAge): a stuck election stops the pings and systemd
//     restarts the node (WatchdogSec=, as shipped).
//   - STOPPING=1 when a shutdown starts; RELOADING=1, then READY=1, around a
//     SIGHUP reload of a node that is ready.
//
// Without NOTIFY_SOCKET nothing is sent. The variables systemd addresses to
// the main process are kept from every process hanode starts (childEnv).

// notifyVars are the variables systemd gives the unit's main process only;
// secretVars hold the cluster's shared secret (HANODE_CLUSTER_SHARED_SECRET,
// ..._OLD), which no command hanode runs may read.
var (
	notifyVars = []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}
	secretVars = []string{conf.EnvPrefix + conf.KeySecret, conf.EnvPrefix + conf.KeySecretOld, conf.EnvPrefix + conf.KeyAdminToken}
)

// childEnv is os.Environ() without notifyVars and secretVars: a duty
// guard, a duty or a FENCE_CMD must not speak for the unit (a duty that is
// itself a notify daemon would tell systemd it is ready, and
// NotifyAccess=main would log a refusal each time), nor learn the secret
// that guards the ZooKeeper tree.
func childEnv() []string {
	return withoutNotifyVars(os.Environ())
}

func withoutNotifyVars(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(notifyVars, k) && !slices.Contains(secretVars, k) {
			out = append(out, kv)
		}
	}
	return out
}

// unsetNotifyVars removes notifyVars from this process's environment (the
// duty guard, which inherits them from hanode and passes its environment
// to the duty).
func unsetNotifyVars() {
	for _, k := range notifyVars {
		_ = os.Unsetenv(k)
	}
}

// notifier sends this process's state to systemd. Its methods may be
// called from any goroutine.
type notifier struct {
	log *zap.Logger
	// send delivers one message; daemon.SdNotify in production, which
	// reports false without NOTIFY_SOCKET.
	send func(state string) (bool, error)

	mu       sync.Mutex
	ready    bool
	stopping bool
	status   string // the last STATUS sent
	failed   bool   // a send failed (logged once)
}

// newNotifier returns the notifier of `hanode run`.
func newNotifier(log *zap.Logger) *notifier {
	return &notifier{log: log, send: func(state string) (bool, error) { return daemon.SdNotify(false, state) }}
}

// deliver sends one message; n.mu is held.
func (n *notifier) deliver(lines ...string) {
	_, err := n.send(strings.Join(lines, "\n"))
	if err != nil && !n.failed {
		n.failed = true
		n.log.Warn("cannot notify systemd (NOTIFY_SOCKET); later failures are not logged", zap.Error(err))
	}
}

// Status sends STATUS=s, and READY=1 with it the first time that joined
// holds (once ready, a node stays ready until it stops).
func (n *notifier) Status(s string, joined bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.status = s
	if joined && !n.ready && !n.stopping {
		n.ready = true
		n.deliver(daemon.SdNotifyReady, "STATUS="+s)
		return
	}
	n.deliver("STATUS=" + s)
}

// Stopping sends STOPPING=1 once: a shutdown has started.
func (n *notifier) Stopping() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopping {
		return
	}
	n.stopping = true
	n.status = "stopping: stopping the duty and leaving the group"
	n.deliver(daemon.SdNotifyStopping, "STATUS="+n.status)
}

// Reloading brackets a configuration reload: it sends RELOADING=1 and
// returns the function that sends READY=1 again, with the status before
// the reload. A node that is not ready yet, or stopping, sends neither:
// READY=1 after the reload would announce it too early.
func (n *notifier) Reloading() (done func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.ready || n.stopping {
		return func() {}
	}
	// MONOTONIC_USEC lets systemd tell this reload from an earlier one.
	n.deliver(daemon.SdNotifyReloading, strings.TrimSuffix(daemon.SdNotifyMonotonicUsec(), "\n"), "STATUS=reloading the configuration")
	return func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if !n.stopping {
			n.deliver(daemon.SdNotifyReady, "STATUS="+n.status)
		}
	}
}

// Watchdog sends WATCHDOG=1 every interval/2 until ctx ends, each time that
// alive says the process still does its work; while it does not, the pings
// stop (logged once per stall), and systemd restarts the unit interval
// after the last one. interval 0 (no WATCHDOG_USEC) returns at once.
func (n *notifier) Watchdog(ctx context.Context, interval time.Duration, alive func() (bool, string)) {
	if interval <= 0 {
		return
	}
	tick := time.NewTicker(interval / 2)
	defer tick.Stop()
	stalled := false
	for {
		ok, why := alive()
		switch {
		case ok:
			if stalled {
				n.log.Info("watchdog pings resume", zap.String("detail", why))
				stalled = false
			}
			n.mu.Lock()
			n.deliver(daemon.SdNotifyWatchdog)
			n.mu.Unlock()
		case !stalled:
			stalled = true
			n.log.Error("watchdog pings withheld: systemd restarts hanode if this lasts", zap.String("detail", why),
				zap.Duration("watchdog", interval))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// watchdogInterval is WATCHDOG_USEC when systemd set it for this process,
// 0 when it did not (no watchdog, or one meant for another process).
func watchdogInterval(log *zap.Logger) time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("ignoring the watchdog settings systemd passed", zap.Error(err))
		return 0
	}
	return d
}

// electionAlive is the watchdog's question to an election: has its
// goroutine gone round its loop within limit? Before Run starts the answer
// is yes (start-up is bounded by the unit's TimeoutStartSec, not by the
// watchdog).
func electionAlive(el *ha.Election, limit time.Duration) func() (bool, string) {
	return func() (bool, string) {
		age, ok := el.LoopAge()
		if !ok {
			return true, "election not started yet"
		}
		detail := fmt.Sprintf("the election loop last turned %s ago (limit %s)", age.Round(time.Millisecond), limit)
		return age <= limit, detail
	}
}

// joined reports whether a node in phase p is a member of its group.
func joined(p ha.Phase) bool {
	switch p {
	case ha.PhaseStandby, ha.PhaseWaiting, ha.PhaseFencing, ha.PhaseActive:
		return true
	}
	return false
}

// statusLine is the unit's STATUS= for a node in phase p; term and leader
// are the group's as the node knows them (0 and "" when unknown), reason
// why it is in p.
func statusLine(p ha.Phase, term int64, leader, reason string) string {
	switch p {
	case ha.PhaseActive:
		return fmt.Sprintf("active in term %d", term)
	case ha.PhaseStandby:
		if leader != "" {
			return fmt.Sprintf("standby behind %s (term %d)", leader, term)
		}
		return "standby, no leader known: " + reason
	case ha.PhaseWaiting:
		return "waiting: next in line, proving the previous lease ended (" + reason + ")"
	case ha.PhaseFencing:
		return fmt.Sprintf("fencing the previous leader before term %d", term)
	case ha.PhaseStopped:
		return "stopped: " + reason
	}
	return fmt.Sprintf("%s: %s", p, reason)
}

// follow reports each transition of feed to systemd until the feed
// closes or the node stops, and between transitions, every refresh, what state says when
// its line changed: a standby learns its leader, or a new term, without a
// transition of its own.
func (n *notifier) follow(feed <-chan ha.Transition, state func() ha.State, refresh time.Duration) {
	tick := time.NewTicker(refresh)
	defer tick.Stop()
	last := ""
	for {
		var phase ha.Phase
		var reason string
		select {
		case t, ok := <-feed:
			if !ok {
				return
			}
			phase, reason = t.To, t.Reason
		case <-tick.C:
			st := state()
			phase, reason = st.Phase, st.Reason
		}
		st := state()
		line := statusLine(phase, st.Term, st.Leader, reason)
		if line == last {
			continue
		}
		last = line
		n.Status(line, joined(phase))
		if phase == ha.PhaseStopped {
			return // the last word: run waits for it before it unsubscribes
		}
	}
}
