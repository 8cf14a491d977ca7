package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
	"github.com/hanode/hanode/ping"
)

// notifyMsg is one datagram a node sent to its NOTIFY_SOCKET.
type notifyMsg struct {
	at    time.Time
	lines []string
}

func (m notifyMsg) has(line string) bool { return slices.Contains(m.lines, line) }

// status is the message's STATUS= value, "" if it has none.
func (m notifyMsg) status() string {
	for _, l := range m.lines {
		if v, ok := strings.CutPrefix(l, "STATUS="); ok {
			return v
		}
	}
	return ""
}

// notifySocket stands in for systemd's end of NOTIFY_SOCKET: a unixgram
// socket in a temporary directory, recording every datagram with its
// arrival time.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []notifyMsg
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "sd") // short: a socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	s := &notifySocket{path: filepath.Join(dir, "notify")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: s.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return // closed by cleanup
			}
			m := notifyMsg{at: time.Now(), lines: strings.Split(strings.TrimRight(string(buf[:n]), "\n"), "\n")}
			s.mu.Lock()
			s.msgs = append(s.msgs, m)
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = conn.Close()
		<-done
		_ = os.RemoveAll(dir)
	})
	return s
}

// messages returns every datagram so far.
func (s *notifySocket) messages() []notifyMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

// with returns the messages that have line.
func (s *notifySocket) with(line string) []notifyMsg {
	var out []notifyMsg
	for _, m := range s.messages() {
		if m.has(line) {
			out = append(out, m)
		}
	}
	return out
}

// waitFor waits for a message that has line and returns the first.
func (s *notifySocket) waitFor(t *testing.T, timeout time.Duration, line string) notifyMsg {
	t.Helper()
	testwait.For(t, timeout, "a notify message with "+line, func() bool { return len(s.with(line)) > 0 })
	return s.with(line)[0]
}

func (s *notifySocket) String() string {
	var b strings.Builder
	for _, m := range s.messages() {
		fmt.Fprintf(&b, "  %s %q\n", m.at.Format("15:04:05.000"), m.lines)
	}
	return b.String()
}

// TestSystemdNotifyProtocol: hanode run under a stand-in for systemd's
// NOTIFY_SOCKET (Type=notify), with WATCHDOG_USEC=1s, against real
// ZooKeeper. While ZooKeeper is down the node pings the watchdog but never
// says READY=1; once ZooKeeper is back, READY=1 comes with its first joined
// state ("active in term N", the term it reports). A second node is ready
// as "standby behind a". Watchdog pings come every half second, never a
// second apart. SIGTERM to the leader sends STOPPING=1 before its last
// status, and the standby's status follows it to active in a larger term.
// The duty inherits neither NOTIFY_SOCKET nor the watchdog's variables.
func TestSystemdNotifyProtocol(t *testing.T) {
	zk := zktest.Start(t)
	zk.Stop(t)
	haID := nodetest.GroupID(t)
	const watchdog = time.Second
	sdEnv := func(s *notifySocket) []string {
		return []string{"NOTIFY_SOCKET=" + s.path, fmt.Sprintf("WATCHDOG_USEC=%d", watchdog.Microseconds())}
	}
	dutyEnvFile := filepath.Join(t.TempDir(), "duty-env")
	sockA := listenNotify(t)
	envA := nodetest.HAEnv(zk.Addr, haID, "a")
	envA["ACTIVE_CMD"] = `echo "${NOTIFY_SOCKET:-none} ${WATCHDOG_USEC:-none} ${WATCHDOG_PID:-none}" > ` +
		nodetest.ShellQuote(dutyEnvFile) + `; exec sleep 600`
	a := nodetest.Start(t, nodetest.Options{Name: "a", Env: envA, Environ: sdEnv(sockA)})

	// ZooKeeper is down: the election runs (the watchdog hears from it),
	// the node has not joined, and it is not ready.
	testwait.For(t, 10*time.Second, "three watchdog pings while ZooKeeper is down", func() bool {
		return len(sockA.with("WATCHDOG=1")) >= 3
	})
	if st := a.MustStatus(); st.State != "starting" && st.State != "disconnected" {
		t.Fatalf("a is %s with ZooKeeper down, want starting or disconnected", st.State)
	}
	if m := sockA.with("READY=1"); len(m) > 0 {
		t.Fatalf("a said READY=1 before it joined its group:\n%s", sockA)
	}

	zk.Restart(t)
	ready := sockA.waitFor(t, electionTimeout, "READY=1")
	if st := ready.status(); !strings.HasPrefix(st, "standby") && !strings.HasPrefix(st, "waiting") && !strings.HasPrefix(st, "active") {
		t.Errorf("a's READY=1 came with STATUS=%q, want a joined state (standby, waiting, active)", st)
	}
	for _, m := range sockA.messages() {
		if m.at.After(ready.at) {
			break
		}
		if s := m.status(); s != "" && !strings.HasPrefix(s, "starting") && !strings.HasPrefix(s, "disconnected") && !m.has("READY=1") {
			t.Errorf("a said STATUS=%q before READY=1: only starting and disconnected come before joining", s)
		}
	}
	st, err := a.WaitStatus(electionTimeout, func(s ping.Status) bool { return s.State == "active" })
	if err != nil {
		t.Fatal(err)
	}
	sockA.waitFor(t, 5*time.Second, fmt.Sprintf("STATUS=active in term %d", st.Term))

	sockB := listenNotify(t)
	b := nodetest.Start(t, nodetest.Options{Name: "b", Env: nodetest.HAEnv(zk.Addr, haID, "b"), Environ: sdEnv(sockB)})
	readyB := sockB.waitFor(t, electionTimeout, "READY=1")
	if !strings.HasPrefix(readyB.status(), "standby") {
		t.Errorf("b's READY=1 came with STATUS=%q, want standby", readyB.status())
	}
	sockB.waitFor(t, 5*time.Second, fmt.Sprintf("STATUS=standby behind a (term %d)", st.Term))

	// Watchdog pings: half the interval apart, never a whole one.
	testwait.For(t, 10*time.Second, "four more watchdog pings from a", func() bool {
		n := 0
		for _, m := range sockA.with("WATCHDOG=1") {
			if m.at.After(ready.at) {
				n++
			}
		}
		return n >= 4
	})
	pings := sockA.with("WATCHDOG=1")
	var gaps []time.Duration
	for i := 1; i < len(pings); i++ {
		gaps = append(gaps, pings[i].at.Sub(pings[i-1].at))
	}
	slices.Sort(gaps)
	if median := gaps[len(gaps)/2]; median < watchdog/2-150*time.Millisecond || median > watchdog/2+150*time.Millisecond {
		t.Errorf("watchdog pings %v apart (median), want about %v; gaps %v", median, watchdog/2, gaps)
	}
	if longest := gaps[len(gaps)-1]; longest >= watchdog {
		t.Errorf("two watchdog pings %v apart: systemd (WATCHDOG_USEC=%v) would have killed the node", longest, watchdog)
	}

	// SIGTERM: STOPPING=1 first, then the last transitions; b follows.
	fault := a.Term()
	if code := a.WaitExit(exitBound); code != 0 {
		t.Fatalf("a exited %d after SIGTERM, want 0", code)
	}
	stopping := sockA.waitFor(t, time.Second, "STOPPING=1")
	if stopping.at.Before(fault) {
		t.Errorf("STOPPING=1 came before SIGTERM")
	}
	var last notifyMsg
	for _, m := range sockA.messages() {
		if m.status() != "" {
			last = m
		}
	}
	if !strings.HasPrefix(last.status(), "stopped") || last.at.Before(stopping.at) {
		t.Errorf("a's last status is %q at %s, want stopped after STOPPING=1 at %s:\n%s",
			last.status(), last.at.Format("15:04:05.000"), stopping.at.Format("15:04:05.000"), sockA)
	}
	stB, err := b.WaitStatus(gracefulBound+2*time.Second, func(s ping.Status) bool { return s.State == "active" })
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("STATUS=active in term %d", stB.Term)
	sockB.waitFor(t, 5*time.Second, want)
	if stB.Term <= st.Term {
		t.Errorf("b leads in term %d, not above a's %d", stB.Term, st.Term)
	}

	env, err := os.ReadFile(dutyEnvFile)
	if err != nil {
		t.Fatalf("a's duty did not record its environment: %v", err)
	}
	if got := strings.TrimSpace(string(env)); got != "none none none" {
		t.Errorf("a's duty saw NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID = %q, want none of them", got)
	}
	if t.Failed() {
		t.Logf("a's notify messages:\n%s\nb's:\n%s", sockA, sockB)
	}
}

// TestSIGHUPReloadsTheLogLevel: a standalone node under NOTIFY_SOCKET is
// ready as soon as it serves. SIGHUP after the env file changed applies
// LOG_LEVEL (debug lines appear: each ping is logged), names REGION as
// needing a restart, brackets the reload with RELOADING=1 and READY=1, and
// the node goes on answering ok. A file that no longer loads leaves the
// node as it was, logged.
func TestSIGHUPReloadsTheLogLevel(t *testing.T) {
	sock := listenNotify(t)
	n := nodetest.Start(t, nodetest.Options{Name: "solo", Environ: []string{"NOTIFY_SOCKET=" + sock.path},
		Env: map[string]string{"NAME": "solo", "ROLE": "primary", "LOG_LEVEL": "info"}})
	ready := sock.waitFor(t, 5*time.Second, "READY=1")
	if ready.status() != "active (standalone: no HA_ID)" {
		t.Errorf("READY=1 came with STATUS=%q", ready.status())
	}
	if _, body, _ := n.PingSE(); body != "ok" {
		t.Fatalf("standalone node answered %q", body)
	}
	if n.HasLog("ping: answered") {
		t.Fatal("a ping was logged at LOG_LEVEL=info")
	}

	appendEnv(t, n, "LOG_LEVEL='debug'\nREGION='mars'\n")
	n.Signal(syscall.SIGHUP)
	testwait.For(t, 5*time.Second, "the reload to be logged", func() bool {
		return n.HasLog("configuration reloaded; changed keys that need a restart were not applied")
	})
	for _, e := range n.LogEntries() {
		if e.Msg == "configuration reloaded; changed keys that need a restart were not applied" {
			if fmt.Sprint(e.Fields["applied"]) != "[LOG_LEVEL]" || fmt.Sprint(e.Fields["need_restart"]) != "[REGION]" {
				t.Errorf("reload applied %v and left %v for a restart, want [LOG_LEVEL] and [REGION]",
					e.Fields["applied"], e.Fields["need_restart"])
			}
		}
	}
	sock.waitFor(t, 5*time.Second, "RELOADING=1")
	testwait.For(t, 5*time.Second, "READY=1 after RELOADING=1, with the status from before", func() bool {
		msgs := sock.messages()
		i := slices.IndexFunc(msgs, func(m notifyMsg) bool { return m.has("RELOADING=1") })
		return slices.ContainsFunc(msgs[i+1:], func(m notifyMsg) bool { return m.has("READY=1") && m.status() == ready.status() })
	})
	if _, body, _ := n.PingSE(); body != "ok" {
		t.Fatalf("after the reload the node answered %q", body)
	}
	testwait.For(t, 5*time.Second, "a ping to be logged at debug", func() bool { return n.HasLog("ping: answered") })

	appendEnv(t, n, "ROLE='bogus'\n")
	n.Signal(syscall.SIGHUP)
	testwait.For(t, 5*time.Second, "the failed reload to be logged", func() bool {
		return n.HasLog("configuration reload failed; the running configuration stays in force")
	})
	requireRunning(t, n)
	if _, body, _ := n.PingSE(); body != "ok" {
		t.Fatalf("after a failed reload the node answered %q", body)
	}

	n.Term()
	if code := n.WaitExit(exitBound); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	sock.waitFor(t, time.Second, "STOPPING=1")
}

// appendEnv appends lines to n's env file (later assignments win).
func appendEnv(t *testing.T, n *nodetest.Node, lines string) {
	t.Helper()
	f, err := os.OpenFile(n.EnvFilePath(), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(lines); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSystemdUnitVerifies: `systemd-analyze verify` accepts the shipped
// unit (its ExecStart pointed at a real hanode binary) without a word, and
// the unit is Type=notify with a watchdog, notifications from hanode only,
// and a reload by SIGHUP.
func TestSystemdUnitVerifies(t *testing.T) {
	unit := readUnit(t)
	lines := strings.Split(unit, "\n")
	for _, want := range []string{"Type=notify", "NotifyAccess=main", "ExecReload=/bin/kill -HUP $MAINPID"} {
		if !slices.Contains(lines, want) {
			t.Errorf("the unit lacks %q", want)
		}
	}
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "WatchdogSec=") }) {
		t.Error("the unit sets no WatchdogSec=")
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("SKIPPED: systemd-analyze is not installed, so etc/systemd/hanode.service is NOT verified " +
			"(apt-get install systemd to run this check)")
	}
	const shipped = "/usr/local/bin/hanode"
	if !strings.Contains(unit, "ExecStart="+shipped+" ") {
		t.Fatalf("the unit's ExecStart does not run %s", shipped)
	}
	path := filepath.Join(t.TempDir(), "hanode.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, shipped, nodetest.Build(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
