package conf

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const haBase = "NAME=primary-1\nROLE=primary\nHA_ID=g\nZK=zk1:2181\n"

// TestLoadReadsJobsFromEveryLayer: job keys come from the env file and the
// environment, are listed by check-config with their sources, and become
// Config.Jobs sorted by name.
func TestLoadReadsJobsFromEveryLayer(t *testing.T) {
	path := writeFile(t, haBase+
		"JOB_REPORT_CMD='exec /usr/local/bin/report'\n"+
		"JOB_REPORT_EVERY=15m\n"+
		"JOB_BACKUP_CMD='exec backup --full'\n"+
		"JOB_BACKUP_CRON='CRON_TZ=UTC 0 3 * * *'\n")
	o := opts(t)
	o.EnvFile = path
	o.Environ = []string{"HANODE_JOB_BACKUP_MISSED=skip"}
	c, err := Load(o)
	require.NoError(t, err)
	assert.Equal(t, []Job{
		{Name: "BACKUP", Command: "exec backup --full", Cron: "CRON_TZ=UTC 0 3 * * *", Missed: "skip"},
		{Name: "REPORT", Command: "exec /usr/local/bin/report", Every: 15 * time.Minute, Missed: "once"},
	}, c.Jobs)
	assert.Equal(t, Setting{Key: "JOB_BACKUP_CRON", Value: "CRON_TZ=UTC 0 3 * * *", Source: path + ":8"}, setting(t, c, "JOB_BACKUP_CRON"))
	assert.Equal(t, "env HANODE_JOB_BACKUP_MISSED", setting(t, c, "JOB_BACKUP_MISSED").Source)
	assert.Empty(t, c.Notices(), "job keys are keys, not unused variables")
	// A job's stop must fit in the margin like the duty's, ACTIVE_CMD or not.
	assert.LessOrEqual(t, c.ActiveStopTimeout+stopSlack+stallReserve(c.LeaseMargin), c.LeaseMargin)
}

// TestLoadReportsEveryJobProblemAtOnce, each naming its key and file:line.
func TestLoadReportsEveryJobProblemAtOnce(t *testing.T) {
	path := writeFile(t, haBase+
		"JOB_A_EVERY=1h\n"+ // 5: no command
		"JOB_B_CMD=true\nJOB_B_EVERY=1h\nJOB_B_CRON='@hourly'\n"+ // 6-8: two schedules
		"JOB_C_CMD=true\nJOB_C_EVERY=500ms\n"+ // 9-10: too short
		"JOB_D_CMD=true\nJOB_D_CRON='61 * * * *'\n"+ // 11-12: not cron
		"JOB_E_CMD=true\nJOB_E_CRON='@every 1m'\nJOB_E_MISSED=twice\n"+ // 13-15: @every, bad MISSED
		"JOB_F_CMD=true\n"+ // 16: no schedule
		"JOB_G_CMND=true\n"+ // 17: a typo
		"job_h_cmd=true\n"+ // 18: case
		"JOB_I_CMD=true\nJOB_I_CRON='0 0 30 2 *'\n") // 19-20: never due
	o := opts(t)
	o.EnvFile = path
	_, err := Load(o)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrInvalid)
	at := func(line int) string { return fmt.Sprintf("%s:%d", path, line) }
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		`JOB_G_CMND="true" (from ` + at(17) + `): unknown key, one typo away from JOB_G_CMD: write JOB_G_CMD`,
		`job_h_cmd="true" (from ` + at(18) + `): unknown key; keys are case-sensitive: write JOB_H_CMD`,
		`JOB_A_EVERY="1h" (from ` + at(5) + `): JOB_A_CMD is not set: a job needs its command; set it, or remove JOB_A_EVERY`,
		`JOB_B_CRON="@hourly" (from ` + at(8) + `): a job has one schedule: set JOB_B_EVERY or JOB_B_CRON, not both`,
		`JOB_C_EVERY="500ms" (from ` + at(10) + `): must be at least 1s`,
		`JOB_D_CRON="61 * * * *" (from ` + at(12) + `): not a crontab line`,
		`JOB_E_CRON="@every 1m" (from ` + at(14) + `): not a crontab line`,
		`JOB_E_MISSED="twice" (from ` + at(15) + `): must be once`,
		`JOB_F_CMD="true" (from ` + at(16) + `): no schedule: set JOB_F_EVERY`,
		`JOB_I_CRON="0 0 30 2 *" (from ` + at(20) + `): never comes due`,
	}
	require.Len(t, lines, len(want), err.Error())
	for i, w := range want {
		assert.True(t, strings.HasPrefix(lines[i], strings.SplitAfter(w, "): ")[0]) && strings.Contains(lines[i], strings.SplitAfter(w, "): ")[1]),
			"line %d:\n got %s\nwant %s", i, lines[i], w)
	}
}

func TestJobsNeedAnHAGroup(t *testing.T) {
	_, err := Validate(minimal(set("JOB_X_CMD", "true"), set("JOB_X_EVERY", "1m")))
	require.Error(t, err)
	assert.Equal(t, []string{"JOB_X_CMD"}, fieldErrorKeys(err))
	assert.Contains(t, err.Error(), "set HA_ID and ZK")
}

func TestJobKeysAndTheirMisspellings(t *testing.T) {
	for _, c := range []struct {
		name, key    string
		isKey, near  bool
		caseOnly     bool
		resembledKey string
	}{
		{name: "JOB_BACKUP_CMD", isKey: true},
		{name: "JOB_NIGHTLY_DB_2_EVERY", isKey: true},
		{name: "JOB__CMD"},
		{name: "JOB_CMD"},
		{name: "JOB_X_ID"},
		{name: "JOB_BACKUP_EVRY", near: true, resembledKey: "JOB_BACKUP_EVERY"},
		{name: "JOB_BACKUP_CROM", near: true, resembledKey: "JOB_BACKUP_CRON"},
		{name: "Job_Backup_Missed", near: true, caseOnly: true, resembledKey: "JOB_BACKUP_MISSED"},
	} {
		_, isKey := lookupKey(c.name)
		assert.Equal(t, c.isKey, isKey, c.name)
		if isKey {
			continue
		}
		key, caseOnly, near := resembles(c.name)
		assert.Equal(t, c.near, near, c.name)
		assert.Equal(t, c.resembledKey, key, c.name)
		assert.Equal(t, c.caseOnly, caseOnly, c.name)
	}
}
