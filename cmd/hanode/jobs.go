package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hanode/hanode/conf"
	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/ping"
	"github.com/hanode/hanode/roles"
	"github.com/hanode/hanode/roles/schedule"
)

// scheduledJobs turns the configured jobs (validated by conf) into roles'.
func scheduledJobs(cfg *conf.Config) ([]roles.Job, error) {
	out := make([]roles.Job, 0, len(cfg.Jobs))
	for _, j := range cfg.Jobs {
		var s schedule.Schedule
		var err error
		if j.Cron != "" {
			s, err = schedule.Cron(j.Cron)
		} else {
			s, err = schedule.Every(j.Every)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: JOB_%s: %v", conf.ErrInvalid, j.Name, err)
		}
		missed, err := schedule.ParseMissed(j.Missed)
		if err != nil {
			return nil, fmt.Errorf("%w: JOB_%s_MISSED: %v", conf.ErrInvalid, j.Name, err)
		}
		out = append(out, roles.Job{Name: strings.ToLower(j.Name), Command: j.Command, Schedule: s, Missed: missed})
	}
	return out, nil
}

// jobStartTimeout is how long a job run's guard has to report the command
// started: a guard process starts for every run.
const jobStartTimeout = 3 * time.Second

// jobGuard says how each run of a job is started: under a guard of its own
// in run-once mode, stopped like the duty (ACTIVE_STOP_TIMEOUT, then the
// kill of its jail), with HANODE_JOB and HANODE_JOB_PERIOD.
func jobGuard(cfg *conf.Config, jailer *roles.Jailer) func(roles.Job, time.Time) roles.GuardConfig {
	return func(job roles.Job, period time.Time) roles.GuardConfig {
		return roles.GuardConfig{
			Path:  "/proc/self/exe",
			Argv0: "hanode",
			Args: guardOptions{command: job.Command, stop: cfg.ActiveStopTimeout,
				name: cfg.Name, role: cfg.Role, haID: cfg.HAID, logLevel: cfg.LogLevel, logFormat: cfg.LogFormat,
				containment: jailer.Mode(), restartWindow: time.Minute, once: true,
				env: []string{"HANODE_JOB=" + job.Name, "HANODE_JOB_PERIOD=" + period.UTC().Format(time.RFC3339Nano)}}.args(),
			StopTimeout:  cfg.ActiveStopTimeout + conf.GuardAnswerSlack,
			AnswerSlack:  conf.GuardAnswerSlack,
			StartTimeout: jobStartTimeout,
			Jailer:       jailer,
		}
	}
}

// jobsStatus is the jobs as /v2/status shows them.
func jobsStatus(j *roles.Jobs) ping.JobsReader {
	return ping.JobsFunc(func() []ping.StatusJob {
		var out []ping.StatusJob
		for _, s := range j.Status() {
			sj := ping.StatusJob{Name: s.Name, Schedule: s.Schedule, Running: s.Running}
			if !s.Next.IsZero() {
				sj.Next = s.Next.UTC().Format(time.RFC3339Nano)
			}
			if r := s.Last; r != nil {
				sj.LastPeriod, sj.LastTerm, sj.LastBy = r.Period.UTC().Format(time.RFC3339Nano), r.Term, r.By
				sj.LastState, sj.LastExit = r.State, r.Exit
			}
			out = append(out, sj)
		}
		return out
	})
}

// stopBoth stops the duty and the jobs at once: each stop must fit in the
// lease margin on its own, not their sum.
func stopBoth(reason string, duty leaseDuty, jobs *roles.Jobs) error {
	var wg sync.WaitGroup
	var jobsErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		jobsErr = jobs.Stop(reason)
	}()
	dutyErr := duty.Stop(reason)
	wg.Wait()
	return errors.Join(dutyErr, jobsErr)
}

// withEnv is base with every KEY=value of add replacing base's entry of KEY.
func withEnv(base, add []string) []string {
	if len(add) == 0 {
		return base
	}
	drop := map[string]bool{}
	for _, kv := range add {
		k, _, _ := strings.Cut(kv, "=")
		drop[k] = true
	}
	out := make([]string, 0, len(base)+len(add))
	for _, kv := range base {
		if k, _, _ := strings.Cut(kv, "="); !drop[k] {
			out = append(out, kv)
		}
	}
	return append(out, add...)
}

// readJobs reads the job records of every group, by HA_ID (groups without
// jobs are left out).
func readJobs(conn *zk.Conn, root string, groups []ha.GroupStatus) (map[string][]ha.JobEntry, error) {
	out := map[string][]ha.JobEntry{}
	for _, g := range groups {
		entries, err := ha.ReadJobs(conn, root, g.HAID)
		if err != nil {
			return nil, err
		}
		if len(entries) > 0 {
			out[g.HAID] = entries
		}
	}
	return out, nil
}

// printJobs prints a group's job records under its members.
func printJobs(w io.Writer, jobs []ha.JobEntry) {
	if len(jobs) == 0 {
		return
	}
	fmt.Fprintln(w, "  JOB\tSCHEDULE\tLAST PERIOD\tTERM\tBY\tRESULT\tNEXT")
	for _, j := range jobs {
		r := j.Record
		if r == nil {
			fmt.Fprintf(w, "  %s\t-\t-\t-\t-\t-\t-\n  problem: %s: %s (overwritten by the job's next run)\n", j.Name, j.Znode, j.Problem)
			continue
		}
		result := r.State
		if r.Exit != "" {
			result += " (" + r.Exit + ")"
		}
		next := "-"
		if !r.Next.IsZero() {
			next = r.Next.Format(time.RFC3339)
		}
		schedule := r.Schedule
		if schedule == "" {
			schedule = "-"
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%d\t%s\t%s\t%s\n", j.Name, schedule, r.Period.Format(time.RFC3339Nano), r.Term, r.By, result, next)
	}
}
