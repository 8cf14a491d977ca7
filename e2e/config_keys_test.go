package e2e

import (
	"bytes"
	"context"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/nodetest"
)

// nsgExample returns the /etc/default/netspyglass file of the NetSpyGlass HA
// documentation for one primary server, verbatim (the two examples differ
// only in NAME): the fixture shared with conf's tests (testdata/README.md)
// with NAME set to name.
func nsgExample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "netspyglass", "primary-1"))
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	const line = `NAME="primary-1"`
	if !bytes.Contains(b, []byte(line)) {
		t.Fatalf("fixture: no %s line", line)
	}
	return strings.Replace(string(b), line, `NAME="`+name+`"`, 1)
}

// checkConfig runs `hanode check-config args...` with the test's environment
// without HANODE_* variables, plus environ, and returns stdout, stderr and
// the exit code.
func checkConfig(t *testing.T, environ []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodetest.Build(t), append([]string{"check-config"}, args...)...)
	cmd.Env = append(cleanEnv(), environ...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("hanode check-config %s: no exit within %v\nstderr: %s", strings.Join(args, " "), cliTimeout, errb.String())
	}
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("hanode check-config %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// mustMatch fails the test for every pattern that matches no line of text.
func mustMatch(t *testing.T, what, text string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(`(?m)` + p).MatchString(text) {
			t.Errorf("%s has no line matching %q:\n%s", what, p, text)
		}
	}
}

// TestConfigKeysEveryShippedEnvFilePasses: the documented env file and
// every example pass check-config with exit 0 and no warning.
func TestConfigKeysEveryShippedEnvFilePasses(t *testing.T) {
	root := filepath.Join("..", "etc", "default")
	var paths []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			paths = append(paths, path)
		}
		return err
	})
	if err != nil || len(paths) == 0 {
		t.Fatalf("no env files under %s: %v", root, err)
	}
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			out, stderr, code := checkConfig(t, nil, "--env-file", path)
			if code != 0 {
				t.Fatalf("exit %d, want 0\n%s%s", code, out, stderr)
			}
			mustContain(t, "check-config", out, "configuration OK")
			if strings.Contains(out, "warning:") {
				t.Errorf("check-config warns about a shipped file:\n%s", out)
			}
		})
	}
}

// TestConfigKeysNetSpyGlassFilePassesListingWhatHanodeIgnores: the
// unchanged NetSpyGlass file, with the ensemble from HANODE_ZK, passes with
// exit 0; the variables hanode does not use are listed with file:line, and
// none is refused as a typo.
func TestConfigKeysNetSpyGlassFilePassesListingWhatHanodeIgnores(t *testing.T) {
	for _, name := range []string{"primary-1", "primary-2"} {
		t.Run(name, func(t *testing.T) {
			file := writeFile(t, "netspyglass", nsgExample(t, name))
			out, stderr, code := checkConfig(t, []string{"HOME=/home/nsg", "HANODE_ZK=127.0.0.1:9,127.0.0.1:10"}, "--env-file", file)
			if code != 0 {
				t.Fatalf("exit %d, want 0\n%s%s", code, out, stderr)
			}
			q := regexp.QuoteMeta
			mustMatch(t, "check-config", out,
				`^NAME +"`+name+`" +`+q(file)+`:2$`,
				`^ZK +"127\.0\.0\.1:9,127\.0\.0\.1:10" +env HANODE_ZK$`,
				`^keys hanode does not use \(ignored\):$`,
				`^  JVM_CLI +`+q(file)+`:17$`,
				`^  CONFIG +`+q(file+":19, -DCONFIG in SERVER_CLI")+`$`,
				`^  LOG_DIR +`+q(file+":19, -DLOG_DIR in SERVER_CLI")+`$`,
				`^configuration OK: HA group "nsg-development-primary-ha" over ZooKeeper 127\.0\.0\.1:9,127\.0\.0\.1:10$`,
			)
		})
	}
	t.Run("without an ensemble it is refused: HA needs an external ZooKeeper", func(t *testing.T) {
		file := writeFile(t, "netspyglass", nsgExample(t, "primary-1"))
		_, stderr, code := checkConfig(t, []string{"HOME=/home/nsg"}, "--env-file", file)
		if code != 78 {
			t.Fatalf("exit %d, want 78\n%s", code, stderr)
		}
		mustContain(t, "stderr", stderr, `HA_ID="nsg-development-primary-ha" (from `+file+`:14)`, `ZK="embedded" (from `+file+`:19, -DZK in SERVER_CLI)`)
	})
}

// TestConfigKeysMisspeltHAIDIsRefused: HAID="g" used to pass
// check-config, and the node ran standalone, always active, next to its
// group. A name one typo from a key is refused with exit 78, naming the key,
// the value and where it was set, wherever it was set.
func TestConfigKeysMisspeltHAIDIsRefused(t *testing.T) {
	const base = "NAME=n1\nROLE=primary\nZK=127.0.0.1:9\n"
	cases := []struct {
		name    string
		raw     string
		environ []string
		want    []string // FILE stands for the env file's path
	}{
		{name: "in the env file", raw: "HAID=\n", want: []string{`HAID="" (from FILE:4)`, "one typo away from HA_ID: write HA_ID"}},
		{name: "in another case", raw: "ha_id=g\n", want: []string{`ha_id="g" (from FILE:4)`, "case-sensitive: write HA_ID"}},
		{name: "with a dash", raw: "HA-ID=g\n", want: []string{`FILE:4:1: "HA-ID" is not a variable name`, "write HA_ID"}},
		{name: "as -D in SERVER_CLI", raw: "SERVER_CLI=\"-Xmx1g -DHAID=g\"\n", want: []string{`HAID="g" (from FILE:4, -DHAID in SERVER_CLI)`, "write -DHA_ID"}},
		{name: "in the environment", environ: []string{"HANODE_HAID=g"}, want: []string{`HAID="g" (from env HANODE_HAID)`, "write HANODE_HA_ID"}},
		{
			name: "with every other problem",
			raw:  "ZK_SESION_TIMEOUT=4s\nLOG_LEVEL=loud\nHAID=g\n",
			want: []string{`ZK_SESION_TIMEOUT="4s" (from FILE:4)`, "write ZK_SESSION_TIMEOUT", `LOG_LEVEL="loud" (from FILE:5)`, `HAID="g" (from FILE:6)`, "write HA_ID"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, "hanode.env", base+tc.raw)
			out, stderr, code := checkConfig(t, tc.environ, "--env-file", file)
			if code != 78 {
				t.Fatalf("exit %d, want 78\n%s%s", code, out, stderr)
			}
			for _, want := range tc.want {
				mustContain(t, "stderr", stderr, strings.ReplaceAll(want, "FILE", file))
			}
			if strings.Contains(out, "configuration OK") {
				t.Errorf("check-config says OK:\n%s", out)
			}
		})
	}
}

// TestConfigKeysRunRefusesMisspeltHAID: `hanode run` refuses the typo the
// same way, with exit 78 before starting anything.
func TestConfigKeysRunRefusesMisspeltHAID(t *testing.T) {
	// EnvFile writes a comment line, then HTTP_LISTEN, NAME, ROLE and ZK:
	// the raw line is line 6.
	n := nodetest.Launch(t, nodetest.Options{Name: "typo", Env: map[string]string{"NAME": "n1", "ROLE": "primary", "ZK": "127.0.0.1:9"}, Raw: "HAID=g\n"})
	code := n.WaitExit(exitBound)
	stderr := n.Logs()
	if code != 78 {
		t.Fatalf("exit %d, want 78\n%s", code, stderr)
	}
	mustContain(t, "stderr", stderr, `HAID="g" (from `+n.EnvFilePath()+`:6)`, "write HA_ID")
	if strings.Contains(stderr, `"msg":"hanode starting"`) {
		t.Errorf("the node started despite the typo:\n%s", stderr)
	}
	if conn, err := net.DialTimeout("tcp", n.Addr(), time.Second); err == nil {
		conn.Close()
		t.Errorf("something listens on HTTP_LISTEN %s after a configuration error", n.Addr())
	}
}

// TestConfigKeysZKWithoutHAIDWarns: an ensemble without HA_ID is valid
// (exit 0), but check-config warns that the node runs standalone and is
// always active.
func TestConfigKeysZKWithoutHAIDWarns(t *testing.T) {
	file := writeFile(t, "hanode.env", "NAME=n1\nROLE=primary\nZK=127.0.0.1:9\n")
	out, stderr, code := checkConfig(t, nil, "--env-file", file)
	if code != 0 {
		t.Fatalf("exit %d, want 0\n%s%s", code, out, stderr)
	}
	mustContain(t, "check-config", out,
		`warning: ZK="127.0.0.1:9" (from `+file+`:3): HA_ID is not set`, "runs standalone and is always active",
		"configuration OK: standalone")
}
