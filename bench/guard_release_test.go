package bench

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// The duty guard's release (issue 17) against its two alternatives: the
// coordinator dies alone (BenchmarkTakeoverSIGKILL, BenchmarkTakeoverPanic:
// its guard releases), or with its guard (BenchmarkTakeoverSIGKILLWithGuard:
// nobody releases, the lease is waited out); and the ZooKeeper round trips
// the release is made of (BenchmarkZKRoundTrip).

// What the guard logs (cmd/hanode/guard.go) once its coordinator exited.
const (
	msgGuardStopped  = "duty stopped"
	msgGuardReleased = "the coordinator exited; its duty stopped; lease released for it"
	msgGuardStale    = "the coordinator exited; its lease was not released (it extended or another member claimed since): the group waits it out"
	msgGuardFailed   = "the coordinator exited; releasing its lease failed: the group waits it out"
)

// guardVerdict is what the old leader's guard did with its lease.
type guardVerdict struct {
	said    string        // "released", "stale", "failed"; "" not asked
	stop    time.Duration // its stop of the duty
	release time.Duration // its release: a session, one multi, the session's close
}

func (v guardVerdict) String() string {
	if v.said != "released" {
		return v.said
	}
	return fmt.Sprintf("released (duty stop %v, release %v)", v.stop.Round(10*time.Microsecond), v.release.Round(10*time.Microsecond))
}

// guardLog reads n's guard's verdict from the current run's log: the guard
// writes to hanode's stderr.
func guardLog(n *nodetest.Node) (guardVerdict, bool) {
	var v guardVerdict
	for _, e := range n.LogEntries() {
		if e.Fields["logger"] != "guard" {
			continue
		}
		took, _ := e.Fields["took"].(string)
		d, _ := time.ParseDuration(took)
		switch e.Msg {
		case msgGuardStopped:
			if e.Reason == "coordinator gone" {
				v.stop = d
			}
		case msgGuardReleased:
			v.said, v.release = "released", d
			return v, true
		case msgGuardStale:
			v.said = "stale"
			return v, true
		case msgGuardFailed:
			v.said = "failed"
			return v, true
		}
	}
	return v, false
}

// waitGuardVerdict waits until the guard of n's dead hanode logged what it
// did with the lease.
func waitGuardVerdict(b *testing.B, n *nodetest.Node) guardVerdict {
	b.Helper()
	var v guardVerdict
	err := testwait.Poll(10*time.Second, 5*time.Millisecond, func() bool {
		var ok bool
		v, ok = guardLog(n)
		return ok
	})
	if err != nil {
		b.Fatalf("%s's guard did not say what became of the lease within 10s\n%s", n, n.Logs())
	}
	return v
}

// reportGuard counts the guards' verdicts and the cost of their steps.
func reportGuard(b *testing.B, rounds []round) {
	counts := map[string]int{}
	var stops, releases []time.Duration
	for _, r := range rounds {
		counts[r.guard.said]++
		if r.guard.said == "released" {
			stops, releases = append(stops, r.guard.stop), append(releases, r.guard.release)
		}
	}
	b.Logf("guard: %d released, %d stale, %d failed; duty stop median %v max %v; release (session, multi, close) median %v p90 %v max %v",
		counts["released"], counts["stale"], counts["failed"],
		quantile(stops, 0.5).Round(10*time.Microsecond), quantile(stops, 1).Round(10*time.Microsecond),
		quantile(releases, 0.5).Round(10*time.Microsecond), quantile(releases, 0.9).Round(10*time.Microsecond),
		quantile(releases, 1).Round(10*time.Microsecond))
	b.ReportMetric(float64(counts["released"]), "released")
}

// BenchmarkTakeoverSIGKILLWithGuard: each iteration kills the leader's
// hanode and its duty guard together, as a power loss would
// (Node.KillGroup: the guard first, so it cannot see hanode exit). Nobody
// releases: the next member claims by rule D, W (4.081 s) after the last
// extension it saw.
func BenchmarkTakeoverSIGKILLWithGuard(b *testing.B) {
	benchTakeover(b, takeoverBench{fault: func(leader *nodetest.Node) time.Time { return leader.KillGroup() },
		wantExit: -1, bound: nodetest.DefaultSessionTimeout + 10*time.Second, guardSilent: true})
}

// BenchmarkTakeoverPanic: each iteration makes the leader's hanode panic
// (the hidden, test-only --debug-panic-on-sigusr2 and a SIGUSR2): it exits
// 2, and its guard releases the lease as after a SIGKILL.
func BenchmarkTakeoverPanic(b *testing.B) {
	benchTakeover(b, takeoverBench{fault: func(leader *nodetest.Node) time.Time { return leader.Signal(syscall.SIGUSR2) },
		wantExit: 2, bound: nodetest.DefaultSessionTimeout + 10*time.Second, guard: true,
		args: []string{"--debug-panic-on-sigusr2"}})
}

// rttSamples is how many of each request BenchmarkZKRoundTrip times.
const rttSamples = 200

// BenchmarkZKRoundTrip times, on the server the failover benchmarks use
// (standalone, tickTime 2000, its log fsynced before each write is
// acknowledged), the requests a guard's release and the successor's claim
// are made of: a new session (the guard's, until StateHasSession), a Set
// (a write, fsynced), a Get (a read), and all of a guard's release as
// ha.ReleaseAfterExit makes it, in this process: ha.DialAccess, one multi
// of two versioned writes, and the session's close. Run with -benchtime 1x.
func BenchmarkZKRoundTrip(b *testing.B) {
	srv := zktest.StartWith(b, zktest.Options{TickMs: zkTickMs})
	conn := zktest.Connect(b, srv.Addr, nodetest.DefaultSessionTimeout)
	const path = "/bench-rtt"
	if _, err := conn.Create(path, []byte("0"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		var sets, gets, sessions []time.Duration
		for i := range rttSamples + 20 { // the first 20 warm up
			start := time.Now()
			if _, err := conn.Set(path, []byte(fmt.Sprint(i)), -1); err != nil {
				b.Fatal(err)
			}
			set := time.Since(start)
			start = time.Now()
			if _, _, err := conn.Get(path); err != nil {
				b.Fatal(err)
			}
			if i >= 20 {
				sets, gets = append(sets, set), append(gets, time.Since(start))
			}
		}
		var releases []time.Duration
		for range rttSamples / 4 {
			sessions = append(sessions, newSession(b, srv.Addr))
			releases = append(releases, guardLikeRelease(b, srv.Addr, path))
		}
		for _, m := range []struct {
			what string
			ds   []time.Duration
		}{{"session", sessions}, {"set", sets}, {"get", gets}, {"release", releases}} {
			b.Logf("%-7s n=%d  median %v  p90 %v  p99 %v  max %v", m.what, len(m.ds),
				quantile(m.ds, 0.5).Round(time.Microsecond), quantile(m.ds, 0.9).Round(time.Microsecond),
				quantile(m.ds, 0.99).Round(time.Microsecond), slices.Max(m.ds).Round(time.Microsecond))
			b.ReportMetric(float64(quantile(m.ds, 0.5))/float64(time.Millisecond), m.what+"-p50-ms")
		}
		// A guard releases once in its life: its code paths are cold.
		b.Logf("the first release of this process: %v", releases[0].Round(time.Microsecond))
	}
	b.ReportMetric(0, "ns/op")
}

// newSession connects a new client and returns how long it took to have a
// session; it closes it again.
func newSession(b *testing.B, addr string) time.Duration {
	b.Helper()
	start := time.Now()
	conn, events, err := zk.Connect([]string{addr}, nodetest.DefaultSessionTimeout, zk.WithLogger(nopZKLogger{}))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return time.Since(start)
			}
		case <-timeout.C:
			b.Fatalf("no ZooKeeper session within 10s")
		}
	}
}

// guardLikeRelease times what a guard's release does (ha.ReleaseAfterExit):
// a new session by ha.DialAccess, one multi (here a check and a set of
// path) and the session's close.
func guardLikeRelease(b *testing.B, addr, path string) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	conn, err := ha.DialAccess(ctx, []string{addr}, nodetest.DefaultSessionTimeout, nil, ha.Access{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Multi(&zk.CheckVersionRequest{Path: path, Version: -1}, &zk.SetDataRequest{Path: path, Data: []byte("r"), Version: -1}); err != nil {
		b.Fatal(err)
	}
	conn.Close()
	return time.Since(start)
}
