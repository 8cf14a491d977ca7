package nodetest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/ping"
)

// HTTPTimeout bounds every request of the HTTP helpers.
const HTTPTimeout = 2 * time.Second

// client is shared by the helpers; the Checker has its own per node.
var client = &http.Client{
	Timeout: HTTPTimeout,
	Transport: &http.Transport{
		Proxy:               nil, // never a proxy: 127.0.0.1 only
		MaxIdleConnsPerHost: 4,
		DisableCompression:  true,
	},
}

// URL returns http://ADDR + path.
func (n *Node) URL(path string) string { return "http://" + n.addr + path }

// PingPath is the node's /v2/ping/net/<NET_ID>/ path.
func (n *Node) PingPath() string { return "/v2/ping/net/" + n.netID + "/" }

// PingSEPath is the node's /v2/ping/net/<NET_ID>/se/ path.
func (n *Node) PingSEPath() string { return "/v2/ping/net/" + n.netID + "/se/" }

// Ping asks /v2/ping/net/<id>/ and returns the status code and body.
func (n *Node) Ping() (int, string, error) { return get(client, n.URL(n.PingPath())) }

// PingSE asks /v2/ping/net/<id>/se/ and returns the status code and body.
func (n *Node) PingSE() (int, string, error) { return get(client, n.URL(n.PingSEPath())) }

// Status asks /v2/status and decodes it.
func (n *Node) Status() (ping.Status, error) {
	var st ping.Status
	code, body, err := get(client, n.URL(ping.PathStatus))
	if err != nil {
		return st, err
	}
	if code != http.StatusOK {
		return st, fmt.Errorf("GET %s: status %d: %s", ping.PathStatus, code, body)
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		return st, fmt.Errorf("GET %s: %w: %s", ping.PathStatus, err, body)
	}
	return st, nil
}

// MustStatus is Status that fails the test on an error.
func (n *Node) MustStatus() ping.Status {
	n.t.Helper()
	st, err := n.Status()
	if err != nil {
		n.t.Fatalf("nodetest: %s: %v", n.name, err)
	}
	return st
}

func get(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, "", err
	}
	return resp.StatusCode, string(body), nil
}

// WaitStatus polls n's /v2/status every 20 ms until cond holds and returns
// that status; after timeout it returns the last status and an error that
// says what the node last reported.
func (n *Node) WaitStatus(timeout time.Duration, cond func(ping.Status) bool) (ping.Status, error) {
	var st ping.Status
	last := "no answer"
	err := testwait.Poll(timeout, 20*time.Millisecond, func() bool {
		var err error
		if st, err = n.Status(); err != nil {
			last = err.Error()
			return false
		}
		last = fmt.Sprintf("%s (%s) cause %q session %s", st.State, st.Reason, st.Cause, st.ZK.SessionID)
		return cond(st)
	})
	if err != nil {
		return st, fmt.Errorf("%s: condition not met within %v; last: %s", n.name, timeout, last)
	}
	return st, nil
}

// WaitStandby waits until n's /v2/status reports standby (joined, not
// leading) and returns that status. With a non-empty notSession it also
// waits for a ZooKeeper session other than that one (a node that rejoined
// after losing its session). After timeout it fails t, saying what n last
// reported.
func WaitStandby(t testing.TB, n *Node, timeout time.Duration, notSession string) ping.Status {
	t.Helper()
	st, err := n.WaitStatus(timeout, func(st ping.Status) bool {
		return st.State == "standby" && (notSession == "" || (st.ZK.SessionID != "" && st.ZK.SessionID != notSession))
	})
	if err != nil {
		t.Fatalf("nodetest: waiting for standby: %v", err)
	}
	return st
}
