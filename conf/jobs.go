package conf

import (
	"cmp"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hanode/hanode/roles/schedule"
)

// Scheduled jobs are keys made from a pattern, any number of them:
//
//	JOB_<NAME>_CMD      the command, run with /bin/sh -c by the leader only
//	JOB_<NAME>_EVERY    a period (a duration, at least 1s), or
//	JOB_<NAME>_CRON     a crontab line (5 fields, or @hourly, ...; CRON_TZ= allowed)
//	JOB_<NAME>_MISSED   once (default) or skip: a period missed while no member led
//
// NAME is upper-case letters, digits and '_' (starting with a letter or a
// digit); the job is known by NAME in lower case (its znode, HANODE_JOB).

// Job is one scheduled job as configured.
type Job struct {
	// Name is NAME as written (BACKUP); the job's name is its lower case.
	Name    string
	Command string
	// Exactly one of Every and Cron is set.
	Every time.Duration
	Cron  string
	// Missed is "once" or "skip".
	Missed string
}

// The fields of a job key, in the order check-config prints them.
var jobFields = []string{"CMD", "EVERY", "CRON", "MISSED"}

var jobKeyRE = regexp.MustCompile(`^JOB_([A-Z0-9][A-Z0-9_]*)_(CMD|EVERY|CRON|MISSED)$`)

// jobKey splits a job key into NAME and field; ok is false for any other
// name.
func jobKey(key string) (name, field string, ok bool) {
	m := jobKeyRE.FindStringSubmatch(key)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// lookupJobKey describes a job key as lookupKey describes a fixed one.
func lookupJobKey(key string) (keyInfo, bool) {
	_, field, ok := jobKey(key)
	if !ok {
		return keyInfo{}, false
	}
	return keyInfo{name: key, command: field == "CMD", usage: "scheduled job " + strings.ToLower(field)}, true
}

// resemblesJobKey is resembles for job keys: a name starting JOB_ (in any
// case) whose last word is one typo from a field (JOB_BACKUP_CMND,
// JOB_BACKUP_EVRY), or that differs from a job key only in case
// (job_backup_cmd).
func resemblesJobKey(name string) (key string, caseOnly, ok bool) {
	upper := strings.ToUpper(name)
	rest, found := strings.CutPrefix(upper, "JOB_")
	i := strings.LastIndexByte(rest, '_')
	if !found || i <= 0 {
		return "", false, false
	}
	jobName, word := rest[:i], rest[i+1:]
	for _, f := range jobFields {
		if osaDistance(word, f) > 1 {
			continue
		}
		key = "JOB_" + jobName + "_" + f
		if _, _, valid := jobKey(key); !valid {
			return "", false, false
		}
		return key, key == upper, true
	}
	return "", false, false
}

// jobs checks every job key of v and returns the jobs, sorted by name.
func (v *validation) jobs(ha bool) []Job {
	byName := map[string]map[string]Setting{}
	for key, s := range v.vals {
		if name, field, ok := jobKey(key); ok {
			if byName[name] == nil {
				byName[name] = map[string]Setting{}
			}
			byName[name][field] = s
		}
	}
	var out []Job
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		f := byName[name]
		key := func(field string) string { return "JOB_" + name + "_" + field }
		job := Job{Name: name, Command: f["CMD"].Value, Cron: f["CRON"].Value, Missed: "once"}
		_, hasEvery := f["EVERY"]
		_, hasCron := f["CRON"]
		ok := true
		if job.Command == "" {
			for _, field := range jobFields[1:] {
				if _, set := f[field]; set {
					v.fail(key(field), fmt.Sprintf("%s is not set: a job needs its command; set it, or remove %s", key("CMD"), key(field)))
				}
			}
			continue
		}
		v.command(key("CMD"))
		if !ha {
			v.fail(key("CMD"), "scheduled jobs run on an HA group's leader and are recorded in its ZooKeeper tree: set HA_ID and ZK, "+
				"or use cron on a server that runs standalone")
			ok = false
		}
		switch {
		case hasEvery && hasCron:
			v.fail(key("CRON"), fmt.Sprintf("a job has one schedule: set %s or %s, not both", key("EVERY"), key("CRON")))
			ok = false
		case !hasEvery && !hasCron:
			v.fail(key("CMD"), fmt.Sprintf("no schedule: set %s (a period such as 1h) or %s (a crontab line such as \"0 3 * * *\")",
				key("EVERY"), key("CRON")))
			ok = false
		case hasEvery:
			d, valid := v.duration(key("EVERY"))
			if valid && d < schedule.MinEvery {
				v.fail(key("EVERY"), fmt.Sprintf("must be at least %v", schedule.MinEvery))
				valid = false
			}
			ok = ok && valid
			job.Every = d
		case hasCron:
			s, err := schedule.Cron(job.Cron)
			switch {
			case err != nil:
				v.fail(key("CRON"), fmt.Sprintf("not a crontab line (5 fields: minute hour day-of-month month day-of-week, "+
					"or @yearly, @monthly, @weekly, @daily, @hourly; CRON_TZ=<zone> first for a zone): %v", err))
				ok = false
			case s.Next(time.Now()).IsZero():
				v.fail(key("CRON"), "never comes due (no matching time within five years)")
				ok = false
			}
		}
		if m, set := f["MISSED"]; set {
			missed, err := schedule.ParseMissed(m.Value)
			if err != nil {
				v.fail(key("MISSED"), "must be once (run the latest period missed while no member led, once) or skip")
				ok = false
			}
			job.Missed = string(missed)
		}
		if ok {
			out = append(out, job)
		}
	}
	return out
}

// jobSettings lists the job keys of v for Settings, by job and field.
func (v *validation) jobSettings() []Setting {
	var out []Setting
	for key, s := range v.vals {
		if _, _, ok := jobKey(key); ok {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Setting) int {
		an, af, _ := jobKey(a.Key)
		bn, bf, _ := jobKey(b.Key)
		return cmp.Or(cmp.Compare(an, bn), cmp.Compare(slices.Index(jobFields, af), slices.Index(jobFields, bf)))
	})
	return out
}
