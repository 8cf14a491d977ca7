package ha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"

	"github.com/hanode/hanode/ha/internal/core"
)

// Leader-only jobs (JOB_<NAME>_*) are run by whichever member leads, and
// each run is recorded before it starts, so that no period is run twice,
// across failovers too. A job's record is one persistent znode,
//
//	groups/<HA_ID>/jobs/<name>
//
// holding the latest period started (JobRecord). A leader starts a period
// only by a fenced compare-and-set of that record (StartPeriod): the multi
// checks that it still holds the lease and that the record is at the
// version it read, whose period was earlier. Two leaders, or one leader
// twice, can therefore never both start a period: whichever writes second
// finds the version moved, reads the record again and sees the period taken.
// Which periods are due is the caller's to say (package roles/schedule);
// this file only compares the instants.

// The states of a job's run, as JobRecord.State records them.
const (
	JobRunning = "running" // started; no result recorded yet
	JobOK      = "ok"      // the command exited 0
	JobFailed  = "failed"  // it exited otherwise, or could not be run
	JobStopped = "stopped" // stopped when its leader's leadership ended
	// JobUnknown: a later leader found the run still "running" in an
	// earlier term; the leader that started it lost its leadership (and so
	// its run) before it recorded the result.
	JobUnknown = "unknown"
)

// JobRecord is a job's znode: its latest period and that run's state.
type JobRecord struct {
	// Period is the scheduled instant of the run (UTC); it names the run.
	Period time.Time `json:"period"`
	// Term is the term of the leadership that started the run; By the
	// server that did.
	Term int64  `json:"term"`
	By   string `json:"by"`
	// State is JobRunning, JobOK, JobFailed, JobStopped or JobUnknown; Exit
	// says how the command ended ("exit status 0", "signal: killed").
	State string `json:"state"`
	Exit  string `json:"exit,omitempty"`
	// Started is when the run was recorded; Finished when its result was.
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// FinishTerm is the term the result was written in (a later leader's
	// for JobUnknown).
	FinishTerm int64 `json:"finish_term,omitempty"`
	// Schedule and Next are for status: the schedule as the starting leader
	// read it, and the period after this one.
	Schedule string    `json:"schedule,omitempty"`
	Next     time.Time `json:"next,omitzero"`
}

// PeriodStart asks StartPeriod to record a run.
type PeriodStart struct {
	Job      string    // the job's name: lower-case letters, digits and '_'
	Period   time.Time // the scheduled instant
	Schedule string    // for status
	Next     time.Time // the period after this one, for status
}

// JobResult is a run's outcome for FinishPeriod.
type JobResult struct {
	State string // JobOK, JobFailed, JobStopped or JobUnknown
	Exit  string
}

// ErrPeriodDone refuses to start a period that is not later than the one
// recorded: it was started before, by this leader or another.
var ErrPeriodDone = errors.New("ha: job period already started")

// ErrPeriodMoved drops a result whose run is no longer the recorded one (a
// later period, or the same period in another term, was recorded since).
var ErrPeriodMoved = errors.New("ha: job record moved on")

// ErrBadJobName refuses a job name that is not a safe znode name.
var ErrBadJobName = errors.New("ha: job names are lower-case letters, digits and '_'")

// PeriodDone reports whether a record of period recorded forbids starting
// period requested: only a later period may be started.
func PeriodDone(recorded, requested time.Time) bool { return !recorded.Before(requested) }

// DecodeJobRecord parses a job's znode data. A record that does not parse,
// or lacks its period, term or state, is an error: it is never trusted.
func DecodeJobRecord(data []byte) (JobRecord, error) {
	var r JobRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return JobRecord{}, fmt.Errorf("not a job record: %w", err)
	}
	switch {
	case r.Period.IsZero():
		return JobRecord{}, errors.New("job record without a period")
	case r.Term <= 0:
		return JobRecord{}, fmt.Errorf("job record with term %d", r.Term)
	}
	switch r.State {
	case JobRunning, JobOK, JobFailed, JobStopped, JobUnknown:
	default:
		return JobRecord{}, fmt.Errorf("job record with state %q", r.State)
	}
	r.Period = r.Period.UTC()
	return r, nil
}

func encodeJobRecord(r JobRecord) []byte {
	r.Period, r.Started, r.Next = r.Period.UTC(), r.Started.UTC(), r.Next.UTC()
	if !r.Finished.IsZero() {
		r.Finished = r.Finished.UTC()
	}
	b, _ := json.Marshal(r) // plain fields: cannot fail
	return b
}

func validJobName(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// JobsDir is the znode under which a group's job records live.
func JobsDir(root, group string) string { return core.NewLayout(root, group).GroupNode() + "/jobs" }

func (e *Election) jobPath(job string) string { return JobsDir(e.s.cfg.Root, e.cfg.Group) + "/" + job }

// jobRead is one read of a job's znode.
type jobRead struct {
	rec     JobRecord
	version int32
	found   bool  // the znode exists
	bad     error // it exists but does not parse
	noDir   bool  // not even jobs/ exists
}

func (e *Election) readJob(job string) (jobRead, error) {
	path := e.jobPath(job)
	r, _, _ := e.s.do(core.Op{Kind: core.OpGet, Path: path})
	switch r.Err {
	case core.ErrNone:
	case core.ErrNoNode:
		d, _, _ := e.s.do(core.Op{Kind: core.OpGet, Path: JobsDir(e.s.cfg.Root, e.cfg.Group)})
		if d.Err != core.ErrNone && d.Err != core.ErrNoNode {
			return jobRead{}, fmt.Errorf("ha: read %s: %s", path, d.Detail)
		}
		return jobRead{noDir: d.Err == core.ErrNoNode}, nil
	default:
		return jobRead{}, fmt.Errorf("ha: read %s: %s", path, r.Detail)
	}
	rec, err := DecodeJobRecord(r.Data)
	if err != nil {
		e.log.Warn("job record does not parse; the next run overwrites it", zap.String("znode", path), zap.Error(err))
		return jobRead{found: true, version: r.Stat.Version, bad: err}, nil
	}
	return jobRead{rec: rec, version: r.Stat.Version, found: true}, nil
}

// ReadJob reads a job's record. found is false when there is none, or when
// the znode holds something that does not parse (logged with its path, and
// overwritten by the next StartPeriod).
func (e *Election) ReadJob(job string) (rec JobRecord, found bool, err error) {
	if !validJobName(job) {
		return JobRecord{}, false, fmt.Errorf("%w: %q", ErrBadJobName, job)
	}
	r, err := e.readJob(job)
	if err != nil || !r.found || r.bad != nil {
		return JobRecord{}, false, err
	}
	return r.rec, true, nil
}

// jobRetry paces StartPeriod and FinishPeriod while a connection is back
// after a write of unknown outcome.
const jobRetry = 50 * time.Millisecond

// jobAttempts bounds the compare-and-set retries of one StartPeriod or
// FinishPeriod that lose to another client's write of the record.
const jobAttempts = 5

// StartPeriod records that this leader starts p.Period of p.Job, and returns
// the term it is recorded in. Only after it succeeded may the run start.
// It refuses with ErrPeriodDone (wrapped) when the record holds that period
// or a later one, with ErrNotLeader (wrapped) when this node does not hold
// the lease. A write whose outcome is unknown (the connection broke) is
// read back, until ctx ends, so the caller never runs a period that was
// not recorded nor loses one that was. A record that does not parse is
// overwritten.
func (e *Election) StartPeriod(ctx context.Context, p PeriodStart) (int64, error) {
	if !validJobName(p.Job) {
		return 0, fmt.Errorf("%w: %q", ErrBadJobName, p.Job)
	}
	path := e.jobPath(p.Job)
	period := p.Period.UTC()
	var tried int64 // the term of a write whose outcome is unknown; 0: none
	lost := 0       // compare-and-sets lost to another writer
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		r, err := e.readJob(p.Job)
		if err != nil {
			if tried == 0 {
				return 0, err
			}
			if !sleepCtx(ctx, jobRetry) { // resolving an unknown outcome: wait for the session
				return 0, ctx.Err()
			}
			continue
		}
		if r.found && r.bad == nil && PeriodDone(r.rec.Period, period) {
			if tried != 0 && r.rec.Period.Equal(period) && r.rec.Term == tried && r.rec.By == e.s.cfg.Name {
				return tried, nil // our write landed after all
			}
			return 0, fmt.Errorf("%w: %s holds %s (term %d, by %s)", ErrPeriodDone, path,
				r.rec.Period.Format(time.RFC3339Nano), r.rec.Term, r.rec.By)
		}
		if lost >= jobAttempts {
			return 0, fmt.Errorf("ha: start %s of %s: the record kept changing", period.Format(time.RFC3339Nano), path)
		}
		term, err := e.Fenced(ctx, func(term int64) []Op {
			tried = term
			data := encodeJobRecord(JobRecord{Period: period, Term: term, By: e.s.cfg.Name, State: JobRunning,
				Started: time.Now(), Schedule: p.Schedule, Next: p.Next})
			switch {
			case r.found:
				return []Op{{Kind: core.OpSet, Path: path, Data: data, Version: r.version}}
			case r.noDir:
				return []Op{{Kind: core.OpCreate, Path: JobsDir(e.s.cfg.Root, e.cfg.Group)},
					{Kind: core.OpCreate, Path: path, Data: data}}
			}
			return []Op{{Kind: core.OpCreate, Path: path, Data: data}}
		})
		switch {
		case err == nil:
			e.log.Info("job period started", zap.String("job", p.Job), zap.Time("period", period), zap.Int64("term", term),
				zap.String("znode", path))
			return term, nil
		case errors.Is(err, ErrNotLeader), ctx.Err() != nil:
			return 0, err
		case errors.Is(err, ErrOutcomeUnknown):
			e.log.Warn("job period write lost with the connection; reading it back", zap.String("job", p.Job),
				zap.Time("period", period), zap.Error(err))
		default:
			tried = 0 // ZooKeeper applied none of it: another writer moved the record
			lost++
		}
	}
}

// FinishPeriod records the result of the run of period that started in
// term. It writes only while the record still holds that run (else
// ErrPeriodMoved, wrapped) and this node leads (else ErrNotLeader,
// wrapped): a result that arrives after the leadership moved on is dropped.
func (e *Election) FinishPeriod(ctx context.Context, job string, period time.Time, term int64, res JobResult) error {
	if !validJobName(job) {
		return fmt.Errorf("%w: %q", ErrBadJobName, job)
	}
	path := e.jobPath(job)
	period = period.UTC()
	finished := time.Now().UTC()
	unknown := false
	for lost := 0; ; {
		r, err := e.readJob(job)
		if err != nil {
			if !unknown || !sleepCtx(ctx, jobRetry) {
				return err
			}
			continue
		}
		if !r.found || r.bad != nil || !r.rec.Period.Equal(period) || r.rec.Term != term {
			return fmt.Errorf("%w: %s no longer holds %s of term %d", ErrPeriodMoved, path, period.Format(time.RFC3339Nano), term)
		}
		if unknown && r.rec.State == res.State && r.rec.Finished.Equal(finished) {
			return nil // our write landed after all
		}
		if r.rec.State != JobRunning {
			return fmt.Errorf("%w: %s already says %s", ErrPeriodMoved, path, r.rec.State)
		}
		if lost >= jobAttempts {
			return fmt.Errorf("ha: finish %s of %s: the record kept changing", period.Format(time.RFC3339Nano), path)
		}
		rec := r.rec
		fterm, err := e.Fenced(ctx, func(t int64) []Op {
			rec.State, rec.Exit, rec.Finished, rec.FinishTerm = res.State, res.Exit, finished, t
			return []Op{{Kind: core.OpSet, Path: path, Data: encodeJobRecord(rec), Version: r.version}}
		})
		switch {
		case err == nil:
			e.log.Info("job period finished", zap.String("job", job), zap.Time("period", period), zap.Int64("term", term),
				zap.Int64("finish_term", fterm), zap.String("state", res.State), zap.String("exit", res.Exit))
			return nil
		case errors.Is(err, ErrNotLeader), ctx.Err() != nil:
			return err
		case errors.Is(err, ErrOutcomeUnknown):
			unknown = true
		default:
			lost++
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// JobEntry is one job's znode as an observer reads it (ReadJobs).
type JobEntry struct {
	Name   string     `json:"name"`
	Znode  string     `json:"znode"`
	Record *JobRecord `json:"record,omitempty"`
	// Problem says why the znode's data is not a record; it is overwritten
	// by the job's next run.
	Problem string `json:"problem,omitempty"`
}

// ReadJobs reads the job records of a group, sorted by name. Damaged data
// is reported in the entry's Problem, never an error.
func ReadJobs(conn *zk.Conn, root, group string) ([]JobEntry, error) {
	dir := JobsDir(root, group)
	names, _, err := conn.Children(dir)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ha: list %s: %w", dir, err)
	}
	sort.Strings(names)
	out := make([]JobEntry, 0, len(names))
	for _, n := range names {
		path := dir + "/" + n
		data, _, err := conn.Get(path)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("ha: read %s: %w", path, err)
		}
		ent := JobEntry{Name: n, Znode: path}
		if rec, err := DecodeJobRecord(data); err != nil {
			ent.Problem = err.Error()
		} else {
			ent.Record = &rec
		}
		out = append(out, ent)
	}
	return out, nil
}
