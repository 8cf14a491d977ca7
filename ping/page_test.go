package ping

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/ha"
)

// pageNow is the instant the page tests render at.
var pageNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// groupState is a standby's view of a three-member group led by nsg-b.
func groupState() ha.State {
	return ha.State{
		Phase: ha.PhaseStandby, Reason: "next in line", Leader: "nsg-b", Term: 1767225600123,
		Since: pageNow.Add(-3*time.Minute - 12*time.Second),
		ZK:    ha.ZKStatus{Connected: true, SessionID: "0x10000a1b2c3d4e5", State: "StateHasSession"},
		Members: []ha.Member{
			{MemberInfo: ha.MemberInfo{Name: "nsg-b", Host: "host-b", HTTP: "10.0.0.2:9640", Started: pageNow.Add(-time.Hour)}, Seq: 4, Leader: true},
			{MemberInfo: ha.MemberInfo{Name: "nsg-a", Host: "host-a", HTTP: "10.0.0.1:9640"}, Seq: 7},
			{MemberInfo: ha.MemberInfo{Name: "nsg-c", Host: "host-c"}, Seq: 9},
		},
		Duty: &ha.DutyState{State: "stopped", Containment: "cgroup"},
	}
}

// renderAt answers GET / for st at pageNow.
func renderAt(t *testing.T, id Identity, st ha.State) (*http.Response, string) {
	t.Helper()
	h := New(id, ha.StateFunc(func() ha.State { return st }), nil)
	h.h.now = func() time.Time { return pageNow }
	rec := do(t, h, http.MethodGet, "/")
	return rec.Result(), rec.Body.String()
}

func TestPageShowsTheNodeItsGroupAndWhoLeads(t *testing.T) {
	res, body := renderAt(t, testID, groupState())
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "text/html; charset=UTF-8", res.Header.Get("Content-Type"))
	assert.Equal(t, "no-store", res.Header.Get("Cache-Control"))

	for _, want := range []string{
		`<title>nsg-a · standby · leader nsg-b</title>`,
		`<h1 class="name" id="node-name">nsg-a</h1>`,
		`<span class="badge tone-standby" id="node-phase">standby</span>`,
		`primary · eu-west · group <b>ha-1</b> · net 1`,
		`<p class="reason">next in line</p>`,
		`<dd id="node-leader">nsg-b</dd>`,
		`<dd class="num" id="node-term">1767225600123</dd>`,
		`<span class="age" data-age="192000">3m12s</span><time class="utc" datetime="2026-05-01T11:56:48Z">since 2026-05-01 11:56:48 UTC</time>`,
		`<span class="none">holds none</span>`, // a standby holds no lease
		`<code class="answer answer-standby">standby</code>`,
		`<dd>connected</dd>`,
		`3 members`,
		`<li class="member is-leader" data-name="nsg-b" data-role="leader">`,
		`<li class="member is-self" data-name="nsg-a" data-role="standby">`,
		`<li class="member" data-name="nsg-c" data-role="standby">`,
		`<a href="http://10.0.0.2:9640/">10.0.0.2:9640</a> · host-b · seq&nbsp;4 · up&nbsp;1h00m`,
		`<span class="pill self">this node</span>`,
		`<span class="badge small tone-off">stopped</span>`, // a standby's duty is stopped, and that is no warning
		`<dd>cgroup</dd>`,
		`id="conn" class="conn" data-state="static">snapshot</div>`,
	} {
		assert.Contains(t, body, want)
	}
	assert.Equal(t, 1, strings.Count(body, `data-role="leader"`), "one leader")
	assert.Equal(t, 3, strings.Count(body, `<li class="member`), "three members, in ha's order")
	assert.Less(t, strings.Index(body, `data-name="nsg-b"`), strings.Index(body, `data-name="nsg-c"`))
	assert.NotContains(t, body, "not serving")
	assert.NotContains(t, body, "Needs an operator")
}

func TestPageShowsTheLeaseAndTheDutyOfALeader(t *testing.T) {
	st := groupState()
	st.Phase, st.Leader, st.LeaseLeft = ha.PhaseActive, "nsg-a", 2870*time.Millisecond
	st.Members[0].Leader, st.Members[1].Leader = false, true
	st.Duty = &ha.DutyState{State: "restarting", Restarts: 2, LastExit: "exit status 3",
		LastExitAt: pageNow.Add(-5 * time.Second), Containment: "subreaper", Serving: false}
	_, body := renderAt(t, testID, st)
	for _, want := range []string{
		`<title>nsg-a · active</title>`,
		`<span class="badge tone-ok" id="node-phase">active</span>`,
		`<dd class="num" id="node-lease">2.9 s</dd>`,
		`<code class="answer answer-standby">standby</code>`, // no ok without a duty
		`<li class="member is-leader is-self" data-name="nsg-a" data-role="leader">`,
		`<span class="badge small tone-busy">restarting</span><span class="pill warn">not serving: balancers see standby</span>`,
		`exit status 3<span class="utc"><span class="age" data-age="5000">5s</span> ago</span>`,
	} {
		assert.Contains(t, body, want)
	}

	// A new leader's member list is as of its last listing, from before
	// its claim: the row follows the leader's name.
	st.Members[0].Leader, st.Members[1].Leader = true, false
	_, stale := renderAt(t, testID, st)
	assert.Contains(t, stale, `<li class="member is-leader is-self" data-name="nsg-a" data-role="leader">`)
	assert.Equal(t, 1, strings.Count(stale, `data-role="leader"`))

	st.Duty.Serving, st.Duty.State = true, "running"
	_, body = renderAt(t, testID, st)
	assert.Contains(t, body, `<code class="answer answer-ok">ok</code>`)
	assert.Contains(t, body, `<span class="badge small tone-ok">running</span>`)
}

func TestPageShowsWhatAnOperatorMustRepair(t *testing.T) {
	st := groupState()
	st.Phase, st.Cause, st.Reason = ha.PhaseDisconnected, "no quorum", "ZooKeeper does not serve"
	st.Problem = "refusing to lead: leader record /hanode/groups/ha-1/leader holds term 9007199254740991"
	st.Ignored = []ha.Ignored{{Znode: "/hanode/groups/ha-1/members/x", Reason: "not a member node name"}}
	_, body := renderAt(t, testID, st)
	for _, want := range []string{
		`<span class="badge tone-bad" id="node-phase">disconnected</span>`,
		`<p class="cause">ZooKeeper session: no quorum</p>`,
		`<section class="card alert" role="alert">`,
		`holds term 9007199254740991`,
		`<li><code>/hanode/groups/ha-1/members/x</code><span>not a member node name</span></li>`,
	} {
		assert.Contains(t, body, want)
	}
}

func TestPageOfAStandaloneNodeHasNoGroup(t *testing.T) {
	id := testID
	id.HAID = ""
	_, body := renderAt(t, id, ha.State{Phase: ha.PhaseActive, Reason: "standalone: no HA_ID", Since: pageNow})
	assert.Contains(t, body, `primary · eu-west · standalone · net 1`)
	assert.Contains(t, body, `<dd>not used</dd>`)
	assert.NotContains(t, body, `class="card group"`)
}

func TestPageOfANodeStillStarting(t *testing.T) {
	_, body := renderAt(t, testID, ha.State{})
	assert.Contains(t, body, `<span class="badge tone-off" id="node-phase">unknown</span>`)
	assert.Contains(t, body, `<span class="none">unknown</span>`)  // leader, since
	assert.Contains(t, body, `<span class="none">none yet</span>`) // term
	assert.Contains(t, body, `No member listed yet.`)
}

// TestPageEscapesWhatItShows: names, hosts and reasons come from other
// processes' znodes; none of it may become markup or a script link.
func TestPageEscapesWhatItShows(t *testing.T) {
	st := groupState()
	st.Reason = `<script>alert(1)</script>`
	st.Members[1].Name = `"><img src=x onerror=alert(1)>`
	st.Members[1].HTTP = `javascript:alert(1)`
	st.Members[2].HTTP = `evil.example/x?y`
	_, body := renderAt(t, testID, st)
	assert.NotContains(t, body, `<script>alert(1)`)
	assert.NotContains(t, body, `<img src=x`)
	assert.NotContains(t, body, `href="javascript:`)
	assert.NotContains(t, body, `href="http://evil.example/x`)
	assert.Contains(t, body, `&lt;script&gt;alert(1)&lt;/script&gt;`)
}

// TestPageRevealsNoSecrets: the page shows what /v2/status shows, less the
// session id, and nothing of the configuration.
func TestPageRevealsNoSecrets(t *testing.T) {
	_, body := renderAt(t, testID, groupState())
	assert.NotContains(t, body, "0x10000a1b2c3d4e5")
	assert.NotContains(t, body, "10000a1b2c3d4e5")
}

// TestPageLoadsNothingAndItsPolicyAdmitsExactlyItsInlineBlocks: the one
// script and the one style block are allowed by hash, and nothing else is.
func TestPageLoadsNothingAndItsPolicyAdmitsExactlyItsInlineBlocks(t *testing.T) {
	res, body := renderAt(t, testID, groupState())
	csp := res.Header.Get("Content-Security-Policy")
	require.NotEmpty(t, csp)
	assert.Contains(t, csp, "default-src 'none'")
	assert.Contains(t, csp, "connect-src 'self'")
	assert.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
	assert.Equal(t, "DENY", res.Header.Get("X-Frame-Options"))

	block := func(tag string) string {
		m := regexp.MustCompile(`(?s)<`+tag+`>(.*?)</`+tag+`>`).FindAllStringSubmatch(body, -1)
		require.Len(t, m, 1, "one inline <%s>", tag)
		return m[0][1]
	}
	for _, tag := range []string{"script", "style"} {
		sum := sha256.Sum256([]byte(block(tag)))
		assert.Contains(t, csp, tag+"-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'", tag)
	}
	assert.NotRegexp(t, `(?i)<(script|link|img|iframe)[^>]+(src|href)="(https?:)?//`, body, "no external asset")
	assert.NotContains(t, body, ` style="`, "inline style attributes are refused by the policy")
}

func TestPageAnswersHEADWithoutABody(t *testing.T) {
	rec := do(t, New(testID, ha.StateFunc(groupState), nil), http.MethodHead, "/")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Empty(t, rec.Body.String())
	assert.NotEmpty(t, rec.Header().Get("Content-Length"))
}

func TestAgesReadShort(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{999 * time.Millisecond, "0s"},
		{59 * time.Second, "59s"},
		{60 * time.Second, "1m00s"},
		{3*time.Minute + 12*time.Second, "3m12s"},
		{time.Hour - time.Second, "59m59s"},
		{time.Hour, "1h00m"},
		{5*time.Hour + 7*time.Minute + 59*time.Second, "5h07m"},
		{24 * time.Hour, "1d00h"},
		{50*time.Hour + 30*time.Minute, "2d02h"},
	} {
		assert.Equal(t, tc.want, fmtAge(tc.d), tc.d.String())
	}
}

func TestMemberLinksOnlyToAHostAndPort(t *testing.T) {
	for addr, want := range map[string]string{
		"10.0.0.1:9640":       "http://10.0.0.1:9640/",
		"nsg-a.example:9640":  "http://nsg-a.example:9640/",
		"[::1]:9640":          "http://[::1]:9640/",
		"":                    "",
		"a/b:1":               "",
		"a:1?x":               "",
		"user@a:1":            "",
		"a b:1":               "",
		"javascript:alert(1)": "",
		"a:0":                 "",
		"a:01":                "",
		"a":                   "",
	} {
		assert.Equal(t, want, memberLink(addr), addr)
	}
}

// TestPageIsRenderedAtMostEveryPageMaxAge: a page asked again within
// pageMaxAge is the rendering already made (a loop of page requests costs
// answers, not renderings); once it is older, the next request renders the
// state then.
func TestPageIsRenderedAtMostEveryPageMaxAge(t *testing.T) {
	st := groupState()
	renders := 0
	h := New(testID, ha.StateFunc(func() ha.State { renders++; return st }), nil)
	now := pageNow
	h.h.now = func() time.Time { return now }
	first := do(t, h, http.MethodGet, "/").Body.String()
	require.Contains(t, first, `<dd id="node-leader">nsg-b</dd>`)

	st.Leader = "nsg-c"
	now = now.Add(pageMaxAge - time.Millisecond)
	assert.Equal(t, first, do(t, h, http.MethodGet, "/").Body.String(), "within pageMaxAge: the same rendering")
	assert.Equal(t, 1, renders)

	now = now.Add(time.Millisecond)
	assert.Contains(t, do(t, h, http.MethodGet, "/").Body.String(), `<dd id="node-leader">nsg-c</dd>`)
	assert.Equal(t, 2, renders)

	now = now.Add(-time.Second) // a clock stepped back: render again, never serve the future
	assert.Contains(t, do(t, h, http.MethodGet, "/").Body.String(), `<dd id="node-leader">nsg-c</dd>`)
	assert.Equal(t, 3, renders)
}
