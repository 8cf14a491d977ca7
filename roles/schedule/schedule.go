// Package schedule says when a leader-only job (JOB_<NAME>_*) is due. It is
// pure: no clock, no I/O, no goroutine; every function takes the time it
// judges, so the same answers come from a test table, the simulator or a
// running node.
//
// A schedule is a set of periods: instants on the wall clock. Every member
// of a group computes the same periods from the same configuration, so the
// period a leader records in ZooKeeper names the same run for every
// member:
//
//   - Every(d) (JOB_<NAME>_EVERY): the multiples of d since the Unix epoch,
//     1970-01-01T00:00:00Z. A 1h job runs at the top of each UTC hour, a
//     90s job at 00:00:00, 00:01:30, ... whenever the group started.
//   - Cron(spec) (JOB_<NAME>_CRON): a standard 5-field crontab line or a
//     descriptor (@hourly, @daily, ...), parsed by robfig/cron/v3, in the
//     host's local time zone unless the spec starts with CRON_TZ=<zone>.
//     @every is refused: its periods count from whenever it is asked, so two
//     members would disagree.
//
// Schedules are wall-clock schedules: a member whose clock is off runs a
// period early or late by that much. A period is still never run twice,
// because each run is first recorded in ZooKeeper by a compare-and-set that
// only a later period can pass (ha.Election.StartPeriod).
package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is a job's set of periods.
type Schedule interface {
	// Next returns the first period strictly after t, or the zero time when
	// there is none within five years (a cron spec that never matches).
	Next(t time.Time) time.Time
	// String describes the schedule for status ("every 1s", "cron 0 3 * * *").
	String() string
}

// MinEvery is the shortest period Every accepts: a run is recorded in
// ZooKeeper before it starts, and a guard process is started for it.
const MinEvery = time.Second

// Every returns the schedule of the multiples of d since the Unix epoch.
func Every(d time.Duration) (Schedule, error) {
	if d < MinEvery {
		return nil, fmt.Errorf("schedule: period %v is shorter than %v", d, MinEvery)
	}
	return every{d: d}, nil
}

type every struct{ d time.Duration }

func (e every) Next(t time.Time) time.Time { return e.floor(t).Add(e.d) }

func (e every) String() string { return "every " + e.d.String() }

// floor is the latest period at or before t.
func (e every) floor(t time.Time) time.Time {
	n := t.UnixNano()
	d := int64(e.d)
	q := n / d
	if n%d < 0 { // before the epoch: round towards minus infinity
		q--
	}
	return time.Unix(0, q*d).UTC()
}

// ErrEveryInCron refuses @every in a cron spec.
var ErrEveryInCron = errors.New("schedule: @every counts from whenever it is asked, so members would disagree on its periods: use JOB_<NAME>_EVERY")

// Cron parses a standard 5-field crontab spec or a descriptor (@yearly,
// @monthly, @weekly, @daily, @hourly), optionally prefixed by CRON_TZ=<zone>.
func Cron(spec string) (Schedule, error) {
	spec = strings.TrimSpace(spec)
	body := spec
	if strings.HasPrefix(body, "CRON_TZ=") || strings.HasPrefix(body, "TZ=") {
		_, body, _ = strings.Cut(body, " ")
	}
	if strings.HasPrefix(strings.TrimSpace(body), "@every") {
		return nil, ErrEveryInCron
	}
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	return cronSchedule{s: s, spec: spec}, nil
}

type cronSchedule struct {
	s    cron.Schedule
	spec string
}

func (c cronSchedule) Next(t time.Time) time.Time {
	// Without CRON_TZ, robfig reads the spec in t's location: make that the
	// host's, as crontab does, whatever location t carries.
	n := c.s.Next(t.In(time.Local))
	if n.IsZero() {
		return n
	}
	return n.UTC()
}

func (c cronSchedule) String() string { return "cron " + c.spec }

// Latest returns the latest period p with after < p <= now, or the zero
// time when there is none.
func Latest(s Schedule, after, now time.Time) time.Time {
	if !now.After(after) {
		return time.Time{}
	}
	if e, ok := s.(every); ok {
		if p := e.floor(now); p.After(after) {
			return p
		}
		return time.Time{}
	}
	// Search windows ending at now, each twice as long as the one before,
	// so that a frequent schedule costs a few steps and a rare one (yearly)
	// a few doublings, never every period since after.
	for w := time.Hour; ; w *= 2 {
		from := now.Add(-w)
		if !from.After(after) || w > 6*365*24*time.Hour {
			from = after
		}
		var last time.Time
		for p := s.Next(from); !p.IsZero() && !p.After(now); p = s.Next(p) {
			last = p
		}
		if !last.IsZero() || from.Equal(after) {
			return last
		}
	}
}

// Missed says what a leader does with periods that came due while no
// member led (JOB_<NAME>_MISSED).
type Missed string

const (
	// MissedOnce runs the latest missed period once, as soon as a leader
	// is there (earlier missed periods are not run).
	MissedOnce Missed = "once"
	// MissedSkip runs nothing for them and waits for the next period.
	MissedSkip Missed = "skip"
)

// ParseMissed reads a JOB_<NAME>_MISSED value.
func ParseMissed(s string) (Missed, error) {
	switch m := Missed(strings.ToLower(strings.TrimSpace(s))); m {
	case MissedOnce, MissedSkip:
		return m, nil
	}
	return "", fmt.Errorf("schedule: %q is neither once nor skip", s)
}

// Decision is what a leader does for one job at one instant.
type Decision struct {
	// Run is the period to run now; zero: none.
	Run time.Time
	// Next is the next period after now (and after the recorded one): when
	// to look again. Zero: the schedule has no further period.
	Next time.Time
	// Skipped is the latest period after the recorded one that was due
	// before this leadership began and is not run (MissedSkip); zero: none.
	Skipped time.Time
}

// Due decides for a job whose latest recorded period is last (zero: no
// record, or one that could not be read), judged at now by a leader that
// has led since since.
//
// A period is run when it is after last and not after now; of several,
// only the latest (a run that overran its period, or periods missed while
// nobody led, are caught up by one run). Periods that came due before
// since are run only with MissedOnce and a record: a job without a record
// has never run, and owes nothing from before this leadership. A recorded
// period later than now (another member's clock is ahead) runs nothing
// until a period after it comes due.
func Due(s Schedule, last, since, now time.Time, missed Missed) Decision {
	d := Decision{Next: s.Next(later(now, last))}
	floor := last
	if last.IsZero() || missed != MissedOnce {
		before := since.Add(-time.Nanosecond) // a period exactly at since is this leadership's
		if !last.IsZero() {
			d.Skipped = Latest(s, last, before)
		}
		floor = later(last, before)
	}
	d.Run = Latest(s, floor, now)
	return d
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
