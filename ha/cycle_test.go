package ha

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 6, 19, 0, 0, 0, time.UTC)

func rec(n int64, by string) cycleRead {
	return cycleRead{Exists: true, Version: int32(n - 1),
		Data: encodeCycle(CycleInfo{N: n, Started: t0.Add(time.Duration(n) * time.Second), Term: 7, Group: "g", By: by})}
}

func TestCycleWaitAddsTheDriftAllowance(t *testing.T) {
	for _, tc := range []struct {
		interval, want time.Duration
	}{
		{time.Second, 1010 * time.Millisecond},
		{300 * time.Millisecond, 303 * time.Millisecond},
		{time.Minute, 60600 * time.Millisecond},
		{3, 4}, // rounds up: never below interval × (1+ρ)
	} {
		if got := cycleWait(tc.interval); got != tc.want {
			t.Errorf("cycleWait(%s) = %s, want %s", tc.interval, got, tc.want)
		}
	}
}

func TestDecodeCycleTrustsOnlyWhatItWrote(t *testing.T) {
	good := CycleInfo{N: 42, Started: t0, Term: 9, Group: "g", By: "p1"}
	if c, why := decodeCycle(encodeCycle(good)); why != "" || c != good {
		t.Fatalf("round trip: %+v, %q", c, why)
	}
	for _, tc := range []struct{ name, data, why string }{
		{"not JSON", "garbage", "not a cycle record"},
		{"empty", "", "not a cycle record"},
		{"no n", `{"started":"2026-12-06T19:00:00Z"}`, "no cycle number"},
		{"n zero", `{"n":0,"started":"2026-12-06T19:00:00Z"}`, "outside"},
		{"n negative", `{"n":-3,"started":"2026-12-06T19:00:00Z"}`, "outside"},
		{"n too big", `{"n":9007199254740992,"started":"2026-12-06T19:00:00Z"}`, "outside"},
		{"n not a number", `{"n":"5","started":"2026-12-06T19:00:00Z"}`, "not a cycle record"},
		{"no start", `{"n":5}`, "no start time"},
		{"zero start", `{"n":5,"started":"0001-01-01T00:00:00Z"}`, "no start time"},
		{"negative term", `{"n":5,"started":"2026-12-06T19:00:00Z","term":-1}`, "negative term"},
		{"trailing data", `{"n":5,"started":"2026-12-06T19:00:00Z"} {}`, "data after"},
	} {
		if _, why := decodeCycle([]byte(tc.data)); !strings.Contains(why, tc.why) {
			t.Errorf("%s: why = %q, want it to contain %q", tc.name, why, tc.why)
		}
	}
	if c, why := decodeCycle([]byte(`{"n":5,"started":"2026-12-06T20:00:00+01:00","extra":true}`)); why != "" || !c.Started.Equal(t0) || c.Started.Location() != time.UTC {
		t.Fatalf("a record with an unknown field and another zone: %+v %q", c, why)
	}
}

// TestObserveCycle: what each read means, in order, for one node.
func TestObserveCycle(t *testing.T) {
	type step struct {
		read cycleRead
		at   time.Duration
		want cycleNews
		// highest and changed after the step
		highest int64
		changed time.Duration
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"the first read is the baseline, not a new cycle", []step{
			{rec(5, "a"), 0, cycleNews{Changed: true}, 5, 0},
			{rec(6, "a"), time.Second, cycleNews{Changed: true, New: true}, 6, time.Second},
		}},
		{"an absent node first, then the first cycle", []step{
			{cycleRead{}, 0, cycleNews{Changed: true}, 0, 0},
			{cycleRead{}, time.Second, cycleNews{}, 0, 0},
			{rec(1, "a"), 2 * time.Second, cycleNews{Changed: true, New: true}, 1, 2 * time.Second},
		}},
		{"the same write read again keeps its first observation", []step{
			{rec(5, "a"), 0, cycleNews{Changed: true}, 5, 0},
			{rec(5, "a"), 3 * time.Second, cycleNews{}, 5, 0},
		}},
		{"cycles missed while disconnected: only the latest, with the gap", []step{
			{rec(5, "a"), 0, cycleNews{Changed: true}, 5, 0},
			{rec(9, "b"), time.Second, cycleNews{Changed: true, New: true, Skipped: 3}, 9, time.Second},
		}},
		{"a lower cycle (ZooKeeper lost data) is reported, not run, and the highest stays", []step{
			{rec(5, "a"), 0, cycleNews{Changed: true}, 5, 0},
			{rec(6, "a"), time.Second, cycleNews{Changed: true, New: true}, 6, time.Second},
			{rec(3, "a"), 2 * time.Second, cycleNews{Changed: true, Back: true}, 6, 2 * time.Second},
			{rec(6, "b"), 3 * time.Second, cycleNews{Changed: true}, 6, 3 * time.Second},
			{rec(7, "b"), 4 * time.Second, cycleNews{Changed: true, New: true}, 7, 4 * time.Second},
		}},
		{"the node deleted: a change, nothing new", []step{
			{rec(5, "a"), 0, cycleNews{Changed: true}, 5, 0},
			{cycleRead{}, time.Second, cycleNews{Changed: true}, 5, time.Second},
		}},
		{"garbage is reported and restarts the count", []step{
			{rec(5, "a"), 0, cycleNews{Changed: true}, 5, 0},
			{cycleRead{Exists: true, Data: []byte("junk"), Version: 5}, time.Second,
				cycleNews{Changed: true, Bad: "not a cycle record: invalid character 'j' looking for beginning of value"}, 5, time.Second},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s cycleSeen
			for i, st := range tc.steps {
				var news cycleNews
				s, news = observeCycle(s, st.read, t0.Add(st.at))
				if news != st.want {
					t.Fatalf("step %d: news %+v, want %+v", i, news, st.want)
				}
				if s.highest.N != st.highest || !s.changed.Equal(t0.Add(st.changed)) {
					t.Fatalf("step %d: highest %d changed %s, want %d and %s", i, s.highest.N,
						s.changed.Sub(t0), st.highest, st.changed)
				}
			}
		})
	}
}

// TestNextCycle: the advancer's number and its earliest moment.
func TestNextCycle(t *testing.T) {
	const iv = time.Second
	seen := func(reads ...cycleRead) cycleSeen {
		var s cycleSeen
		for i, r := range reads {
			s, _ = observeCycle(s, r, t0.Add(time.Duration(i)*10*time.Second))
		}
		return s
	}
	last := func(n int) time.Time { return t0.Add(time.Duration(n-1) * 10 * time.Second) }
	for _, tc := range []struct {
		name   string
		s      cycleSeen
		now    time.Time
		n      int64
		wait   time.Duration
		ok     bool
		reason string
	}{
		{name: "nothing read: no plan", s: cycleSeen{}, now: t0, ok: false},
		{name: "absent: cycle 1, a full interval after the read", s: seen(cycleRead{}), now: t0,
			n: 1, wait: 1010 * time.Millisecond, ok: true},
		{name: "watched as a standby: from when it saw it", s: seen(rec(4, "a")), now: t0.Add(600 * time.Millisecond),
			n: 5, wait: 410 * time.Millisecond, ok: true},
		{name: "due long ago: now", s: seen(rec(4, "a")), now: t0.Add(time.Hour), n: 5, wait: 0, ok: true},
		{name: "exactly due", s: seen(rec(4, "a")), now: t0.Add(1010 * time.Millisecond), n: 5, wait: 0, ok: true},
		{name: "stored below the highest seen: continue above the highest, timed from the last change",
			s: seen(rec(4, "a"), rec(9, "a"), rec(2, "x")), now: last(3), n: 10, wait: 1010 * time.Millisecond, ok: true},
		{name: "garbage: above the highest, a full interval after the garbage was seen",
			s:   seen(rec(4, "a"), cycleRead{Exists: true, Data: []byte("{"), Version: 9}),
			now: last(2).Add(10 * time.Millisecond), n: 5, wait: time.Second, ok: true},
		{name: "tree wiped: the node absent again, the counter goes on",
			s: seen(rec(4, "a"), cycleRead{}), now: last(2), n: 5, wait: 1010 * time.Millisecond, ok: true},
		{name: "at MaxCycle: cannot grow", s: seen(cycleRead{Exists: true,
			Data: encodeCycle(CycleInfo{N: MaxCycle, Started: t0})}), now: t0.Add(time.Hour), ok: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, wait, ok := nextCycle(tc.s, iv, tc.now)
			if ok != tc.ok || ok && (n != tc.n || wait != tc.wait) {
				t.Fatalf("nextCycle = %d, %s, %v; want %d, %s, %v", n, wait, ok, tc.n, tc.wait, tc.ok)
			}
		})
	}
}

// TestCycleStartsNeverCloserThanTheInterval drives two advancers (a leader
// and the standby that takes over) through observeCycle and nextCycle with
// clocks that run fast and slow by the drift allowance and writes that take
// time to be seen, and checks every pair of starts in real time.
func TestCycleStartsNeverCloserThanTheInterval(t *testing.T) {
	const iv = time.Second
	for _, rates := range [][2]float64{{1, 1}, {1 + DriftAllowance, 1 - DriftAllowance}, {1 - DriftAllowance, 1 + DriftAllowance}} {
		// real time in ns; node i's clock reads real × rate.
		type node struct {
			rate float64
			s    cycleSeen
		}
		nodes := []*node{{rate: rates[0]}, {rate: rates[1]}}
		clock := func(nd *node, real time.Duration) time.Time {
			return t0.Add(time.Duration(float64(real) * nd.rate))
		}
		var starts []time.Duration
		var stored cycleRead
		seeAll := func(real time.Duration) {
			for _, nd := range nodes {
				nd.s, _ = observeCycle(nd.s, stored, clock(nd, real))
			}
		}
		real := time.Duration(0)
		seeAll(real)
		leader := nodes[0]
		for i := range 20 {
			if i == 10 {
				leader = nodes[1] // failover: the standby watched every cycle
			}
			// The leader polls every millisecond of real time.
			for {
				real += time.Millisecond
				if _, w, ok := nextCycle(leader.s, iv, clock(leader, real)); ok && w == 0 {
					break
				}
			}
			n, _, _ := nextCycle(leader.s, iv, clock(leader, real))
			commit := real + 3*time.Millisecond // the write lands a little later
			stored = cycleRead{Exists: true, Version: stored.Version + 1,
				Data: encodeCycle(CycleInfo{N: n, Started: t0.Add(commit)})}
			starts = append(starts, commit)
			real = commit + 2*time.Millisecond // acknowledgement and notifications arrive later still
			seeAll(real)
			if leader.s.highest.N != int64(i+1) {
				t.Fatalf("rates %v: cycle %d after %d advances", rates, leader.s.highest.N, i+1)
			}
		}
		for i := 1; i < len(starts); i++ {
			if d := starts[i] - starts[i-1]; d < iv {
				t.Errorf("rates %v: starts %d and %d are %s apart in real time", rates, i, i+1, d)
			}
		}
	}
}
