package roles

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// KillGrace bounds the last phase of stopping a duty. After the shell has
// exited (on SIGTERM, or on the SIGKILL sent StopTimeout later) the supervisor
// SIGKILLs the rest of its process group and waits at most KillGrace for the
// shell to be reaped and the group to hold no live process. Stop therefore
// returns within StopTimeout+KillGrace. Safety needs only the first part
// inside the lease margin: by StopTimeout every process of the group has
// been sent SIGKILL; KillGrace is the time allowed to confirm it.
const KillGrace = 500 * time.Millisecond

// Backoff defaults for SupervisorConfig.
const (
	DefaultMinBackoff = 200 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
)

// SupervisorConfig configures the active duty.
type SupervisorConfig struct {
	// Command is run via /bin/sh -c. Empty means no duty: Start and Stop
	// only log at debug level.
	Command string
	// StopTimeout is how long Stop waits after SIGTERM to the process group
	// before it sends SIGKILL. Zero sends SIGKILL right after SIGTERM.
	StopTimeout time.Duration
	// Name, Role and HAID reach the duty as HANODE_NAME, HANODE_ROLE and
	// HANODE_HA_ID.
	Name, Role, HAID string
	// Env is the base environment; nil means os.Environ() at NewSupervisor.
	// HANODE_NAME, HANODE_ROLE, HANODE_HA_ID and HANODE_TERM are replaced.
	Env []string
	// Stdout and Stderr receive the duty's output; nil means os.Stdout and
	// os.Stderr. An *os.File is handed to the duty directly.
	Stdout, Stderr io.Writer
	// MinBackoff and MaxBackoff pace restarts of a duty that exits while it
	// is still wanted: the first restart waits MinBackoff (default 200ms),
	// each next one twice as long, at most MaxBackoff (default 10s). The
	// backoff goes back to MinBackoff after a run of at least MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives the duty's lifecycle; nil means no logging.
	Logger *zap.Logger
	// OnStart, when set, runs each time a duty process has started (restarts
	// included) with its term and its process group ID, on the supervisor's
	// goroutine before it does anything else: it must not block.
	OnStart func(term int64, pgid int)
	// OnExit, when set, runs each time the duty ended on its own while it
	// was wanted (its exit, or for Forking its daemon gone), with how it
	// ended. Same rules as OnStart.
	OnExit func(term int64, exit string)
	// OnGiveUp, when set, runs once when the duty of term failed more than
	// MaxRestarts times within RestartWindow: the supervisor stops
	// restarting it (until Stop, or a Start with another term). Same rules
	// as OnStart.
	OnGiveUp func(term int64, reason string)
	// MaxRestarts bounds the restarts within RestartWindow (0: no bound).
	MaxRestarts   int
	RestartWindow time.Duration
	// Jailer keeps every process of a run together (see jail.go); nil keeps
	// only the shell's process group, which a process can leave.
	Jailer *Jailer
	// RestartGrace ends a crash streak: an exit after a run at least this
	// long starts a new one (DutyStatus.DownSince).
	RestartGrace time.Duration
	// Forking says the command starts a daemon and exits 0 (systemd's
	// Type=forking): the duty is then whatever runs in its jail, and it has
	// ended when the jail is empty. It needs a Jailer that is not
	// ContainNone.
	Forking bool
	// Once runs the command once per Start (a scheduled job's run): its
	// exit ends the run, is reported to OnExit, and is not restarted.
	Once bool
	// Exit, for ServeGuard only: the release of the lease for a
	// coordinator that provably exited (nil: never).
	Exit *GuardExit
}

// The duty states of DutyStatus.State.
const (
	DutyRunning    = "running"    // a duty process runs
	DutyRestarting = "restarting" // it ended on its own; a restart is due
	DutyStopped    = "stopped"    // not wanted (no Start, or stopped)
	DutyFailed     = "failed"     // it failed MaxRestarts times in RestartWindow: not restarted
)

// DutyStatus is a snapshot of the duty.
type DutyStatus struct {
	State    string // DutyRunning, DutyRestarting, DutyStopped or DutyFailed
	Running  bool   // a duty process runs now
	PID      int    // its process ID, which is also its process group ID; 0 when none
	Term     int64  // term of the current activation (between Start and Stop); 0 when stopped
	Restarts int    // restarts in this term after the duty exited on its own
	LastExit string // how the latest duty process ended ("exit status 3", "signal: killed"); kept across Stop
	// LastExitAt is when the duty last ended on its own (zero: never).
	LastExitAt time.Time
	// RunningSince and DownSince are as in DutyReport (crash streaks, with
	// SupervisorConfig.RestartGrace).
	RunningSince, DownSince time.Time
}

// Supervisor runs the active duty while this node leads.
//
// Between Start and Stop one owner goroutine forks the duty's shell, restarts
// it when it exits, and stops it. The shell leads its own process group;
// stopping signals the whole group, and a duty that exits on its own has its
// leftover group members killed before it is restarted, so two runs never
// overlap.
//
// Each shell gets Pdeathsig SIGKILL, so a killed hanode takes the shell with
// it (not its children, which Pdeathsig cannot reach). Pdeathsig fires when
// the forking thread ends, so the owner goroutine locks its OS thread for its
// whole life and never unlocks: the runtime ends that thread when the owner
// returns, by which time its children are gone.
type Supervisor struct {
	cfg SupervisorConfig
	log *zap.Logger

	mu  sync.Mutex  // serializes Start and Stop; held for all of Stop
	act *activation // the current owner, nil when stopped; guarded by mu
	// leftover is a stopped activation's stuck run, handed to the next
	// one; guarded by mu.
	leftover *proc

	status atomic.Pointer[DutyStatus] // stored only by the current owner
}

// NewSupervisor fills in defaults; it starts nothing.
func NewSupervisor(cfg SupervisorConfig) *Supervisor {
	if cfg.StopTimeout < 0 {
		cfg.StopTimeout = 0
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	s := &Supervisor{cfg: cfg, log: log}
	s.status.Store(&DutyStatus{State: DutyStopped})
	return s
}

// Start begins running the duty for term and returns without waiting for it.
// If the duty is already active for term, Start does nothing; for another
// term the owner stops the old duty (bounded like Stop) and starts a new one
// with the new HANODE_TERM. Start waits only for a Stop running concurrently.
func (s *Supervisor) Start(term int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.Command == "" {
		s.log.Debug("duty not configured", zap.String("action", "start"), zap.Int64("term", term))
		return
	}
	if s.act != nil {
		s.act.retarget(term)
		return
	}
	a := &activation{
		s:        s,
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		wantTerm: term,
		term:     term,
		stuck:    s.leftover,
	}
	s.leftover = nil
	s.act = a
	go a.run()
}

// Stop ends the duty and any pending restart. It blocks until the duty's
// whole process group is gone, at most StopTimeout+KillGrace. It is safe to
// call when nothing runs and concurrently with Start. The error reports a
// group that could not be confirmed gone.
func (s *Supervisor) Stop(reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.Command == "" {
		s.log.Debug("duty not configured", zap.String("action", "stop"), zap.String("reason", reason))
		return nil
	}
	a := s.act
	if a == nil {
		s.log.Debug("duty not running", zap.String("reason", reason))
		return nil
	}
	s.act = nil
	a.requestStop(reason, false)
	<-a.done
	s.leftover = a.stuck
	return a.err
}

// Kill stops the duty as Stop does, but sends SIGKILL at once: for a lease
// that may already have ended in real time (the monotonic clock stalled),
// where a graceful stop would run past the lease bound.
func (s *Supervisor) Kill(reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.act
	if s.cfg.Command == "" || a == nil {
		return nil
	}
	s.act = nil
	a.requestStop(reason, true)
	<-a.done
	s.leftover = a.stuck
	return a.err
}

// Configured reports whether there is a duty to run (Command set).
func (s *Supervisor) Configured() bool { return s.cfg.Command != "" }

// Status reports what runs now.
func (s *Supervisor) Status() DutyStatus {
	if st := s.status.Load(); st != nil {
		return *st
	}
	return DutyStatus{}
}

// activation is one Start..Stop span, run by one owner goroutine.
type activation struct {
	s    *Supervisor
	kick chan struct{} // capacity 1: read the wanted state again
	done chan struct{} // closed when run returns
	err  error         // the final stop's error; written before done closes

	mu       sync.Mutex // guards the wanted state
	wantTerm int64
	stopping bool
	kill     bool // the stop sends SIGKILL at once (Kill)
	reason   string

	// Owned by run.
	term     int64
	child    *proc
	restarts int
	backoff  time.Duration
	retry    *time.Timer // pending restart, nil if none
	lastExit string
	exitAt   time.Time
	exits    []time.Time // own exits within RestartWindow
	runSince time.Time   // the current run's start
	downAt   time.Time   // the first exit of the current crash streak
	failed   bool        // gave up on this term (MaxRestarts)
	// stuck is a run whose jail could not be confirmed empty (a process
	// stuck in the kernel ignores SIGKILL until it leaves it): nothing new
	// starts, and no stop is confirmed, until it is gone.
	stuck *proc
}

func (a *activation) retarget(term int64) {
	a.mu.Lock()
	changed := a.wantTerm != term
	a.wantTerm = term
	a.mu.Unlock()
	if !changed {
		a.s.log.Debug("duty already active", zap.Int64("term", term))
		return
	}
	a.poke()
}

func (a *activation) requestStop(reason string, kill bool) {
	a.mu.Lock()
	a.stopping, a.reason, a.kill = true, reason, kill
	a.mu.Unlock()
	a.poke()
}

func (a *activation) poke() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *activation) wanted() (term int64, stopping bool, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.wantTerm, a.stopping, a.reason
}

func (a *activation) run() {
	runtime.LockOSThread() // never unlocked; see Supervisor
	defer close(a.done)
	prev := a.s.Status()
	a.lastExit, a.exitAt = prev.LastExit, prev.LastExitAt
	a.backoff = a.s.cfg.MinBackoff
	poll := time.NewTicker(daemonPoll)
	defer poll.Stop()
	launch := true
	for {
		term, stopping, reason := a.wanted()
		if stopping {
			a.mu.Lock()
			kill := a.kill
			a.mu.Unlock()
			grace := a.s.cfg.StopTimeout
			if kill {
				grace = 0
			}
			a.err = a.endWithin(reason, grace)
			a.s.status.Store(&DutyStatus{State: DutyStopped, LastExit: a.lastExit, LastExitAt: a.exitAt})
			return
		}
		if term != a.term {
			_ = a.end(fmt.Sprintf("new term %d", term)) // logged by end
			a.term, a.restarts, a.backoff = term, 0, a.s.cfg.MinBackoff
			a.exits, a.failed = nil, false
			a.runSince, a.downAt = time.Time{}, time.Time{}
			launch = true
			continue // a Stop may have come in meanwhile
		}
		if launch {
			launch = false
			a.launch()
		}
		var exited <-chan struct{}
		var daemon, stuck <-chan time.Time
		switch c := a.child; {
		case c != nil && !c.daemon:
			exited = c.exited
		case c != nil:
			daemon = poll.C
		case a.stuck != nil:
			stuck = poll.C
		}
		var retry <-chan time.Time
		if a.retry != nil {
			retry = a.retry.C
		}
		select {
		case <-a.kick:
		case <-exited:
			a.childExited()
		case <-daemon:
			if !a.child.jailOf().alive(a.child.pid) {
				a.childExited()
			}
		case <-stuck:
			if a.unstick() == nil {
				a.exited()
				a.publish()
			}
		case <-retry:
			a.retry = nil
			a.restarts++
			launch = true
		}
	}
}

// daemonPoll is how often a forking duty's jail is checked for life.
const daemonPoll = 50 * time.Millisecond

func (a *activation) publish() {
	st := DutyStatus{State: DutyRestarting, Term: a.term, Restarts: a.restarts, LastExit: a.lastExit, LastExitAt: a.exitAt,
		RunningSince: a.runSince, DownSince: a.downAt}
	switch {
	case a.child != nil:
		st.State, st.Running, st.PID = DutyRunning, true, a.child.pid
	case a.failed:
		st.State = DutyFailed
	case a.s.cfg.Once:
		st.State = DutyStopped // the run ended; nothing is restarted
	}
	a.s.status.Store(&st)
}

func (a *activation) launch() {
	cfg := a.s.cfg
	if err := a.unstick(); err != nil {
		a.s.log.Error("duty not started: processes of an earlier run are still alive", zap.Int64("term", a.term), zap.Error(err))
		a.scheduleRestart()
		a.publish()
		return
	}
	cmd := exec.Command("/bin/sh", "-c", cfg.Command)
	cmd.Env = dutyEnv(cfg, a.term)
	cmd.Stdout, cmd.Stderr = cfg.Stdout, cfg.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Bounds how long Wait copies output that an escaped process keeps open.
	cmd.WaitDelay = KillGrace / 2
	jl, err := cfg.Jailer.start(cmd)
	if err != nil {
		a.s.log.Error("duty start failed", zap.Int64("term", a.term), zap.Error(err))
		a.lastExit, a.exitAt = "start failed: "+err.Error(), time.Now()
		a.exited()
		a.publish()
		return
	}
	p := &proc{
		cmd:     cmd,
		pid:     cmd.Process.Pid,
		term:    a.term,
		started: time.Now(),
		jail:    jl,
		exited:  make(chan struct{}),
		reap:    make(chan struct{}),
		reaped:  make(chan struct{}),
	}
	a.child = p
	a.runSince = p.started
	go p.wait()
	a.s.log.Info("duty started", zap.Int("pid", p.pid), zap.Int64("term", p.term), zap.String("jail", jl.describe()))
	if cfg.OnStart != nil {
		cfg.OnStart(p.term, p.pid)
	}
	a.publish()
}

// childExited handles the end of the duty while it is wanted: its shell
// exited (or, for a forking duty, its jail emptied). A forking duty's
// starter that exits 0 leaving a live jail has started its daemon: the
// duty runs on.
func (a *activation) childExited() {
	p := a.child
	if a.s.cfg.Forking && !p.daemon && p.jailOf().alive(p.pid) && startedOK(p) {
		p.daemon = true
		a.s.log.Info("duty's starter exited 0; its daemon runs", zap.Int("pid", p.pid), zap.Int64("term", p.term))
		return
	}
	a.child = nil
	exit, err := finish(p, time.Now().Add(KillGrace))
	if err != nil {
		a.stuck = p
		a.lastExit, a.exitAt = exit, time.Now()
		a.s.log.Error("duty exited, but processes of it could not be killed; nothing starts until they are gone",
			zap.Int("pid", p.pid), zap.Int64("term", p.term), zap.Error(err))
		if a.downAt.IsZero() {
			a.downAt = a.exitAt
		}
		a.publish()
		return
	}
	end := p.exitedAt
	if p.daemon {
		exit, end = "daemon exited (starter: "+exit+")", time.Now()
	}
	ran := end.Sub(p.started)
	a.lastExit, a.exitAt = exit, time.Now()
	if a.downAt.IsZero() || ran >= a.s.cfg.RestartGrace {
		a.downAt = a.exitAt
	}
	a.s.log.Warn("duty exited", zap.Int("pid", p.pid), zap.Int64("term", p.term), zap.String("exit", exit), zap.Duration("ran", ran))
	if ran >= a.s.cfg.MaxBackoff {
		a.backoff = a.s.cfg.MinBackoff
	}
	if f := a.s.cfg.OnExit; f != nil {
		f(p.term, exit)
	}
	a.exited()
	a.publish()
}

// unstick tries again to end a stuck run; nil once it is gone (or there
// was none).
func (a *activation) unstick() error {
	p := a.stuck
	if p == nil {
		return nil
	}
	exit, err := finish(p, time.Now().Add(KillGrace))
	if err != nil {
		return err
	}
	a.stuck = nil
	a.s.log.Warn("the duty's leftover processes are gone", zap.Int("pid", p.pid), zap.Int64("term", p.term), zap.String("exit", exit))
	return nil
}

// startedOK reports whether p's shell exited with status 0 (checked without
// reaping it: its pid keeps its group reserved).
func startedOK(p *proc) bool {
	code, status, ok := peekExit(p.pid)
	return ok && code == cldExited && status == 0
}

// exited counts an own exit of the duty and schedules its restart, or gives
// up when it failed more than MaxRestarts times within RestartWindow.
func (a *activation) exited() {
	cfg := a.s.cfg
	if cfg.Once {
		a.s.log.Info("run ended; a run-once command is not restarted", zap.Int64("term", a.term), zap.String("exit", a.lastExit))
		return
	}
	now := time.Now()
	if cfg.MaxRestarts > 0 {
		a.exits = append(a.exits, now)
		for len(a.exits) > 0 && now.Sub(a.exits[0]) > cfg.RestartWindow {
			a.exits = a.exits[1:]
		}
		if len(a.exits) > cfg.MaxRestarts {
			a.failed = true
			reason := fmt.Sprintf("the duty ended %d times within %s (ACTIVE_MAX_RESTARTS=%d); last: %s",
				len(a.exits), cfg.RestartWindow, cfg.MaxRestarts, a.lastExit)
			a.s.log.Error("duty failed; not restarting it", zap.Int64("term", a.term), zap.String("reason", reason))
			a.publish() // before OnGiveUp: whoever it tells sees the failure
			if f := cfg.OnGiveUp; f != nil {
				f(a.term, reason)
			}
			return
		}
	}
	a.scheduleRestart()
}

func (a *activation) scheduleRestart() {
	in := a.backoff
	a.backoff = min(2*a.backoff, a.s.cfg.MaxBackoff)
	a.retry = time.NewTimer(in)
	a.s.log.Info("duty restart scheduled", zap.Duration("in", in), zap.Int64("term", a.term), zap.Int("restarts", a.restarts))
}

// end cancels a pending restart and stops the child, if any.
func (a *activation) end(reason string) error { return a.endWithin(reason, a.s.cfg.StopTimeout) }

// endWithin is end with SIGKILL grace after SIGTERM (0: SIGKILL at once).
func (a *activation) endWithin(reason string, grace time.Duration) error {
	if a.retry != nil {
		a.retry.Stop()
		a.retry = nil
		a.s.log.Info("duty restart cancelled", zap.Int64("term", a.term), zap.String("reason", reason))
	}
	stuckErr := a.unstick()
	if a.child == nil {
		return stuckErr
	}
	p := a.child
	a.child = nil
	defer a.publish()
	log := a.s.log.With(zap.Int("pid", p.pid), zap.Int64("term", p.term), zap.String("reason", reason))
	begin := time.Now()
	log.Info("duty stopping")
	jl := p.jailOf()
	if grace > 0 {
		if err := jl.signal(p.pid, syscall.SIGTERM); err != nil {
			log.Warn("duty signal failed", zap.String("signal", "SIGTERM"), zap.Error(err))
		}
	}
	if !a.graceful(p, grace) {
		if err := jl.signal(p.pid, syscall.SIGKILL); err != nil {
			log.Warn("duty signal failed", zap.String("signal", "SIGKILL"), zap.Error(err))
		}
	}
	exit, err := finish(p, time.Now().Add(KillGrace))
	a.lastExit = exit
	if err != nil {
		if a.stuck == nil {
			a.stuck = p // tried again by the next stop or start
		}
		log.Error("duty not confirmed stopped", zap.Duration("took", time.Since(begin)), zap.String("exit", exit), zap.Error(err))
		return errors.Join(stuckErr, err)
	}
	log.Info("duty stopped", zap.Duration("took", time.Since(begin)), zap.String("exit", exit))
	return stuckErr
}

// graceful waits at most grace for p to end after SIGTERM: its shell, or
// for a forking duty's daemon its whole jail.
func (a *activation) graceful(p *proc, grace time.Duration) bool {
	timer := time.NewTimer(grace)
	defer timer.Stop()
	if !p.daemon {
		select {
		case <-p.exited:
			return true
		case <-timer.C:
			return false
		}
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for p.jailOf().alive(p.pid) {
		select {
		case <-tick.C:
		case <-timer.C:
			return false
		}
	}
	return true
}

// dutyEnv is the base environment with the HANODE_* variables set for term.
func dutyEnv(cfg SupervisorConfig, term int64) []string {
	return setEnv(cfg.Env,
		"HANODE_NAME="+cfg.Name,
		"HANODE_ROLE="+cfg.Role,
		"HANODE_HA_ID="+cfg.HAID,
		"HANODE_TERM="+strconv.FormatInt(term, 10))
}

// setEnv returns base with each KEY=value of vars replacing any entry of
// that key, appended at the end.
func setEnv(base []string, vars ...string) []string {
	keys := make(map[string]bool, len(vars))
	for _, kv := range vars {
		k, _, _ := strings.Cut(kv, "=")
		keys[k] = true
	}
	env := make([]string, 0, len(base)+len(vars))
	for _, kv := range base {
		if k, _, _ := strings.Cut(kv, "="); !keys[k] {
			env = append(env, kv)
		}
	}
	return append(env, vars...)
}
