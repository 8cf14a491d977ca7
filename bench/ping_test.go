package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The ping server under connections that never finish a request
// (BENCHMARKS.md, "Ping"). The server is bench/pingload -serve ping, a
// subprocess, so its memory is its own: VmRSS and VmHWM from
// /proc/<pid>/status. PINGLOAD_BIN names a prebuilt pingload instead (for
// example one built from an older commit, to compare).

// halfSent are what the idle connections send: mostly a part of a request.
var halfSent = []struct{ name, text string }{
	// A ping whose header never ends: the wire path holds it.
	{"ping header", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: pingload\r\n"},
	// Classic slowloris: a request line, then headers that never end; the
	// wire path hands it to net/http after the request line.
	{"slowloris", "GET /?x=1 HTTP/1.1\r\nHost: pingload\r\nUser-Agent: slowloris\r\n"},
	// A connection that sends nothing.
	{"silent", ""},
	// A complete probe, then nothing: a leaked keep-alive connection (its
	// answer is never read).
	{"idle keep-alive", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: pingload\r\n\r\n"},
}

// BenchmarkPingIdleConns opens 2,000 then 5,000 idle connections to
// hanode's ping server and reports its RSS idle, with them open, and in the
// 30 s after they close, and how long balancer health checks sent while the
// 5,000 are open take. One iteration runs every kind of idle connection
// (halfSent), each against a fresh server; the table goes to stdout.
//
//	go test ./bench -run '^$' -bench '^BenchmarkPingIdleConns$' -benchtime 1x -timeout 10m
func BenchmarkPingIdleConns(b *testing.B) {
	raiseNoFile(b, 12000)
	var rows []string
	for b.Loop() {
		for _, hs := range halfSent {
			rows = append(rows, idleConnsRound(b, hs.name, hs.text, 30*time.Second).row())
		}
	}
	fmt.Println()
	fmt.Println("| each connection sends | RSS idle | RSS, 2,000 open (server holds) | RSS, 5,000 open (server holds) | peak RSS (VmHWM) | health check while 5,000 open: median / max | RSS 30 s after close | first sample under 25 MB after close (1 s apart) |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Println(r)
	}
}

// TestPingServerStaysSmallUnderIdleConns is the short form of the benchmark:
// with 3,000 half-sent pings open, health checks are answered "ok" within a
// second and the server holds at most its cap of connections in little
// memory.
func TestPingServerStaysSmallUnderIdleConns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and opens 3,000 connections")
	}
	raiseNoFile(t, 8000)
	srv := startPingload(t)
	idle := srv.rss(t)
	conns := openHalfSent(t, srv.addr, halfSent[0].text, 3000)
	defer closeAll(conns)
	srv.settled(t)
	for range 5 {
		d := healthCheck(t, srv.addr)
		assert1s(t, d)
	}
	held := srv.sockets(t)
	rss := srv.rss(t)
	t.Logf("RSS idle %.1f MB, with 3,000 half-sent connections %.1f MB; server holds %d", mb(idle), mb(rss), held)
	if held > 1024+8 {
		t.Errorf("server holds %d connections, want at most its cap 1024 (+ a few)", held)
	}
	if rss > 40<<20 {
		t.Errorf("RSS %.1f MB with 3,000 half-sent connections, want under 40 MB", mb(rss))
	}
}

func assert1s(t *testing.T, d time.Duration) {
	t.Helper()
	if d > time.Second {
		t.Errorf("health check took %v, want under 1 s", d)
	}
}

type idleConnsResult struct {
	kind                               string
	idle, at2000, at5000, hwm, after30 int64
	held2000, held5000                 int
	checks                             []time.Duration
	under25                            time.Duration // -1: not within the wait
}

func (r idleConnsResult) row() string {
	slices.Sort(r.checks)
	under := "not within 30 s"
	if r.under25 >= 0 {
		under = fmt.Sprintf("%.0f s", r.under25.Seconds())
	}
	return fmt.Sprintf("| %s | %.1f MB | %.1f MB (%d) | %.1f MB (%d) | %.1f MB | %s / %s | %.1f MB | %s |",
		r.kind, mb(r.idle), mb(r.at2000), r.held2000, mb(r.at5000), r.held5000, mb(r.hwm),
		r.checks[len(r.checks)/2].Round(10*time.Microsecond), r.checks[len(r.checks)-1].Round(10*time.Microsecond),
		mb(r.after30), under)
}

// idleConnsRound runs one kind of half-sent request against a fresh server.
func idleConnsRound(tb testing.TB, kind, text string, wait time.Duration) idleConnsResult {
	srv := startPingload(tb)
	for range 20 { // warm up: the first answers allocate what every later one reuses
		healthCheck(tb, srv.addr)
	}
	r := idleConnsResult{kind: kind, under25: -1}
	r.idle = srv.rss(tb)

	conns := openHalfSent(tb, srv.addr, text, 2000)
	r.held2000 = srv.settled(tb)
	r.at2000 = srv.rss(tb)
	conns = append(conns, openHalfSent(tb, srv.addr, text, 3000)...)
	r.held5000 = srv.settled(tb)
	r.at5000 = srv.rss(tb)
	for range 20 {
		r.checks = append(r.checks, healthCheck(tb, srv.addr))
	}
	closeAll(conns)
	closed := time.Now()
	tick := time.NewTicker(time.Second) // RSS is sampled once a second
	defer tick.Stop()
	for time.Since(closed) < wait {
		<-tick.C
		if rss := srv.rss(tb); rss < 25<<20 && r.under25 < 0 {
			r.under25 = time.Since(closed)
		}
	}
	r.after30 = srv.rss(tb)
	r.hwm = srv.hwm(tb)
	return r
}

// pingload is a running bench/pingload -serve ping.
type pingload struct {
	pid  int
	addr string
}

var pingloadBuild struct {
	once sync.Once
	bin  string
	err  error
}

// pingloadBinary builds bench/pingload once per test binary (or returns
// $PINGLOAD_BIN).
func pingloadBinary(tb testing.TB) string {
	if bin := os.Getenv("PINGLOAD_BIN"); bin != "" {
		return bin
	}
	pingloadBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "hanode-pingload-")
		if err != nil {
			pingloadBuild.err = err
			return
		}
		bin := filepath.Join(dir, "pingload")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./pingload").CombinedOutput()
		if err != nil {
			pingloadBuild.err = fmt.Errorf("go build ./pingload: %w\n%s", err, out)
			return
		}
		pingloadBuild.bin = bin
	})
	if pingloadBuild.err != nil {
		tb.Fatal(pingloadBuild.err)
	}
	return pingloadBuild.bin
}

// startPingload starts the ping server and waits for its address; it is
// stopped when the test ends.
func startPingload(tb testing.TB) *pingload {
	tb.Helper()
	cmd := exec.Command(pingloadBinary(tb), "-serve", "ping")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	p := &pingload{pid: cmd.Process.Pid}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				tb.Fatal("pingload exited before it was ready")
			}
			if a, found := strings.CutPrefix(l, "ping "); found {
				p.addr = a
			}
			if l == "ready" {
				go func() { // keep draining so the child never blocks on stdout
					for range lines {
					}
				}()
				return p
			}
		case <-deadline:
			tb.Fatal("pingload not ready within 10 s")
		}
	}
}

// status reads a "Vm...:  N kB" line of /proc/<pid>/status, in bytes.
func (p *pingload) status(tb testing.TB, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatalf("no %s in /proc/%d/status", key, p.pid)
	return 0
}

func (p *pingload) rss(tb testing.TB) int64 { return p.status(tb, "VmRSS") }
func (p *pingload) hwm(tb testing.TB) int64 { return p.status(tb, "VmHWM") }

// sockets counts the server's open sockets, its listener excluded.
func (p *pingload) sockets(tb testing.TB) int {
	dir := fmt.Sprintf("/proc/%d/fd", p.pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n - 1
}

// settled waits (at most 3 s) until the server has accepted what it will of
// the connections just opened, its socket count no longer growing between
// samples 100 ms apart, and returns that count.
func (p *pingload) settled(tb testing.TB) int {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	n := p.sockets(tb)
	for range 30 {
		<-tick.C
		m := p.sockets(tb)
		if m <= n {
			return n
		}
		n = m
	}
	return n
}

// openHalfSent opens n connections and writes text (a request without its
// end) on each.
func openHalfSent(tb testing.TB, addr, text string, n int) []net.Conn {
	tb.Helper()
	conns := make([]net.Conn, 0, n)
	d := net.Dialer{Timeout: 5 * time.Second}
	for range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			closeAll(conns)
			tb.Fatalf("dial %s after %d connections: %v", addr, len(conns), err)
		}
		if text != "" {
			// The server may already have closed an early one to let a
			// newer one in; a failed write is part of the experiment.
			_, _ = io.WriteString(c, text)
		}
		conns = append(conns, c)
	}
	return conns
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		_ = c.Close()
	}
}

// healthCheck sends one balancer probe on a new connection and returns how
// long the "200 ok" took to arrive.
func healthCheck(tb testing.TB, addr string) time.Duration {
	tb.Helper()
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatalf("health check: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: balancer\r\nConnection: close\r\n\r\n"); err != nil {
		tb.Fatalf("health check: %v", err)
	}
	res, err := io.ReadAll(c)
	if err != nil {
		tb.Fatalf("health check: %v", err)
	}
	d := time.Since(start)
	if !bytes.HasPrefix(res, []byte("HTTP/1.1 200 OK\r\n")) || !bytes.HasSuffix(res, []byte("\r\n\r\nok")) {
		tb.Fatalf("health check answered %q", res)
	}
	return d
}

// raiseNoFile raises this process's soft open-files limit to at least n.
func raiseNoFile(tb testing.TB, n uint64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		tb.Fatal(err)
	}
	if rl.Cur >= n {
		return
	}
	if rl.Max < n {
		tb.Skipf("open-files hard limit %d is below %d", rl.Max, n)
	}
	rl.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		tb.Fatal(err)
	}
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }
