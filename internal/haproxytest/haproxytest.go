// Package haproxytest runs Debian's HAProxy (the haproxy binary from apt;
// .ci/run installs it) in front of hanode nodes under test, with the
// shipped configuration, etc/haproxy/hanode.cfg, rewritten only where a
// test must: loopback addresses and ports, a stats socket in a temporary
// directory, logs to a file, no chroot and no account switch. Everything
// else (checks, timings, retries) is the file as shipped.
//
// A Watch polls HAProxy's own view of its servers (`show stat` on the
// stats socket) and keeps every change of state with the local time it was
// seen, so a test can tell when HAProxy marked a node up or down.
//
// Start removes the process in t.Cleanup; nothing here sleeps to
// synchronize (internal/testwait).
package haproxytest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/testwait"
)

// RequireEnv names a variable that, set true, makes a missing haproxy
// binary fail the test rather than skip it. Unset, CI=true does the same:
// CI never passes by skipping the balancer tests.
const RequireEnv = "HANODE_REQUIRE_HAPROXY"

// Backend is the shipped configuration's backend, the one the test rewrites.
const Backend = "nsg"

// Require returns the path of the haproxy binary. Without one it skips the
// test, saying so, or fails it in CI (see RequireEnv).
func Require(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("haproxy")
	if err == nil {
		return path
	}
	if required() {
		t.Fatalf("haproxytest: haproxy is not installed (apt-get install haproxy; .ci/run does): %v", err)
	}
	t.Skip("haproxy is not installed: skipping the balancer tests (apt-get install haproxy; " +
		RequireEnv + "=1 fails instead)")
	return ""
}

func required() bool {
	for _, k := range []string{RequireEnv, "CI"} {
		if b, err := strconv.ParseBool(os.Getenv(k)); err == nil && b {
			return true
		}
	}
	return false
}

// Server is one member of the group behind the balancer.
type Server struct {
	// Name is the server's name in HAProxy (and in Watch's records).
	Name string
	// Addr is where its service listens while it is active, host:port.
	Addr string
	// CheckPort is its hanode's HTTP port (HTTP_LISTEN).
	CheckPort int
}

// Render rewrites the shipped configuration tmpl for a test: the frontend
// binds bind, the backend's servers are servers, the stats socket is
// socket, logs go to stdout; chroot, user and group go. Each rewritten line
// must be found exactly where the shipped file has it: a test that no
// longer matches the file fails instead of testing something else.
func Render(tmpl string, bind string, servers []Server, socket string) (string, error) {
	type edit struct {
		re   *regexp.Regexp
		with string
	}
	edits := []edit{
		{regexp.MustCompile(`(?m)^(\s*)log /dev/log local0$`), "${1}log stdout format raw local0"},
		{regexp.MustCompile(`(?m)^\s*chroot \S+\n`), ""},
		{regexp.MustCompile(`(?m)^\s*user \S+\n`), ""},
		{regexp.MustCompile(`(?m)^\s*group \S+\n`), ""},
		{regexp.MustCompile(`(?m)^(\s*)stats socket \S+ `), "${1}stats socket " + socket + " "},
		{regexp.MustCompile(`(?m)^(\s*)bind :\d+$`), "${1}bind " + bind},
	}
	out := tmpl
	var errs []error
	for _, e := range edits {
		if n := len(e.re.FindAllStringIndex(out, -1)); n != 1 {
			errs = append(errs, fmt.Errorf("%s matches %d lines, want 1", e.re, n))
			continue
		}
		out = e.re.ReplaceAllString(out, e.with)
	}
	serverLine := regexp.MustCompile(`(?m)^(\s*)server \S+ \S+\n`)
	idx := serverLine.FindAllStringSubmatchIndex(out, -1)
	if len(idx) == 0 {
		errs = append(errs, errors.New("no server lines"))
	}
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("haproxytest: the configuration is not as shipped: %w", err)
	}
	indent := out[idx[0][2]:idx[0][3]]
	var b strings.Builder
	for _, s := range servers {
		fmt.Fprintf(&b, "%sserver %s %s port %d\n", indent, s.Name, s.Addr, s.CheckPort)
	}
	return out[:idx[0][0]] + b.String() + out[idx[len(idx)-1][1]:], nil
}

// Proc is a running haproxy.
type Proc struct {
	// Addr is the frontend's address, 127.0.0.1:PORT.
	Addr   string
	socket string
	log    string
	cmd    *exec.Cmd
	done   chan struct{}
}

// Start renders tmplPath for servers, checks it with `haproxy -c`, starts
// haproxy in the foreground on a free loopback port, and waits until its
// stats socket answers. The process is stopped in t.Cleanup, its log
// printed when the test failed.
func Start(t testing.TB, tmplPath string, servers []Server) *Proc {
	t.Helper()
	bin := Require(t)
	tmpl, err := os.ReadFile(tmplPath)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "hap") // short: a socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	p := &Proc{Addr: freeAddr(t), socket: filepath.Join(dir, "admin.sock"), log: filepath.Join(dir, "haproxy.log"),
		done: make(chan struct{})}
	cfg, err := Render(string(tmpl), p.Addr, servers, p.socket)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("haproxytest: haproxy -c: %v\n%s\n%s", err, out, cfg)
	}
	logF, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	// -db: stay in the foreground, whatever the file says.
	p.cmd = exec.Command(bin, "-db", "-f", cfgPath)
	p.cmd.Stdout, p.cmd.Stderr = logF, logF
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		_ = logF.Close()
		t.Fatalf("haproxytest: start haproxy: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		_ = logF.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			t.Logf("haproxy log (last lines):\n%s", p.tail(40))
		}
	})
	err = testwait.Poll(10*time.Second, 10*time.Millisecond, func() bool {
		_, err := p.States()
		return err == nil || p.exited()
	})
	if err != nil || p.exited() {
		t.Fatalf("haproxytest: haproxy did not come up (exited: %v)\n%s", p.exited(), p.tail(40))
	}
	return p
}

func (p *Proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Running reports whether haproxy still runs.
func (p *Proc) Running() bool { return !p.exited() }

func (p *Proc) tail(lines int) string {
	b, _ := os.ReadFile(p.log)
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// command sends one command to the stats socket and returns the answer.
func (p *Proc) command(cmd string) (string, error) {
	c, err := net.DialTimeout("unix", p.socket, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	_, err = io.Copy(&buf, bufio.NewReader(c))
	return buf.String(), err
}

// States returns each server of Backend with its status as HAProxy's
// `show stat` gives it: "UP", "DOWN", "UP 1/2" (going down), "DOWN 1/1"
// (going up), "MAINT", "no check".
func (p *Proc) States() (map[string]string, error) {
	out, err := p.command("show stat")
	if err != nil {
		return nil, err
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("show stat: %w", err)
	}
	if len(rows) < 1 {
		return nil, errors.New("show stat: no header")
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	px, sv, st := col["pxname"], col["svname"], col["status"]
	if st == 0 {
		return nil, errors.New("show stat: no status column")
	}
	states := map[string]string{}
	for _, row := range rows[1:] {
		if len(row) <= st || row[px] != Backend || row[sv] == "BACKEND" || row[sv] == "FRONTEND" {
			continue
		}
		states[row[sv]] = row[st]
	}
	if len(states) == 0 {
		return nil, fmt.Errorf("show stat: no server of backend %s", Backend)
	}
	return states, nil
}

// Up reports whether HAProxy sends traffic to a server in this state: "UP"
// or going down ("UP 1/2").
func Up(state string) bool { return state == "UP" || strings.HasPrefix(state, "UP ") }

// Change is one change of a server's state as a Watch saw it.
type Change struct {
	// At is the local time of the poll that first saw the new state; the
	// change happened at most one poll interval before.
	At       time.Time
	Server   string
	From, To string
}

// Watch polls p's server states until stopped.
type Watch struct {
	p      *Proc
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	cur     map[string]string
	changes []Change
	errs    int
}

// NewWatch starts polling p every interval; it stops in t.Cleanup, or
// at Stop.
func NewWatch(t testing.TB, p *Proc, interval time.Duration) *Watch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &Watch{p: p, cancel: cancel, done: make(chan struct{}), cur: map[string]string{}}
	go w.run(ctx, interval)
	t.Cleanup(w.Stop)
	return w
}

func (w *Watch) run(ctx context.Context, interval time.Duration) {
	defer close(w.done)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		states, err := w.p.States()
		at := time.Now()
		w.mu.Lock()
		if err != nil {
			w.errs++
		}
		for name, s := range states {
			if old, seen := w.cur[name]; !seen || old != s {
				w.changes = append(w.changes, Change{At: at, Server: name, From: old, To: s})
				w.cur[name] = s
			}
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Stop ends the polling; it is idempotent.
func (w *Watch) Stop() {
	w.cancel()
	<-w.done
}

// Current returns the states last seen.
func (w *Watch) Current() map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]string, len(w.cur))
	for k, v := range w.cur {
		out[k] = v
	}
	return out
}

// Changes returns every change seen so far, in order.
func (w *Watch) Changes() []Change {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Change(nil), w.changes...)
}

// OnlyUp reports whether name is the one server HAProxy sends traffic to.
func (w *Watch) OnlyUp(name string) bool {
	cur := w.Current()
	for s, st := range cur {
		if Up(st) != (s == name) {
			return false
		}
	}
	return len(cur) > 0
}

// freeAddr returns a free 127.0.0.1 port.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// FreeAddr returns a free 127.0.0.1 port for a backend's service.
func FreeAddr(t testing.TB) string { return freeAddr(t) }

var backendBuild struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// BackendBin builds the test service (./backend) once per test binary and
// returns its path; Cleanup removes it.
func BackendBin(t testing.TB) string {
	t.Helper()
	backendBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "hanode-backend-")
		if err != nil {
			backendBuild.err = err
			return
		}
		backendBuild.dir = dir
		out := filepath.Join(dir, "backend")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// From the test's directory, inside this module.
		b, err := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/hanode/hanode/internal/haproxytest/backend").CombinedOutput()
		if err != nil {
			backendBuild.err = fmt.Errorf("go build the test backend: %w\n%s", err, b)
			return
		}
		backendBuild.path = out
	})
	if backendBuild.err != nil {
		t.Fatalf("haproxytest: %v", backendBuild.err)
	}
	return backendBuild.path
}

// Cleanup removes what BackendBin built; call it from TestMain after m.Run.
func Cleanup() {
	if backendBuild.dir != "" {
		_ = os.RemoveAll(backendBuild.dir)
	}
}
