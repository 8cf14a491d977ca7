package roles

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// DefaultGuardStartTimeout is GuardConfig.StartTimeout's default.
const DefaultGuardStartTimeout = time.Second

// guardWriteTimeout bounds one command written to the guard: a guard that
// takes no line for this long (frozen, or its pipe full) is killed and
// replaced like a dead one.
const guardWriteTimeout = 2 * time.Second

// GuardConfig says how to start the guard process.
type GuardConfig struct {
	// Path and Args run the guard: normally {"duty-guard", ...flags} and
	// Path "/proc/self/exe" or os.Executable(). "/proc/self/exe" runs the
	// very binary the coordinator runs even after a package upgrade replaced
	// the file, so a replacement guard always speaks the coordinator's
	// protocol.
	Path string
	Args []string
	// StopTimeout bounds a stop: the guard's own StopTimeout plus a slack
	// for the round trip. A guard that has not confirmed the stop by then is
	// killed with its whole jail at once (the duty's every process), which
	// LEASE_MARGIN must hold with room to spare (conf checks it).
	StopTimeout time.Duration
	// AnswerSlack is how long the guard has to acknowledge a stop
	// ("stopping"): a guard that does not is taken for frozen and killed
	// with its jail at once, not waited for. 0 waits for StopTimeout only.
	AnswerSlack time.Duration
	// Jailer keeps each guard process and everything it starts together
	// (its duty's every process included, wherever they went), so a guard
	// that died or froze is ended whole; nil: its session only.
	Jailer *Jailer
	// Argv0 is the guard's argv[0] as ps shows it (default Path).
	Argv0 string
	// RestartGrace is how long a restarting duty still serves
	// (DutyReport.Serving); it also says when a crash streak ends.
	RestartGrace time.Duration
	// StartTimeout is how long the guard has to report that the duty
	// started, after a takeover's start or after a dead guard was replaced
	// (default DefaultGuardStartTimeout). Past it the duty counts as lost.
	StartTimeout time.Duration
	// OnDutyLost, when set, is told that the duty of term is not running and
	// that the Guard will not bring it back on its own: the node must stop
	// answering active and step down. It runs on the Guard's goroutine and
	// must not block. See Guard.
	OnDutyLost func(term int64, reason string)
	// OnStart and OnExit, when set, are told of each start of the wanted
	// duty (the first of a term and every restart) and each time it ended
	// on its own (its guard's death included), as SupervisorConfig's are.
	// They run on the Guard's goroutine and must not block.
	OnStart func(term int64, pgid int)
	OnExit  func(term int64, exit string)
	Logger  *zap.Logger
	// Once is for a guard that runs its command once (a scheduled job's
	// run, `duty-guard --once`): whatever ends the run other than a Stop
	// (the guard's death, its copy of the lease running out) loses the
	// run (OnDutyLost) instead of starting the command again, so that a
	// period is never run twice.
	Once bool
}

// Guard is the coordinator's end of a duty guard. One owner goroutine runs
// the guard process; Extend, ExtendUntil and Start only record what is
// wanted and never block, Stop and Close wait for the owner. All are safe
// for concurrent use.
//
// The guard process runs in a session of its own, and every process it
// starts (the duty's shell, its process group, any group the duty makes)
// stays in that session unless it calls setsid(2) itself. When the guard
// process exits unexpectedly (killed, OOM, crashed), or is killed because it
// did not confirm a stop in time or stopped taking commands, the owner first
// SIGKILLs every process group of that session and confirms that none is
// left, keeping the dead guard unreaped meanwhile so its session id cannot
// name anything else. Only then does anything new start:
//
//   - while the node is active (between Start and Stop) and the lease last
//     passed to Extend or ExtendUntil is still valid, a new guard is started
//     at once, given that lease and "start <term>" with the same term, and
//     must report the duty started within StartTimeout;
//   - otherwise, or when that fails (the session could not be emptied, the
//     new guard did not start, refused, or died before it reported the
//     duty), the duty of that term counts as lost: OnDutyLost is called and
//     the Guard starts nothing more for that term until Start is called
//     again. The same holds when a takeover's first start is refused or not
//     confirmed within StartTimeout.
//
// So between Start and Stop, a duty missing for longer than the time needed
// to kill the dead guard's session (at most KillGrace) plus StartTimeout has
// been reported to OnDutyLost, unless the lease has run out: then the
// elector steps down on its own clock, and the Guard starts nothing until
// the lease is extended.
//
// If the coordinator and the guard die together, nobody is left to kill the
// duty's processes here: the duty's shell still dies with the guard
// (PR_SET_PDEATHSIG), but its children do not. Then the service manager is
// the backstop: systemd kills whatever is left in the unit's cgroup when the
// main process has died (KillMode=control-group, as shipped, or mixed; never
// process or none) before it restarts hanode.
type Guard struct {
	cfg GuardConfig
	log *zap.Logger

	once     sync.Once
	kick     chan struct{}         // capacity 1: read the wanted state again
	readyReq chan chan error       // start the process now
	stopReq  chan guardStopRequest // stop the duty
	closeReq chan chan error       // end everything
	done     chan struct{}         // closed when the owner returned

	mu     sync.Mutex
	want   guardWant
	report DutyReport

	// Owned by run.
	proc    *guardProc
	confirm *time.Timer // pending confirmation of a start, nil if none
}

// guardWant is what the elector asked for.
type guardWant struct {
	until  int64  // lease deadline, CLOCK_MONOTONIC ns; 0: none
	ticket string // the release ticket (SetTicket), base64; "": none
	term   int64
	on     bool // between Start and Stop
	lost   bool // the duty of term was reported lost: do not start it on our own
}

// DutyReport is what the coordinator knows of its duty, from its guard.
type DutyReport struct {
	// State is DutyRunning, DutyRestarting, DutyStopped, DutyFailed or
	// DutyStarting.
	State      string
	Restarts   int       // restarts in this term
	LastExit   string    // how the duty last ended on its own
	LastExitAt time.Time // when (zero: never)
	// Since is when State began.
	Since time.Time
	// RunningSince is when the duty last started; DownSince is the first
	// exit of the current crash streak (zero: none), which only a run of at
	// least the grace ends.
	RunningSince, DownSince time.Time
}

// DutyStarting: asked to start, not yet reported running.
const DutyStarting = "starting"

// Serving reports whether a node with this duty may answer that it is
// active at now. A duty that crashes and is restarted within grace serves
// on; one that keeps crashing stops serving grace after the first exit of
// the streak, even while a short-lived restart runs, until a run lasts
// grace. So "ok" is never answered for longer than grace while the duty is
// down.
func (r DutyReport) Serving(now time.Time, grace time.Duration) bool {
	switch r.State {
	case DutyRunning:
		return r.DownSince.IsZero() || r.RunningSince.Sub(r.DownSince) <= grace || now.Sub(r.RunningSince) >= grace
	case DutyStarting:
		return now.Sub(r.Since) <= grace
	case DutyRestarting:
		down := r.DownSince
		if down.IsZero() {
			down = r.Since
		}
		return now.Sub(down) <= grace
	}
	return false
}

// started notes a start of the duty at now.
func (r *DutyReport) started(now time.Time) {
	r.State, r.Since, r.RunningSince = DutyRunning, now, now
}

// exited notes an exit of the duty at now: the first of a streak unless
// the run before it lasted less than grace.
func (r *DutyReport) exited(now time.Time, how string, grace time.Duration) {
	if r.DownSince.IsZero() || now.Sub(r.RunningSince) >= grace {
		r.DownSince = now
	}
	r.State, r.Since, r.LastExit, r.LastExitAt = DutyRestarting, now, how, now
}

// Duty reports the duty as the guard last told it.
func (g *Guard) Duty() DutyReport {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.report
}

// setReport changes the report's state (under g.mu).
func (g *Guard) setReport(state string) {
	if g.report.State != state {
		g.report.State, g.report.Since = state, time.Now()
	}
}

type guardStopRequest struct {
	reason string
	reply  chan error
}

// NewGuard returns a guard client; the process starts on first use (or
// Ready), its owner goroutine on the first call of any method.
func NewGuard(cfg GuardConfig) *Guard {
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultGuardStartTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Guard{
		cfg: cfg, log: log, report: DutyReport{State: DutyStopped, Since: time.Now()},
		kick:     make(chan struct{}, 1),
		readyReq: make(chan chan error),
		stopReq:  make(chan guardStopRequest),
		closeReq: make(chan chan error),
		done:     make(chan struct{}),
	}
}

func (g *Guard) init() { g.once.Do(func() { go g.run() }) }

// Ready starts the guard process now, so the first takeover does not pay
// for starting it.
func (g *Guard) Ready() error {
	g.init()
	reply := make(chan error, 1)
	select {
	case g.readyReq <- reply:
		return <-reply
	case <-g.done:
		return errors.New("roles: guard closed")
	}
}

// Extend passes the lease left, counted from now, to the guard. It never
// blocks. The deadline is fixed when Extend is called, so it outlasts the
// caller's by the time since the caller computed left: prefer ExtendUntil.
func (g *Guard) Extend(left time.Duration) {
	g.setUntil(monoNow() + int64(left))
}

// ExtendUntil passes the lease deadline to the guard, exactly: deadline must
// come from time.Now (it carries Go's monotonic reading), and reaches the
// guard as a CLOCK_MONOTONIC reading. It never blocks.
func (g *Guard) ExtendUntil(deadline time.Time) {
	g.setUntil(monoOf(deadline))
}

// SetTicket passes the guard the release it may write once this process
// has provably exited and the duty is stopped (ha.Callbacks.ReleaseTicket;
// nil: none). A Stop makes the guard forget it. It never blocks.
func (g *Guard) SetTicket(ticket []byte) {
	g.init()
	g.mu.Lock()
	g.want.ticket = base64.StdEncoding.EncodeToString(ticket)
	g.mu.Unlock()
	g.poke()
}

func (g *Guard) setUntil(ns int64) {
	g.init()
	g.mu.Lock()
	g.want.until = ns
	g.mu.Unlock()
	g.poke()
}

// Start asks for the duty to run for term and returns at once. The guard
// refuses when the lease it holds has run out; that, and a start not
// confirmed within StartTimeout, is reported to OnDutyLost.
func (g *Guard) Start(term int64) {
	g.init()
	g.mu.Lock()
	if !g.want.on || g.want.term != term {
		g.report = DutyReport{State: DutyStarting, Since: time.Now(), LastExit: g.report.LastExit, LastExitAt: g.report.LastExitAt}
	}
	g.want.on, g.want.term, g.want.lost = true, term, false
	g.mu.Unlock()
	g.poke()
}

// Stop asks the guard to stop the duty and waits until it is gone: the
// guard confirmed the stop, or the guard was killed (or died) and every
// process of its session was killed. It returns within StopTimeout plus
// KillGrace (plus whatever the owner was busy with: at most a replacement,
// itself bounded by KillGrace and guardWriteTimeout); the error reports a
// duty that could not be confirmed gone.
func (g *Guard) Stop(reason string) error {
	g.init()
	g.mu.Lock()
	g.want.on, g.want.lost, g.want.ticket = false, false, ""
	g.setReport(DutyStopped)
	g.mu.Unlock()
	req := guardStopRequest{reason: reason, reply: make(chan error, 1)}
	select {
	case g.stopReq <- req:
		return <-req.reply
	case <-g.done:
		return nil // closed: nothing runs
	}
}

// Close ends the guard process (it stops any duty first), kills whatever is
// left of its session and waits for it. Later calls do nothing.
func (g *Guard) Close() error {
	g.init()
	reply := make(chan error, 1)
	select {
	case g.closeReq <- reply:
		return <-reply
	case <-g.done:
		return nil
	}
}

func (g *Guard) poke() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

func (g *Guard) wanted() guardWant {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.want
}

// run is the owner: the only code that touches the guard process.
func (g *Guard) run() {
	defer close(g.done)
	for {
		g.converge()
		var lines <-chan string
		var exited <-chan struct{}
		if p := g.proc; p != nil {
			lines, exited = p.lines, p.exited
		}
		var confirm <-chan time.Time
		if g.confirm != nil {
			confirm = g.confirm.C
		}
		select {
		case <-g.kick:
		case reply := <-g.readyReq:
			var err error
			if g.proc == nil {
				err = g.spawn()
			}
			reply <- err
		case req := <-g.stopReq:
			req.reply <- g.stop(req.reason)
		case reply := <-g.closeReq:
			reply <- g.close()
			return
		case line, ok := <-lines:
			if !ok {
				g.proc.lines = nil // EOF; the exit follows
				continue
			}
			g.handle(g.proc, line)
		case <-exited:
			g.replace("exited")
		case <-confirm:
			g.confirm = nil
			g.lose(g.proc.term, fmt.Sprintf("the duty guard did not report the duty started within %s", g.cfg.StartTimeout))
		}
	}
}

// converge tells the guard process what is wanted, starting one if needed.
func (g *Guard) converge() {
	w := g.wanted()
	if !w.on || w.lost {
		return
	}
	if p := g.proc; p != nil && p.term == w.term {
		if p.until != w.until { // keep the running duty's lease current
			if err := g.tell(p, fmt.Sprintf("until %d", w.until)); err != nil {
				g.replace("unreachable")
				return
			}
			p.until = w.until
		}
		g.tellTicket(p, w)
		return
	}
	if w.until != 0 && monoUntil(w.until) <= 0 {
		return // the lease has passed: the elector extends it or stops the duty
	}
	if g.proc == nil {
		if err := g.spawn(); err != nil {
			g.lose(w.term, err.Error())
			return
		}
	}
	// From here on, a guard that dies before it reports the duty started
	// loses the duty (replace), so a guard that cannot start cannot loop.
	p := g.proc
	p.term, p.started = w.term, false
	g.armConfirm()
	if w.until != 0 && p.until != w.until {
		if err := g.tell(p, fmt.Sprintf("until %d", w.until)); err != nil {
			g.replace("unreachable")
			return
		}
		p.until = w.until
	}
	if !g.tellTicket(p, w) {
		return
	}
	if err := g.tell(p, fmt.Sprintf("start %d", w.term)); err != nil {
		g.replace("unreachable")
	}
}

// tellTicket sends the guard the wanted release ticket when it changed;
// false when the guard is unreachable (it is replaced).
func (g *Guard) tellTicket(p *guardProc, w guardWant) bool {
	if p.ticket == w.ticket {
		return true
	}
	line := "ticket -"
	if w.ticket != "" {
		line = "ticket " + w.ticket
	}
	if err := g.tell(p, line); err != nil {
		g.replace("unreachable")
		return false
	}
	p.ticket = w.ticket
	return true
}

// handle reads one line guard process p sent outside a stop.
func (g *Guard) handle(p *guardProc, line string) {
	verb, arg, _ := strings.Cut(line, " ")
	switch verb {
	case "stopping": // the acknowledgement of a stop that timed out meanwhile
		return
	case "started", "exited", "failed", "expired", "refused":
	default:
		g.log.Error("unexpected duty guard reply", zap.String("line", line))
		return
	}
	// Every other reply is "<verb> <term>[ <rest>]".
	a, rest, _ := strings.Cut(arg, " ")
	term, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		g.log.Error("bad duty guard reply", zap.String("line", line))
		return
	}
	switch verb {
	case "started":
		pgid, err := strconv.Atoi(rest)
		if err != nil {
			g.log.Error("bad duty guard reply", zap.String("line", line))
			return
		}
		p.pgid = pgid
		g.log.Debug("duty guard reported the duty started", zap.Int("guard_pid", p.pid), zap.Int64("term", term), zap.Int("pgid", pgid))
		g.mu.Lock()
		wanted := g.want.on && !g.want.lost && g.want.term == term
		if wanted {
			if g.report.State == DutyRestarting {
				g.report.Restarts++
			}
			g.report.started(time.Now())
		}
		g.mu.Unlock()
		if f := g.cfg.OnStart; wanted && f != nil {
			f(term, pgid)
		}
		if term != p.term || p.started {
			return // a restart of the duty within its term, or a stale report
		}
		p.started = true
		if g.proc == p {
			g.disarmConfirm()
		}
		if w := g.wanted(); w.lost && w.term == term {
			g.log.Warn("duty started after it was reported lost", zap.Int64("term", term), zap.Int("pgid", pgid))
		}
	case "exited":
		g.mu.Lock()
		wanted := g.want.on && !g.want.lost && g.want.term == term
		if wanted {
			g.report.exited(time.Now(), rest, g.cfg.RestartGrace)
		}
		g.mu.Unlock()
		if f := g.cfg.OnExit; wanted && f != nil {
			f(term, rest)
		}
	case "failed":
		if term == p.term {
			g.lose(term, rest)
		}
	case "expired":
		// The guard stopped the duty when its copy of the lease ran out, and
		// forgot the lease. If the elector extends the lease after all (an
		// acknowledgement that crossed the deadline), converge starts the
		// duty again in the same term; otherwise the elector stops it.
		if term == p.term {
			g.log.Warn("the duty guard stopped the duty when the lease ran out", zap.Int64("term", term))
			g.mu.Lock()
			g.setReport(DutyStopped)
			g.mu.Unlock()
			p.term, p.started, p.until, p.ticket = 0, false, 0, ""
			if g.proc == p {
				g.disarmConfirm()
			}
			if g.cfg.Once {
				g.lose(term, "the lease ran out: the guard stopped the run")
			}
		}
	case "refused":
		if term == p.term {
			p.term = 0
			if g.proc == p {
				g.disarmConfirm()
			}
			g.lose(term, "the duty guard refused to start the duty: "+rest)
		}
	}
}

// stop asks the guard to stop the duty and waits for the answer, for the
// guard's death, or for StopTimeout, whichever comes first.
func (g *Guard) stop(reason string) error {
	g.disarmConfirm()
	p := g.proc
	if p == nil {
		return nil // no guard, no duty: a dead one's session was emptied when it died
	}
	deadline := time.Now().Add(g.cfg.StopTimeout)
	if err := g.tellBy(p, "stop "+strings.ReplaceAll(reason, "\n", " "), deadline); err != nil {
		return g.bury(p, "unreachable")
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	var ack <-chan time.Time
	if g.cfg.AnswerSlack > 0 {
		t := time.NewTimer(g.cfg.AnswerSlack)
		defer t.Stop()
		ack = t.C
	}
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				p.lines = nil
				continue
			}
			if line == "stopping" {
				ack = nil
				continue
			}
			if r, isStop := strings.CutPrefix(line, "stopped"); isStop {
				p.term, p.started, p.until, p.ticket = 0, false, 0, "" // the guard forgot its lease and ticket
				if msg, failed := strings.CutPrefix(r, " error "); failed {
					return fmt.Errorf("roles: guard: %s", msg)
				}
				return nil
			}
			g.handle(p, line)
		case <-p.exited:
			g.log.Error("duty guard exited before confirming the stop; killing its session", zap.Int("guard_pid", p.pid))
			return g.bury(p, "exited while stopping the duty")
		case <-ack:
			g.log.Error("duty guard did not acknowledge the stop (frozen?); killing it and its duty's every process",
				zap.Int("guard_pid", p.pid), zap.Duration("answer_slack", g.cfg.AnswerSlack))
			return g.bury(p, "did not acknowledge the stop")
		case <-timer.C:
			g.log.Error("duty guard did not confirm the stop; killing it and its duty's every process",
				zap.Int("guard_pid", p.pid), zap.Duration("stop_timeout", g.cfg.StopTimeout))
			return g.bury(p, "did not confirm the stop")
		}
	}
}

// close ends the guard by closing its stdin: it stops any duty and exits.
func (g *Guard) close() error {
	g.disarmConfirm()
	p := g.proc
	if p == nil {
		return nil
	}
	_ = p.stdin.Close()
	timer := time.NewTimer(g.cfg.StopTimeout)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		g.log.Error("duty guard did not exit; killing it and its session", zap.Int("guard_pid", p.pid))
	}
	return g.bury(p, "closed")
}

// replace handles the loss of the guard process outside a stop (it died,
// or stopped taking commands): it kills what is left of its session and, if
// the duty should run and the lease allows, lets converge start a new guard
// with the duty of the same term.
func (g *Guard) replace(why string) {
	p := g.proc
	g.disarmConfirm()
	g.log.Error("duty guard lost; killing what is left of its session", zap.String("reason", why),
		zap.Int("guard_pid", p.pid), zap.Int64("term", p.term), zap.Int("pgid", p.pgid))
	err := g.bury(p, why)
	w := g.wanted()
	switch {
	case !w.on || w.lost:
		if err != nil {
			g.log.Error("duty guard's session not confirmed gone", zap.Error(err))
		}
		if !g.cfg.Once && time.Since(p.spawned) > time.Second { // keep the next takeover fast, but do not loop
			if err := g.spawn(); err != nil {
				g.log.Error("duty guard not restarted", zap.Error(err))
			}
		}
	case err != nil:
		g.lose(w.term, "the dead duty guard's processes could not be confirmed gone: "+err.Error())
	case p.term == w.term && !p.started:
		g.lose(w.term, "the duty guard died before it reported the duty started")
	case w.until == 0 || monoUntil(w.until) <= 0:
		g.lose(w.term, "the duty guard died and the lease has run out")
	case g.cfg.Once:
		g.lose(w.term, "the run's guard died ("+why+"); a run is never started twice")
	default:
		exit := "the duty guard died (" + why + ")"
		g.mu.Lock()
		g.report.exited(time.Now(), exit, g.cfg.RestartGrace)
		g.mu.Unlock()
		if f := g.cfg.OnExit; f != nil {
			f(w.term, exit)
		}
		g.log.Warn("restarting the duty guard with the duty of the same term",
			zap.Int64("term", w.term), zap.Duration("lease_left", monoUntil(w.until)))
	}
}

// lose reports the duty of term lost and starts nothing more for it.
func (g *Guard) lose(term int64, reason string) {
	g.mu.Lock()
	current := g.want.on && g.want.term == term && !g.want.lost
	if current {
		g.want.lost = true
		g.setReport(DutyFailed)
	}
	g.mu.Unlock()
	if !current {
		return
	}
	g.log.Error("duty lost", zap.Int64("term", term), zap.String("reason", reason))
	if f := g.cfg.OnDutyLost; f != nil {
		f(term, reason)
	}
}

func (g *Guard) armConfirm() {
	g.disarmConfirm()
	g.confirm = time.NewTimer(g.cfg.StartTimeout)
}

func (g *Guard) disarmConfirm() {
	if g.confirm != nil {
		g.confirm.Stop()
		g.confirm = nil
	}
}
