package nodetest

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Bounds of the harness's own waits.
const (
	// ReadyTimeout bounds Start and Restart: the HTTP endpoint must answer
	// within it.
	ReadyTimeout = 15 * time.Second
	// exitTimeout bounds waiting for a killed process to be reaped.
	exitTimeout = 10 * time.Second
	// markerEnv carries a node's marker into hanode and every duty it forks,
	// so cleanup finds them all in /proc.
	markerEnv = "NODETEST_NODE"
	// portAttempts is how often Start picks another port when the one it
	// chose was taken in the meantime.
	portAttempts = 3
)

// Options describe one node.
type Options struct {
	// Name names the node in messages and its directory; default Env["NAME"].
	Name string
	// Env is written to the env file as KEY='value' lines, keys sorted.
	// HTTP_LISTEN defaults to a free 127.0.0.1 port chosen by the harness
	// (unless Env or Raw sets it).
	Env map[string]string
	// Raw is appended to the env file verbatim (NetSpyGlass-style lines).
	Raw string
	// Args are extra arguments after `run --env-file FILE`.
	Args []string
	// Heartbeat sets ACTIVE_CMD to HeartbeatCmd(node.HeartbeatFile()).
	Heartbeat bool
	// DutyCmd, with Heartbeat, builds ACTIVE_CMD from the heartbeat file
	// instead of HeartbeatCmd (a duty that must still write its lines).
	DutyCmd func(heartbeatFile string) string
	// StderrPipe sends hanode's stderr through a pipe the harness copies to
	// the log, so that a test can close it (CloseStderr).
	StderrPipe bool
	// Environ adds KEY=VALUE entries to the process environment (the test's
	// own environment, without HANODE_* variables, is the base).
	Environ []string
}

// Node is one hanode process (and its later restarts) under test.
type Node struct {
	t       testing.TB
	name    string
	dir     string
	envFile string
	addr    string // HTTP host:port, 127.0.0.1
	netID   string
	bin     string
	marker  string
	opts    Options
	ownPort bool // the harness chose the port

	mu      sync.Mutex
	cur     *proc
	runs    []*proc
	stopped atomic.Bool // SIGSTOPped by Stop and not yet continued
}

// proc is one run of the binary.
type proc struct {
	cmd     *exec.Cmd
	started time.Time
	stdout  string
	stderr  string
	done    chan struct{} // closed once the process was reaped
	state   *os.ProcessState
	waitErr error
	// errPipe is the read end of hanode's stderr with Options.StderrPipe.
	errPipe *os.File
}

var nodeSeq atomic.Int64

// Start writes the node's env file, starts `hanode run` and waits until its
// HTTP endpoint answers (any status). It fails the test if the process exits
// or does not answer within ReadyTimeout.
func Start(t testing.TB, opts Options) *Node {
	t.Helper()
	n := newNode(t, opts)
	for attempt := 1; ; attempt++ {
		n.launch()
		err := n.WaitReady(ReadyTimeout)
		if err == nil {
			return n
		}
		if n.ownPort && attempt < portAttempts && strings.Contains(n.Logs(), "address already in use") {
			_, _ = n.Wait(exitTimeout)
			n.addr = freeAddr(t)
			n.writeEnvFile()
			continue
		}
		t.Fatalf("nodetest: %v", err)
	}
}

// Launch is Start without waiting: for processes expected to exit at once
// (bad configuration, refusals). Wait collects the exit status.
func Launch(t testing.TB, opts Options) *Node {
	t.Helper()
	n := newNode(t, opts)
	n.launch()
	return n
}

func newNode(t testing.TB, opts Options) *Node {
	t.Helper()
	bin := Build(t)
	name := opts.Name
	if name == "" {
		name = opts.Env["NAME"]
	}
	if name == "" {
		name = fmt.Sprintf("node%d", nodeSeq.Add(1))
	}
	dir := filepath.Join(t.TempDir(), sanitize(name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n := &Node{
		t: t, name: name, dir: dir, envFile: filepath.Join(dir, "hanode.env"), bin: bin, opts: opts,
		marker: fmt.Sprintf("%d-%d-%s", os.Getpid(), nodeSeq.Add(1), sanitize(name)),
		netID:  "1",
	}
	if v, ok := opts.Env["NET_ID"]; ok && v != "" {
		n.netID = v
	}
	switch listen, ok := opts.Env["HTTP_LISTEN"]; {
	case ok:
		n.addr = loopbackAddr(listen)
	case strings.Contains(opts.Raw, "HTTP_LISTEN"):
		n.addr = "" // the test knows; HTTP helpers will fail clearly
	default:
		n.addr, n.ownPort = freeAddr(t), true
	}
	if opts.Heartbeat && opts.Env["ACTIVE_CMD"] != "" {
		t.Fatalf("nodetest: node %s: Heartbeat and Env[ACTIVE_CMD] both set", name)
	}
	n.writeEnvFile()
	t.Cleanup(n.cleanup)
	return n
}

// writeEnvFile (re)writes the env file from the options and the chosen port.
func (n *Node) writeEnvFile() {
	env := make(map[string]string, len(n.opts.Env)+2)
	for k, v := range n.opts.Env {
		env[k] = v
	}
	if n.ownPort {
		env["HTTP_LISTEN"] = n.addr
	}
	if n.opts.Heartbeat {
		env["ACTIVE_CMD"] = HeartbeatCmd(n.HeartbeatFile())
		if n.opts.DutyCmd != nil {
			env["ACTIVE_CMD"] = n.opts.DutyCmd(n.HeartbeatFile())
		}
	}
	if err := os.WriteFile(n.envFile, []byte(EnvFile(env)+n.opts.Raw), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

// EnvFile renders keys as an env file: one KEY='value' line per key, sorted,
// single-quoted so the shell parser takes every value literally.
func EnvFile(env map[string]string) string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# written by nodetest\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, ShellQuote(env[k]))
	}
	return b.String()
}

// ShellQuote single-quotes s for a POSIX shell (a quote inside is written as quote, backslash, quote, quote).
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (n *Node) launch() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cur != nil && !isDone(n.cur.done) {
		n.t.Fatalf("nodetest: node %s is still running (pid %d)", n.name, n.cur.cmd.Process.Pid)
	}
	run := len(n.runs) + 1
	p := &proc{
		stdout: filepath.Join(n.dir, fmt.Sprintf("stdout.%d.log", run)),
		stderr: filepath.Join(n.dir, fmt.Sprintf("stderr.%d.log", run)),
		done:   make(chan struct{}),
	}
	outF, err := os.Create(p.stdout)
	if err != nil {
		n.t.Fatal(err)
	}
	errF, err := os.Create(p.stderr)
	if err != nil {
		n.t.Fatal(err)
	}
	args := append([]string{"run", "--env-file", n.envFile}, n.opts.Args...)
	cmd := exec.Command(n.bin, args...)
	cmd.Dir = n.dir
	cmd.Env = append(processEnv(), markerEnv+"="+n.marker)
	cmd.Env = append(cmd.Env, n.opts.Environ...)
	cmd.Stdout, cmd.Stderr = outF, errF
	var errW *os.File // the write end of the stderr pipe, closed after Start
	if n.opts.StderrPipe {
		r, w, err := os.Pipe()
		if err != nil {
			n.t.Fatal(err)
		}
		p.errPipe, errW, cmd.Stderr = r, w, w
		go func() { // owns errF: copies until the pipe ends or CloseStderr
			_, _ = io.Copy(errF, r)
			_ = errF.Close()
		}()
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd = cmd
	p.started = time.Now()
	err = cmd.Start()
	if errW != nil {
		_ = errW.Close()
	}
	if err != nil {
		_ = outF.Close()
		if p.errPipe != nil {
			_ = p.errPipe.Close()
		} else {
			_ = errF.Close()
		}
		n.t.Fatalf("nodetest: start %s: %v", n.name, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		p.state = cmd.ProcessState
		_ = outF.Close()
		if p.errPipe == nil {
			_ = errF.Close()
		}
		close(p.done)
	}()
	n.cur = p
	n.runs = append(n.runs, p)
	n.stopped.Store(false)
}

// processEnv is the test's environment without HANODE_* variables, so the
// runner's settings cannot leak into a node's configuration.
func processEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HANODE_") && !strings.HasPrefix(kv, markerEnv+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// Name is the node's name.
func (n *Node) Name() string { return n.name }

// String is the node's name.
func (n *Node) String() string { return n.name }

// Dir is the node's working directory (env file, logs, heartbeat file).
func (n *Node) Dir() string { return n.dir }

// EnvFilePath is the env file every run of the node reads.
func (n *Node) EnvFilePath() string { return n.envFile }

// Addr is the node's HTTP address, "127.0.0.1:PORT".
func (n *Node) Addr() string { return n.addr }

// HeartbeatFile is where the duty of a node started with Heartbeat writes.
func (n *Node) HeartbeatFile() string { return filepath.Join(n.dir, "heartbeat.log") }

// Runs is how many times the process was started.
func (n *Node) Runs() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.runs)
}

func (n *Node) current() *proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cur
}

// PID is the process id (and process group id) of the current run.
func (n *Node) PID() int {
	if p := n.current(); p != nil {
		return p.cmd.Process.Pid
	}
	return 0
}

// Running reports whether the current run has not exited.
func (n *Node) Running() bool {
	p := n.current()
	return p != nil && !isDone(p.done)
}

// Paused reports whether the node was stopped with Stop and not continued.
func (n *Node) Paused() bool { return n.stopped.Load() }

// CloseStderr closes the harness's end of the current run's stderr pipe
// (Options.StderrPipe): from then on hanode writes to a pipe without a
// reader, and its log file receives nothing more. It returns the instant
// just before the close.
func (n *Node) CloseStderr() time.Time {
	n.t.Helper()
	p := n.current()
	if p == nil || p.errPipe == nil {
		n.t.Fatalf("nodetest: CloseStderr %s: not started with StderrPipe", n.name)
	}
	at := time.Now()
	_ = p.errPipe.Close()
	return at
}

// Term sends SIGTERM and returns the instant just before it was sent.
func (n *Node) Term() time.Time { return n.Signal(syscall.SIGTERM) }

// Kill sends SIGKILL to the hanode process only (its duty shell dies with
// it through Pdeathsig) and returns the instant just before it was sent.
func (n *Node) Kill() time.Time { return n.Signal(syscall.SIGKILL) }

// KillGroup sends SIGKILL to every process hanode started in other groups
// (its duty guard, its duties), then to hanode's process group: the whole
// node dies at once, as on a power loss, and no guard outlives hanode to
// release its lease. It returns the instant just before hanode's signal.
func (n *Node) KillGroup() time.Time {
	n.t.Helper()
	p := n.current()
	if p == nil || isDone(p.done) {
		n.t.Fatalf("nodetest: KillGroup %s: not running", n.name)
	}
	// Everything else first, hanode last: its duty guard, which lives in a
	// session of its own, must not see hanode exit and release its lease
	// (a power loss leaves nobody to do that). The instant returned is
	// hanode's: it answers until then (finding the others takes a scan of
	// /proc).
	for _, pid := range nodePIDs(n.marker, n.dir) {
		if pid != p.cmd.Process.Pid {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	at := time.Now()
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	n.killMarked()
	return at
}

// StopUnderSystemd stops the node as `systemctl stop` does with
// KillMode=control-group: SIGTERM to every process of the node at once,
// hanode, its duty guard and its duty's processes. It returns the instant
// just before the first signal.
func (n *Node) StopUnderSystemd() time.Time {
	n.t.Helper()
	p := n.current()
	if p == nil || isDone(p.done) {
		n.t.Fatalf("nodetest: StopUnderSystemd %s: not running", n.name)
	}
	pids := nodePIDs(n.marker, n.dir)
	at := time.Now()
	_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM)
	for _, pid := range pids {
		if pid != p.cmd.Process.Pid {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	return at
}

// KillUnderSystemd kills hanode as the OOM killer would under systemd with
// KillMode=control-group: SIGKILL to hanode alone; once it is reaped (systemd
// acts on its SIGCHLD), SIGTERM to every process left of the node (systemd
// stopping the unit signals every process in its cgroup, then waits for
// them). It returns the instant just before hanode's SIGKILL. (Under
// KillMode=mixed the SIGTERM goes to the dead main process only and every
// other process gets SIGKILL at once: KillGroup, in effect.)
func (n *Node) KillUnderSystemd() time.Time {
	n.t.Helper()
	p := n.current()
	at := n.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(exitTimeout):
		n.t.Fatalf("nodetest: %s pid %d not reaped %v after SIGKILL", n.name, p.cmd.Process.Pid, exitTimeout)
	}
	for _, pid := range nodePIDs(n.marker, n.dir) {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	return at
}

// Stop sends SIGSTOP to the hanode process (not to its duty), freezing it as
// a long pause would; Cont resumes it.
func (n *Node) Stop() time.Time {
	at := n.Signal(syscall.SIGSTOP)
	n.stopped.Store(true)
	return at
}

// Cont sends SIGCONT to the hanode process.
func (n *Node) Cont() time.Time {
	at := n.Signal(syscall.SIGCONT)
	n.stopped.Store(false)
	return at
}

// StopAll sends SIGSTOP to hanode's process group and to every duty process
// group of the node: the whole node freezes, as in a VM pause. ContAll
// resumes them.
func (n *Node) StopAll() time.Time {
	at := n.signalAll(syscall.SIGSTOP)
	n.stopped.Store(true)
	return at
}

// ContAll sends SIGCONT to everything StopAll stopped.
func (n *Node) ContAll() time.Time {
	at := n.signalAll(syscall.SIGCONT)
	n.stopped.Store(false)
	return at
}

func (n *Node) signalAll(sig syscall.Signal) time.Time {
	n.t.Helper()
	p := n.current()
	if p == nil || isDone(p.done) {
		n.t.Fatalf("nodetest: signal %v to all of %s: not running", sig, n.name)
	}
	at := time.Now()
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	self := syscall.Getpgrp()
	for _, pid := range markedPIDs(n.marker) {
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid != self && pgid > 1 {
			_ = syscall.Kill(-pgid, sig)
		}
	}
	return at
}

// Signal sends sig to the hanode process and returns the instant just
// before it was sent. It fails the test if the process has exited.
func (n *Node) Signal(sig syscall.Signal) time.Time {
	n.t.Helper()
	p := n.current()
	if p == nil || isDone(p.done) {
		n.t.Fatalf("nodetest: signal %v to %s: not running", sig, n.name)
	}
	at := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		n.t.Fatalf("nodetest: signal %v to %s: %v", sig, n.name, err)
	}
	return at
}

// Wait waits up to timeout for the current run to exit and returns its exit
// code (-1 when a signal ended it).
func (n *Node) Wait(timeout time.Duration) (int, error) {
	p := n.current()
	if p == nil {
		return 0, fmt.Errorf("node %s was never started", n.name)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		return 0, fmt.Errorf("node %s (pid %d) did not exit within %v", n.name, p.cmd.Process.Pid, timeout)
	}
	return p.state.ExitCode(), nil
}

// WaitExit is Wait that fails the test on a timeout.
func (n *Node) WaitExit(timeout time.Duration) int {
	n.t.Helper()
	code, err := n.Wait(timeout)
	if err != nil {
		n.t.Fatalf("nodetest: %v\n%s", err, n.tail(n.current(), 30))
	}
	return code
}

// Restart waits for the current run to have exited, starts the binary again
// with the same env file and port, and waits until it answers HTTP.
func (n *Node) Restart() {
	n.t.Helper()
	if p := n.current(); p != nil {
		if _, err := n.Wait(exitTimeout); err != nil {
			n.t.Fatalf("nodetest: restart: %v", err)
		}
	}
	n.launch()
	if err := n.WaitReady(ReadyTimeout); err != nil {
		n.t.Fatalf("nodetest: restart: %v", err)
	}
}

// WaitReady waits until the HTTP endpoint answers any status. It returns an
// error (with the log's tail) when the process exits first or on timeout.
func (n *Node) WaitReady(timeout time.Duration) error {
	p := n.current()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if n.addr != "" {
			if _, err := n.Status(); err == nil {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("node %s exited with %v before answering on %s\n%s", n.name, p.state, n.addr, n.tail(p, 40))
		case <-deadline.C:
			return fmt.Errorf("node %s did not answer on %s within %v\n%s", n.name, n.addr, timeout, n.tail(p, 40))
		case <-tick.C:
		}
	}
}

// Logs returns the current run's stderr (hanode's JSON log).
func (n *Node) Logs() string {
	p := n.current()
	if p == nil {
		return ""
	}
	b, _ := os.ReadFile(p.stderr)
	return string(b)
}

// Stdout returns the current run's stdout (the duty writes there).
func (n *Node) Stdout() string {
	p := n.current()
	if p == nil {
		return ""
	}
	b, _ := os.ReadFile(p.stdout)
	return string(b)
}

// AllLogs returns the stderr of every run, each under a header line.
func (n *Node) AllLogs() string {
	n.mu.Lock()
	runs := slices.Clone(n.runs)
	n.mu.Unlock()
	var b strings.Builder
	for i, p := range runs {
		data, _ := os.ReadFile(p.stderr)
		fmt.Fprintf(&b, "=== %s run %d (pid %d) stderr ===\n%s", n.name, i+1, p.cmd.Process.Pid, data)
	}
	return b.String()
}

// tail renders the last lines of a run's stderr for failure messages.
func (n *Node) tail(p *proc, lines int) string {
	if p == nil {
		return ""
	}
	data, _ := os.ReadFile(p.stderr)
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return fmt.Sprintf("--- %s pid %d stderr (last %d lines) ---\n%s", n.name, p.cmd.Process.Pid, len(all), strings.Join(all, "\n"))
}

// DutyPIDs lists the live processes this node started outside hanode itself
// (its duties and their children), found by a marker in their environment.
func (n *Node) DutyPIDs() []int {
	var out []int
	for _, pid := range markedPIDs(n.marker) {
		if p := n.current(); p != nil && pid == p.cmd.Process.Pid {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// cleanup kills every process of the node and reports its log on failure.
func (n *Node) cleanup() {
	n.mu.Lock()
	runs := slices.Clone(n.runs)
	n.mu.Unlock()
	for _, p := range runs {
		if !isDone(p.done) {
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			_ = p.cmd.Process.Kill()
		}
	}
	n.killMarked()
	for _, p := range runs {
		select {
		case <-p.done:
		case <-time.After(exitTimeout):
			n.t.Errorf("nodetest: %s pid %d not reaped %v after SIGKILL", n.name, p.cmd.Process.Pid, exitTimeout)
		}
	}
	if n.t.Failed() {
		for _, p := range runs {
			n.t.Logf("%s", n.tail(p, 60))
		}
	}
}

// killMarked SIGKILLs every process of the node (Processes: its marker in
// the environment or its directory in argv), and the process group of each.
func (n *Node) killMarked() {
	self := syscall.Getpgrp()
	for range 3 { // a dying shell may fork once more
		pids := nodePIDs(n.marker, n.dir)
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			if pgid, err := syscall.Getpgid(pid); err == nil && pgid != self && pgid > 1 {
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// markedPIDs scans /proc for processes whose initial environment holds the
// marker. Processes of other users are skipped (their environ is unreadable).
func markedPIDs(marker string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := []byte(markerEnv + "=" + marker + "\x00")
	self := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !containsEntry(data, want) {
			continue
		}
		if zombie(pid) {
			continue
		}
		out = append(out, pid)
	}
	return out
}

func containsEntry(environ, entry []byte) bool {
	for len(environ) > 0 {
		if len(environ) >= len(entry) && string(environ[:len(entry)]) == string(entry) {
			return true
		}
		i := slices.Index(environ, 0)
		if i < 0 {
			return false
		}
		environ = environ[i+1:]
	}
	return false
}

// zombie reports whether pid has exited but was not reaped yet.
func zombie(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// "pid (comm) S ...": the state follows the last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

func isDone(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// freeAddr returns 127.0.0.1:PORT with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("nodetest: pick a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// FreeAddr returns "127.0.0.1:PORT" with a port that was free a moment ago.
func FreeAddr(t testing.TB) string { return freeAddr(t) }

// loopbackAddr turns ":9640" into "127.0.0.1:9640".
func loopbackAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func sanitize(s string) string { return unsafeChars.ReplaceAllString(s, "_") }
