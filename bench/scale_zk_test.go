package bench

// What the scale benchmark reads from outside hanode: ZooKeeper's own
// counters (the four-letter word srvr), the ZooKeeper container's CPU time
// (its cgroup), this process's memory and CPU (runtime, /proc), and a probe
// client's round trips.
//
// The hanode-zookeeper image whitelists only srvr (mntr, stat and srst are
// refused: "not in the whitelist"), so there is no server-side reset between
// phases. srvr's counters are the ones mntr would show (Received and Sent
// are zk_packets_received/sent; Latency min/avg/max is zk_min/avg/max_latency),
// and its Zxid counts writes: every write request takes one zxid, even one
// that fails a version check, and nothing else does but session creation and
// close. A phase's average server latency is derived from two readings;
// its maximum is not (srvr's maximum is since the server started), so the
// probe's round trips give each phase's own maximum.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hanode/hanode/internal/testwait"
)

// srvrStats is one reading of srvr.
type srvrStats struct {
	at                 time.Time
	received, sent     int64
	zxid               int64 // counter part (low 32 bits): the epoch never changes in a run
	latMin, latMax     int64 // ms, since the server started
	latAvg             float64
	connections, nodes int64
	outstanding        int64
}

// readSrvr sends srvr to addr and parses the answer.
func readSrvr(addr string) (srvrStats, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return srvrStats{}, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return srvrStats{}, err
	}
	at := time.Now()
	if _, err := io.WriteString(conn, "srvr"); err != nil {
		return srvrStats{}, err
	}
	reply, err := io.ReadAll(conn)
	if err != nil && len(reply) == 0 {
		return srvrStats{}, err
	}
	s := srvrStats{at: at}
	seen := 0
	sc := bufio.NewScanner(strings.NewReader(string(reply)))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		var perr error
		switch key {
		case "Latency min/avg/max":
			f := strings.Split(val, "/")
			if len(f) != 3 {
				return s, fmt.Errorf("srvr latency %q", val)
			}
			s.latMin, _ = strconv.ParseInt(f[0], 10, 64)
			s.latAvg, perr = strconv.ParseFloat(f[1], 64)
			s.latMax, _ = strconv.ParseInt(f[2], 10, 64)
		case "Received":
			s.received, perr = strconv.ParseInt(val, 10, 64)
		case "Sent":
			s.sent, perr = strconv.ParseInt(val, 10, 64)
		case "Connections":
			s.connections, perr = strconv.ParseInt(val, 10, 64)
		case "Outstanding":
			s.outstanding, perr = strconv.ParseInt(val, 10, 64)
		case "Node count":
			s.nodes, perr = strconv.ParseInt(val, 10, 64)
		case "Zxid":
			var z uint64
			z, perr = strconv.ParseUint(strings.TrimPrefix(val, "0x"), 16, 64)
			s.zxid = int64(z & 0xffffffff)
		default:
			continue
		}
		if perr != nil {
			return s, fmt.Errorf("srvr %s %q: %w", key, val, perr)
		}
		seen++
	}
	if seen < 7 {
		return s, fmt.Errorf("srvr answer incomplete: %q", reply)
	}
	return s, nil
}

func mustSrvr(t testing.TB, addr string) srvrStats {
	t.Helper()
	s, err := readSrvr(addr)
	if err != nil {
		t.Fatalf("srvr: %v", err)
	}
	return s
}

// zkDelta is what ZooKeeper did between two srvr readings.
type zkDelta struct {
	secs               float64
	received, sent     int64
	writes             int64
	avgLatMs           float64 // average over the requests of the window
	maxLatSinceStartMs int64
}

// srvrDelta subtracts a from b. The window's average latency is
// (avg_b*n_b - avg_a*n_a)/(n_b - n_a) with n = packets received (every
// request, pings included, updates the latency; the four-letter words are
// counted in Received but not in the latency, one per reading).
func srvrDelta(a, b srvrStats) zkDelta {
	d := zkDelta{secs: b.at.Sub(a.at).Seconds(), received: b.received - a.received, sent: b.sent - a.sent,
		writes: b.zxid - a.zxid, maxLatSinceStartMs: b.latMax}
	if n := float64(b.received - a.received - 1); n > 0 {
		d.avgLatMs = max((b.latAvg*float64(b.received)-a.latAvg*float64(a.received))/n, 0)
	}
	return d
}

// cgroupCPU reads the CPU time used by a container, given its id, from its
// cgroup (v1 cpuacct or v2 cpu.stat). ok is false when no known path exists.
func cgroupCPU(id string) (time.Duration, bool) {
	if id == "" {
		return 0, false
	}
	for _, p := range []string{
		"/sys/fs/cgroup/cpuacct/docker/" + id + "/cpuacct.usage",
		"/sys/fs/cgroup/cpu,cpuacct/docker/" + id + "/cpuacct.usage",
	} {
		if b, err := os.ReadFile(p); err == nil {
			if ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
				return time.Duration(ns), true
			}
		}
	}
	for _, p := range []string{
		"/sys/fs/cgroup/system.slice/docker-" + id + ".scope/cpu.stat",
		"/sys/fs/cgroup/docker/" + id + "/cpu.stat",
		"/sys/fs/cgroup/unified/docker/" + id + "/cpu.stat",
	} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
				if us, err := strconv.ParseInt(v, 10, 64); err == nil {
					return time.Duration(us) * time.Microsecond, true
				}
			}
		}
	}
	return 0, false
}

// procCPU is the CPU time (user + system) of process pid, from /proc.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100, nil // USER_HZ is 100 on Linux
}

// procRSS is VmRSS of process pid, in bytes.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// memReading is this process's memory after a full collection.
type memReading struct {
	heapInuse, stackInuse, rss int64
	goroutines                 int
}

func readMem() memReading {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, _ := procRSS(os.Getpid())
	return memReading{heapInuse: int64(ms.HeapInuse), stackInuse: int64(ms.StackInuse), rss: rss,
		goroutines: runtime.NumGoroutine()}
}

// loadAvg is /proc/loadavg's first three fields.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// probe is a ZooKeeper client of its own that reads one znode every
// interval while on, recording each round trip under the current phase
// label: the latency a client sees, phase by phase (srvr cannot reset its
// maximum).
type probe struct {
	conn     *zk.Conn
	interval time.Duration

	mu    sync.Mutex
	phase string // "" = off
	rtts  map[string][]time.Duration
	fails map[string]int
	sent  int64 // requests sent, all phases

	stop chan struct{}
	done chan struct{}
}

func startProbe(t testing.TB, addr string, interval time.Duration) *probe {
	t.Helper()
	conn, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogger(nopZKLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	p := &probe{conn: conn, interval: interval, rtts: map[string][]time.Duration{}, fails: map[string]int{},
		stop: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(func() {
		close(p.stop)
		<-p.done
		conn.Close()
	})
	testwait.Every(t, 30*time.Second, 20*time.Millisecond, "the probe's ZooKeeper session", func() bool { return conn.State() == zk.StateHasSession })
	go p.loop()
	return p
}

func (p *probe) loop() {
	defer close(p.done)
	tk := time.NewTicker(p.interval)
	defer tk.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tk.C:
		}
		p.mu.Lock()
		phase := p.phase
		p.mu.Unlock()
		if phase == "" {
			continue
		}
		start := time.Now()
		_, _, err := p.conn.Exists("/")
		rtt := time.Since(start)
		p.mu.Lock()
		p.sent++
		if err != nil {
			p.fails[phase]++
		} else {
			p.rtts[phase] = append(p.rtts[phase], rtt)
		}
		p.mu.Unlock()
	}
}

// set switches the probe to phase ("" stops it) and returns the number of
// requests it has sent so far.
func (p *probe) set(phase string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.phase = phase
	return p.sent
}

func (p *probe) result(phase string) (n int, avg, p99, hi time.Duration, fails int) {
	p.mu.Lock()
	s := slices.Clone(p.rtts[phase])
	fails = p.fails[phase]
	p.mu.Unlock()
	if len(s) == 0 {
		return 0, 0, 0, 0, fails
	}
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return len(s), sum / time.Duration(len(s)), s[min(len(s)-1, len(s)*99/100)], s[len(s)-1], fails
}

type nopZKLogger struct{}

func (nopZKLogger) Printf(string, ...any) {}

// measureFor waits d: a measurement window, not a synchronization.
func measureFor(d time.Duration) {
	tm := time.NewTimer(d)
	defer tm.Stop()
	<-tm.C
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
