package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
	"github.com/hanode/hanode/ping"
)

// pageView is what a person sees on a node's status page, read from the
// rendered page (innerText: what is on screen, after CSS).
type pageView struct {
	Name    string       `json:"name"`
	Phase   string       `json:"phase"`
	Leader  string       `json:"leader"`
	Term    string       `json:"term"`
	Lease   string       `json:"lease"`
	Conn    string       `json:"conn"`
	Members []pageMember `json:"members"`
	Marker  int          `json:"marker"`
	Scroll  int          `json:"scrollWidth"`
	Wide    []string     `json:"wide"` // elements reaching past the viewport
	Title   string       `json:"title"`
}

// pageMember is one row of the members list.
type pageMember struct {
	Name  string `json:"name"`
	Pills string `json:"pills"`
}

// leaders are the members whose row says "leader".
func (v pageView) leaders() []string {
	var out []string
	for _, m := range v.Members {
		if slices.Contains(strings.Fields(strings.ToLower(m.Pills)), "leader") {
			out = append(out, m.Name)
		}
	}
	return out
}

func (v pageView) String() string {
	var ms []string
	for _, m := range v.Members {
		ms = append(ms, m.Name+" ["+strings.ReplaceAll(m.Pills, "\n", " ")+"]")
	}
	return fmt.Sprintf("%s %s, leader %q, term %q, lease %q, stream %q, members %s",
		v.Name, v.Phase, v.Leader, v.Term, v.Lease, v.Conn, strings.Join(ms, ", "))
}

// termOf is the term the page shows, 0 if none.
func (v pageView) termOf() int64 {
	n, _ := strconv.ParseInt(v.Term, 10, 64)
	return n
}

// readPage reads what the page in tb shows.
const readPage = `(() => {
  const text = (root, sel) => { const e = root.querySelector(sel); return e ? e.innerText.trim() : ""; };
  const conn = document.getElementById("conn");
  const vw = document.documentElement.clientWidth;
  return {
    name: text(document, "#node-name"),
    phase: text(document, "#node-phase").toLowerCase(),
    leader: text(document, "#node-leader"),
    term: text(document, "#node-term"),
    lease: text(document, "#node-lease"),
    conn: conn ? conn.getAttribute("data-state") : "",
    members: [...document.querySelectorAll("li.member")].map(li => ({name: text(li, ".mname"), pills: text(li, ".pills")})),
    marker: window.hanodeTestMarker || 0,
    scrollWidth: document.documentElement.scrollWidth,
    wide: [...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > vw + 0.5)
      .map(e => e.tagName.toLowerCase() + (e.className ? "." + e.className : "")).slice(0, 10),
    title: document.title,
  };
})()`

// waitPage polls the page in tb until cond holds, failing the test after
// timeout with what the page showed last. It returns the view and how long
// it took.
func waitPage(t *testing.T, tb *tab, timeout time.Duration, what string, cond func(pageView) bool) (pageView, time.Duration) {
	t.Helper()
	var v pageView
	var lastErr error
	start := time.Now()
	err := testwait.Poll(timeout, 20*time.Millisecond, func() bool {
		v, lastErr = eval[pageView](tb, readPage)
		return lastErr == nil && cond(v)
	})
	if err != nil {
		t.Fatalf("%s: the page did not show %s within %v; it shows: %v (error %v)", tb.name, what, timeout, v, lastErr)
	}
	return v, time.Since(start)
}

// TestStatusPageFollowsFailoversLiveInABrowser loads a standby's status page
// in headless Chromium and checks what a person sees: three members, the
// leader's row marked "leader", the leader and term the node reports, a
// live stream. The leader is stopped (SIGTERM): without a reload, the page
// shows the next member leading, with a larger term, within a session
// timeout. That leader is killed (SIGKILL): the page shows its own node
// leading, with a lease, within W (4.08 s after the last extension) plus a
// session timeout. The page also fits a 375 px phone screen without
// horizontal scrolling, and shows the group without JavaScript. Stopped
// with its page open, the node exits at once and the page says it lost it.
// No page reports a script error or a refusal by its security policy.
func TestStatusPageFollowsFailoversLiveInABrowser(t *testing.T) {
	path := findBrowser(t)
	zk := zktest.Start(t)
	nodes := nodetest.StartGroup(t, nodetest.GroupOptions{ZK: zk.Addr})
	chk := nodetest.NewChecker(t, nodes...)
	first := chk.Node(chk.WaitSingleLeader(electionTimeout))

	// The members in line: the leader, the next, and the watcher, whose
	// page is loaded: it first sees others take over, then leads itself.
	st, err := first.WaitStatus(10*time.Second, func(st ping.Status) bool { return len(st.Members) == 3 })
	if err != nil {
		t.Fatal(err)
	}
	next, watcher := chk.Node(st.Members[1].Name), chk.Node(st.Members[2].Name)
	ws, err := watcher.WaitStatus(10*time.Second, func(s ping.Status) bool {
		return s.State == "standby" && s.Leader == first.Name() && len(s.Members) == 3 && s.Term > 0
	})
	if err != nil {
		t.Fatal(err)
	}
	term1 := ws.Term

	browser := startBrowser(t, path)
	live := newTab(t, browser, "live page", false)
	live.do(chromedp.Navigate(watcher.URL("/")))
	v, _ := waitPage(t, live, 10*time.Second, "the group led by "+first.Name(), func(v pageView) bool {
		return v.Conn == "live" && len(v.Members) == 3 && slices.Equal(v.leaders(), []string{first.Name()})
	})
	if v.Name != watcher.Name() || v.Phase != "standby" || v.Leader != first.Name() || v.termOf() != term1 {
		t.Errorf("page shows %v; want %s standby, leader %s, term %d", v, watcher, first, term1)
	}
	for _, m := range v.Members {
		if want := m.Name == watcher.Name(); strings.Contains(m.Pills, "this node") != want {
			t.Errorf("member %s marked this node: %v, want %v", m.Name, !want, want)
		}
	}
	if _, err := eval[int](live, `window.hanodeTestMarker = 1`); err != nil {
		t.Fatal(err)
	}
	live.screenshot("page-standby")

	// A phone: 375 px wide, no horizontal scrolling.
	phone := newTab(t, browser, "375 px page", false)
	phone.do(chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		chromedp.Navigate(watcher.URL("/")))
	v, _ = waitPage(t, phone, 10*time.Second, "three members, live", func(v pageView) bool {
		return v.Conn == "live" && len(v.Members) == 3
	})
	if v.Scroll > 375 || len(v.Wide) > 0 {
		t.Errorf("at 375 px the page is %d px wide; too wide: %v", v.Scroll, v.Wide)
	}
	phone.screenshot("page-375px")

	// Without JavaScript: the server's render alone.
	static := newTab(t, browser, "page without JavaScript", true)
	static.do(chromedp.Navigate(watcher.URL("/")))
	v, _ = waitPage(t, static, 5*time.Second, "the group", func(v pageView) bool { return len(v.Members) == 3 })
	if v.Conn != "static" || v.Name != watcher.Name() || v.Phase != "standby" || v.Leader != first.Name() ||
		!slices.Equal(v.leaders(), []string{first.Name()}) || v.termOf() != term1 {
		t.Errorf("without JavaScript the page shows %v; want %s standby, leader %s (marked), term %d, no stream",
			v, watcher, first, term1)
	}
	static.screenshot("page-nojs")

	// The leader stops: the next member takes over in milliseconds.
	first.Term()
	v, took := waitPage(t, live, nodetest.DefaultSessionTimeout, next.Name()+" leading", func(v pageView) bool {
		return v.Leader == next.Name() && slices.Equal(v.leaders(), []string{next.Name()}) && len(v.Members) == 2 &&
			v.termOf() > term1
	})
	t.Logf("after SIGTERM to %s the page showed %s leading in %v", first, next, took)
	if v.Marker != 1 || v.Phase != "standby" || v.Conn != "live" {
		t.Errorf("page shows %v (marker %d): want the same page, live, its node standby", v, v.Marker)
	}
	term2 := v.termOf()
	live.screenshot("page-after-stop")

	// That leader crashes: the watcher is last in line and takes over.
	next.Kill()
	w := time.Duration(float64(nodetest.DefaultSessionTimeout) * 1.0202) // README: the takeover bound after a crash
	crashBound := w + nodetest.DefaultSessionTimeout
	v, took = waitPage(t, live, crashBound, watcher.Name()+" leading", func(v pageView) bool {
		return v.Phase == "active" && v.Leader == watcher.Name() && slices.Equal(v.leaders(), []string{watcher.Name()}) &&
			v.termOf() > term2
	})
	t.Logf("after SIGKILL of %s the page showed its own node leading in %v", next, took)
	if v.Marker != 1 || !strings.HasSuffix(v.Lease, " s") || !strings.Contains(v.Title, watcher.Name()+" · active") {
		t.Errorf("page shows %v (marker %d, title %q): want the same page with a lease left", v, v.Marker, v.Title)
	}
	live.screenshot("page-active")

	// The watcher stops with its page open: the page does not hold the
	// exit, and says it lost the node.
	stopped := watcher.Term()
	if code := watcher.WaitExit(exitBound); code != 0 {
		t.Errorf("%s exited %d with its status page open, want 0", watcher, code)
	}
	if took := time.Since(stopped); took >= ping.ShutdownTimeout {
		t.Errorf("%s took %v to exit with its status page open: the page held the shutdown", watcher, took)
	}
	waitPage(t, live, 5*time.Second, "the stream lost", func(v pageView) bool { return v.Conn == "lost" })

	for _, tb := range []*tab{live, phone, static} {
		tb.checkNoErrors()
	}
}
