package schedule

import (
	"errors"
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func mustEvery(t *testing.T, d time.Duration) Schedule {
	t.Helper()
	s, err := Every(d)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustCron(t *testing.T, spec string) Schedule {
	t.Helper()
	s, err := Cron(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestEveryPeriodsAreMultiplesOfTheDurationSinceTheEpoch: every member
// computes the same periods, whenever it asks.
func TestEveryPeriodsAreMultiplesOfTheDurationSinceTheEpoch(t *testing.T) {
	cases := []struct {
		name string
		d    time.Duration
		t    string
		next string
	}{
		{"1s, mid-second", time.Second, "2026-12-06T19:10:01.222Z", "2026-12-06T19:10:02Z"},
		{"1s, on a period: strictly after", time.Second, "2026-12-06T19:10:01Z", "2026-12-06T19:10:02Z"},
		{"90s from the epoch, not from the hour", 90 * time.Second, "1970-01-01T00:02:00Z", "1970-01-01T00:03:00Z"},
		{"1h, top of the UTC hour", time.Hour, "2026-12-06T19:59:59.999Z", "2026-12-06T20:00:00Z"},
		{"before the epoch rounds down", time.Minute, "1969-12-31T23:59:30Z", "1970-01-01T00:00:00Z"},
		{"a location does not move the grid", time.Hour, "2026-12-06T19:29:00+05:30", "2026-12-06T14:00:00Z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := mustEvery(t, c.d).Next(at(c.t)); !got.Equal(at(c.next)) {
				t.Fatalf("Next(%s) = %s, want %s", c.t, got, c.next)
			}
		})
	}
}

func TestEveryRefusesPeriodsUnderOneSecond(t *testing.T) {
	if _, err := Every(999 * time.Millisecond); err == nil {
		t.Fatal("Every(999ms) accepted")
	}
}

// TestCronSpecs: standard lines and descriptors parse, in the given zone;
// @every and nonsense are refused.
func TestCronSpecs(t *testing.T) {
	cases := []struct {
		spec string
		t    string
		next string // "" when the spec is refused
	}{
		{"CRON_TZ=UTC 0 3 * * *", "2026-12-06T19:10:00Z", "2026-12-07T03:00:00Z"},
		{"CRON_TZ=UTC */5 * * * *", "2026-12-06T19:10:00Z", "2026-12-06T19:15:00Z"},
		{"CRON_TZ=UTC @hourly", "2026-12-06T19:10:00Z", "2026-12-06T20:00:00Z"},
		{"CRON_TZ=Asia/Kolkata 0 3 * * *", "2026-12-06T19:10:00Z", "2026-12-06T21:30:00Z"},
		{"@every 1s", "", ""},
		{"CRON_TZ=UTC @every 1h", "", ""},
		{"61 * * * *", "", ""},
		{"* * * *", "", ""},
	}
	for _, c := range cases {
		t.Run(c.spec, func(t *testing.T) {
			s, err := Cron(c.spec)
			if c.next == "" {
				if err == nil {
					t.Fatalf("Cron(%q) accepted", c.spec)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Next(at(c.t)); !got.Equal(at(c.next)) || got.Location() != time.UTC {
				t.Fatalf("Next(%s) = %s, want %s in UTC", c.t, got, c.next)
			}
		})
	}
	if _, err := Cron("@every 5m"); !errors.Is(err, ErrEveryInCron) {
		t.Fatalf("@every: %v, want ErrEveryInCron", err)
	}
}

// TestLatestFindsTheLastPeriodInTheInterval for grid and cron schedules,
// including rare ones far back (a yearly cron a year and a half ago).
func TestLatestFindsTheLastPeriodInTheInterval(t *testing.T) {
	sec := mustEvery(t, time.Second)
	min5 := mustCron(t, "CRON_TZ=UTC */5 * * * *")
	yearly := mustCron(t, "CRON_TZ=UTC @yearly")
	cases := []struct {
		name       string
		s          Schedule
		after, now string
		want       string // "" for none
	}{
		{"grid: the floor of now", sec, "2026-01-01T00:00:00Z", "2026-01-01T00:00:07.5Z", "2026-01-01T00:00:07Z"},
		{"grid: a period at now counts", sec, "2026-01-01T00:00:00Z", "2026-01-01T00:00:07Z", "2026-01-01T00:00:07Z"},
		{"grid: after excludes itself", sec, "2026-01-01T00:00:07Z", "2026-01-01T00:00:07.9Z", ""},
		{"grid: now before after", sec, "2026-01-01T00:00:09Z", "2026-01-01T00:00:07Z", ""},
		{"cron: several due, the latest", min5, "2026-01-01T00:00:00Z", "2026-01-01T00:17:00Z", "2026-01-01T00:15:00Z"},
		{"cron: none due", min5, "2026-01-01T00:15:00Z", "2026-01-01T00:19:59Z", ""},
		{"cron: after zero, far back", min5, "0001-01-01T00:00:00Z", "2026-01-01T00:17:00Z", "2026-01-01T00:15:00Z"},
		{"cron: yearly, 18 months", yearly, "2024-06-01T00:00:00Z", "2025-12-01T00:00:00Z", "2025-01-01T00:00:00Z"},
		{"cron: yearly, none since", yearly, "2025-01-01T00:00:00Z", "2025-12-31T23:59:59Z", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Latest(c.s, at(c.after), at(c.now))
			want := time.Time{}
			if c.want != "" {
				want = at(c.want)
			}
			if !got.Equal(want) {
				t.Fatalf("Latest(%s, %s) = %s, want %v", c.after, c.now, got, c.want)
			}
		})
	}
}

// TestDueRunsEachPeriodOnceAndCatchesUpAsConfigured: what a leader does at
// one instant, for MISSED=once and skip, with and without a record.
func TestDueRunsEachPeriodOnceAndCatchesUpAsConfigured(t *testing.T) {
	sec := mustEvery(t, time.Second)
	min := mustEvery(t, time.Minute)
	none := ""
	cases := []struct {
		name               string
		s                  Schedule
		last, since, now   string
		missed             Missed
		run, next, skipped string
	}{
		{"steady state: the period that just came due", sec,
			"2026-01-01T00:00:06Z", "2026-01-01T00:00:00Z", "2026-01-01T00:00:07.01Z", MissedOnce,
			"2026-01-01T00:00:07Z", "2026-01-01T00:00:08Z", none},
		{"already run: wait for the next", sec,
			"2026-01-01T00:00:07Z", "2026-01-01T00:00:00Z", "2026-01-01T00:00:07.5Z", MissedOnce,
			none, "2026-01-01T00:00:08Z", none},
		{"a run overran two periods: only the latest", sec,
			"2026-01-01T00:00:04Z", "2026-01-01T00:00:00Z", "2026-01-01T00:00:07.2Z", MissedOnce,
			"2026-01-01T00:00:07Z", "2026-01-01T00:00:08Z", none},
		{"missed while nobody led, once: the latest missed runs now", min,
			"2026-01-01T00:01:00Z", "2026-01-01T00:04:30Z", "2026-01-01T00:04:30.1Z", MissedOnce,
			"2026-01-01T00:04:00Z", "2026-01-01T00:05:00Z", none},
		{"missed while nobody led, skip: nothing until the next", min,
			"2026-01-01T00:01:00Z", "2026-01-01T00:04:30Z", "2026-01-01T00:04:30.1Z", MissedSkip,
			none, "2026-01-01T00:05:00Z", "2026-01-01T00:04:00Z"},
		{"skip: a period that comes due while leading runs", min,
			"2026-01-01T00:01:00Z", "2026-01-01T00:04:30Z", "2026-01-01T00:05:00.1Z", MissedSkip,
			"2026-01-01T00:05:00Z", "2026-01-01T00:06:00Z", "2026-01-01T00:04:00Z"},
		{"skip: a period exactly at the leadership's start is its own", min,
			"2026-01-01T00:01:00Z", "2026-01-01T00:05:00Z", "2026-01-01T00:05:00.1Z", MissedSkip,
			"2026-01-01T00:05:00Z", "2026-01-01T00:06:00Z", "2026-01-01T00:04:00Z"},
		{"no record: nothing from before this leadership, once or not", min,
			"", "2026-01-01T00:04:30Z", "2026-01-01T00:04:31Z", MissedOnce,
			none, "2026-01-01T00:05:00Z", none},
		{"no record: the first period while leading runs", min,
			"", "2026-01-01T00:04:30Z", "2026-01-01T00:05:00.3Z", MissedOnce,
			"2026-01-01T00:05:00Z", "2026-01-01T00:06:00Z", none},
		{"record ahead of this clock: wait for the period after it", sec,
			"2026-01-01T00:00:09Z", "2026-01-01T00:00:00Z", "2026-01-01T00:00:07.5Z", MissedOnce,
			none, "2026-01-01T00:00:10Z", none},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var last time.Time
			if c.last != "" {
				last = at(c.last)
			}
			d := Due(c.s, last, at(c.since), at(c.now), c.missed)
			check := func(what string, got time.Time, want string) {
				t.Helper()
				w := time.Time{}
				if want != "" {
					w = at(want)
				}
				if !got.Equal(w) {
					t.Errorf("%s = %s, want %q", what, got, want)
				}
			}
			check("Run", d.Run, c.run)
			check("Next", d.Next, c.next)
			check("Skipped", d.Skipped, c.skipped)
		})
	}
}

func TestParseMissed(t *testing.T) {
	for in, want := range map[string]Missed{"once": MissedOnce, "SKIP": MissedSkip, " skip ": MissedSkip} {
		if got, err := ParseMissed(in); err != nil || got != want {
			t.Errorf("ParseMissed(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseMissed("twice"); err == nil {
		t.Error("twice accepted")
	}
}
