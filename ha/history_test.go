package ha

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/ha/internal/core"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// TestHistoryRecordsEveryChangeWithItsCause: the first leader, a
// switchover (Resign), a graceful stop, a pause and a resume each leave an
// entry, in order, naming who led before and after and why; every member
// reads the same history.
func TestHistoryRecordsEveryChangeWithItsCause(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	g.start("a")
	g.start("b")
	g.start("c")
	first := g.waitLeader(20 * time.Second)
	ctx := context.Background()
	entries := func(n int) {
		t.Helper()
		testwait.For(t, 10*time.Second, "the history's next entry", func() bool {
			h, err := first.el.History(0)
			return err == nil && len(h) >= n
		})
	}
	entries(1)
	if err := first.el.Resign(ctx); err != nil {
		t.Fatalf("resign: %v", err)
	}
	second := g.waitLeader(10 * time.Second)
	entries(2)
	if err := second.stop(t); err != nil {
		t.Fatal(err)
	}
	var third *member
	testwait.For(t, 10*time.Second, "a third leader", func() bool {
		for _, m := range g.members {
			if m != second && m.el.State().Active() {
				third = m
				return true
			}
		}
		return false
	})
	entries(3)
	if err := third.el.Pause(ctx, "upgrade"); err != nil {
		t.Fatal(err)
	}
	if err := third.el.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	want := []HistoryEntry{
		{To: first.name, Cause: CauseFirst},
		{From: first.name, To: second.name, Cause: CauseSwitchover},
		{From: second.name, To: third.name, Cause: CauseGraceful},
		{To: third.name, Cause: CausePause, Reason: "upgrade"},
		{To: third.name, Cause: CauseResume},
	}
	var got []HistoryEntry
	if err := testwait.Poll(10*time.Second, 20*time.Millisecond, func() bool {
		var err error
		got, err = third.el.History(0)
		return err == nil && len(got) == len(want)
	}); err != nil {
		t.Errorf("history has %d entries, want %d", len(got), len(want))
	}
	for _, h := range got {
		t.Logf("%+v", h)
	}
	for i, w := range want {
		h := got[i]
		if h.From != w.From || h.To != w.To || h.Cause != w.Cause || (w.Reason != "" && h.Reason != w.Reason) {
			t.Errorf("entry %d = %+v, want from %q to %q cause %q", i, h, w.From, w.To, w.Cause)
		}
		if i > 0 && h.Seq <= got[i-1].Seq {
			t.Errorf("entry %d out of order: seq %d after %d", i, h.Seq, got[i-1].Seq)
		}
		if (w.Cause == CausePause || w.Cause == CauseResume) != (h.Term == 0) {
			t.Errorf("entry %d: term %d", i, h.Term)
		}
	}
	if last, err := third.el.History(2); err != nil || len(last) != 2 || last[1].Cause != CauseResume {
		t.Errorf("History(2) = %+v, %v: want the last two", last, err)
	}
}

// TestTrimDeletesTheOldestEntriesOnly: the trim leaves the newest limit
// entries and never counts or deletes a node that is not an entry, even
// when such nodes make the children more than limit while the entries are
// fewer (it used to slice out of range there, ending the process: found by
// the simulator, sim_history_test.go).
func TestTrimDeletesTheOldestEntriesOnly(t *testing.T) {
	for _, c := range []struct {
		name     string
		children []string
		limit    int
		want     []string
	}{
		{"within the limit", []string{"t-0000000001", "t-0000000000"}, 2, nil},
		{"the oldest beyond it", []string{"t-0000000002", "t-0000000000", "t-0000000001"}, 1,
			[]string{"t-0000000000", "t-0000000001"}},
		{"others' nodes are not counted", []string{"foreign", "t-junk", "t-0000000004"}, 2, nil},
		{"nor deleted", []string{"foreign", "t-0000000007", "t-junk", "t-0000000003", "t-0000000005"}, 2,
			[]string{"t-0000000003"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, op := range trimDeletes("/h", c.children, c.limit) {
				if op.Kind != core.OpDelete || op.Version != -1 {
					t.Fatalf("op %+v: want an unconditional delete", op)
				}
				got = append(got, strings.TrimPrefix(op.Path, "/h/"))
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("trimDeletes(%v, %d) deletes %v, want %v", c.children, c.limit, got, c.want)
			}
		})
	}
}

// TestTakeoverRecordedOnlyUnderItsOwnTerm: a takeover's write carries its
// entry and the history's mark by compare-and-set from the version read
// (found by the simulator, sim_history_test.go: a write tried again after
// an unknown outcome recorded the takeover twice); fenced by a later term
// (the leadership ended while the write waited, and this node leads again)
// it records nothing: the next takeover records its own, and no term
// appears twice (found by the simulator too).
func TestTakeoverRecordedOnlyUnderItsOwnTerm(t *testing.T) {
	entry := HistoryEntry{From: "a", To: "b", Term: 7, Cause: CauseSwitchover}
	ops := takeoverOps("/h", entry, 7, 3)
	if len(ops) != 2 || ops[0].Kind != core.OpCreate || !ops[0].Sequence || ops[0].Path != "/h/t-" ||
		!strings.Contains(string(ops[0].Data), `"term":7`) {
		t.Fatalf("fenced by its own term: %+v, want the entry's sequential create first", ops)
	}
	if m := ops[1]; m.Kind != core.OpSet || m.Path != "/h" || m.Version != 3 || markedTerm(m.Data) != 7 {
		t.Fatalf("the mark: %+v, want term 7 set on /h from version 3", m)
	}
	if ops := takeoverOps("/h", entry, 9, 3); ops != nil {
		t.Fatalf("fenced by a later term: %+v, want nothing", ops)
	}
	for _, data := range []string{"", "x", `{"term":"7"}`} {
		if got := markedTerm([]byte(data)); got != 0 {
			t.Errorf("markedTerm(%q) = %d, want 0", data, got)
		}
	}
}

// TestTrimListsOnlyWhenTheHistoryMayBeFull: a takeover lists the history for
// a trim only once the sequence number of the entry it created says that
// the directory may hold more than the limit (entries are at most the
// creates, and a sequence number counts creates and deletes before it), or
// when it cannot tell.
func TestTrimListsOnlyWhenTheHistoryMayBeFull(t *testing.T) {
	dir := "/hanode/groups/g/history"
	multi := func(paths ...string) core.Result {
		r := core.Result{}
		for _, p := range paths {
			r.Multi = append(r.Multi, core.Result{Path: p})
		}
		return r
	}
	for _, tc := range []struct {
		name  string
		r     core.Result
		limit int
		want  bool
	}{
		{"the first entry", multi("", "", dir+"/t-0000000000", ""), 1000, false},
		{"the limit-th entry", multi("", "", dir+"/t-0000000999", ""), 1000, false},
		{"one more than the limit", multi("", "", dir+"/t-0000001000", ""), 1000, true},
		{"a limit of one, the second entry", multi("", "", dir+"/t-0000000001", ""), 1, true},
		{"no entry named", multi("", ""), 1000, true},
		{"another directory's node", multi("/elsewhere/t-0000000001"), 1000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mayNeedTrim(createdSeq(dir, tc.r), tc.limit); got != tc.want {
				t.Errorf("mayNeedTrim(createdSeq(%v), %d) = %v, want %v", tc.r.Multi, tc.limit, got, tc.want)
			}
		})
	}
}
