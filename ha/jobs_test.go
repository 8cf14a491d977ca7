package ha

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hanode/hanode/internal/zktest"
)

func TestPeriodDoneAllowsOnlyALaterPeriod(t *testing.T) {
	p := time.Date(2026, 12, 6, 19, 10, 1, 0, time.UTC)
	cases := []struct {
		name      string
		recorded  time.Time
		requested time.Time
		done      bool
	}{
		{"the same period", p, p, true},
		{"an earlier period", p, p.Add(-time.Second), true},
		{"a later period", p, p.Add(time.Second), false},
		{"a nanosecond later", p, p.Add(time.Nanosecond), false},
		{"the same instant in another zone", p, p.In(time.FixedZone("x", 3600)), true},
	}
	for _, c := range cases {
		if got := PeriodDone(c.recorded, c.requested); got != c.done {
			t.Errorf("%s: PeriodDone = %v, want %v", c.name, got, c.done)
		}
	}
}

func TestJobRecordsThatDoNotParseAreRefused(t *testing.T) {
	good := encodeJobRecord(JobRecord{Period: time.Unix(60, 0), Term: 7, By: "a", State: JobRunning, Started: time.Unix(61, 0)})
	if r, err := DecodeJobRecord(good); err != nil || r.Term != 7 || !r.Period.Equal(time.Unix(60, 0)) {
		t.Fatalf("round trip: %+v, %v", r, err)
	}
	for _, bad := range []string{
		``, `{`, `[]`, `{"term":7,"state":"running"}`,
		`{"period":"1970-01-01T00:01:00Z","term":0,"state":"running"}`,
		`{"period":"1970-01-01T00:01:00Z","term":7,"state":"done"}`,
		`{"period":"yesterday","term":7,"state":"ok"}`,
	} {
		if _, err := DecodeJobRecord([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestAPeriodIsStartedOnceAcrossAFailover: the leader records a period
// once (a second start, or an earlier period, is refused); a standby cannot
// record; after a failover the new leader cannot start a period the old
// one recorded, and the old one, still a member, cannot write its result.
func TestAPeriodIsStartedOnceAcrossAFailover(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.start("a")
	g.start("b")
	leader := g.waitLeader(20 * time.Second)
	var standby *member
	for _, m := range g.members {
		if m != leader {
			standby = m
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := time.Date(2026, 12, 6, 19, 10, 1, 0, time.UTC)
	start := func(m *member, at time.Time) (int64, error) {
		return m.el.StartPeriod(ctx, PeriodStart{Job: "report", Period: at, Schedule: "every 1s", Next: at.Add(time.Second)})
	}

	term, err := start(leader, p)
	if err != nil || term != leader.el.State().Term {
		t.Fatalf("first start: term %d, %v; leader's term %d", term, err, leader.el.State().Term)
	}
	if _, err := start(leader, p); !errors.Is(err, ErrPeriodDone) {
		t.Fatalf("second start of the same period: %v, want ErrPeriodDone", err)
	}
	if _, err := start(leader, p.Add(-time.Second)); !errors.Is(err, ErrPeriodDone) {
		t.Fatalf("start of an earlier period: %v, want ErrPeriodDone", err)
	}
	if _, err := start(standby, p.Add(time.Second)); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("start by a standby: %v, want ErrNotLeader", err)
	}
	rec, found, err := standby.el.ReadJob("report")
	if err != nil || !found || !rec.Period.Equal(p) || rec.Term != term || rec.By != leader.name || rec.State != JobRunning {
		t.Fatalf("record %+v (found %v, %v): want %s running in term %d by %s", rec, found, err, p, term, leader.name)
	}

	// The leader hands over and stays a member, with its session.
	if err := leader.el.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	next := g.waitLeader(20 * time.Second)
	if next == leader {
		t.Fatal("the resigned leader leads again")
	}
	if _, err := start(next, p); !errors.Is(err, ErrPeriodDone) {
		t.Fatalf("the new leader started the old leader's period: %v", err)
	}
	if err := leader.el.FinishPeriod(ctx, "report", p, term, JobResult{State: JobOK, Exit: "exit status 0"}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("the old leader's result: %v, want ErrNotLeader", err)
	}
	// The new leader tells what it knows of the old run, then runs the next
	// period in its own, larger term.
	if err := next.el.FinishPeriod(ctx, "report", p, term, JobResult{State: JobUnknown}); err != nil {
		t.Fatal(err)
	}
	if err := next.el.FinishPeriod(ctx, "report", p, term, JobResult{State: JobOK}); !errors.Is(err, ErrPeriodMoved) {
		t.Fatalf("a second result for the same run: %v, want ErrPeriodMoved", err)
	}
	term2, err := start(next, p.Add(time.Second))
	if err != nil || term2 <= term {
		t.Fatalf("the new leader's next period: term %d, %v (old term %d)", term2, err, term)
	}
	if err := next.el.FinishPeriod(ctx, "report", p.Add(time.Second), term2, JobResult{State: JobFailed, Exit: "exit status 3"}); err != nil {
		t.Fatal(err)
	}
	rec, _, _ = next.el.ReadJob("report")
	if rec.State != JobFailed || rec.Exit != "exit status 3" || rec.FinishTerm != term2 || rec.Finished.IsZero() {
		t.Fatalf("finished record %+v", rec)
	}
}

// TestAJobRecordThatDoesNotParseIsOverwrittenByTheNextStart: foreign data
// in a job's znode is never trusted and never wedges the job.
func TestAJobRecordThatDoesNotParseIsOverwrittenByTheNextStart(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.start("a")
	leader := g.waitLeader(20 * time.Second)
	conn := admin(t, zkS.Addr)
	dir := JobsDir(g.root, g.haID)
	if _, err := conn.Create(dir, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Create(dir+"/backup", []byte(`{"period":"2999-01-01T00:00:00Z","term":"x"}`), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, found, err := leader.el.ReadJob("backup"); found || err != nil {
		t.Fatalf("a damaged record was read as found=%v, %v", found, err)
	}
	entries, err := ReadJobs(conn, g.root, g.haID)
	if err != nil || len(entries) != 1 || entries[0].Problem == "" || entries[0].Znode != dir+"/backup" {
		t.Fatalf("ReadJobs: %+v, %v; want the damaged znode named with its problem", entries, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := leader.el.StartPeriod(ctx, PeriodStart{Job: "backup", Period: p}); err != nil {
		t.Fatalf("start over a damaged record: %v", err)
	}
	entries, _ = ReadJobs(conn, g.root, g.haID)
	if len(entries) != 1 || entries[0].Record == nil || !entries[0].Record.Period.Equal(p) {
		t.Fatalf("after the start: %+v", entries)
	}
	if _, err := leader.el.StartPeriod(ctx, PeriodStart{Job: "Backup/x", Period: p}); !errors.Is(err, ErrBadJobName) {
		t.Fatalf("a bad job name: %v", err)
	}
}
