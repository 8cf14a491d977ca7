package bench

// The per-process check: G groups of three real hanode processes (one
// membership each, no ACTIVE_CMD, so no duty guard process) on one
// ZooKeeper, with hanode's default ZK_SESSION_TIMEOUT (10 s) and margin
// (3 s). What a process costs is read from /proc; when a node became active
// is read from its own status (Since, on the same machine's clock).

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
	"github.com/hanode/hanode/ping"
)

type procsResult struct {
	groups, procs       int
	startAll            time.Duration // starting every process, one after another
	joinAll             time.Duration // first start to every group's first leader
	idle                zkDelta
	idleZKCPU           float64
	idleZKCPUOK         bool
	cpuPerProc          []float64 // share of one core, idle
	rssPerProc          []int64
	handoverAll         time.Duration // first SIGTERM to the last group's new leader (its status Since)
	handoverMedian      time.Duration
	handoverSignalsTook time.Duration
}

func runProcesses(t *testing.T, groups int) procsResult {
	r := procsResult{groups: groups, procs: scaleProcs * groups}
	zks := zktest.StartWith(t, zktest.Options{TickMs: scaleTickMs, MaxClientCnxns: 0})
	cid := zks.ContainerID()
	nodes := make([][]*nodetest.Node, groups)
	t0 := time.Now()
	for g := range groups {
		id := scaleGroupID(g)
		for _, name := range []string{"a", "b", "c"} {
			env := nodetest.HAEnv(zks.Addr, id, id+"-"+name)
			maps.Copy(env, map[string]string{"ZK_SESSION_TIMEOUT": scaleSessionTimeout.String()})
			nodes[g] = append(nodes[g], nodetest.Start(t, nodetest.Options{Name: id + "-" + name, Env: env}))
		}
	}
	r.startAll = time.Since(t0)
	statuses := func(g int) []ping.Status {
		var out []ping.Status
		for _, n := range nodes[g] {
			if !n.Running() {
				continue
			}
			st, err := n.Status()
			if err != nil {
				return nil
			}
			out = append(out, st)
		}
		return out
	}
	oneLeader := func(g int) (ping.Status, bool) {
		sts := statuses(g)
		var leader ping.Status
		active := 0
		for _, st := range sts {
			switch st.State {
			case "active":
				active++
				leader = st
			case "standby":
			default:
				return leader, false
			}
		}
		return leader, len(sts) > 0 && active == 1
	}
	testwait.Every(t, scaleW+time.Minute, 100*time.Millisecond, "one leader in every group of processes", func() bool {
		for g := range groups {
			if _, ok := oneLeader(g); !ok {
				return false
			}
		}
		return true
	})
	for g := range groups {
		st, _ := oneLeader(g)
		if since, err := time.Parse(time.RFC3339Nano, st.Since); err == nil {
			r.joinAll = max(r.joinAll, since.Sub(t0))
		}
	}

	measureFor(scaleR + time.Second)
	var procs []*nodetest.Node
	for _, g := range nodes {
		procs = append(procs, g...)
	}
	cpu0 := make([]time.Duration, len(procs))
	for i, n := range procs {
		cpu0[i], _ = procCPU(n.PID())
	}
	z0 := mustSrvr(t, zks.Addr)
	zc0, ok := cgroupCPU(cid)
	measureFor(20 * time.Second)
	z1 := mustSrvr(t, zks.Addr)
	zc1, _ := cgroupCPU(cid)
	r.idle = srvrDelta(z0, z1)
	r.idleZKCPU, r.idleZKCPUOK = (zc1-zc0).Seconds()/r.idle.secs, ok
	for i, n := range procs {
		c, _ := procCPU(n.PID())
		r.cpuPerProc = append(r.cpuPerProc, (c-cpu0[i]).Seconds()/r.idle.secs)
		rss, _ := procRSS(n.PID())
		r.rssPerProc = append(r.rssPerProc, rss)
	}

	// Mass handover: SIGTERM to every leader at once.
	leaders := make([]*nodetest.Node, groups)
	for g := range groups {
		st, ok := oneLeader(g)
		if !ok {
			t.Fatalf("group %d: no single leader before the handover", g)
		}
		for _, n := range nodes[g] {
			if n.Name() == st.Name {
				leaders[g] = n
			}
		}
	}
	h0 := time.Now()
	for _, n := range leaders {
		n.Term()
	}
	r.handoverSignalsTook = time.Since(h0)
	var took []time.Duration
	testwait.Every(t, 30*time.Second, 20*time.Millisecond, "a new leader in every group of processes", func() bool {
		took = took[:0]
		for g := range groups {
			found := false
			for _, n := range nodes[g] {
				if n == leaders[g] {
					continue
				}
				st, err := n.Status()
				if err != nil || st.State != "active" {
					continue
				}
				since, err := time.Parse(time.RFC3339Nano, st.Since)
				if err != nil || since.Before(h0) {
					continue
				}
				took = append(took, since.Sub(h0))
				found = true
			}
			if !found {
				return false
			}
		}
		return true
	})
	r.handoverMedian, _, r.handoverAll = quantiles(took)
	for _, n := range leaders {
		if code := n.WaitExit(15 * time.Second); code != 0 {
			t.Errorf("%s exited %d after SIGTERM", n, code)
		}
	}
	return r
}

func (r procsResult) report() string {
	var b strings.Builder
	g := float64(r.groups)
	secs := r.idle.secs
	fmt.Fprintf(&b, "%d groups × 3 hanode processes (%d sessions), ZK_SESSION_TIMEOUT %v, default margin, no ACTIVE_CMD; started one after another in %v\n",
		r.groups, r.procs, scaleSessionTimeout, r.startAll.Round(time.Millisecond))
	fmt.Fprintf(&b, "join: first start to every group's first leader %v\n", r.joinAll.Round(time.Millisecond))
	fmt.Fprintf(&b, "idle (%.0f s): ZooKeeper packets received %.1f/s, sent %.1f/s (%.2f / %.2f per group); writes (zxid) %.2f/s (%.3f per group); server avg latency %.2f ms\n",
		secs, float64(r.idle.received)/secs, float64(r.idle.sent)/secs, float64(r.idle.received)/secs/g, float64(r.idle.sent)/secs/g,
		float64(r.idle.writes)/secs, float64(r.idle.writes)/secs/g, r.idle.avgLatMs)
	if r.idleZKCPUOK {
		fmt.Fprintf(&b, "idle: ZooKeeper CPU %.2f%% of one core\n", 100*r.idleZKCPU)
	}
	cpu := slices.Clone(r.cpuPerProc)
	slices.Sort(cpu)
	rss := slices.Clone(r.rssPerProc)
	slices.Sort(rss)
	if len(cpu) > 0 {
		fmt.Fprintf(&b, "per process, idle: CPU median %.3f%% (%.3f–%.3f%%) of one core; RSS median %.1f MB (%.1f–%.1f MB)\n",
			100*cpu[len(cpu)/2], 100*cpu[0], 100*cpu[len(cpu)-1], mib(rss[len(rss)/2]), mib(rss[0]), mib(rss[len(rss)-1]))
	}
	fmt.Fprintf(&b, "mass handover (SIGTERM to %d leaders, sent in %v): every group led again after %v (median %v; the new leader's status Since)\n",
		r.groups, r.handoverSignalsTook.Round(time.Microsecond), r.handoverAll.Round(time.Millisecond), r.handoverMedian.Round(time.Millisecond))
	return b.String()
}
