package ping

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hanode/hanode/ha"
)

// The status page.
//
// GET / answers one HTML page that a person reads: this node, its group's
// members as this node last listed them, who leads, the term, since when,
// the lease left, the duty, and what an operator must repair. The server
// renders all of it with html/template, so the page is complete without
// JavaScript; a small embedded script only keeps it current, replacing the
// part below the header with the fragments the live stream sends (live.go).
// CSS and script are embedded in the binary and inlined in the page, which
// loads nothing else: its Content-Security-Policy allows exactly those two
// inline blocks (by hash) and connections to its own origin.
//
// The page shows what /v2/status shows, less the ZooKeeper session id, and
// nothing more: no configuration, command line or environment.
//
// Sections are cards that wrap (two side by side on a wide screen, one
// under the other on a phone), each a template of its own in
// page/page.html fed by one field of pageView. A later feature
// (a pause, a duty cycle, a node's recent transitions, other groups of the
// cluster) adds a field to pageView and a card to the "live" template; the
// stream and the script need no change.

//go:embed page/page.html page/page.css page/page.js
var pageFiles embed.FS

// PathPage is the status page's route.
const PathPage = "/"

// pageAssets are the parsed template, its inline assets and the
// Content-Security-Policy that admits exactly them.
type pageAssets struct {
	tmpl *template.Template
	css  template.CSS
	js   template.JS
	csp  string
}

var assets = sync.OnceValue(loadPage)

func loadPage() pageAssets {
	read := func(name string) string {
		b, err := pageFiles.ReadFile(name)
		if err != nil {
			panic("ping: embedded " + name + ": " + err.Error()) // unreachable: embedded above
		}
		return string(b)
	}
	css, js := read("page/page.css"), read("page/page.js")
	tmpl := template.Must(template.New("page").Parse(read("page/page.html")))
	return pageAssets{
		tmpl: tmpl,
		css:  template.CSS(css),
		js:   template.JS(js),
		csp: "default-src 'none'; script-src '" + hash(js) + "'; style-src '" + hash(css) + "'; " +
			"img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	}
}

// hash is a CSP source for an inline block with exactly the text s.
func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// pageView is what the page template reads: everything already formatted,
// so the template only lays it out.
type pageView struct {
	Node  nodeView
	Group *groupView // nil for a standalone node
	// Ignored lists znodes under members/ that take no part.
	Ignored []ha.Ignored
	// Problem is what an operator must repair, "" if nothing.
	Problem string
	// Title is the browser tab's: the node, its phase and its leader.
	Title string
	// CSS and JS are the inline assets (the whole page only).
	CSS template.CSS
	JS  template.JS
}

// nodeView is this node.
type nodeView struct {
	Name, Role, Region, HAID, NetID, Version string
	// Phase is the ha phase verbatim; Tone its colour (see tone).
	Phase, Tone string
	// Answer is what the ping routes answer: "ok" or "standby".
	Answer string
	Reason string
	Cause  string
	Leader string
	Term   int64
	Since  timeView
	// Lease is the lease left ("2.9 s") while active, else "".
	Lease string
	// ZK is the ZooKeeper session in words.
	ZK   string
	Duty *dutyView
}

// timeView is an instant shown as a UTC clock reading and an age the
// script keeps counting (AgeMS is its age when rendered).
type timeView struct {
	UTC, ISO, Age string
	AgeMS         int64
}

// dutyView is the node's duty.
type dutyView struct {
	State, Tone string
	// Down is set when the node leads but its duty does not serve, so
	// balancers see a standby.
	Down        bool
	Restarts    int
	LastExit    string
	LastExitAt  timeView
	Containment string
}

// groupView is this node's group as it last listed it.
type groupView struct {
	ID      string
	Members []memberView
	// LeaderKnown is false when no member holds the lease as far as this
	// node knows.
	LeaderKnown bool
}

// memberView is one member of the group.
type memberView struct {
	Name, Host, HTTP string
	// Link is the member's status page, "" when its address is unknown.
	Link    string
	Seq     int64
	Leader  bool
	Self    bool
	Started timeView
}

// newPageView builds the page's view of one state at now.
func newPageView(id Identity, st ha.State, now time.Time) pageView {
	n := nodeView{
		Name: id.Name, Role: id.Role, Region: id.Region, HAID: id.HAID, NetID: id.NetID, Version: id.Version,
		Phase: string(st.Phase), Tone: tone(st.Phase), Answer: BodyStandby,
		Reason: st.Reason, Cause: st.Cause, Leader: st.Leader, Term: st.Term,
		Since: newTimeView(st.Since, now),
	}
	if st.Active() {
		n.Answer = BodyOK
	}
	if st.Phase == "" {
		n.Phase = "unknown"
	}
	if st.Phase == ha.PhaseActive {
		n.Lease = fmt.Sprintf("%.1f s", st.LeaseLeft.Seconds())
	}
	switch {
	case id.HAID == "":
		n.ZK = "not used"
	case st.ZK.Connected:
		n.ZK = "connected"
	case st.ZK.State != "":
		n.ZK = "not connected (" + strings.ToLower(strings.TrimPrefix(st.ZK.State, "State")) + ")"
	default:
		n.ZK = "not connected"
	}
	if d := st.Duty; d != nil {
		n.Duty = &dutyView{State: d.State, Tone: dutyTone(d), Down: st.Phase == ha.PhaseActive && !d.Serving, Restarts: d.Restarts,
			LastExit: d.LastExit, LastExitAt: newTimeView(d.LastExitAt, now), Containment: d.Containment}
	}
	v := pageView{Node: n, Ignored: st.Ignored, Problem: st.Problem}
	if id.HAID != "" {
		g := &groupView{ID: id.HAID, Members: make([]memberView, 0, len(st.Members))}
		for _, m := range st.Members {
			// The member list is as of this node's last listing, which a
			// new leader does not repeat after its claim; the leader's
			// name is current. The row agrees with the name.
			leads := m.Leader
			if st.Leader != "" {
				leads = m.Name == st.Leader
			}
			mv := memberView{Name: m.Name, Host: m.Host, HTTP: m.HTTP, Link: memberLink(m.HTTP), Seq: m.Seq,
				Leader: leads, Self: m.Name == id.Name, Started: newTimeView(m.Started, now)}
			g.LeaderKnown = g.LeaderKnown || leads
			g.Members = append(g.Members, mv)
		}
		v.Group = g
	}
	v.Title = id.Name + " · " + n.Phase
	if st.Leader != "" && st.Leader != id.Name {
		v.Title += " · leader " + st.Leader
	}
	return v
}

// tone is a phase's colour on the page: ok (active), standby, busy (on
// its way somewhere), bad (no healthy session) or off (stopped, unknown).
func tone(p ha.Phase) string {
	switch p {
	case ha.PhaseActive:
		return "ok"
	case ha.PhaseStandby:
		return "standby"
	case ha.PhaseStarting, ha.PhaseWaiting, ha.PhaseFencing:
		return "busy"
	case ha.PhaseDisconnected:
		return "bad"
	}
	return "off"
}

// dutyTone is a duty's colour: ok while it serves, bad once it failed, busy
// while it (re)starts, off when stopped.
func dutyTone(d *ha.DutyState) string {
	switch {
	case d.State == "failed":
		return "bad"
	case d.State == "stopped":
		return "off"
	case d.Serving && d.State == "running":
		return "ok"
	}
	return "busy"
}

// newTimeView shows t at now; the zero View for the zero time.
func newTimeView(t, now time.Time) timeView {
	if t.IsZero() {
		return timeView{}
	}
	age := max(now.Sub(t), 0)
	return timeView{UTC: t.UTC().Format("2006-01-02 15:04:05 UTC"), ISO: t.UTC().Format(time.RFC3339Nano),
		Age: fmtAge(age), AgeMS: age.Milliseconds()}
}

// fmtAge is a short age: "42s", "3m12s", "5h07m", "2d04h". page.js's age
// formats the same way.
func fmtAge(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
}

// memberLink is the status page of a member that advertises addr, or ""
// unless addr is a plain "host:port".
func memberLink(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || strings.ContainsAny(host, "/?#@ \\%") {
		return ""
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 || strconv.Itoa(n) != port {
		return ""
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// renderPage writes the whole page for st to buf.
func renderPage(buf *bytes.Buffer, id Identity, st ha.State, now time.Time) error {
	a := assets()
	v := newPageView(id, st, now)
	v.CSS, v.JS = a.css, a.js
	return a.tmpl.ExecuteTemplate(buf, "page", v)
}

// renderLive writes the part of the page the stream replaces.
func renderLive(buf *bytes.Buffer, id Identity, st ha.State, now time.Time) error {
	return assets().tmpl.ExecuteTemplate(buf, "live", newPageView(id, st, now))
}

// pageMaxAge is how old a page answered from the last rendering may be: a
// person cannot tell a tenth of a second, and the live stream carries every
// change as it happens. A page in a loop then costs the node its answer,
// not a rendering (BENCHMARKS.md, "Scrapes and the status page under load").
const pageMaxAge = 100 * time.Millisecond

// pageCache is the last rendering of the status page.
type pageCache struct {
	mu   sync.Mutex
	at   time.Time // when it was rendered; zero: never
	body []byte    // never changed once stored: readers keep the slice
}

// page answers the status page.
func (h *handler) page(c echo.Context) error {
	body, err := h.pageBody(h.now())
	if err != nil {
		return err
	}
	pageHeaders(c.Response().Header())
	return write(c, http.StatusOK, echo.MIMETextHTMLCharsetUTF8, body)
}

// pageBody is the page as rendered at most pageMaxAge before now.
func (h *handler) pageBody(now time.Time) ([]byte, error) {
	pc := &h.pageCache
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if !pc.at.IsZero() && now.Sub(pc.at) < pageMaxAge && !now.Before(pc.at) {
		return pc.body, nil
	}
	var buf bytes.Buffer
	buf.Grow(len(pc.body))
	if err := renderPage(&buf, h.id, h.src.State(), now); err != nil {
		return nil, err
	}
	pc.at, pc.body = now, buf.Bytes()
	return pc.body, nil
}

// pageHeaders are the status page's security headers.
func pageHeaders(hdr http.Header) {
	hdr.Set("Content-Security-Policy", assets().csp)
	hdr.Set(echo.HeaderXContentTypeOptions, "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set(echo.HeaderXFrameOptions, "DENY")
}
