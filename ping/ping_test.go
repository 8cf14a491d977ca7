package ping

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hanode/hanode/ha"
)

var testID = Identity{
	Name:    "nsg-a",
	Role:    "primary",
	Region:  "eu-west",
	HAID:    "ha-1",
	NetID:   "1",
	Version: "1.2.3",
}

// fixed returns a StateReader that always answers phase p.
func fixed(p ha.Phase) ha.StateReader {
	return ha.StateFunc(func() ha.State { return ha.State{Phase: p} })
}

// do sends one request straight to the handler and returns the recording.
func do(t *testing.T, h http.Handler, method, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func TestPingAnswersOKOnlyWhenActive(t *testing.T) {
	phases := []struct {
		phase  ha.Phase
		active bool
	}{
		{ha.PhaseActive, true},
		{ha.PhaseStandby, false},
		{ha.PhaseStarting, false},
		{ha.PhaseDisconnected, false},
		{ha.Phase("draining"), false}, // a phase added later is not active
		{ha.Phase(""), false},         // the zero State is not active
	}
	endpoints := []struct {
		path        string
		standbyCode int
	}{
		{"/v2/ping/net/1/", http.StatusOK},
		{"/v2/ping/net/1/se/", http.StatusServiceUnavailable},
	}
	for _, ph := range phases {
		for _, ep := range endpoints {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				name := method + " " + ep.path + " " + string(ph.phase)
				t.Run(name, func(t *testing.T) {
					wantCode, wantBody := http.StatusOK, "ok"
					if !ph.active {
						wantCode, wantBody = ep.standbyCode, "standby"
					}
					rec := do(t, New(testID, fixed(ph.phase), nil), method, ep.path)

					assert.Equal(t, wantCode, rec.Code)
					assert.Equal(t, "text/plain; charset=UTF-8", rec.Header().Get("Content-Type"))
					assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
					assert.Equal(t, strconv.Itoa(len(wantBody)), rec.Header().Get("Content-Length"))
					if method == http.MethodHead {
						assert.Empty(t, rec.Body.String(), "HEAD has no body")
					} else {
						assert.Equal(t, wantBody, rec.Body.String(), "exact body, no newline")
					}
				})
			}
		}
	}
}

func TestUnknownPathsAndNetsAnswer404(t *testing.T) {
	e := New(testID, fixed(ha.PhaseActive), nil)
	for _, target := range []string{
		"/v2/ping/net/2/",     // another net
		"/v2/ping/net/2/se/",  // another net
		"/v2/ping/net/01/",    // not the same string
		"/v2/ping/net//",      // echo matches this with an empty netid
		"/v2/ping/net//se/",   // same, on the se route
		"/v2/ping/net/1",      // the trailing slash is part of the route
		"/v2/ping/net/1/se",   // same
		"/v2/ping/net/1/x/",   // unknown sub-route
		"/v2/ping/net/1/se/x", // unknown sub-route
		"/v2/ping/net/",       // no netid segment at all
		"/v2/ping/",           // prefix only
		"/v2/status/",         // status has no trailing slash
		"/favicon.ico",        // browsers
		"/V2/PING/NET/1/",     // paths are case-sensitive
	} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			t.Run(method+" "+target, func(t *testing.T) {
				rec := do(t, e, method, target)
				assert.Equal(t, http.StatusNotFound, rec.Code)
				assert.Equal(t, "text/plain; charset=UTF-8", rec.Header().Get("Content-Type"))
				if method == http.MethodHead {
					assert.Empty(t, rec.Body.String())
				} else {
					assert.Equal(t, "not found", rec.Body.String())
				}
			})
		}
	}
}

func TestQueryStringDoesNotChangeTheAnswer(t *testing.T) {
	rec := do(t, New(testID, fixed(ha.PhaseStandby), nil), http.MethodGet, "/v2/ping/net/1/se/?verbose=1")
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "standby", rec.Body.String())
}

func TestPercentEncodedNetIDIsDecoded(t *testing.T) {
	rec := do(t, New(testID, fixed(ha.PhaseActive), nil), http.MethodGet, "/v2/ping/net/%31/se/")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "ok", rec.Body.String())
}

func TestUndecodableNetIDAnswers404(t *testing.T) {
	// net/http refuses such a request line itself; build the request by hand
	// to reach the handler's own check.
	req := &http.Request{
		Method: http.MethodGet,
		URL:    &url.URL{Path: "/v2/ping/net/%ZZ/", RawPath: "/v2/ping/net/%ZZ/"},
		Header: http.Header{},
	}
	rec := httptest.NewRecorder()
	New(testID, fixed(ha.PhaseActive), nil).ServeHTTP(rec, req)
	assert.Equal(t, http.StatusNotFound, rec.Code)
}

func TestEmptyNetIDMatchesNothingAndWarns(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	id := testID
	id.NetID = ""
	e := New(id, fixed(ha.PhaseActive), zap.New(core))
	assert.Equal(t, 1, logs.FilterMessage("ping: empty net id, every ping will answer 404").Len())
	for _, target := range []string{"/v2/ping/net//", "/v2/ping/net//se/", "/v2/ping/net/1/"} {
		assert.Equal(t, http.StatusNotFound, do(t, e, http.MethodGet, target).Code, target)
	}
}

func TestOtherMethodsAnswer405(t *testing.T) {
	e := New(testID, fixed(ha.PhaseActive), nil)
	for _, target := range []string{"/v2/ping/net/1/", "/v2/ping/net/1/se/", "/v2/status"} {
		for _, method := range []string{
			http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
			http.MethodOptions, // echo would answer 204; HAProxy's httpchk probes with OPTIONS
			http.MethodTrace, http.MethodConnect, "PROPFIND",
		} {
			t.Run(method+" "+target, func(t *testing.T) {
				rec := do(t, e, method, target)
				assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
				assert.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))
				assert.Equal(t, "method not allowed", rec.Body.String())
			})
		}
	}
}

func TestEveryAnswerReadsStateExactlyOnce(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		for _, target := range []string{"/v2/ping/net/1/", "/v2/ping/net/1/se/", "/v2/status"} {
			t.Run(method+" "+target, func(t *testing.T) {
				var calls atomic.Int64
				src := ha.StateFunc(func() ha.State {
					calls.Add(1)
					return ha.State{Phase: ha.PhaseActive}
				})
				e := New(testID, src, nil)
				rec := do(t, e, method, target)
				require.Equal(t, http.StatusOK, rec.Code)
				assert.Equal(t, int64(1), calls.Load())
			})
		}
	}
}

func TestAnswerFollowsStateWithoutCaching(t *testing.T) {
	var phase atomic.Value
	phase.Store(ha.PhaseStandby)
	src := ha.StateFunc(func() ha.State { return ha.State{Phase: phase.Load().(ha.Phase)} })
	e := New(testID, src, nil)

	steps := []struct {
		phase ha.Phase
		code  int
		body  string
	}{
		{ha.PhaseStandby, http.StatusServiceUnavailable, "standby"},
		{ha.PhaseActive, http.StatusOK, "ok"},
		{ha.PhaseActive, http.StatusOK, "ok"},
		{ha.PhaseDisconnected, http.StatusServiceUnavailable, "standby"},
		{ha.PhaseActive, http.StatusOK, "ok"},
		{ha.PhaseStarting, http.StatusServiceUnavailable, "standby"},
	}
	for i, s := range steps {
		phase.Store(s.phase)
		rec := do(t, e, http.MethodGet, "/v2/ping/net/1/se/")
		assert.Equal(t, s.code, rec.Code, "step %d (%s)", i, s.phase)
		assert.Equal(t, s.body, rec.Body.String(), "step %d (%s)", i, s.phase)

		rec = do(t, e, http.MethodGet, "/v2/status")
		var st Status
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
		assert.Equal(t, string(s.phase), st.State, "step %d status", i)
	}
}

func TestStatusOfActiveHANode(t *testing.T) {
	since := time.Date(2026, 3, 1, 12, 30, 0, 123456789, time.FixedZone("CET", 3600))
	started := time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)
	member := func(name, host string, seq int64, leader bool) ha.Member {
		return ha.Member{
			MemberInfo: ha.MemberInfo{Name: name, Role: "primary", Host: host, HTTP: "http://" + host + ":9100", PID: 42, Started: started},
			Seq:        seq,
			Leader:     leader,
		}
	}
	st := ha.State{
		Phase:     ha.PhaseActive,
		Reason:    "lowest member",
		Term:      7,
		Leader:    "nsg-a",
		Since:     since,
		LeaseLeft: 2500 * time.Millisecond,
		Members: []ha.Member{
			member("nsg-a", "10.0.0.1", 3, true),
			member("nsg-b", "10.0.0.2", 5, false),
			member("nsg-c", "10.0.0.3", 9, false),
		},
		Ignored: []ha.Ignored{{Znode: "/hanode/groups/ha-1/members/junk", Reason: "not a member node name"}},
		Problem: "refusing to lead: ...",
		ZK:      ha.ZKStatus{Connected: true, SessionID: "0x1000001a2b3c", State: "StateHasSession"},
	}
	e := New(testID, ha.StateFunc(func() ha.State { return st }), nil)

	rec := do(t, e, http.MethodGet, "/v2/status")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
	assert.True(t, strings.HasPrefix(rec.Body.String(), "{\n  \"name\": \"nsg-a\","), "indented for people")
	assert.True(t, strings.HasSuffix(rec.Body.String(), "}\n"), "ends with a newline")
	assert.JSONEq(t, `{
		"name": "nsg-a", "role": "primary", "region": "eu-west",
		"ha_id": "ha-1", "net_id": "1", "version": "1.2.3",
		"state": "active", "reason": "lowest member", "cause": "", "leader": "nsg-a", "term": 7, "duty": null, "standby": null, "hook": null,
		"cycle": null, "jobs": [], "health": null, "candidacy": null, "leader_note": "", "paused": null,
		"since": "2026-03-01T11:30:00.123456789Z", "lease_left": "2.5s",
		"members": [
			{"name": "nsg-a", "host": "10.0.0.1", "http": "http://10.0.0.1:9100", "state": "active", "seq": 3},
			{"name": "nsg-b", "host": "10.0.0.2", "http": "http://10.0.0.2:9100", "state": "standby", "seq": 5},
			{"name": "nsg-c", "host": "10.0.0.3", "http": "http://10.0.0.3:9100", "state": "standby", "seq": 9}
		],
		"ignored": [{"znode": "/hanode/groups/ha-1/members/junk", "reason": "not a member node name"}],
		"problem": "refusing to lead: ...",
		"zk": {"connected": true, "session_id": "0x1000001a2b3c", "state": "StateHasSession"}
	}`, rec.Body.String())

	head := do(t, e, http.MethodHead, "/v2/status")
	assert.Equal(t, http.StatusOK, head.Code)
	assert.Empty(t, head.Body.String())
	assert.Equal(t, strconv.Itoa(rec.Body.Len()), head.Header().Get("Content-Length"))
}

func TestStatusOfStandaloneNode(t *testing.T) {
	id := testID
	id.HAID = ""
	since := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	e := New(id, ha.Standalone(since, "standalone"), nil)

	rec := do(t, e, http.MethodGet, "/v2/status")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{
		"name": "nsg-a", "role": "primary", "region": "eu-west",
		"ha_id": "", "net_id": "1", "version": "1.2.3",
		"state": "active", "reason": "standalone", "cause": "", "leader": "", "term": 0, "duty": null, "standby": null, "hook": null,
		"cycle": null, "jobs": [], "health": null, "candidacy": null, "leader_note": "", "paused": null,
		"since": "2026-03-01T12:00:00Z", "lease_left": "0s", "ignored": [], "problem": "",
		"members": [],
		"zk": {"connected": false, "session_id": "", "state": ""}
	}`, rec.Body.String())

	// A standalone node is always the one to send traffic to.
	assert.Equal(t, "ok", do(t, e, http.MethodGet, "/v2/ping/net/1/se/").Body.String())
}

func TestStatusReportsUnknownSinceAsEmpty(t *testing.T) {
	e := New(testID, fixed(ha.PhaseStarting), nil)
	var st Status
	require.NoError(t, json.Unmarshal(do(t, e, http.MethodGet, "/v2/status").Body.Bytes(), &st))
	assert.Equal(t, "starting", st.State)
	assert.Empty(t, st.Since)
	assert.NotNil(t, st.Members)
}

func TestPanickingStateReaderAnswers500AndIsLogged(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	src := ha.StateFunc(func() ha.State { panic("elector bug") })
	e := New(testID, src, zap.New(core))
	for _, target := range []string{"/v2/ping/net/1/", "/v2/ping/net/1/se/", "/v2/status"} {
		rec := do(t, e, http.MethodGet, target)
		assert.Equal(t, http.StatusInternalServerError, rec.Code, target)
		assert.Equal(t, "internal server error", rec.Body.String(), target)
	}
	assert.Equal(t, 3, logs.FilterMessage("ping: handler panicked").Len())
}

func TestPingsLogNothingAtInfo(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	e := New(testID, fixed(ha.PhaseStandby), zap.New(core))
	for _, target := range []string{"/v2/ping/net/1/", "/v2/ping/net/1/se/", "/v2/ping/net/9/", "/nope"} {
		for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
			do(t, e, method, target)
		}
	}
	assert.Zero(t, logs.Len(), "balancers poll constantly: %v", logs.All())
}

func TestPingsLogAtDebug(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	e := New(testID, fixed(ha.PhaseStandby), zap.New(core))
	do(t, e, http.MethodGet, "/v2/ping/net/1/se/")
	entries := logs.FilterMessage("ping: answered").All()
	require.Len(t, entries, 1)
	fields := entries[0].ContextMap()
	assert.Equal(t, int64(http.StatusServiceUnavailable), fields["status"])
	assert.Equal(t, "standby", fields["phase"])
	assert.Equal(t, "/v2/ping/net/1/se/", fields["path"])
}

func TestNewRejectsNilStateReader(t *testing.T) {
	assert.PanicsWithValue(t, "ping: New: nil StateReader", func() { New(testID, nil, nil) })
}

// TestNoOKWithoutADuty: a leader whose duty is not serving (down longer
// than its restart grace, or failed) answers standby on both routes, and
// its status says why.
func TestNoOKWithoutADuty(t *testing.T) {
	exit := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		duty   *ha.DutyState
		ok     bool
		status string
	}{
		{nil, true, `null`},
		{&ha.DutyState{State: "running", Containment: "cgroup", Serving: true}, true,
			`{"state": "running", "restarts": 0, "last_exit": "", "last_exit_at": "", "containment": "cgroup", "serving": true}`},
		{&ha.DutyState{State: "restarting", Restarts: 2, LastExit: "exit status 1", LastExitAt: exit, Containment: "subreaper"}, false,
			`{"state": "restarting", "restarts": 2, "last_exit": "exit status 1", "last_exit_at": "2026-03-01T12:00:00Z", "containment": "subreaper", "serving": false}`},
		{&ha.DutyState{State: "failed", Restarts: 5, Containment: "cgroup"}, false,
			`{"state": "failed", "restarts": 5, "last_exit": "", "last_exit_at": "", "containment": "cgroup", "serving": false}`},
	} {
		st := ha.State{Phase: ha.PhaseActive, Duty: tc.duty}
		e := New(testID, ha.StateFunc(func() ha.State { return st }), nil)
		wantPlain, wantSE, wantCode := "standby", "standby", http.StatusServiceUnavailable
		if tc.ok {
			wantPlain, wantSE, wantCode = "ok", "ok", http.StatusOK
		}
		rec := do(t, e, http.MethodGet, "/v2/ping/net/1/")
		assert.Equal(t, wantPlain, rec.Body.String())
		rec = do(t, e, http.MethodGet, "/v2/ping/net/1/se/")
		assert.Equal(t, wantCode, rec.Code)
		assert.Equal(t, wantSE, rec.Body.String())
		rec = do(t, e, http.MethodGet, "/v2/status")
		var got map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
		assert.JSONEq(t, tc.status, string(got["duty"]))
		assert.Equal(t, `"active"`, string(got["state"]), "the node still leads; only its answer changes")
	}
}
