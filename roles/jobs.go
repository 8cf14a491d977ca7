package roles

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/roles/schedule"
)

// Leader-only scheduled jobs (JOB_<NAME>_CMD with _EVERY or _CRON). While
// this node leads, Jobs runs each job's due periods, one run at a time per
// job. Two things keep a period from running twice:
//
//   - every run is recorded in ZooKeeper before it starts, by a fenced
//     compare-and-set that only a later period passes (JobStore.StartPeriod,
//     ha.Election's); a period recorded by any leader is never started by
//     another;
//   - every run is a command under a guard process of its own (`hanode
//     duty-guard --once`, GuardConfig.Once) that holds the lease as the
//     duty's guard does: the run is stopped when the leadership ends (Stop,
//     within ACTIVE_STOP_TIMEOUT like the duty), when the lease runs out
//     without this process extending it (it froze), and when this process
//     dies; and a run that ended any other way is never started again.
//
// A run whose leader lost its leadership before it recorded the result
// stays "running" in its record; the next leader marks it "unknown".

// Job is one scheduled job.
type Job struct {
	// Name is the job's name in lower case (JOB_BACKUP_* is "backup"): its
	// znode and HANODE_JOB.
	Name     string
	Command  string
	Schedule schedule.Schedule
	Missed   schedule.Missed
}

// JobStore records runs, fenced by the lease: *ha.Election.
type JobStore interface {
	ReadJob(job string) (ha.JobRecord, bool, error)
	StartPeriod(ctx context.Context, p ha.PeriodStart) (int64, error)
	FinishPeriod(ctx context.Context, job string, period time.Time, term int64, res ha.JobResult) error
}

// JobsConfig configures Jobs.
type JobsConfig struct {
	Jobs  []Job
	Store JobStore
	// Guard returns how to start the guard of one run of job for period:
	// its Path and Args (which say --once, the command and its
	// environment: HANODE_JOB, HANODE_JOB_PERIOD), StopTimeout,
	// AnswerSlack and Jailer. Once, OnExit, OnDutyLost and Logger are set
	// by Jobs.
	Guard func(job Job, period time.Time) GuardConfig
	// Refresh is how often the records are read again for status, on
	// every node (default 5s).
	Refresh time.Duration
	// OnResult, when set, hears how each run this node started ended
	// (ha.JobOK, ha.JobFailed, ...): for metrics.
	OnResult func(job, state string)
	Logger   *zap.Logger
}

// JobStatus is one job as this node knows it, for status.
type JobStatus struct {
	Name     string
	Schedule string
	// Last is the latest recorded run; nil when none is known.
	Last *ha.JobRecord
	// Next is the next period this node would run were it to lead: after
	// now and after Last's.
	Next time.Time
	// Running is true while this node runs one of the job's periods.
	Running bool
}

// Jobs runs the scheduled jobs while this node leads. Start, Stop and
// ExtendUntil are the election's callbacks (StartDuty, StopDuty,
// LeaseExtended); Status may be called from any goroutine.
type Jobs struct {
	cfg   JobsConfig
	log   *zap.Logger
	until atomic.Int64 // the lease deadline, CLOCK_MONOTONIC ns (ExtendUntil)

	mu   sync.Mutex
	act  *jobsActivation // the current leadership's; nil when not leading
	last map[string]ha.JobRecord
}

// NewJobs returns the jobs of cfg, none running.
func NewJobs(cfg JobsConfig) *Jobs {
	if cfg.Refresh <= 0 {
		cfg.Refresh = 5 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Jobs{cfg: cfg, log: log, last: map[string]ha.JobRecord{}}
}

// jobsActivation is one leadership's runs.
type jobsActivation struct {
	term  int64
	since time.Time
	ctx   context.Context

	mu       sync.Mutex
	stopping bool
	runs     map[string]*jobRun // by job: at most one run each
	wg       sync.WaitGroup     // the job loops
}

// jobRun is one run of a job's period under its own guard.
type jobRun struct {
	job    Job
	period time.Time
	term   int64
	guard  *Guard
	once   sync.Once
	done   chan ha.JobResult // the first result only (capacity 1)
}

func (r *jobRun) finish(res ha.JobResult) {
	r.once.Do(func() { r.done <- res })
}

// ExtendUntil passes the lease deadline to every run (LeaseExtended). It
// never blocks.
func (j *Jobs) ExtendUntil(deadline time.Time) {
	j.until.Store(monoOf(deadline))
	j.mu.Lock()
	act := j.act
	j.mu.Unlock()
	if act == nil {
		return
	}
	act.mu.Lock()
	defer act.mu.Unlock()
	for _, r := range act.runs {
		r.guard.ExtendUntil(deadline)
	}
}

// Start begins running the jobs' due periods for term (StartDuty) until ctx
// ends or Stop. It never blocks.
func (j *Jobs) Start(ctx context.Context, term int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.cfg.Jobs) == 0 || j.act != nil && j.act.term == term {
		return
	}
	act := &jobsActivation{term: term, since: time.Now(), ctx: ctx, runs: map[string]*jobRun{}}
	j.act = act
	for _, job := range j.cfg.Jobs {
		act.wg.Add(1)
		go func() {
			defer act.wg.Done()
			j.loop(act, job)
		}()
	}
}

// Stop stops every run (StopDuty), all at once, each within its guard's
// StopTimeout plus KillGrace, and starts none after; an error names a run
// whose stop was not confirmed. It does not wait for the job loops, which
// may be waiting for the election (a fenced write) that waits for Stop:
// they end on ctx and start nothing once Stop has begun.
func (j *Jobs) Stop(reason string) error {
	j.mu.Lock()
	act := j.act
	j.act = nil
	j.mu.Unlock()
	if act == nil {
		return nil
	}
	act.mu.Lock()
	act.stopping = true
	runs := make([]*jobRun, 0, len(act.runs))
	for _, r := range act.runs {
		runs = append(runs, r)
	}
	act.mu.Unlock()
	errs := make([]error, len(runs))
	var wg sync.WaitGroup
	for i, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.guard.Stop(reason); err != nil {
				errs[i] = fmt.Errorf("job %s, period %s: %w", r.job.Name, r.period.Format(time.RFC3339), err)
			}
			_ = r.guard.Close()
			r.finish(ha.JobResult{State: ha.JobStopped, Exit: "stopped: " + reason})
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Status reports every job, sorted by name.
func (j *Jobs) Status() []JobStatus {
	now := time.Now()
	j.mu.Lock()
	act := j.act
	out := make([]JobStatus, 0, len(j.cfg.Jobs))
	for _, job := range j.cfg.Jobs {
		st := JobStatus{Name: job.Name, Schedule: job.Schedule.String()}
		last := time.Time{}
		if rec, ok := j.last[job.Name]; ok {
			st.Last, last = &rec, rec.Period
		}
		st.Next = job.Schedule.Next(later(now, last))
		out = append(out, st)
	}
	j.mu.Unlock()
	if act != nil {
		act.mu.Lock()
		for i := range out {
			out[i].Running = act.runs[out[i].Name] != nil
		}
		act.mu.Unlock()
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Refresh reads every job's record again every JobsConfig.Refresh until ctx
// ends, so that status shows the last runs on standbys too.
func (j *Jobs) Refresh(ctx context.Context) {
	if len(j.cfg.Jobs) == 0 {
		return
	}
	t := time.NewTicker(j.cfg.Refresh)
	defer t.Stop()
	for {
		for _, job := range j.cfg.Jobs {
			if rec, ok, err := j.cfg.Store.ReadJob(job.Name); err == nil && ok {
				j.remember(job.Name, rec)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (j *Jobs) remember(name string, rec ha.JobRecord) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if old, ok := j.last[name]; !ok || !old.Period.After(rec.Period) {
		j.last[name] = rec
	}
}

// Pacing of a job loop.
const (
	// jobRecheck bounds a wait for the next period: schedules are on the
	// wall clock, and a timer runs on the monotonic one, so the decision is
	// taken again at least this often.
	jobRecheck = time.Minute
	// jobBackoff is the pause after a ZooKeeper error.
	jobBackoff = time.Second
)

// loop runs one job's periods for one leadership.
func (j *Jobs) loop(act *jobsActivation, job Job) {
	log := j.log.With(zap.String("job", job.Name), zap.Int64("term", act.term))
	ctx := act.ctx
	settled := false // an earlier term's "running" record was looked at
	for ctx.Err() == nil {
		rec, found, err := j.cfg.Store.ReadJob(job.Name)
		if err != nil {
			log.Warn("job record not read; trying again", zap.Error(err))
			sleepCtx(ctx, jobBackoff)
			continue
		}
		var last time.Time
		if found {
			j.remember(job.Name, rec)
			last = rec.Period
			if !settled && rec.State == ha.JobRunning && rec.Term != act.term {
				// Its leader lost the leadership (and its run) before it
				// recorded the result.
				err := j.cfg.Store.FinishPeriod(ctx, job.Name, rec.Period, rec.Term,
					ha.JobResult{State: ha.JobUnknown, Exit: "its leader lost the leadership before recording the result"})
				if err != nil && !errors.Is(err, ha.ErrPeriodMoved) {
					log.Info("earlier run's record not settled", zap.Time("period", rec.Period), zap.Error(err))
				}
			}
		}
		settled = true
		now := time.Now()
		d := schedule.Due(job.Schedule, last, act.since, now, job.Missed)
		if !d.Skipped.IsZero() {
			log.Info("job period missed while no member led; skipped (MISSED=skip)", zap.Time("period", d.Skipped))
		}
		if d.Run.IsZero() {
			if d.Next.IsZero() {
				log.Warn("job schedule has no further period")
				<-ctx.Done()
				return
			}
			sleepCtx(ctx, min(time.Until(d.Next.Add(time.Millisecond)), jobRecheck))
			continue
		}
		next := job.Schedule.Next(d.Run)
		term, err := j.cfg.Store.StartPeriod(ctx, ha.PeriodStart{Job: job.Name, Period: d.Run, Schedule: job.Schedule.String(), Next: next})
		switch {
		case errors.Is(err, ha.ErrPeriodDone):
			log.Debug("job period already started", zap.Error(err))
			continue
		case errors.Is(err, ha.ErrNotLeader), ctx.Err() != nil:
			return
		case err != nil:
			log.Warn("job period not recorded; trying again", zap.Time("period", d.Run), zap.Error(err))
			sleepCtx(ctx, jobBackoff)
			continue
		}
		if d.Run.Before(act.since) {
			log.Info("running a job period missed while no member led (MISSED=once)", zap.Time("period", d.Run))
		}
		res, ok := j.run(act, job, d.Run, term, log)
		if !ok {
			return // Stop began: the run was not started
		}
		if f := j.cfg.OnResult; f != nil {
			f(job.Name, res.State)
		}
		if err := j.cfg.Store.FinishPeriod(ctx, job.Name, d.Run, term, res); err != nil {
			log.Info("job result not recorded (leadership moved on?)", zap.Time("period", d.Run),
				zap.String("state", res.State), zap.Error(err))
		}
	}
}

// run starts the recorded period under a guard of its own and waits for its
// result; ok is false when Stop had begun, and nothing was started.
func (j *Jobs) run(act *jobsActivation, job Job, period time.Time, term int64, log *zap.Logger) (ha.JobResult, bool) {
	r := &jobRun{job: job, period: period, term: term, done: make(chan ha.JobResult, 1)}
	gc := j.cfg.Guard(job, period)
	gc.Once = true
	gc.Logger = log.Named("guard")
	gc.OnExit = func(_ int64, exit string) {
		state := ha.JobFailed
		if exit == "exit status 0" {
			state = ha.JobOK
		}
		r.finish(ha.JobResult{State: state, Exit: exit})
	}
	gc.OnDutyLost = func(_ int64, reason string) { r.finish(ha.JobResult{State: ha.JobFailed, Exit: reason}) }
	// Under the lock: a Stop that begins after this sees the run, one that
	// began before starts nothing.
	act.mu.Lock()
	if act.stopping {
		act.mu.Unlock()
		return ha.JobResult{}, false
	}
	r.guard = NewGuard(gc)
	if until := j.until.Load(); until != 0 {
		r.guard.setUntil(until)
	}
	r.guard.Start(term)
	act.runs[job.Name] = r
	act.mu.Unlock()
	log.Info("job run started", zap.Time("period", period))
	begin := time.Now()
	res := <-r.done // a Stop sends "stopped" after it stopped the run
	act.mu.Lock()
	delete(act.runs, job.Name)
	act.mu.Unlock()
	if err := r.guard.Close(); err != nil {
		log.Error("job run's guard not confirmed gone", zap.Time("period", period), zap.Error(err))
	}
	log.Info("job run ended", zap.Time("period", period), zap.String("state", res.State), zap.String("exit", res.Exit),
		zap.Duration("took", time.Since(begin)))
	return res, true
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
