package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/ping"
)

// fakeMember serves st as its /v2/status and returns its address.
func fakeMember(t *testing.T, st ping.Status) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/status" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// goneMember returns an address where nothing listens any more.
func goneMember(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	a := ln.Addr().String()
	require.NoError(t, ln.Close())
	return a
}

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func answering(name, state string, term int64) ping.Status {
	st := ping.Status{Name: name, State: state, Term: term, Since: t0.Format(time.RFC3339Nano), LeaseLeft: "0s"}
	if state == "active" {
		st.LeaseLeft = "6.5s"
	}
	return st
}

// group is ZooKeeper's view of group g: members in seq order, leader the
// one the leader record names ("" for none), in term 7.
func group(haID, leader, recState string, members map[string]string, order ...string) ha.GroupStatus {
	g := ha.GroupStatus{HAID: haID, Role: "primary", Region: "world", Term: 7, Since: t0, State: recState}
	for i, name := range order {
		m := ha.Member{MemberInfo: ha.MemberInfo{Name: name, Role: "primary", Host: "host-" + name, HTTP: members[name]},
			Seq: int64(i + 1), Leader: name == leader}
		g.Members = append(g.Members, m)
		if m.Leader {
			g.Leader = name
		}
	}
	return g
}

// TestStatusVerdictCountsOwnAnswers: a group's active members are those
// whose own /v2/status says they would ping ok, whatever ZooKeeper's
// leader record says; exit 0 for one in every group, 1 when a group has
// none, 2 when a group has two or more (2 wins over 1). Every member whose
// answer contradicts ZooKeeper is named with why.
func TestStatusVerdictCountsOwnAnswers(t *testing.T) {
	dutyDown := answering("a", "active", 7)
	dutyDown.Duty = &ping.StatusDuty{State: "restarting", Serving: false}
	stdbyHeld := answering("a", "active", 7)
	stdbyHeld.Duty = &ping.StatusDuty{State: "running", Serving: true}
	stdbyHeld.Standby = &ping.StatusStandby{State: "stopped", Held: true}

	type want struct {
		exit     int
		actives  [][]string
		disagree map[string]string // member -> a part of its disagreement
	}
	cases := []struct {
		name   string
		groups func(t *testing.T) []ha.GroupStatus
		want   want
	}{
		{"a leader that answers active and a standby", func(t *testing.T) []ha.GroupStatus {
			return []ha.GroupStatus{group("g", "a", "active", map[string]string{
				"a": fakeMember(t, stdbyHeld), "b": fakeMember(t, answering("b", "standby", 7))}, "a", "b")}
		}, want{0, [][]string{{"a"}}, nil}},
		{"the recorded leader is fencing: no one serves", func(t *testing.T) []ha.GroupStatus {
			return []ha.GroupStatus{group("g", "a", "fencing", map[string]string{
				"a": fakeMember(t, answering("a", "fencing", 7)), "b": fakeMember(t, answering("b", "standby", 7))}, "a", "b")}
		}, want{1, [][]string{{}}, map[string]string{"a": "ZooKeeper names it leader, but it reports fencing"}}},
		{"the recorded leader does not answer", func(t *testing.T) []ha.GroupStatus {
			return []ha.GroupStatus{group("g", "a", "active", map[string]string{
				"a": goneMember(t), "b": fakeMember(t, answering("b", "standby", 7))}, "a", "b")}
		}, want{1, [][]string{{}}, map[string]string{"a": "ZooKeeper names it leader, but it does not answer"}}},
		{"the leader's duty is down: active but pings standby", func(t *testing.T) []ha.GroupStatus {
			return []ha.GroupStatus{group("g", "a", "active", map[string]string{"a": fakeMember(t, dutyDown)}, "a")}
		}, want{1, [][]string{{}}, map[string]string{"a": "pings standby: its duty is restarting"}}},
		{"a disconnected member ZooKeeper still names", func(t *testing.T) []ha.GroupStatus {
			return []ha.GroupStatus{group("g", "a", "active", map[string]string{"a": fakeMember(t, answering("a", "disconnected", 7))}, "a")}
		}, want{1, [][]string{{}}, map[string]string{"a": "reports disconnected"}}},
		{"a foreign endpoint answering active next to the leader", func(t *testing.T) []ha.GroupStatus {
			return []ha.GroupStatus{group("g", "a", "active", map[string]string{
				"a": fakeMember(t, answering("a", "active", 7)), "x": fakeMember(t, ping.Status{State: "active"})}, "a", "x")}
		}, want{2, [][]string{{"a", "x"}}, map[string]string{"x": "it answers active, but ZooKeeper names a"}}},
		{"a member answering active with no leader recorded", func(t *testing.T) []ha.GroupStatus {
			return []ha.GroupStatus{group("g", "", "", map[string]string{"a": fakeMember(t, answering("a", "active", 7))}, "a")}
		}, want{0, [][]string{{"a"}}, map[string]string{"a": "ZooKeeper names no leader"}}},
		{"two actives in one group outweigh none in another", func(t *testing.T) []ha.GroupStatus {
			return []ha.GroupStatus{
				group("g", "a", "active", map[string]string{"a": fakeMember(t, answering("a", "active", 7)),
					"b": fakeMember(t, answering("b", "active", 7))}, "a", "b"),
				group("h", "", "", map[string]string{"c": fakeMember(t, answering("c", "waiting", 7))}, "c"),
			}
		}, want{2, [][]string{{"a", "b"}, {}}, map[string]string{"b": "ZooKeeper names a"}}},
		{"an address answering as another member, or not as hanode", func(t *testing.T) []ha.GroupStatus {
			return []ha.GroupStatus{group("g", "a", "active", map[string]string{
				"a": fakeMember(t, answering("a", "active", 7)), "b": fakeMember(t, answering("z", "standby", 7)),
				"c": fakeMember(t, ping.Status{}), "d": fakeMember(t, ping.Status{Name: "d", HAID: "other", State: "standby"})},
				"a", "b", "c", "d")}
		}, want{0, [][]string{{"a"}}, map[string]string{"b": `answers as "z", not "b"`, "d": `it answers for group "other"`}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			groups := tc.groups(t)
			rep := buildReport(groups, askMembers(t.Context(), &http.Client{Timeout: 2 * time.Second}, groups))
			assert.Equal(t, tc.want.exit, rep.Exit, "exit; verdict %q", rep.Verdict)
			require.Len(t, rep.Groups, len(tc.want.actives))
			for i, g := range rep.Groups {
				assert.Equal(t, tc.want.actives[i], g.Actives, "group %s", g.HAID)
				for _, m := range g.Members {
					want, ok := tc.want.disagree[m.Name]
					if !ok {
						assert.Empty(t, m.Disagreements, "member %s", m.Name)
						continue
					}
					assert.Contains(t, strings.Join(m.Disagreements, "; "), want, "member %s", m.Name)
				}
			}
		})
	}
}

// TestStatusUnreachableMembers: a member that does not answer, answers an
// HTTP error, answers something that is not a status, or published no
// address is "unreachable", with why, and never counts as active.
func TestStatusUnreachableMembers(t *testing.T) {
	notFound := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "<html>") }))
	t.Cleanup(garbage.Close)
	stalled := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-stalled }))
	t.Cleanup(func() { close(stalled); slow.Close() })

	addrs := map[string]string{"gone": goneMember(t), "404": strings.TrimPrefix(notFound.URL, "http://"),
		"html": garbage.URL, "slow": slow.URL, "none": ""}
	groups := []ha.GroupStatus{group("g", "", "", addrs, "gone", "404", "html", "slow", "none")}
	start := time.Now()
	rep := buildReport(groups, askMembers(t.Context(), &http.Client{Timeout: 300 * time.Millisecond}, groups))
	assert.Less(t, time.Since(start), 2*time.Second, "members are asked at once, each bounded")
	want := map[string]string{"gone": "refused", "404": "HTTP 404", "html": "not a hanode status", "slow": "Timeout",
		"none": "published no HTTP address"}
	for _, m := range rep.Groups[0].Members {
		assert.Equal(t, stateUnreachable, m.Reported.State, m.Name)
		assert.Empty(t, m.Reported.Ping, m.Name)
		assert.Contains(t, m.Reported.Error, want[m.Name], m.Name)
	}
	assert.Equal(t, exitNoActive, rep.Exit)
}

// TestStatusPrintsBothViews: the table shows each member's own state,
// ping, term, since, lease and health, marks and explains every
// disagreement with ZooKeeper, and ends with the verdict and exit status;
// --json carries the same, with both views of each member.
func TestStatusPrintsBothViews(t *testing.T) {
	a := answering("a", "fencing", 8)
	a.Reason = "fencing the previous leader"
	healthy := "healthy"
	b := answering("b", "standby", 7)
	b.Health = &ping.StatusHealth{State: healthy}
	groups := []ha.GroupStatus{group("g", "a", "fencing", map[string]string{"a": fakeMember(t, a), "b": fakeMember(t, b),
		"x": fakeMember(t, ping.Status{State: "active", LeaseLeft: "2.96s"})}, "a", "b", "x")}
	rep := buildReport(groups, askMembers(t.Context(), &http.Client{Timeout: 2 * time.Second}, groups))
	rep.ZK, rep.Root = "127.0.0.1:2181", "/hanode"
	now := t0.Add(90 * time.Second)

	var text strings.Builder
	require.NoError(t, printStatus(&text, rep, now))
	lines := strings.Split(text.String(), "\n")
	assert.Equal(t, "HA_ID g  role primary  region world  leader a (term 7, fencing since 2026-03-04T05:06:07Z, 1m30s ago)  one active", lines[0])
	row := func(name string) []string {
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 3 && (f[1] == name || f[2] == name) {
				return f
			}
		}
		t.Fatalf("no row for %s:\n%s", name, text.String())
		return nil
	}
	assert.Equal(t, []string{"!", "1", "a", "fencing", "standby", "8", "1m30s", "ago", "-", "-", "host-a"}, row("a")[:11])
	assert.Equal(t, []string{"2", "b", "standby", "standby", "7", "1m30s", "ago", "-", "healthy", "host-b"}, row("b")[:10])
	assert.Equal(t, []string{"!", "3", "x", "active", "ok", "0", "-", "3s", "-", "host-x"}, row("x")[:10])
	for _, want := range []string{
		"  ! a: ZooKeeper names it leader, but it reports fencing\n",
		"  a is fencing: fencing the previous leader\n",
		"  ! x: it answers active, but ZooKeeper names a\n",
		"verdict: one active in every group (exit 0)\n",
	} {
		assert.Contains(t, text.String(), want)
	}

	var js strings.Builder
	require.NoError(t, writeJSON(&js, rep))
	var doc struct {
		ZK      string `json:"zk"`
		Verdict string `json:"verdict"`
		Exit    int    `json:"exit"`
		Groups  []struct {
			HAID    string   `json:"ha_id"`
			Leader  string   `json:"leader"`
			State   string   `json:"state"`
			Actives []string `json:"actives"`
			Verdict string   `json:"verdict"`
			Members []struct {
				Name          string       `json:"name"`
				Leader        bool         `json:"leader"`
				Reported      memberAnswer `json:"reported"`
				Disagreements []string     `json:"disagreements"`
			} `json:"members"`
		} `json:"groups"`
	}
	require.NoError(t, json.Unmarshal([]byte(js.String()), &doc), js.String())
	assert.Equal(t, "127.0.0.1:2181", doc.ZK)
	assert.Equal(t, 0, doc.Exit)
	require.Len(t, doc.Groups, 1)
	g := doc.Groups[0]
	assert.Equal(t, []string{"x"}, g.Actives)
	assert.Equal(t, "one active", g.Verdict)
	assert.Equal(t, "fencing", g.State)
	require.Len(t, g.Members, 3)
	assert.True(t, g.Members[0].Leader)
	assert.Equal(t, "fencing", g.Members[0].Reported.State)
	assert.Equal(t, "standby", g.Members[0].Reported.Ping)
	assert.Equal(t, &healthy, g.Members[1].Reported.Health)
	assert.Empty(t, g.Members[1].Disagreements)
	assert.NotNil(t, g.Members[1].Disagreements, "an empty list, not null")
	assert.Equal(t, "ok", g.Members[2].Reported.Ping)
	assert.Contains(t, js.String(), `"health": null`, "a member without a health check")
}

// TestStatusExitStatuses: the verdict's codes reach the process's exit
// status, distinct from usage errors (78); a shown error is not printed
// again.
func TestStatusExitStatuses(t *testing.T) {
	assert.Equal(t, 1, exitStatus(shownError{verdictError{code: exitNoActive, msg: "no active in g"}, nil}))
	assert.Equal(t, 2, exitStatus(shownError{verdictError{code: exitSeveralActives, msg: "more than one"}, nil}))
	assert.Equal(t, 78, exitStatus(shownError{usageError{errors.New("bad")}, nil}))
	assert.Equal(t, 1, exitStatus(shownError{errors.New("cannot read ZooKeeper"), nil}))
	shown, writeErr := asShown(fmt.Errorf("x: %w", shownError{errors.New("e"), nil}))
	assert.True(t, shown)
	assert.NoError(t, writeErr)
	shown, _ = asShown(errors.New("plain"))
	assert.False(t, shown)
}

// TestStatusDialFailsFast: hanode status gives up on ZooKeeper as soon as
// every address has failed, naming each and why: nothing listens there, or
// what listens is not ZooKeeper; a server that accepts but never answers
// is named when the timeout ends.
func TestStatusDialFailsFast(t *testing.T) {
	notZK, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { notZK.Close() })
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { silent.Close() })
	go func() {
		for {
			c, err := notZK.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = c.Read(make([]byte, 64))
				_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"))
			}()
		}
	}()
	go func() {
		var held []net.Conn // accepted, never answered; closed by the OS when the test ends
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	gone := goneMember(t)

	cases := []struct {
		name    string
		servers []string
		wait    time.Duration
		want    []string
	}{
		{"refused", []string{gone}, time.Second, []string{gone + " refused the connection"}},
		{"not ZooKeeper", []string{notZK.Addr().String()}, time.Second,
			[]string{notZK.Addr().String() + ` is not ZooKeeper: it answered "HTTP/1.1 400 Bad Request`}},
		{"every address named", []string{gone, notZK.Addr().String()}, time.Second,
			[]string{gone + " refused", notZK.Addr().String() + " is not ZooKeeper"}},
		{"accepted, never answered", []string{silent.Addr().String()}, 300 * time.Millisecond,
			[]string{"within the timeout", silent.Addr().String() + " accepted the connection but has not answered"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), tc.wait)
			defer cancel()
			start := time.Now()
			conn, err := dialStatus(ctx, tc.servers, ha.Access{})
			took := time.Since(start)
			if conn != nil {
				conn.Close()
			}
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Less(t, took, tc.wait+500*time.Millisecond, "bounded")
			t.Logf("%s: failed after %v: %v", tc.name, took.Round(time.Millisecond), err)
		})
	}
}
