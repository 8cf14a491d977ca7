package haproxytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var shipped = filepath.Join("..", "..", "etc", "haproxy", "hanode.cfg")

// TestShippedConfigIsValid: the shipped file passes `haproxy -c` as it is,
// and so does the test's rendering of it.
func TestShippedConfigIsValid(t *testing.T) {
	bin := Require(t)
	if out, err := exec.Command(bin, "-c", "-f", shipped).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c -f %s: %v\n%s", shipped, err, out)
	}
	tmpl, err := os.ReadFile(shipped)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Render(string(tmpl), "127.0.0.1:18000", []Server{{"a", "127.0.0.1:18001", 18011}}, filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c on the rendered file: %v\n%s\n%s", err, out, cfg)
	}
}

// TestRenderChangesOnlyWhatATestMust: addresses, ports, the stats socket
// and the log destination change; the checks and their timings stay as
// shipped; a file that no longer has a line the test rewrites is refused.
func TestRenderChangesOnlyWhatATestMust(t *testing.T) {
	tmpl, err := os.ReadFile(shipped)
	if err != nil {
		t.Fatal(err)
	}
	servers := []Server{{"a", "127.0.0.1:18001", 18011}, {"b", "127.0.0.1:18002", 18012}, {"c", "127.0.0.1:18003", 18013}}
	cfg, err := Render(string(tmpl), "127.0.0.1:18000", servers, "/tmp/x/admin.sock")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"bind 127.0.0.1:18000\n",
		"server a 127.0.0.1:18001 port 18011\n",
		"server b 127.0.0.1:18002 port 18012\n",
		"server c 127.0.0.1:18003 port 18013\n",
		"stats socket /tmp/x/admin.sock mode 660 level admin\n",
		"log stdout format raw local0\n",
		"option httpchk\n",
		"http-check send meth GET uri /v2/ping/net/1/se/",
		"http-check expect status 200\n",
		"default-server check port 9640 inter 200ms fall 2 rise 1 on-marked-down shutdown-sessions\n",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("the rendered file lacks %q:\n%s", want, cfg)
		}
	}
	for _, gone := range []string{"10.0.0.", "chroot /", "user haproxy", "/run/haproxy", "/dev/log"} {
		if strings.Contains(cfg, gone) {
			t.Errorf("the rendered file still has %q", gone)
		}
	}
	if _, err := Render(strings.Replace(string(tmpl), "bind :9000", "bind *:9000", 1), "x", servers, "s"); err == nil {
		t.Error("a file whose bind line changed was rendered")
	}
}
