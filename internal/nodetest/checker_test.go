package nodetest

import (
	"testing"
	"time"
)

// ms builds instants relative to a fixed origin, so cases read in ms.
var origin = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms float64) time.Time { return origin.Add(time.Duration(ms * float64(time.Millisecond))) }

// run builds an ok run of n answers: the first sent at sent0 and answered
// after lat ms, the last sent at sentN.
func okRunOf(n int, sent0, sentN, lat float64) Run {
	return Run{Result: ResultOK, N: n, FirstSent: at(sent0), FirstArrived: at(sent0 + lat),
		LastSent: at(sentN), LastArrived: at(sentN + lat), Code: 200}
}

func TestDefiniteOverlapNeedsBothNodesSurelyActive(t *testing.T) {
	cases := []struct {
		name string
		a, b Run
		want bool
	}{
		{
			name: "handover between polls is not an overlap",
			// a: ok answers sent 0..100, b: ok from 105 on.
			a: okRunOf(11, 0, 100, 1), b: okRunOf(10, 105, 195, 1), want: false,
		},
		{
			name: "b's first ok arriving before a's last ok was sent is an overlap",
			a:    okRunOf(11, 0, 100, 1), b: okRunOf(10, 95, 185, 1), want: true,
		},
		{
			name: "runs that only touch through in-flight windows are not an overlap",
			// a's last request sent at 100 and answered at 104; b's first sent
			// at 99 and answered at 101: either may have been processed first.
			a: okRunOf(11, 0, 100, 4), b: okRunOf(10, 99, 189, 2), want: false,
		},
		{
			name: "a single ok inside the other's sure interval is an overlap",
			a:    okRunOf(11, 0, 100, 1), b: okRunOf(1, 50, 50, 1), want: true,
		},
		{
			name: "a single ok straddling the start of the other's sure interval is not",
			a:    okRunOf(11, 0, 100, 1), b: okRunOf(1, 0.5, 0.5, 1), want: false,
		},
		{
			name: "two single oks prove nothing",
			a:    okRunOf(1, 0, 0, 1), b: okRunOf(1, 0, 0, 1), want: false,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, got := definite(tc.a, tc.b)
			_, _, rev := definite(tc.b, tc.a)
			if got != tc.want || rev != tc.want {
				t.Fatalf("definite(a, b) = %v, definite(b, a) = %v, want %v", got, rev, tc.want)
			}
		})
	}
}

func TestPossibleOverlapIsTheBalancersView(t *testing.T) {
	a, b := &Node{name: "a"}, &Node{name: "b"}
	nodes := []*Node{a, b}
	// a answers ok until its standby answer arrives at 111; b's first ok
	// arrives at 106: a balancer polling both saw both up for 5 ms.
	runs := map[*Node][]okRun{
		a: {{Run: okRunOf(11, 0, 100, 1), end: at(111)}},
		b: {{Run: okRunOf(10, 105, 195, 1), end: at(300)}},
	}
	if got := definiteOverlaps(runs, nodes, origin); len(got) != 0 {
		t.Fatalf("definite overlaps %v, want none", got)
	}
	got := possibleOverlaps(runs, nodes, origin)
	if len(got) != 1 || got[0].Duration() != 5*time.Millisecond {
		t.Fatalf("possible overlaps %v, want one of 5ms", got)
	}
	runs[a][0].end = at(106) // a's standby arrived exactly when b's ok did
	if got := possibleOverlaps(runs, nodes, origin); len(got) != 0 {
		t.Fatalf("possible overlaps %v, want none for intervals that only touch", got)
	}
}

func TestCheckerMergesEqualAnswersIntoRuns(t *testing.T) {
	c := &Checker{runs: map[*Node][]Run{}}
	n := &Node{name: "a"}
	add := func(r Result, code int, sent float64) {
		c.record(n, Run{Result: r, N: 1, Code: code, FirstSent: at(sent), FirstArrived: at(sent + 1), LastSent: at(sent), LastArrived: at(sent + 1)})
	}
	add(ResultStandby, 503, 0)
	add(ResultOK, 200, 10)
	add(ResultOK, 200, 20)
	add(ResultOK, 200, 30)
	add(ResultError, 0, 40)
	runs := c.runs[n]
	if len(runs) != 3 || runs[1].N != 3 || !runs[1].FirstSent.Equal(at(10)) || !runs[1].LastArrived.Equal(at(31)) {
		t.Fatalf("runs = %+v", runs)
	}
}

func TestDutySpansOverlapOnlyWhenBothSurelyRan(t *testing.T) {
	hb := func(ms float64, name string, term int64) Heartbeat {
		return Heartbeat{At: at(ms), Name: name, Term: term}
	}
	cases := []struct {
		name      string
		beats     []Heartbeat
		overlaps  int
		termFault int
	}{
		{
			name: "clean handover",
			beats: []Heartbeat{hb(0, "a", 1), hb(50, "a", 1), hb(100, "a", 1),
				hb(101, "b", 2), hb(151, "b", 2)},
		},
		{
			name: "b started before a's last heartbeat",
			beats: []Heartbeat{hb(0, "a", 1), hb(50, "a", 1), hb(100, "a", 1),
				hb(99, "b", 2), hb(149, "b", 2)},
			overlaps: 1,
		},
		{
			name:  "a single heartbeat inside another span",
			beats: []Heartbeat{hb(0, "a", 1), hb(100, "a", 1), hb(40, "b", 2)},
			// b's span [40, 40] starts inside a's; b's term is larger, but
			// it surely ran while a did.
			overlaps: 1,
		},
		{
			name:      "term went backwards",
			beats:     []Heartbeat{hb(0, "a", 3), hb(50, "a", 3), hb(60, "b", 2)},
			termFault: 1,
		},
		{
			name: "the same node leading again with a new term",
			beats: []Heartbeat{hb(0, "a", 1), hb(50, "a", 1), hb(60, "b", 2),
				hb(110, "b", 2), hb(120, "a", 3)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ov, terms := CheckSpans(Spans(tc.beats))
			if len(ov) != tc.overlaps || len(terms) != tc.termFault {
				t.Fatalf("overlaps %v, term problems %v; want %d and %d", ov, terms, tc.overlaps, tc.termFault)
			}
		})
	}
}

func TestHeartbeatLinesParse(t *testing.T) {
	hb, ok := parseHeartbeat("1700000000123456789 primary-1 7 primary,monitor g1")
	if !ok || hb.Name != "primary-1" || hb.Term != 7 || hb.Role != "primary,monitor" || hb.HAID != "g1" ||
		hb.At.UnixNano() != 1700000000123456789 {
		t.Fatalf("parsed %+v, %v", hb, ok)
	}
	for _, bad := range []string{"", "123", "12x a 1", "123 a b", "1700000000"} {
		if _, ok := parseHeartbeat(bad); ok {
			t.Errorf("parseHeartbeat(%q) accepted", bad)
		}
	}
}

func TestEnvFileQuotesValuesForTheShell(t *testing.T) {
	got := EnvFile(map[string]string{"B": "it's", "A": `$(date) "x"`})
	want := "# written by nodetest\nA='$(date) \"x\"'\nB='it'\\''s'\n"
	if got != want {
		t.Fatalf("EnvFile = %q, want %q", got, want)
	}
}
