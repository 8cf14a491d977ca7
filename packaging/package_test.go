// Package packaging holds the Debian package's configuration (nfpm.yaml,
// the maintainer scripts, README.Debian) and its test: the package is built
// with `make package`'s script, installed with dpkg in a Debian container,
// run as the unit would run it, and purged.
package packaging

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	mobynet "github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"

	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

const (
	// pkgVersion is the hanode version the test builds; the package's
	// version is derived from it by scripts/package.sh.
	pkgVersion = "0.0.0-pkgtest"
	debVersion = "0.0.0+pkgtest"
	// buildTimeout covers a first build of nfpm from the module proxy
	// (about a minute and a half on 2 cores) and of a static hanode.
	buildTimeout = 10 * time.Minute
	opTimeout    = 2 * time.Minute // any one docker exec or container start
	pingPort     = "9640/tcp"      // HTTP_LISTEN of the packaged conffile
)

// TestDebianPackageInstallsRunsAndPurges builds the package as `make
// package` does and, in a Debian bookworm container (the ZooKeeper test
// image, which is one), checks what an operator relies on:
//   - dpkg -i installs the binary, the unit (pointing at /usr/bin/hanode),
//     the conffile, the examples and the man pages, and creates the system
//     user hanode, without enabling or starting anything;
//   - the unit's ExecStart, run as the unit's User= (not through systemd,
//     which the container lacks), joins a group on a ZooKeeper container of
//     the same Docker network and answers "ok" on its ping endpoint,
//     running its duty as that user;
//   - a change to /etc/default/hanode survives a reinstallation;
//   - dpkg --purge leaves nothing behind but the system user (kept, as
//     Debian's adduser advises) and the records dpkg and the user tools
//     keep of themselves.
func TestDebianPackageInstallsRunsAndPurges(t *testing.T) {
	zktest.RequireDocker(t)
	img := zktest.Image()
	if !strings.HasPrefix(img, zktest.DefaultImage[:strings.IndexByte(zktest.DefaultImage, ':')]) {
		t.Skipf("SKIPPED: the package test installs into the Debian image %s (make zk-image); %s=%s names another image",
			zktest.DefaultImage, zktest.ImageEnv, img)
	}
	begin := time.Now()
	deb := buildPackage(t)
	t.Logf("built %s in %s", filepath.Base(deb), time.Since(begin).Round(time.Second))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	nw, err := tcnetwork.New(ctx)
	if err != nil {
		t.Fatalf("docker network: %v", err)
	}
	t.Cleanup(func() {
		rmCtx, c := context.WithTimeout(context.Background(), opTimeout)
		defer c()
		if err := nw.Remove(rmCtx); err != nil {
			t.Errorf("remove network %s: %v", nw.Name, err)
		}
	})
	startZooKeeper(ctx, t, img, nw.Name)
	host := startDebian(ctx, t, img, nw.Name)

	before := host.files(ctx, t)
	if err := host.ctr.CopyFileToContainer(ctx, deb, "/tmp/hanode.deb", 0o644); err != nil {
		t.Fatalf("copy the package: %v", err)
	}
	host.run(ctx, t, "dpkg", "-i", "/tmp/hanode.deb")

	// What the package installed.
	host.run(ctx, t, "test", "-x", "/usr/bin/hanode")
	if out := host.run(ctx, t, "/usr/bin/hanode", "--version"); strings.TrimSpace(out) != "hanode "+pkgVersion {
		t.Errorf("hanode --version = %q, want %q", out, "hanode "+pkgVersion)
	}
	for _, f := range []string{"/lib/systemd/system/hanode.service", "/etc/default/hanode",
		"/usr/share/man/man1/hanode.1.gz", "/usr/share/man/man1/hanode-run.1.gz",
		"/usr/share/doc/hanode/examples/primary-1", "/usr/share/doc/hanode/README.Debian"} {
		host.run(ctx, t, "test", "-s", f)
	}
	if out := host.run(ctx, t, "sh", "-c", "zcat /usr/share/man/man1/hanode.1.gz | head -n 5"); !strings.Contains(out, ".TH \"HANODE\" \"1\"") {
		t.Errorf("hanode.1 does not start like a man page:\n%s", out)
	}
	if out := host.run(ctx, t, "dpkg-query", "-W", "-f=${Conffiles}", "hanode"); !strings.Contains(out, "/etc/default/hanode ") {
		t.Errorf("/etc/default/hanode is not a conffile; dpkg lists: %q", out)
	}
	passwd := strings.Split(strings.TrimSpace(host.run(ctx, t, "getent", "passwd", "hanode")), ":")
	if len(passwd) != 7 || passwd[5] != "/nonexistent" || passwd[6] != "/usr/sbin/nologin" {
		t.Errorf("user hanode is %q, want a system user with home /nonexistent and shell /usr/sbin/nologin", passwd)
	}
	host.run(ctx, t, "getent", "group", "hanode")
	// Nothing enabled, nothing started.
	if out := host.run(ctx, t, "sh", "-c", "ls /etc/systemd/system/*.wants/ 2>/dev/null | grep hanode || true"); out != "" {
		t.Errorf("the package enabled the unit: %s", out)
	}
	if n := host.hanodeProcs(ctx, t); n != 0 {
		t.Errorf("%d hanode processes run after installation; the package must start nothing", n)
	}

	// The operator configures the node: the conffile survives a reinstall.
	host.run(ctx, t, "sh", "-c", `cat >>/etc/default/hanode <<'EOF'
# added by the package test
HA_ID="pkgtest"
ZK="zk:2181"
ZK_SESSION_TIMEOUT="2s"
ACTIVE_CMD='exec sleep 600'
EOF`)
	host.run(ctx, t, "dpkg", "-i", "/tmp/hanode.deb")
	host.run(ctx, t, "grep", "-q", `^HA_ID="pkgtest"`, "/etc/default/hanode")

	// The unit's command line, as its user.
	unit := host.run(ctx, t, "cat", "/lib/systemd/system/hanode.service")
	execStart, user := unitCommand(t, unit)
	if execStart[0] != "/usr/bin/hanode" {
		t.Fatalf("ExecStart runs %s, want /usr/bin/hanode", execStart[0])
	}
	cmdline := "exec setpriv --reuid=" + user + " --regid=" + user + " --init-groups -- " + strings.Join(execStart, " ")
	host.run(ctx, t, "sh", "-c", "nohup sh -c '"+cmdline+"' >/tmp/hanode.log 2>&1 & echo $! >/tmp/hanode.pid")
	started := time.Now()
	ping := "http://" + host.ping + "/v2/ping/net/1/se/"
	client := &http.Client{Timeout: time.Second}
	err = testwait.Poll(90*time.Second, 50*time.Millisecond, func() bool {
		resp, err := client.Get(ping)
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == "ok"
	})
	if err != nil {
		t.Fatalf("the packaged hanode did not answer ok on %s within 90s; its log:\n%s", ping, host.output(ctx, "cat", "/tmp/hanode.log"))
	}
	t.Logf("the packaged hanode answered ok %s after its start", time.Since(started).Round(time.Millisecond))
	// Everything it runs, its duty included, runs as the unit's user.
	owners := host.run(ctx, t, "sh", "-c",
		`for p in /proc/[0-9]*; do c=$(tr '\0' ' ' <$p/cmdline); case "$c" in /usr/bin/hanode*|"sleep 600 ") echo "$(stat -c %U $p) $c";; esac; done`)
	if !strings.Contains(owners, "sleep 600") {
		t.Errorf("the duty (sleep) does not run; processes:\n%s\nlog:\n%s", owners, host.output(ctx, "cat", "/tmp/hanode.log"))
	}
	for _, l := range strings.Split(strings.TrimSpace(owners), "\n") {
		if !strings.HasPrefix(l, user+" ") {
			t.Errorf("a process does not run as %s: %s", user, l)
		}
	}
	host.run(ctx, t, "sh", "-c", "kill -TERM $(cat /tmp/hanode.pid)")
	if err := testwait.Poll(30*time.Second, 20*time.Millisecond, func() bool { return host.hanodeProcs(ctx, t) == 0 }); err != nil {
		t.Fatalf("hanode did not stop on SIGTERM; log:\n%s", host.output(ctx, "cat", "/tmp/hanode.log"))
	}
	if log := host.output(ctx, "cat", "/tmp/hanode.log"); !strings.Contains(log, `"msg":"hanode stopped"`) {
		t.Errorf("hanode did not log its stop; log:\n%s", log)
	}
	host.run(ctx, t, "rm", "-f", "/tmp/hanode.log", "/tmp/hanode.pid", "/tmp/hanode.deb", "/tmp/nohup.out")

	// Purge: nothing left but what Debian keeps.
	host.run(ctx, t, "dpkg", "--purge", "hanode")
	after := host.files(ctx, t)
	left, allowed := leftovers(before, after)
	t.Logf("purge left only what Debian keeps: %s", strings.Join(allowed, " "))
	if len(left) > 0 {
		t.Errorf("dpkg --purge left behind:\n  %s", strings.Join(left, "\n  "))
	}
	if out := host.output(ctx, "dpkg-query", "-W", "hanode"); strings.Contains(out, "hanode\t") {
		t.Errorf("dpkg still knows hanode after purge: %q", out)
	}
	host.run(ctx, t, "getent", "passwd", "hanode") // kept on purpose (README.Debian)
	t.Logf("package test took %s", time.Since(begin).Round(time.Second))
}

// buildPackage runs scripts/package.sh into a temporary directory and
// returns the .deb's path.
func buildPackage(t *testing.T) string {
	t.Helper()
	dist := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "scripts/package.sh")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "VERSION="+pkgVersion, "DIST="+dist, "GO="+goTool())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/package.sh: %v\n%s", err, out)
	}
	deb := filepath.Join(dist, "hanode_"+debVersion+"_amd64.deb")
	if _, err := os.Stat(deb); err != nil {
		t.Fatalf("scripts/package.sh made no %s: %v\n%s", filepath.Base(deb), err, out)
	}
	return deb
}

// goTool is the go command that runs this test.
func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// startZooKeeper starts a standalone server reachable as zk:2181 on the
// network, removed in t.Cleanup. hanode waits for it to serve.
func startZooKeeper(ctx context.Context, t *testing.T, img, network string) {
	t.Helper()
	ctr, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:          img,
			Cmd:            []string{"2181", "/var/lib/zookeeper", "500"},
			Networks:       []string{network},
			NetworkAliases: map[string][]string{network: {"zk"}},
			Labels:         map[string]string{zktest.LabelKey: "packaging"},
		},
		Started: true,
	})
	t.Cleanup(func() { terminate(t, ctr) })
	if err != nil {
		t.Fatalf("start ZooKeeper: %v", err)
	}
}

// debian is the container the package is installed in.
type debian struct {
	ctr  testcontainers.Container
	ping string // host:port of its port 9640 on the host
}

// startDebian starts the Debian image idle (init as PID 1, to reap what the
// test starts), with port 9640 published on 127.0.0.1.
func startDebian(ctx context.Context, t *testing.T, img, network string) *debian {
	t.Helper()
	ctr, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:        img,
			Entrypoint:   []string{"sleep", "infinity"},
			Networks:     []string{network},
			ExposedPorts: []string{pingPort},
			Labels:       map[string]string{zktest.LabelKey: "packaging"},
			HostConfigModifier: func(hc *container.HostConfig) {
				init := true
				hc.Init = &init
				hc.PortBindings = mobynet.PortMap{mobynet.MustParsePort(pingPort): {{HostIP: loopback}}}
			},
		},
		Started: true,
	})
	t.Cleanup(func() { terminate(t, ctr) })
	if err != nil {
		t.Fatalf("start the Debian container: %v", err)
	}
	ep, err := ctr.PortEndpoint(ctx, pingPort, "")
	if err != nil {
		t.Fatalf("the Debian container's port 9640: %v", err)
	}
	return &debian{ctr: ctr, ping: ep}
}

func terminate(t *testing.T, ctr testcontainers.Container) {
	if ctr == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := ctr.Terminate(ctx); err != nil {
		t.Errorf("remove container: %v", err)
	}
}

// run runs argv in the container as root and returns its output; a
// non-zero exit fails the test with the output.
func (d *debian) run(ctx context.Context, t *testing.T, argv ...string) string {
	t.Helper()
	code, out, err := d.exec(ctx, argv...)
	if err != nil || code != 0 {
		t.Fatalf("in the container: %q: exit %d, %v\n%s", argv, code, err, out)
	}
	return out
}

// output is run's output whatever the exit, for failure messages.
func (d *debian) output(ctx context.Context, argv ...string) string {
	_, out, err := d.exec(ctx, argv...)
	if err != nil {
		return err.Error()
	}
	return out
}

func (d *debian) exec(ctx context.Context, argv ...string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	code, r, err := d.ctr.Exec(ctx, argv, tcexec.Multiplexed(), tcexec.WithEnv([]string{"DEBIAN_FRONTEND=noninteractive"}))
	if err != nil {
		return code, "", err
	}
	out, err := io.ReadAll(r)
	return code, string(out), err
}

// hanodeProcs counts the processes running /usr/bin/hanode.
func (d *debian) hanodeProcs(ctx context.Context, t *testing.T) int {
	out := d.run(ctx, t, "sh", "-c", `n=0; for p in /proc/[0-9]*; do [ "$(readlink $p/exe)" = /usr/bin/hanode ] && n=$((n+1)); done; echo $n`)
	var n int
	_, _ = fmt.Sscan(out, &n)
	return n
}

// files lists every path on the container's root file system but the
// kernel's and the scratch ones.
func (d *debian) files(ctx context.Context, t *testing.T) map[string]bool {
	t.Helper()
	out := d.run(ctx, t, "find", "/", "-xdev", "(", "-path", "/proc", "-o", "-path", "/sys", "-o", "-path", "/dev",
		"-o", "-path", "/tmp", "-o", "-path", "/run", ")", "-prune", "-o", "-print")
	set := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		set[sc.Text()] = true
	}
	return set
}

// kept are paths a purge may leave: the records dpkg keeps of its own
// work, and the backups the user tools make of the account files (the
// system user itself is kept on purpose).
var kept = []string{
	"/var/lib/dpkg/", "/var/log/dpkg.log",
	"/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-",
	"/var/cache/debconf/", "/var/log/alternatives.log",
}

// leftovers are the paths in after but not in before that no rule of kept
// allows, and those it allows.
func leftovers(before, after map[string]bool) (left, allowed []string) {
	for p := range after {
		if before[p] {
			continue
		}
		ok := false
		for _, k := range kept {
			if p == k || (strings.HasSuffix(k, "/") && strings.HasPrefix(p, k)) {
				ok = true
			}
		}
		if ok {
			allowed = append(allowed, p)
		} else {
			left = append(left, p)
		}
	}
	sort.Strings(left)
	sort.Strings(allowed)
	return left, allowed
}

// unitCommand reads a unit's ExecStart= (split on blanks: the test refuses
// anything that needs systemd's quoting or prefixes) and User=.
func unitCommand(t *testing.T, unit string) (argv []string, user string) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "ExecStart="):
			v := strings.TrimPrefix(line, "ExecStart=")
			if strings.ContainsAny(v, `"'\$%;`) || strings.ContainsAny(v[:1], "-@:+!|") {
				t.Fatalf("ExecStart=%s needs systemd's own parsing; the test runs a plain command line", v)
			}
			argv = strings.Fields(v)
		case strings.HasPrefix(line, "User="):
			user = strings.TrimPrefix(line, "User=")
		}
	}
	if len(argv) == 0 || user == "" {
		t.Fatalf("the unit has no ExecStart= or no User=:\n%s", unit)
	}
	return argv, user
}

var loopback = netip.MustParseAddr("127.0.0.1")
