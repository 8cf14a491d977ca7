package roles

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// STANDBY_CMD: a long-running command (a replica following the primary,
// say) that runs only while the node is a standby in a healthy session, and
// the gate that keeps it and the duty apart: the duty starts only once
// STANDBY_CMD is confirmed stopped (its whole jail gone), and STANDBY_CMD
// starts only once the duty is confirmed stopped. Both are never running
// at once on a node, whatever order the election's calls and the phase
// changes arrive in.
//
// Who calls what:
//
//   - SetStandby, from a follower of the election's transitions: whether
//     the node's phase is standby. Only standby counts: waiting and fencing
//     come right before active, so stopping STANDBY_CMD there already makes
//     the duty's start faster; starting, disconnected and stopped are not
//     a healthy session.
//   - Start and Stop stand in for the duty's (the election's StartDuty and
//     StopDuty, on its goroutine). Start never blocks: it closes the gate
//     and returns; the gate's owner goroutine stops STANDBY_CMD, then starts
//     the duty. Stop blocks only for the duty's own stop.
//   - DutyLost, from the duty's runner: the duty is gone for good in this
//     term (the election is told too, and hands over without a StopDuty):
//     the owner confirms the duty stopped before STANDBY_CMD may run again.
//
// Because the phase comes from a feed that may lag the election, the gate
// never relies on it for the duty's safety: Start closes the gate at once,
// on the election's goroutine, and a lagging "standby" can only start
// STANDBY_CMD while the duty is confirmed stopped.
//
// A STANDBY_CMD that cannot be confirmed stopped (a process stuck in the
// kernel) keeps the duty from starting: the node reports its duty lost
// (OnDutyLost), so that the election hands over to another member, rather
// than holding the lease with nothing running. A duty whose stop was not
// confirmed keeps STANDBY_CMD from starting until a later stop of the duty
// is confirmed (the election then leaves without a release, and the next
// leader waits out the lease).

// Duty is what the gate starts and stops: the duty guard (Guard), a
// Supervisor, or anything with the same contract (Start never blocks; Stop
// returns once the duty is confirmed stopped, an error when it is not).
type Duty interface {
	Start(term int64)
	Stop(reason string) error
}

// StandbyConfig configures STANDBY_CMD and its gate.
type StandbyConfig struct {
	// Command runs STANDBY_CMD under a Supervisor: restarted with backoff
	// when it exits while wanted, stopped with SIGTERM, then SIGKILL after
	// Command.StopTimeout, whole jail included. HANODE_TERM is the term
	// seen when the node became standby; it is not restarted when the
	// leader changes while the node stays standby.
	Command SupervisorConfig
	// Duty is the node's duty, started only with STANDBY_CMD confirmed
	// stopped (nil: the node has none).
	Duty Duty
	// OnDutyLost is told when the gate gives up on the duty of term:
	// STANDBY_CMD could not be confirmed stopped. It must not block.
	OnDutyLost func(term int64, reason string)
	// RetryEvery paces the gate's retries of an unconfirmed stop
	// (default 1s).
	RetryEvery time.Duration
	Logger     *zap.Logger
}

// StandbyStatus is a snapshot of STANDBY_CMD and the gate.
type StandbyStatus struct {
	DutyStatus // STANDBY_CMD as its Supervisor reports it
	// Held is true while the duty holds the node: STANDBY_CMD is
	// confirmed stopped and kept from starting, for the current Start.
	// An active node answers ok only then.
	Held bool
	// Problem is the latest stop that could not be confirmed ("" if none).
	Problem string
}

// Standby runs STANDBY_CMD and gates the duty. Its methods are safe for
// concurrent use.
type Standby struct {
	cfg StandbyConfig
	log *zap.Logger
	sup *Supervisor

	mu sync.Mutex
	// What is wanted, set by the callers.
	standby     bool  // the node's phase is standby
	standbyTerm int64 // the term it saw when it became standby
	want        bool  // between Start and Stop (or a loss)
	wantTerm    int64
	act         uint64 // counts Starts
	lostAct     uint64 // an activation whose duty the owner must confirm stopped (0: none)
	closing     bool
	// What is, set by the owner (and Stop for dutyOn).
	held       bool   // STANDBY_CMD confirmed stopped for act
	startedAct uint64 // the activation whose duty.Start was called
	dutyOn     bool   // the duty may run: started, no confirmed stop since
	problem    string

	kick chan struct{} // capacity 1
	done chan struct{} // closed when the owner returned

	// Owned by the owner goroutine.
	running bool  // the Supervisor has an activation (STANDBY_CMD wanted)
	stuck   error // a stop not confirmed, outside any activation
	lostFor uint64
}

// NewStandby starts the gate's owner goroutine; STANDBY_CMD starts once
// SetStandby says so.
func NewStandby(cfg StandbyConfig) *Standby {
	if cfg.RetryEvery <= 0 {
		cfg.RetryEvery = time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.Duty == nil {
		cfg.Duty = noDuty{}
	}
	if cfg.Command.Logger == nil {
		cfg.Command.Logger = log
	}
	s := &Standby{cfg: cfg, log: log, sup: NewSupervisor(cfg.Command),
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	go s.run()
	return s
}

// SetStandby says whether the node is a standby in a healthy session, and
// in which term. It never blocks.
func (s *Standby) SetStandby(on bool, term int64) {
	s.mu.Lock()
	s.standby = on
	if on {
		s.standbyTerm = term
	}
	s.mu.Unlock()
	s.poke()
}

// Start asks for the duty of term: STANDBY_CMD is stopped, then the duty
// started, by the owner goroutine. It never blocks.
func (s *Standby) Start(term int64) {
	s.mu.Lock()
	s.want, s.wantTerm, s.held = true, term, false
	s.act++
	s.mu.Unlock()
	s.poke()
}

// Stop ends the duty: no pending start happens any more, and a started
// duty is stopped (Duty.Stop, whose error it returns). Once the stop is
// confirmed STANDBY_CMD may run again.
func (s *Standby) Stop(reason string) error {
	s.mu.Lock()
	s.want, s.held = false, false
	on := s.dutyOn
	s.mu.Unlock()
	var err error
	if on {
		err = s.cfg.Duty.Stop(reason)
		if err == nil {
			s.mu.Lock()
			if !s.want { // no Start since: Start and Stop come from one goroutine, so always
				s.dutyOn = false
			}
			s.mu.Unlock()
		}
	}
	s.poke()
	return err
}

// DutyLost tells the gate that the duty of term ended for good without a
// Stop (its runner gave up on it). The owner confirms the duty stopped
// before STANDBY_CMD may run again. It never blocks.
func (s *Standby) DutyLost(term int64) {
	s.mu.Lock()
	if s.want && s.wantTerm == term {
		s.want, s.held = false, false
		s.lostAct = s.act
	}
	s.mu.Unlock()
	s.poke()
}

// Status reports STANDBY_CMD and the gate.
func (s *Standby) Status() StandbyStatus {
	s.mu.Lock()
	held, problem := s.held, s.problem
	s.mu.Unlock()
	return StandbyStatus{DutyStatus: s.sup.Status(), Held: held, Problem: problem}
}

// Close stops STANDBY_CMD (bounded like Supervisor.Stop) and ends the
// owner. The duty is not the gate's to stop: the election stops it.
func (s *Standby) Close() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.poke()
	<-s.done
}

func (s *Standby) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// run is the owner: the only caller of the Supervisor's Start and Stop and
// of Duty.Start.
func (s *Standby) run() {
	defer close(s.done)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		again, closed := s.converge()
		if closed {
			return
		}
		if again {
			retry.Reset(s.cfg.RetryEvery)
		}
		select {
		case <-s.kick:
		case <-retry.C:
		}
	}
}

// converge does one round of what is wanted; again asks for a retry.
func (s *Standby) converge() (again, closed bool) {
	s.mu.Lock()
	lost, dutyOn, closing := s.lostAct, s.dutyOn, s.closing
	s.mu.Unlock()

	// A duty its runner lost: confirm it stopped before STANDBY_CMD runs.
	if lost != 0 {
		if dutyOn {
			if err := s.cfg.Duty.Stop("duty lost"); err != nil {
				s.log.Error("lost duty not confirmed stopped; STANDBY_CMD waits", zap.Error(err))
				s.setProblem("the lost duty could not be confirmed stopped: " + err.Error())
				return true, false
			}
		}
		s.mu.Lock()
		if s.lostAct == lost {
			s.lostAct = 0
		}
		if s.startedAct == lost && !s.want {
			s.dutyOn = false
		}
		s.mu.Unlock()
	}

	s.mu.Lock()
	runIt := s.standby && !s.want && !s.dutyOn && s.lostAct == 0 && !s.closing
	term := s.standbyTerm
	s.mu.Unlock()

	switch {
	case !runIt && s.running:
		reason := "no longer standby"
		if closing {
			reason = "shutdown"
		} else if s.wanted() {
			reason = "the node is becoming active"
		}
		s.running = false
		if err := s.sup.Stop(reason); err != nil {
			s.stuck = err
		}
	case !runIt && s.stuck != nil:
		if err := s.sup.clearLeftover(); err == nil {
			s.log.Info("STANDBY_CMD's leftover processes are gone")
			s.stuck = nil
		}
	case runIt && !s.running:
		s.mu.Lock()
		// Checked again under the lock that Start takes: once Start has
		// returned, no STANDBY_CMD starts until the duty is confirmed
		// stopped (Supervisor.Start does not block: only this goroutine
		// stops it).
		if s.standby && !s.want && !s.dutyOn && s.lostAct == 0 && !s.closing {
			s.sup.Start(term)
			s.running = true
			s.stuck = nil // an activation owns a leftover: its Stop reports it
		}
		s.mu.Unlock()
		return false, false
	}
	if closing {
		return false, !s.running
	}
	if s.stuck != nil {
		s.setProblem("STANDBY_CMD not confirmed stopped: " + s.stuck.Error())
		s.giveUp()
		return true, false
	}
	s.setProblem("")

	// STANDBY_CMD is confirmed stopped: the duty may start.
	s.mu.Lock()
	if s.want && !s.running {
		s.held = true
		if s.startedAct != s.act {
			s.startedAct = s.act
			s.dutyOn = true
			s.cfg.Duty.Start(s.wantTerm) // never blocks
			s.log.Info("STANDBY_CMD confirmed stopped; duty started", zap.Int64("term", s.wantTerm))
		}
	}
	s.mu.Unlock()
	return false, false
}

func (s *Standby) wanted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.want
}

// giveUp reports the wanted duty lost, once per Start: it cannot start
// while STANDBY_CMD may still run.
func (s *Standby) giveUp() {
	s.mu.Lock()
	if !s.want || s.lostFor == s.act {
		s.mu.Unlock()
		return
	}
	s.lostFor = s.act
	term := s.wantTerm
	s.want, s.held = false, false // the election hands over without a StopDuty
	s.mu.Unlock()
	reason := "STANDBY_CMD could not be confirmed stopped: " + s.stuck.Error()
	s.log.Error("duty not started", zap.Int64("term", term), zap.String("reason", reason))
	if f := s.cfg.OnDutyLost; f != nil {
		f(term, reason)
	}
}

func (s *Standby) setProblem(p string) {
	s.mu.Lock()
	s.problem = p
	s.mu.Unlock()
}

// clearLeftover tries again to end the stuck run a stopped activation
// left (Stop could not confirm it gone): nil once none is left.
func (sup *Supervisor) clearLeftover() error {
	sup.mu.Lock()
	defer sup.mu.Unlock()
	p := sup.leftover
	if p == nil {
		return nil
	}
	if _, err := finish(p, time.Now().Add(KillGrace)); err != nil {
		return err
	}
	sup.leftover = nil
	return nil
}

// noDuty stands in for a node without a duty.
type noDuty struct{}

func (noDuty) Start(int64)       {}
func (noDuty) Stop(string) error { return nil }
