package main

// hanode status's two views of each group: ZooKeeper's (the member nodes
// and the leader record, ha.ReadCluster) and each member's own answer to
// GET /v2/status. A member counts as active only when its own answer says
// it would ping ok; the verdict counts those per group.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/ping"
)

// stateUnreachable is the state shown for a member that gave no usable
// answer to GET /v2/status; every other state is the member's own word.
const stateUnreachable = "unreachable"

// The words of the ping endpoints, as balancers see them.
const (
	pingOK      = "ok"
	pingStandby = "standby"
)

// memberAnswer is a member's own answer to GET /v2/status: the part hanode
// status shows, in /v2/status's words.
type memberAnswer struct {
	// State is the member's phase verbatim (active, standby, waiting,
	// fencing, disconnected, unhealthy, ...), or "unreachable".
	State  string `json:"state"`
	Reason string `json:"reason"`
	// Error says why the member is unreachable ("" when it answered).
	Error string `json:"error,omitempty"`
	// Ping is what its ping endpoints answer: "ok" or "standby"; "" when
	// unreachable. Like ha.State.Active: active, its duty serving (if it
	// has one) and its STANDBY_CMD held (if it has one).
	Ping      string `json:"ping"`
	Name      string `json:"name"`
	HAID      string `json:"ha_id"`
	Leader    string `json:"leader"`
	Term      int64  `json:"term"`
	Since     string `json:"since"`
	LeaseLeft string `json:"lease_left"`
	// Health is the state of its health check (healthy, unhealthy,
	// unknown); null when it has none.
	Health *string `json:"health"`
	// Duty is its ACTIVE_CMD's state; null when it has none.
	Duty *string `json:"duty"`
}

// ok reports whether the member's own answer says it serves.
func (a memberAnswer) ok() bool { return a.Ping == pingOK }

// statusURLOf is the status URL of a published HTTP address, "" for none.
func statusURLOf(httpAddr string) string {
	if httpAddr == "" {
		return ""
	}
	return statusURL(httpAddr)
}

// askMembers asks every member of every group at once; answers[i][j] is
// groups[i].Members[j]'s. Each answer is bounded by client's timeout.
func askMembers(ctx context.Context, client *http.Client, groups []ha.GroupStatus) [][]memberAnswer {
	answers := make([][]memberAnswer, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		answers[i] = make([]memberAnswer, len(g.Members))
		for j, m := range g.Members {
			wg.Add(1)
			go func() {
				defer wg.Done()
				answers[i][j] = askMember(ctx, client, statusURLOf(m.HTTP))
			}()
		}
	}
	wg.Wait()
	return answers
}

// askMember gets one member's own answer.
func askMember(ctx context.Context, client *http.Client, url string) memberAnswer {
	down := func(why string) memberAnswer { return memberAnswer{State: stateUnreachable, Error: why} }
	if url == "" {
		return down("it published no HTTP address")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return down(err.Error())
	}
	resp, err := client.Do(req)
	if err != nil {
		return down(shortErr(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return down(fmt.Sprintf("%s answered HTTP %d", url, resp.StatusCode))
	}
	var st ping.Status
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&st); err != nil {
		return down(fmt.Sprintf("%s: not a hanode status: %v", url, err))
	}
	if st.State == "" {
		return down(fmt.Sprintf("%s: not a hanode status: no state", url))
	}
	a := memberAnswer{State: st.State, Reason: st.Reason, Name: st.Name, HAID: st.HAID, Leader: st.Leader,
		Term: st.Term, Since: st.Since, LeaseLeft: st.LeaseLeft, Ping: pingStandby}
	if st.Health != nil {
		a.Health = &st.Health.State
	}
	if st.Duty != nil {
		a.Duty = &st.Duty.State
	}
	if st.State == string(ha.PhaseActive) && (st.Duty == nil || st.Duty.Serving) && (st.Standby == nil || st.Standby.Held) {
		a.Ping = pingOK
	}
	return a
}

// statusReport is hanode status's whole output (the JSON document).
type statusReport struct {
	ZK      string `json:"zk"`
	Root    string `json:"root"`
	EnvFile string `json:"env_file"`
	// Groups are ZooKeeper's groups, each member with its own answer.
	Groups []groupReport `json:"groups"`
	// Jobs are the scheduled jobs' records, by group.
	Jobs map[string][]ha.JobEntry `json:"jobs"`
	// Verdict and Exit: "one active in every group" (0), else the worst
	// group's verdict: two or more active (2) before none (1).
	Verdict string `json:"verdict"`
	Exit    int    `json:"exit"`
}

// groupReport is one group: ZooKeeper's view (ha.GroupStatus: leader,
// term, since and state from the leader record, which is also the group's
// last transition), its members with their answers, and its verdict.
type groupReport struct {
	ha.GroupStatus
	Members []memberReport `json:"members"`
	// Actives are the members whose own answer pings ok.
	Actives []string `json:"actives"`
	// Verdict is "one active", "no active" or "N active".
	Verdict string `json:"verdict"`
}

// memberReport is one member: ZooKeeper's view (ha.Member, "leader" true
// when the leader record names it), its own answer, and where they
// disagree.
type memberReport struct {
	ha.Member
	Reported      memberAnswer `json:"reported"`
	Disagreements []string     `json:"disagreements"`
}

// buildReport joins ZooKeeper's groups with the members' answers and
// judges each group.
func buildReport(groups []ha.GroupStatus, answers [][]memberAnswer) statusReport {
	rep := statusReport{Groups: make([]groupReport, 0, len(groups)), Verdict: "one active in every group", Exit: exitOneActive}
	var none, several []string
	for i, g := range groups {
		gr := groupReport{GroupStatus: g, Members: make([]memberReport, 0, len(g.Members)), Actives: []string{}}
		for j, m := range g.Members {
			a := answers[i][j]
			gr.Members = append(gr.Members, memberReport{Member: m, Reported: a, Disagreements: disagreements(g, m, a)})
			if a.ok() {
				gr.Actives = append(gr.Actives, m.Name)
			}
		}
		switch n := len(gr.Actives); {
		case n == 1:
			gr.Verdict = "one active"
		case n == 0:
			gr.Verdict = "no active"
			none = append(none, g.HAID)
		default:
			gr.Verdict = fmt.Sprintf("%d active", n)
			several = append(several, fmt.Sprintf("%s (%s)", g.HAID, strings.Join(gr.Actives, ", ")))
		}
		rep.Groups = append(rep.Groups, gr)
	}
	switch {
	case len(several) > 0:
		rep.Exit, rep.Verdict = exitSeveralActives, "more than one active in "+strings.Join(several, "; ")
	case len(none) > 0:
		rep.Exit, rep.Verdict = exitNoActive, "no active in "+strings.Join(none, ", ")
	}
	return rep
}

// disagreements lists where member m's own answer a contradicts
// ZooKeeper's view of group g.
func disagreements(g ha.GroupStatus, m ha.Member, a memberAnswer) []string {
	out := []string{}
	switch {
	case m.Leader && a.State == stateUnreachable:
		out = append(out, "ZooKeeper names it leader, but it does not answer")
	case m.Leader && a.State != string(ha.PhaseActive):
		out = append(out, "ZooKeeper names it leader, but it reports "+a.State)
	case m.Leader && !a.ok():
		out = append(out, "ZooKeeper names it leader and it reports active, but it pings standby: "+notServing(a))
	case !m.Leader && a.ok() && g.Leader == "":
		out = append(out, "it answers active, but ZooKeeper names no leader")
	case !m.Leader && a.ok():
		out = append(out, "it answers active, but ZooKeeper names "+g.Leader)
	}
	if a.ok() && m.Leader && a.Term != g.Term {
		out = append(out, fmt.Sprintf("it answers active in term %d, but ZooKeeper's leader record is term %d", a.Term, g.Term))
	}
	if a.Name != "" && a.Name != m.Name {
		out = append(out, fmt.Sprintf("its address answers as %q, not %q", a.Name, m.Name))
	}
	if a.HAID != "" && g.HAID != "" && a.HAID != g.HAID {
		out = append(out, fmt.Sprintf("it answers for group %q", a.HAID))
	}
	return out
}

// notServing says why an active member pings standby.
func notServing(a memberAnswer) string {
	if a.Duty != nil {
		return "its duty is " + *a.Duty
	}
	return "its STANDBY_CMD is not confirmed stopped"
}

// printStatus prints the report as tables, one per group, then the
// verdict.
func printStatus(out io.Writer, rep statusReport, now time.Time) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, g := range rep.Groups {
		fmt.Fprintf(w, "HA_ID %s  role %s  region %s  leader %s  %s\n", g.HAID, g.Role, g.Region, leaderText(g, now), g.Verdict)
		if p := g.Paused; p != nil {
			fmt.Fprintf(w, "  PAUSED by %s %s: %s (no takeover until hanode resume)\n", p.By, sinceAgo(p.At.UTC().Format(time.RFC3339Nano), now),
				dash(p.Reason))
		}
		fmt.Fprintln(w, "  \tSEQ\tNAME\tSTATE\tPING\tTERM\tSINCE\tLEASE LEFT\tHEALTH\tHOST\tHTTP")
		for _, m := range g.Members {
			a := m.Reported
			mark := ""
			if len(m.Disagreements) > 0 {
				mark = "!"
			}
			fmt.Fprintf(w, "  %s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", mark, m.Seq, m.Name, a.State, dash(a.Ping),
				termText(a), sinceAgo(a.Since, now), leaseText(a), healthText(a), m.Host, dash(m.HTTP))
		}
		for _, m := range g.Members {
			for _, d := range m.Disagreements {
				fmt.Fprintf(w, "  ! %s: %s\n", m.Name, d)
			}
			if a := m.Reported; a.Error != "" {
				fmt.Fprintf(w, "  %s is unreachable: %s\n", m.Name, a.Error)
			} else if a.State != string(ha.PhaseActive) && a.State != string(ha.PhaseStandby) && a.Reason != "" {
				fmt.Fprintf(w, "  %s is %s: %s\n", m.Name, a.State, a.Reason)
			}
		}
		for _, ig := range g.Ignored {
			fmt.Fprintf(w, "  ignored %s: %s\n", ig.Znode, ig.Reason)
		}
		for _, p := range g.Problems {
			fmt.Fprintf(w, "  problem: %s\n", p)
		}
		printJobs(w, rep.Jobs[g.HAID])
	}
	fmt.Fprintf(w, "verdict: %s (exit %d)\n", rep.Verdict, rep.Exit)
	return w.Flush()
}

// leaderText is ZooKeeper's leader record: who, the term, and the group's
// last transition (the record's state and since).
func leaderText(g groupReport, now time.Time) string {
	if g.Leader == "" {
		if g.Term == 0 {
			return "(none)"
		}
		return fmt.Sprintf("(none; last term %d)", g.Term)
	}
	s := fmt.Sprintf("%s (term %d", g.Leader, g.Term)
	if g.State != "" {
		s += ", " + g.State
	}
	if !g.Since.IsZero() {
		s += fmt.Sprintf(" since %s, %s ago", g.Since.UTC().Format(time.RFC3339), now.Sub(g.Since).Round(time.Second))
	}
	return s + ")"
}

func termText(a memberAnswer) string {
	if a.State == stateUnreachable {
		return "-"
	}
	return fmt.Sprint(a.Term)
}

// sinceAgo shows an RFC 3339 instant as how long ago it was.
func sinceAgo(since string, now time.Time) string {
	t, err := time.Parse(time.RFC3339Nano, since)
	if err != nil {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

// leaseText shows the lease left to a tenth of a second (the JSON keeps
// the member's own value).
func leaseText(a memberAnswer) string {
	d, err := time.ParseDuration(a.LeaseLeft)
	switch {
	case err != nil && a.LeaseLeft != "":
		return a.LeaseLeft
	case err != nil || d == 0:
		return "-"
	}
	return d.Round(100 * time.Millisecond).String()
}

func healthText(a memberAnswer) string {
	if a.Health == nil {
		return "-"
	}
	return *a.Health
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
