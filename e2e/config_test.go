package e2e

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/nodetest"
)

// TestBadConfigurationExits78NamingEveryProblem: `hanode run` with a bad
// env file exits 78 (EX_CONFIG) before starting anything (nothing listens on HTTP_LISTEN),
// and stderr names every bad key at once, the file and line of a shell
// construct the env file may not use, and HA_ID when it lacks an external
// ZooKeeper.
func TestBadConfigurationExits78NamingEveryProblem(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		raw  string
		want []string
	}{
		{
			name: "several bad keys",
			env: map[string]string{
				"NAME":               "bad name!",
				"ROLE":               "primary",
				"ZK_SESSION_TIMEOUT": "10x",
				"LOG_LEVEL":          "loud",
				"NET_ID":             "a b",
				"ZK_ROOT":            "no-slash",
			},
			want: []string{"NAME=", "ZK_SESSION_TIMEOUT=", "LOG_LEVEL=", "NET_ID=", "ZK_ROOT=", "hanode.env:"},
		},
		{
			name: "command substitution",
			env:  map[string]string{"NAME": "n1", "ROLE": "primary"},
			// EnvFile writes a comment line, then the keys (HTTP_LISTEN, NAME,
			// ROLE): this is line 5.
			raw:  "X=$(date)\n",
			want: []string{"hanode.env:5:", "command substitution"},
		},
		{
			name: "HA_ID without ZK",
			env:  map[string]string{"NAME": "n1", "ROLE": "primary", "HA_ID": "g1"},
			want: []string{"HA_ID=", "ZK"},
		},
		{
			name: "HA_ID with an embedded ZooKeeper",
			env:  map[string]string{"NAME": "n1", "ROLE": "primary", "HA_ID": "g1", "ZK": "embedded"},
			want: []string{"HA_ID=", `ZK="embedded"`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := nodetest.Launch(t, nodetest.Options{Name: "bad", Env: tc.env, Raw: tc.raw})
			code := n.WaitExit(exitBound)
			stderr := n.Logs()
			if code != 78 {
				t.Fatalf("exit %d, want 78\n%s", code, stderr)
			}
			mustContain(t, "stderr", stderr, tc.want...)
			if strings.Contains(stderr, `"msg":"hanode starting"`) {
				t.Errorf("the node started despite the bad configuration:\n%s", stderr)
			}
			if conn, err := net.DialTimeout("tcp", n.Addr(), time.Second); err == nil {
				conn.Close()
				t.Errorf("something listens on HTTP_LISTEN %s after a configuration error", n.Addr())
			}
		})
	}
}

// TestCheckConfigPrintsTheEffectiveConfiguration: check-config prints every
// key with its effective value and source (file:line, default, computed
// default, flag), says which mode the node would run in, and exits 0; it
// contacts nobody.
func TestCheckConfigPrintsTheEffectiveConfiguration(t *testing.T) {
	file := writeFile(t, "hanode.env", nodetest.EnvFile(map[string]string{
		"NAME":               "n1",
		"ROLE":               "primary",
		"HA_ID":              "g1",
		"ZK":                 "127.0.0.1:9/chroot",
		"ZK_SESSION_TIMEOUT": "4s",
		"HTTP_LISTEN":        "127.0.0.1:1",
	}))
	out, stderr, code := cli(t, "check-config", "--env-file", file, "--http-listen", "127.0.0.1:9641")
	if code != 0 {
		t.Fatalf("check-config: exit %d\n%s%s", code, out, stderr)
	}
	line := func(key string) string {
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == key {
				return l
			}
		}
		t.Errorf("check-config prints no %s line:\n%s", key, out)
		return ""
	}
	mustContain(t, "NAME line", line("NAME"), `"n1"`, file+":")
	mustContain(t, "ZK line", line("ZK"), `"127.0.0.1:9/chroot"`, file+":")
	mustContain(t, "HTTP_LISTEN line", line("HTTP_LISTEN"), `"127.0.0.1:9641"`, "flag --http-listen")
	mustContain(t, "REGION line", line("REGION"), `"world"`, "default")
	mustContain(t, "LEASE_MARGIN line", line("LEASE_MARGIN"), `"1.2s"`, "default")
	mustContain(t, "ACTIVE_STOP_TIMEOUT line", line("ACTIVE_STOP_TIMEOUT"), `"650ms"`, "default")
	mustContain(t, "DUTY_CONTAINMENT line", line("DUTY_CONTAINMENT"), `"auto"`, "default")
	mustContain(t, "ACTIVE_CMD_MODE line", line("ACTIVE_CMD_MODE"), `"simple"`, "default")
	mustContain(t, "ACTIVE_MAX_RESTARTS line", line("ACTIVE_MAX_RESTARTS"), `"5"`, "default")
	mustContain(t, "ACTIVE_RESTART_WINDOW line", line("ACTIVE_RESTART_WINDOW"), `"1m0s"`, "default")
	mustContain(t, "ACTIVE_RESTART_GRACE line", line("ACTIVE_RESTART_GRACE"), `"1s"`, "default")
	mustContain(t, "FENCE_MAX_TRIES line", line("FENCE_MAX_TRIES"), `"3"`, "default")
	mustContain(t, "check-config", out, "configuration OK", `HA group "g1"`)

	bad := writeFile(t, "bad.env", "NAME=n1\nROLE=primary\nLOG_FORMAT=xml\n")
	_, stderr, code = cli(t, "check-config", "--env-file", bad)
	if code != 78 {
		t.Errorf("check-config of a bad file: exit %d, want 78", code)
	}
	mustContain(t, "check-config stderr", stderr, "LOG_FORMAT=", bad+":3")
}

// TestVersionPrintsTheBuildVersion: `hanode version` prints the version set
// at build time.
func TestVersionPrintsTheBuildVersion(t *testing.T) {
	out, _, code := cli(t, "version")
	if code != 0 || strings.TrimSpace(out) != "hanode "+nodetest.Version {
		t.Errorf("hanode version: exit %d, %q; want 0, %q", code, out, "hanode "+nodetest.Version)
	}
}

// TestCheckConfigRefusesWhatZooKeeperOrLinuxWouldRefuse: check-config
// exits 78 for what used to pass it and then fail in run: a ZK_ROOT or chroot
// in ZooKeeper's reserved tree or with a character the server refuses, a
// command longer than one argument may be, a NUL byte in the env file, and a
// stop that cannot fit in the lease margin; each message names the key and
// where it was set.
func TestCheckConfigRefusesWhatZooKeeperOrLinuxWouldRefuse(t *testing.T) {
	const base = "NAME=n1\nROLE=primary\nHA_ID=g\n" // lines 1 to 3
	cases := []struct {
		name string
		raw  string
		want []string // FILE stands for the env file's path
	}{
		{"ZK_ROOT in /zookeeper", "ZK=127.0.0.1:9\nZK_ROOT=/zookeeper/hanode\n",
			[]string{`ZK_ROOT="/zookeeper/hanode" (from FILE:5)`, "the tree ZooKeeper reserves for itself"}},
		{"a chroot in /zookeeper", "ZK=127.0.0.1:9/zookeeper\n",
			[]string{`ZK="127.0.0.1:9/zookeeper" (from FILE:4)`, `chroot "/zookeeper" is in /zookeeper`}},
		{"ZK_ROOT with a C1 control character", "ZK=127.0.0.1:9\nZK_ROOT='/ha\u0085node'\n",
			[]string{`(from FILE:5)`, "control character (U+0085), which ZooKeeper refuses in a znode path"}},
		{"ZK_ROOT with a private-use character", "ZK=127.0.0.1:9\nZK_ROOT='/ha\ue000'\n",
			[]string{`(from FILE:5)`, "U+E000"}},
		{"an ACTIVE_CMD longer than an argument may be", "ZK=127.0.0.1:9\nACTIVE_CMD='exec true " + strings.Repeat("#", 70000) + "'\n",
			[]string{`ACTIVE_CMD="exec true ###`, "(70010 bytes) (from FILE:5): 70010 bytes, longer than the 65536 bytes hanode accepts"}},
		{"a NUL byte in quotes", "ZK=127.0.0.1:9\nREGION=\"eu\x00west\"\n",
			[]string{"FILE:5:11: NUL byte is not allowed"}},
		{"a stop that cannot fit in the margin", "ZK=127.0.0.1:9\nZK_SESSION_TIMEOUT=4s\nACTIVE_CMD='exec duty'\nACTIVE_STOP_TIMEOUT=1s\n",
			[]string{"ACTIVE_STOP_TIMEOUT=1s (from FILE:7) + 300ms guard answer slack + 100ms kill + 150ms (LEASE_MARGIN/8, for stalls too short to notice) = 1.55s must fit in LEASE_MARGIN=1.2s (from default (30% of ZK_SESSION_TIMEOUT))"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, "hanode.env", base+tc.raw)
			out, stderr, code := cli(t, "check-config", "--env-file", file)
			if code != 78 {
				t.Fatalf("exit %d, want 78\n%s%s", code, out, stderr)
			}
			for _, want := range tc.want {
				mustContain(t, "stderr", stderr, strings.ReplaceAll(want, "FILE", file))
			}
		})
	}
}

// TestCheckConfigWarnsDutyContainmentNone: DUTY_CONTAINMENT=none is valid
// (exit 0), with a warning that escaped duty processes are not stopped.
func TestCheckConfigWarnsDutyContainmentNone(t *testing.T) {
	file := writeFile(t, "hanode.env", "NAME=n1\nROLE=primary\nACTIVE_CMD='exec duty'\nDUTY_CONTAINMENT=none\n")
	out, stderr, code := cli(t, "check-config", "--env-file", file)
	if code != 0 {
		t.Fatalf("exit %d, want 0\n%s%s", code, out, stderr)
	}
	mustContain(t, "check-config", out, `warning: DUTY_CONTAINMENT="none" (from `+file+`:4): duty processes are not contained`, "is not stopped", "configuration OK")
}
