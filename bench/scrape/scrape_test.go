// Package scrape measures what scrapes of /metrics and of the status page
// cost a node, and whether its pings stay fast meanwhile. It is a package of
// its own, outside bench's `make bench`, because it pins its own process to
// a CPU and takes a few minutes per round.
package scrape

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
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

	"github.com/hanode/hanode/internal/nodetest"
)

func TestMain(m *testing.M) { os.Exit(nodetest.Main(m)) }

// Scrapes and the status page under load (BENCHMARKS.md, "Scrapes and the
// status page under load"). A standalone node (no HA_ID, no ZooKeeper: the
// real binary through nodetest) serves /metrics and the status page; 256
// scrapers (bench/scrapeload, a subprocess, each goroutine with its own
// keep-alive connection) ask one of them, and this process measures what a
// balancer sees meanwhile: pings of /v2/ping/net/1/se/ over one keep-alive
// connection, one at a time. It also reads the node's VmRSS (sampled every
// 100 ms) and VmHWM from /proc/PID/status and its CPU time (utime + stime,
// /proc/PID/stat).
//
// The load is paused and resumed (its connections stay open, idle) so that
// unloaded and loaded pings alternate on one node, phases bursts of
// pingBurst pings back to back: the two sides of the ratio meet the same
// drift of the machine, and within a burst both ends are awake (pings
// spaced milliseconds apart on an idle VM mostly measure how fast a halted
// virtual CPU wakes). CPU is counted over each phase, which lasts at least
// minPhase. The load "none" alternates two unloaded
// phases, which shows the noise of the ratio.
//
// Placement (SCRAPE_PIN, default 1): the node runs alone on CPU 0 with
// GOMAXPROCS=1, and the scrapers and this process share CPU 1, the scrapers
// at nice 19 so that the pinger is not kept waiting by them; what is
// measured is then the node's own single core. SCRAPE_PIN=0 leaves all three
// on both cores (the node with GOMAXPROCS=2), as on a small machine that
// also runs its scrapers. HANODE_BIN names a prebuilt hanode (for example
// one built from an older commit, to compare); SCRAPELOAD_BIN a prebuilt
// bench/scrapeload. SCRAPE_PINGS sets the pings per side (default 2,000).

const (
	scrapers = 256
	// pingBurst pings, back to back after one that is not counted, make a
	// phase's measurement.
	pingBurst = 100
	// scrapeWarmup runs the load before the first phase; loadSettle after
	// each resume, before the loaded pings.
	scrapeWarmup = 2 * time.Second
	loadSettle   = 200 * time.Millisecond
	// minPhase is the shortest phase, so its CPU time is read over at
	// least 50 clock ticks.
	minPhase = 500 * time.Millisecond
	// clockTicks is USER_HZ, the unit of /proc/PID/stat's utime and stime.
	clockTicks = 100
)

// scrapeLoads are the loads measured, each against a fresh node.
var scrapeLoads = []struct {
	key, name, path string
	every           time.Duration // 0: each scraper loops without pause
}{
	{"none", "none (unloaded against unloaded)", "", 0},
	{"metrics-loop", "/metrics, 256 in a loop", "/metrics", 0},
	{"page-loop", "/ (status page), 256 in a loop", "/", 0},
	{"metrics-1s", "/metrics, 256 × once a second", "/metrics", time.Second},
	{"page-1s", "/ (status page), 256 × once a second", "/", time.Second},
}

// BenchmarkScrapeLoad runs every load in scrapeLoads (a sub-benchmark
// each, named by its key) and prints one table row per run to stdout.
//
//	go test ./bench/scrape -run '^$' -bench . -benchtime 1x -timeout 30m
func BenchmarkScrapeLoad(b *testing.B) {
	pinned := os.Getenv("SCRAPE_PIN") != "0"
	if pinned {
		pinProcess(b, os.Getpid(), "1")
	}
	pings := 2000
	if v := os.Getenv("SCRAPE_PINGS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < pingBurst || n%pingBurst != 0 {
			b.Fatalf("SCRAPE_PINGS=%q: want a multiple of %d", v, pingBurst)
		}
		pings = n
	}
	var rows []string
	for _, l := range scrapeLoads {
		b.Run(l.key, func(b *testing.B) {
			for b.Loop() {
				r := scrapeRound(b, l.path, l.every, pings/pingBurst, pinned)
				r.load = l.name
				rows = append(rows, r.row())
				fmt.Fprintln(os.Stderr, "scrape bench:", rows[len(rows)-1])
			}
		})
	}
	placement := "unpinned: node (GOMAXPROCS=2), scrapers and pinger share both cores"
	if pinned {
		placement = "pinned: node alone on CPU 0 (GOMAXPROCS=1); scrapers (nice 19) and pinger on CPU 1"
	}
	fmt.Printf("\n%s; %d pings a side, in %d alternating phases of %d back to back\n\n", placement, pings, 2*pings/pingBurst, pingBurst)
	fmt.Println("| load | ping median, unloaded → loaded (×) | ping p99, unloaded → loaded (×) | node CPU, unloaded → loaded (share of a core) | node RSS before the load → peak (VmHWM) | scrapes answered 200 / 503 per loaded second | scrape (200) median / p99 |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Println(r)
	}
}

// scrapeResult is one load against one node.
type scrapeResult struct {
	load                    string
	idle, loaded            []time.Duration // ping latencies
	cpuIdle, cpuLoaded      float64         // share of one core
	rssBefore, rssPeak, hwm int64
	scrape                  scrapeSummary
}

func (r scrapeResult) row() string {
	mi, ml := quantile(r.idle, 0.5), quantile(r.loaded, 0.5)
	pi, pl := quantile(r.idle, 0.99), quantile(r.loaded, 0.99)
	scr, rates := "–", "–"
	if s := r.scrape; s.Running > 0 {
		scr = fmt.Sprintf("%.2f / %.2f ms", s.P50ms, s.P99ms)
		rates = fmt.Sprintf("%.0f / %.0f", float64(s.Codes["200"])/s.Running, float64(s.Codes["503"])/s.Running)
		if s.Errors > 0 {
			rates += fmt.Sprintf(" (%d failed: %s)", s.Errors, s.FirstErr)
		}
	}
	return fmt.Sprintf("| %s | %s → %s (**%.2f**) | %s → %s (%.2f) | %.1f %% → %.1f %% | %.1f → %.1f MB (%.1f MB) | %s | %s |",
		r.load, us(mi), us(ml), ratio(ml, mi), us(pi), us(pl), ratio(pl, pi),
		100*r.cpuIdle, 100*r.cpuLoaded, mb(r.rssBefore), mb(r.rssPeak), mb(r.hwm), rates, scr)
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(int(q*float64(len(s))), len(s)-1)]
}

// scrapeRound measures one load (path "" for none) against a fresh node
// in phases unloaded and loaded phases each.
func scrapeRound(tb testing.TB, path string, every time.Duration, phases int, pinned bool) scrapeResult {
	n := startScrapeNode(tb, pinned)
	pid := n.PID()
	pinger := dialPinger(tb, n.Addr())
	defer pinger.close()
	// Warm up: the first answers allocate what later ones reuse.
	for range 50 {
		pinger.ping(tb)
	}
	for _, p := range []string{"/metrics", "/"} {
		if code, _, err := httpGet(n.URL(p)); err != nil || code != http.StatusOK {
			tb.Fatalf("GET %s: %d %v", p, code, err)
		}
	}

	var r scrapeResult
	r.rssBefore = mustStatus(tb, pid, "VmRSS")
	stopSampling := samplePeakRSS(pid, &r.rssPeak)
	var load *scrapeLoad
	if path != "" {
		load = startScrapeLoad(tb, n.URL(path), every)
		time.Sleep(scrapeWarmup) // the load runs unmeasured; nothing is synchronized on it
	}
	var idle, loaded cpuShare
	for range phases {
		if load != nil {
			load.pause(tb)
		}
		r.idle = append(r.idle, idle.burst(tb, pid, pinger, minPhase)...)
		if load != nil {
			load.resume(tb)
			time.Sleep(loadSettle) // the load runs unmeasured
		}
		r.loaded = append(r.loaded, loaded.burst(tb, pid, pinger, minPhase)...)
	}
	r.cpuIdle, r.cpuLoaded = idle.share(), loaded.share()
	if load != nil {
		r.scrape = load.stop(tb)
	}
	stopSampling()
	r.hwm = mustStatus(tb, pid, "VmHWM")
	n.Term() // the next load's node runs alone
	if code := n.WaitExit(10 * time.Second); code != 0 {
		tb.Fatalf("node exited %d after SIGTERM", code)
	}
	return r
}

// cpuShare adds up a node's CPU time over the phases of one kind.
type cpuShare struct{ cpu, wall time.Duration }

func (c cpuShare) share() float64 { return c.cpu.Seconds() / c.wall.Seconds() }

// burst sends one ping not counted, then pingBurst pings back to back, and
// returns their latencies; the phase lasts at least least, and its wall
// and CPU time are added to c.
func (c *cpuShare) burst(tb testing.TB, pid int, p *pinger, least time.Duration) []time.Duration {
	p.ping(tb)
	cpu0, wall0 := cpuTime(tb, pid), time.Now()
	took := make([]time.Duration, 0, pingBurst)
	for range pingBurst {
		took = append(took, p.ping(tb))
	}
	time.Sleep(least - time.Since(wall0)) // the measured window itself: the node's CPU share is read over at least this much wall time, not a synchronisation
	c.cpu += cpuTime(tb, pid) - cpu0
	c.wall += time.Since(wall0)
	return took
}

// samplePeakRSS keeps the highest VmRSS of pid, sampled every 100 ms, in
// *peak until the function it returns is called.
func samplePeakRSS(pid int, peak *int64) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, err := procStatus(pid, "VmRSS"); err == nil {
				*peak = max(*peak, rss)
			}
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// startScrapeNode starts a standalone node; pinned, alone on CPU 0 with
// GOMAXPROCS=1.
func startScrapeNode(tb testing.TB, pinned bool) *nodetest.Node {
	opts := nodetest.Options{Env: map[string]string{"NAME": "scraped", "ROLE": "primary"}}
	if pinned {
		opts.Environ = []string{"GOMAXPROCS=1"}
	}
	n := nodetest.Start(tb, opts)
	if pinned {
		pinProcess(tb, n.PID(), "0")
	}
	return n
}

// pinProcess binds every thread of pid to cpus (taskset's list syntax);
// threads it starts later inherit that.
func pinProcess(tb testing.TB, pid int, cpus string) {
	tb.Helper()
	if _, err := exec.LookPath("taskset"); err != nil {
		tb.Skip("taskset not found; SCRAPE_PIN=0 runs unpinned")
	}
	if out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(pid)).CombinedOutput(); err != nil {
		tb.Fatalf("taskset -a -p -c %s %d: %v\n%s", cpus, pid, err, out)
	}
}

// cpuTime is pid's utime + stime.
func cpuTime(tb testing.TB, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing one. utime and stime are fields 14 and 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	var ticks int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			tb.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// procStatus reads a "Vm...:  N kB" line of /proc/PID/status, in bytes.
func procStatus(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", key, pid)
}

func mustStatus(tb testing.TB, pid int, key string) int64 {
	tb.Helper()
	v, err := procStatus(pid, key)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func httpGet(url string) (int, []byte, error) {
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	res, err := cl.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, body, err
}

// pinger is a balancer's keep-alive connection.
type pinger struct {
	c   net.Conn
	r   *bufio.Reader
	req []byte
}

func dialPinger(tb testing.TB, addr string) *pinger {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	return &pinger{c: c, r: bufio.NewReader(c), req: []byte("GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: balancer\r\n\r\n")}
}

// ping asks once and returns how long the "200 ok" took.
func (p *pinger) ping(tb testing.TB) time.Duration {
	_ = p.c.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	if _, err := p.c.Write(p.req); err != nil {
		tb.Fatalf("ping: %v", err)
	}
	res, err := http.ReadResponse(p.r, nil)
	if err != nil {
		tb.Fatalf("ping: %v", err)
	}
	var body [8]byte
	n, _ := io.ReadFull(res.Body, body[:])
	_ = res.Body.Close()
	d := time.Since(start)
	if res.StatusCode != http.StatusOK || string(body[:n]) != "ok" {
		tb.Fatalf("ping answered %d %q", res.StatusCode, body[:n])
	}
	return d
}

func (p *pinger) close() { _ = p.c.Close() }

// scrapeSummary is bench/scrapeload's Summary.
type scrapeSummary struct {
	Seconds  float64        `json:"seconds"`
	Running  float64        `json:"running_seconds"`
	Codes    map[string]int `json:"codes"`
	Errors   int            `json:"errors"`
	Bytes    int64          `json:"bytes"`
	P50ms    float64        `json:"p50_ms"`
	P99ms    float64        `json:"p99_ms"`
	FirstErr string         `json:"first_error"`
}

// scrapeLoad is a running bench/scrapeload.
type scrapeLoad struct {
	cmd   *exec.Cmd
	out   bytes.Buffer
	lines chan string // "paused", "resumed"
	done  chan struct{}
}

var scrapeloadBuild struct {
	once sync.Once
	bin  string
	err  error
}

// scrapeloadBinary builds bench/scrapeload once per test binary (or
// returns $SCRAPELOAD_BIN).
func scrapeloadBinary(tb testing.TB) string {
	if bin := os.Getenv("SCRAPELOAD_BIN"); bin != "" {
		return bin
	}
	scrapeloadBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "hanode-scrapeload-")
		if err != nil {
			scrapeloadBuild.err = err
			return
		}
		bin := filepath.Join(dir, "scrapeload")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/hanode/hanode/bench/scrapeload").CombinedOutput()
		if err != nil {
			scrapeloadBuild.err = fmt.Errorf("go build bench/scrapeload: %w\n%s", err, out)
			return
		}
		scrapeloadBuild.bin = bin
	})
	if scrapeloadBuild.err != nil {
		tb.Fatal(scrapeloadBuild.err)
	}
	return scrapeloadBuild.bin
}

// startScrapeLoad starts 256 scrapers of url at nice 19 and waits until
// every one runs; stop ends them.
func startScrapeLoad(tb testing.TB, url string, every time.Duration) *scrapeLoad {
	tb.Helper()
	l := &scrapeLoad{lines: make(chan string, 1), done: make(chan struct{})}
	l.cmd = exec.Command("nice", "-n", "19", scrapeloadBinary(tb),
		"-url", url, "-clients", strconv.Itoa(scrapers), "-every", every.String())
	l.cmd.Stderr = os.Stderr
	stdout, err := l.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := l.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = l.cmd.Process.Kill()
		<-l.done
	})
	ready := make(chan struct{})
	go func() {
		defer close(l.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			switch sc.Text() {
			case "ready":
				close(ready)
			case "paused", "resumed":
				l.lines <- sc.Text()
			default:
				l.out.Write(sc.Bytes())
			}
		}
		_ = l.cmd.Wait()
	}()
	select {
	case <-ready:
	case <-l.done:
		tb.Fatal("scrapeload exited before it was ready")
	case <-time.After(10 * time.Second):
		tb.Fatal("scrapeload not ready within 10 s")
	}
	return l
}

// pause stops the scrapers and waits until no request is under way.
func (l *scrapeLoad) pause(tb testing.TB) { l.signal(tb, syscall.SIGUSR1, "paused") }

// resume lets the scrapers go on.
func (l *scrapeLoad) resume(tb testing.TB) { l.signal(tb, syscall.SIGUSR2, "resumed") }

func (l *scrapeLoad) signal(tb testing.TB, sig syscall.Signal, want string) {
	tb.Helper()
	if err := l.cmd.Process.Signal(sig); err != nil {
		tb.Fatal(err)
	}
	select {
	case got := <-l.lines:
		if got != want {
			tb.Fatalf("scrapeload said %q, want %q", got, want)
		}
	case <-l.done:
		tb.Fatalf("scrapeload exited before it %s", want)
	case <-time.After(15 * time.Second):
		tb.Fatalf("scrapeload not %s within 15 s", want)
	}
}

// stop ends the scrapers and returns their summary.
func (l *scrapeLoad) stop(tb testing.TB) scrapeSummary {
	tb.Helper()
	_ = l.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-l.done:
	case <-time.After(15 * time.Second):
		tb.Fatal("scrapeload did not stop within 15 s of SIGTERM")
	}
	var s scrapeSummary
	if err := json.Unmarshal(l.out.Bytes(), &s); err != nil {
		tb.Fatalf("scrapeload's summary %q: %v", l.out.String(), err)
	}
	return s
}
