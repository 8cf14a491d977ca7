package e2e

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/zktest"
	"github.com/hanode/hanode/ping"
)

// statusDoc is the part of hanode status --json this test reads.
type statusDoc struct {
	Error   string `json:"error"`
	Verdict string `json:"verdict"`
	Exit    int    `json:"exit"`
	Groups  []struct {
		HAID    string   `json:"ha_id"`
		Leader  string   `json:"leader"`
		Actives []string `json:"actives"`
		Members []struct {
			Name     string `json:"name"`
			Leader   bool   `json:"leader"`
			Reported struct {
				State string `json:"state"`
				Ping  string `json:"ping"`
				Term  int64  `json:"term"`
			} `json:"reported"`
			Disagreements []string `json:"disagreements"`
		} `json:"members"`
	} `json:"groups"`
}

func statusJSON(t *testing.T, args ...string) (statusDoc, int) {
	t.Helper()
	stdout, stderr, code := cli(t, append([]string{"status", "--json"}, args...)...)
	var doc statusDoc
	require.NoError(t, json.Unmarshal([]byte(stdout), &doc), "stdout %q, stderr %q", stdout, stderr)
	assert.Empty(t, stderr, "--json reports on stdout only")
	return doc, code
}

// TestStatusExitStatusFollowsWhoServes: hanode status, given only a
// node's env file, asks every member itself and exits 0 while one member
// of each group answers ok, 2 when a foreign endpoint published as a
// member answers active next to the real leader (the election itself is
// untouched and keeps one leader), and 1 when a group has no member that
// serves (a NOFAILOVER member alone).
func TestStatusExitStatusFollowsWhoServes(t *testing.T) {
	zkSrv := zktest.Start(t)
	haID := nodetest.GroupID(t)
	nodes := nodetest.StartGroup(t, nodetest.GroupOptions{ZK: zkSrv.Addr, HAID: haID, Names: []string{"a", "b"}})
	chk := nodetest.NewChecker(t, nodes...)
	leader := chk.WaitSingleLeader(electionTimeout)
	envFile := nodes[0].EnvFilePath()

	// One active: exit 0, from the env file alone.
	text, stderr, code := cli(t, "status", "--env-file", envFile)
	require.Equal(t, 0, code, "hanode status: %s\n%s", stderr, text)
	mustContain(t, "hanode status", text, "HA_ID "+haID, "leader "+leader+" (term ", "one active",
		"verdict: one active in every group (exit 0)")
	assert.Regexp(t, `\s`+leader+`\s+active\s+ok\s`, text)
	assert.NotContains(t, text, "!", "no disagreement")
	t.Logf("hanode status, one active:\n%s", text)
	doc, code := statusJSON(t, "--env-file", envFile)
	require.Equal(t, 0, code)
	require.Len(t, doc.Groups, 1)
	assert.Equal(t, []string{leader}, doc.Groups[0].Actives)
	for _, m := range doc.Groups[0].Members {
		assert.Equal(t, m.Name == leader, m.Leader, "ZooKeeper's view of %s", m.Name)
		assert.Empty(t, m.Disagreements, m.Name)
	}

	// A foreign endpoint answering active, published as a member by hand
	// (a valid member record in an ephemeral sequential node): exit 2.
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(ping.Status{Name: "foreign", HAID: haID, State: "active", LeaseLeft: "3s"})
	}))
	t.Cleanup(foreign.Close)
	conn := zktest.Connect(t, zkSrv.Addr, 10*time.Second)
	info := ha.MemberInfo{Name: "foreign", Role: "primary", Region: "world", Host: "elsewhere",
		HTTP: strings.TrimPrefix(foreign.URL, "http://"), PID: 1, Started: time.Now().UTC()}
	data, err := json.Marshal(info)
	require.NoError(t, err)
	node, err := conn.Create("/hanode/groups/"+haID+"/members/_c_"+strings.Repeat("f", 32)+"-m-", data,
		zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	doc, code = statusJSON(t, "--env-file", envFile)
	assert.Equal(t, 2, code, "verdict %q", doc.Verdict)
	require.Len(t, doc.Groups, 1)
	assert.ElementsMatch(t, []string{leader, "foreign"}, doc.Groups[0].Actives)
	for _, m := range doc.Groups[0].Members {
		if m.Name == "foreign" {
			assert.False(t, m.Leader)
			assert.Equal(t, []string{"it answers active, but ZooKeeper names " + leader}, m.Disagreements)
		}
	}
	text, _, code = cli(t, "status", "--env-file", envFile)
	assert.Equal(t, 2, code)
	mustContain(t, "hanode status", text, "2 active", "! foreign: it answers active, but ZooKeeper names "+leader,
		"verdict: more than one active in "+haID+" (", "(exit 2)")
	t.Logf("hanode status, a foreign member answering active:\n%s", text)
	assert.Equal(t, leader, chk.WaitSingleLeader(5*time.Second), "the election is untouched")
	require.NoError(t, conn.Delete(node, -1))
	_, _, code = cli(t, "status", "--env-file", envFile)
	assert.Equal(t, 0, code, "the foreign member gone")

	// A group whose only member never leads: exit 1.
	nfID := haID + "-nf"
	nfEnv := nodetest.HAEnv(zkSrv.Addr, nfID, "n")
	nfEnv["NOFAILOVER"] = "true"
	n := nodetest.Start(t, nodetest.Options{Name: "n", Env: nfEnv})
	_, err = n.WaitStatus(electionTimeout, func(st ping.Status) bool { return st.State == "standby" })
	require.NoError(t, err)
	text, _, code = cli(t, "status", "--env-file", envFile)
	assert.Equal(t, 1, code, text)
	mustContain(t, "hanode status", text, "HA_ID "+nfID, "no active", "verdict: no active in "+nfID+" (exit 1)")
	t.Logf("hanode status, a group with no active:\n%s", text)
	doc, code = statusJSON(t, "--env-file", envFile)
	assert.Equal(t, 1, code)
	assert.Equal(t, 1, doc.Exit)
	chk.Assert(t)
}

// TestStatusFailsFastOnAWrongZooKeeper: a --zk where nothing listens fails
// at once naming the address, as JSON with --json; a ZK_ROOT that holds no
// hanode tree says so and asks whether ZK_ROOT is right.
func TestStatusFailsFastOnAWrongZooKeeper(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gone := ln.Addr().String()
	require.NoError(t, ln.Close())

	start := time.Now()
	_, stderr, code := cli(t, "status", "--zk", gone)
	took := time.Since(start)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "cannot read ZooKeeper at "+gone+": "+gone+" refused the connection")
	assert.Less(t, took, 3*time.Second, "fails fast")
	t.Logf("refused --zk: exit %d after %v: %s", code, took.Round(time.Millisecond), strings.TrimSpace(stderr))

	doc, code := statusJSON(t, "--zk", gone)
	assert.Equal(t, 1, code)
	assert.Contains(t, doc.Error, gone+" refused the connection")

	zkSrv := zktest.Start(t)
	_, stderr, code = cli(t, "status", "--zk", zkSrv.Addr, "--zk-root", "/nope")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "no hanode groups under /nope: the znode does not exist; is ZK_ROOT (or ZK's chroot) right?")
	_, stderr, code = cli(t, "status", "--env-file", writeFile(t, "env", "ZK="+zkSrv.Addr+"/chroot\n"))
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "no hanode groups under /chroot/hanode")

	_, stderr, code = cli(t, "status", "--zk", "nohost")
	assert.Equal(t, 78, code, "a malformed --zk is a usage error")
	assert.Contains(t, stderr, `ZK="nohost" (from flag --zk)`)
}
