package clockwatch

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func rd(mono, wall, boot time.Duration) Reading {
	return Reading{Mono: mono, Wall: t0.Add(wall), Boot: boot}
}

func TestStall(t *testing.T) {
	const tol = 10 * time.Millisecond
	s := time.Second
	ms := time.Millisecond
	for _, tc := range []struct {
		name      string
		prev, cur Reading
		want      time.Duration
	}{
		{"all clocks advance together", rd(s, 0, 5*s), rd(2*s, s, 6*s), 0},
		{"wall slews within drift", rd(0, 0, 0), rd(10*s, 10*s+90*ms, 0), 0},
		{"wall jumps by the tolerance: noise", rd(0, 0, 0), rd(100*ms, 110*ms, 0), 0},
		{"VM paused 12.3s, monotonic stopped", rd(s, 0, 0), rd(s+50*ms, 12350*ms, 0), 12300 * ms},
		{"just over the tolerance", rd(0, 0, 0), rd(100*ms, 100*ms+tol+2*ms, 0), tol + 2*ms},
		{"wall stepped back: no stall", rd(0, 0, 0), rd(100*ms, -30*s, 0), 0},
		{"suspend: boottime counts it", rd(0, 0, 7*s), rd(100*ms, 100*ms, 7*s+100*ms+3*s), 3 * s},
		{"suspend with the wall stepped back meanwhile", rd(0, 0, 7*s), rd(100*ms, -time.Hour, 10*s+100*ms), 3 * s},
		{"larger of wall and boot", rd(0, 0, 7*s), rd(0, 5*s, 9*s), 5 * s},
		{"no wall reading", Reading{Mono: 0, Boot: 1}, Reading{Mono: s, Boot: 1 + s}, 0},
		{"boot not read", rd(0, 0, 0), rd(s, s, 0), 0},
		{"monotonic went back", rd(s, 0, 0), rd(0, 0, 0), s},
		{"monotonic went back a little", rd(s, 0, 0), rd(s-ms, 0, 0), tol + 1},
		{"monotonic ran ahead of wall", rd(0, 0, 0), rd(10*s, 0, 0), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Stall(tc.prev, tc.cur, tol); got != tc.want {
				t.Fatalf("Stall = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestWatchReportsBetweenConsecutiveReadings(t *testing.T) {
	w := Watch{Tolerance: 10 * time.Millisecond}
	if _, ok := w.Last(); ok {
		t.Fatal("a fresh watch has a last reading")
	}
	if by := w.Observe(rd(0, 0, 0)); by != 0 {
		t.Fatalf("first observation reported %v", by)
	}
	if by := w.Observe(rd(time.Second, 1*time.Second, 0)); by != 0 {
		t.Fatalf("a steady second reported %v", by)
	}
	if by := w.Observe(rd(time.Second+time.Millisecond, 31*time.Second, 0)); by != 30*time.Second-time.Millisecond {
		t.Fatalf("a 30s pause reported %v", by)
	}
	// Reported once: the next reading compares with the resumed one.
	if by := w.Observe(rd(2*time.Second, 32*time.Second, 0)); by != 0 {
		t.Fatalf("the pause was reported twice (%v)", by)
	}
	var zero Watch
	zero.Observe(rd(0, 0, 0))
	if by := zero.Observe(rd(0, MinTolerance, 0)); by != 0 {
		t.Fatalf("the zero watch reported %v at MinTolerance", by)
	}
	if by := zero.Observe(rd(0, 2*MinTolerance+1, 0)); by == 0 {
		t.Fatal("the zero watch missed a stall above MinTolerance")
	}
}

func TestTolerance(t *testing.T) {
	if got := Tolerance(1200 * time.Millisecond); got != 150*time.Millisecond {
		t.Fatalf("Tolerance(1.2s) = %v", got)
	}
	if got := Tolerance(10 * time.Millisecond); got != MinTolerance {
		t.Fatalf("Tolerance(10ms) = %v", got)
	}
}

// TestNowDoesNotReportAStall: real readings in a busy loop never stall.
func TestNowDoesNotReportAStall(t *testing.T) {
	w := Watch{Tolerance: MinTolerance}
	end := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(end) {
		if by := w.Observe(Now()); by != 0 {
			t.Fatalf("stall of %v reported on a running host", by)
		}
		time.Sleep(time.Millisecond) // the behaviour under test: readings spaced over real time, not a synchronisation
	}
	r := Now()
	if r.Wall.IsZero() || r.Mono <= 0 {
		t.Fatalf("reading %+v", r)
	}
}

// FuzzClockWatch checks Stall's contract on arbitrary readings: never
// negative; 0 or above the tolerance; 0 whenever neither the wall nor the
// boot clock ran ahead of the monotonic one by more than the tolerance
// (backward steps included); and, when one did by more than the tolerance
// plus Drift of the monotonic advance, at least that much.
func FuzzClockWatch(f *testing.F) {
	f.Add(int64(0), int64(0), int64(0), int64(100e6), int64(100e6), int64(100e6), int64(10e6))
	f.Add(int64(1e9), int64(0), int64(0), int64(1.05e9), int64(12.35e9), int64(0), int64(10e6))
	f.Add(int64(0), int64(0), int64(7e9), int64(1e8), int64(-3600e9), int64(10.1e9), int64(150e6))
	f.Add(int64(5e9), int64(0), int64(0), int64(4e9), int64(0), int64(0), int64(0))
	f.Fuzz(func(t *testing.T, m0, w0, b0, m1, w1, b1, tol int64) {
		if tol < 0 {
			tol = -tol
		}
		if tol < 0 || tol > int64(time.Hour) {
			tol = int64(time.Hour)
		}
		// Keep readings where differences cannot overflow (a few centuries).
		const span = int64(100 * 365 * 24 * time.Hour)
		for _, v := range []*int64{&m0, &w0, &b0, &m1, &w1, &b1} {
			*v %= span
		}
		prev := Reading{Mono: time.Duration(m0), Wall: t0.Add(time.Duration(w0)), Boot: time.Duration(b0)}
		cur := Reading{Mono: time.Duration(m1), Wall: t0.Add(time.Duration(w1)), Boot: time.Duration(b1)}
		got := Stall(prev, cur, time.Duration(tol))
		w := Watch{Tolerance: time.Duration(tol)}
		w.Observe(prev)
		if by := w.Observe(cur); tol > 0 && by != got {
			t.Fatalf("Watch.Observe = %v, Stall = %v", by, got)
		}
		if got < 0 || got != 0 && got <= time.Duration(tol) {
			t.Fatalf("Stall = %v with tolerance %v", got, time.Duration(tol))
		}
		dm := m1 - m0
		if dm < 0 {
			if got == 0 {
				t.Fatal("a monotonic clock that went back is not reported")
			}
			return
		}
		ahead := w1 - w0 - dm
		if b0 != 0 && b1 != 0 {
			ahead = max(ahead, b1-b0-dm)
		}
		if ahead <= tol && got != 0 {
			t.Fatalf("Stall = %v, but no clock ran ahead by more than %v (ahead %v)", got, time.Duration(tol), time.Duration(ahead))
		}
		if limit := tol + int64(float64(dm)*Drift); ahead > limit && got < time.Duration(ahead) {
			t.Fatalf("Stall = %v, want at least %v", got, time.Duration(ahead))
		}
	})
}
