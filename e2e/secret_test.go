package e2e

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/zktest"
)

// secretFileOf writes a secret file, mode 600, and returns its path.
func secretFileOf(t *testing.T, name, secret string) string {
	t.Helper()
	p := writeFile(t, name, secret+"\n")
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWrongOrMissingSecretIsRefusedWithExit77: against a group whose tree
// is protected by the cluster's secret, `hanode run` with another secret,
// and one with none, exit 77 (the unit does not restart them) with a
// message that names the znode and the fix; the leader keeps answering ok.
func TestWrongOrMissingSecretIsRefusedWithExit77(t *testing.T) {
	zk := zktest.Start(t)
	haID := nodetest.GroupID(t)
	env := nodetest.HAEnv(zk.Addr, haID, "s1")
	env["CLUSTER_SHARED_SECRET_FILE"] = secretFileOf(t, "secret", "the-right-cluster-secret")
	leader := nodetest.Start(t, nodetest.Options{Env: env})
	chk := nodetest.NewChecker(t, leader)
	chk.WaitSingleLeader(electionTimeout)
	since := time.Now()
	if !strings.Contains(leader.Logs(), `"secret_fingerprints":[`) {
		t.Errorf("the leader does not log its secret's fingerprint:\n%s", leader.Logs())
	}
	if strings.Contains(leader.Logs(), "the-right-cluster-secret") {
		t.Errorf("the leader logs its secret:\n%s", leader.Logs())
	}

	for _, tc := range []struct {
		name, secret, want string
	}{
		{"wrong", "a-wrong-cluster-secret", "none of this node's secrets matches"},
		{"none", "", "this node has no shared secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := nodetest.HAEnv(zk.Addr, haID, "s-"+tc.name)
			if tc.secret != "" {
				env["CLUSTER_SHARED_SECRET_FILE"] = secretFileOf(t, "secret", tc.secret)
			}
			n := nodetest.Launch(t, nodetest.Options{Env: env})
			if code := n.WaitExit(refusalBound); code != 77 {
				t.Fatalf("exited %d, want 77\n%s", code, n.Logs())
			}
			mustContain(t, "stderr of the refused node", n.Logs(), "hanode: refused:", "znode /", tc.want,
				"set CLUSTER_SHARED_SECRET_FILE")
		})
	}
	if code, body, err := leader.PingSE(); err != nil || code != http.StatusOK || body != "ok" {
		t.Errorf("leader answers %d %q %v, want 200 ok", code, body, err)
	}
	for _, r := range chk.Runs(leader) {
		if r.Result != nodetest.ResultOK && r.LastSent.After(since) {
			t.Errorf("leader answered %s (%s) %d times while the others were refused", r.Result, r.Detail, r.N)
		}
	}
	chk.Assert(t)
}

// TestCheckConfigHidesTheSecret: check-config shows a secret given in the
// env file as (hidden), warns that the env file holding it is readable by
// others, and prints the secret nowhere.
func TestCheckConfigHidesTheSecret(t *testing.T) {
	const secret = "a-secret-nobody-may-print"
	env := writeFile(t, "hanode.env", "NAME=n1\nROLE=primary\nHA_ID=g1\nZK=127.0.0.1:2181\nCLUSTER_SHARED_SECRET="+secret+"\n")
	stdout, stderr, code := checkConfig(t, nil, "--env-file", env)
	if code != 0 {
		t.Fatalf("check-config: exit %d\n%s%s", code, stdout, stderr)
	}
	mustMatch(t, "check-config", stdout, `^CLUSTER_SHARED_SECRET\s+"\(hidden\)"`,
		`^warning: CLUSTER_SHARED_SECRET="\(hidden\)".*readable by group or others \(mode 0644\)`)
	if strings.Contains(stdout+stderr, secret) {
		t.Fatalf("check-config printed the secret:\n%s%s", stdout, stderr)
	}
}

// TestNodeOverTLSWithASecret: `hanode run` reaches ZooKeeper's secure
// client port with ZK_TLS_CA, ZK_TLS_CERT and ZK_TLS_KEY, with a shared
// secret, and leads its group.
func TestNodeOverTLSWithASecret(t *testing.T) {
	zk := zktest.StartWith(t, zktest.Options{TLS: true})
	files := zk.TLS(t)
	env := nodetest.HAEnv(zk.SecureAddr, nodetest.GroupID(t), "tls1")
	env["ZK_TLS_CA"], env["ZK_TLS_CERT"], env["ZK_TLS_KEY"] = files.CA, files.Cert, files.Key
	env["CLUSTER_SHARED_SECRET_FILE"] = secretFileOf(t, "secret", "the-right-cluster-secret")
	n := nodetest.Start(t, nodetest.Options{Env: env})
	if got := nodetest.NewChecker(t, n).WaitSingleLeader(electionTimeout); got != "tls1" {
		t.Fatalf("leader %q, want tls1\n%s", got, n.Logs())
	}
	mustContain(t, "log", n.Logs(), `"tls":true`)
}
