package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/ping"
)

func newWatchCmd() *cobra.Command {
	var (
		o         watchOptions
		zkConnect string
		root      string
		haID      string
		duration  time.Duration
	)
	af := &accessFlags{}
	cmd := &cobra.Command{
		Use:   "watch [URL...]",
		Short: "Poll every member's /v2/status and print each state change as it is seen",
		Long: `watch polls the /v2/status of every member of the HA groups in ZooKeeper
(--zk, --zk-root, --ha-id; members are looked up again every second, and a
member once seen is watched until watch ends), or of the members given as
URLs (http://host:port or host:port). It prints one line per change of a
member's state, stamped with the time the answer arrived, and, when a member
becomes active, how long no member had answered active before: the takeover
as a client sees it, to within the polling interval.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			if o.interval <= 0 {
				return usageError{fmt.Errorf("--interval %s must be positive", o.interval)}
			}
			if len(args) > 0 {
				if cmd.Flags().Changed("zk") || cmd.Flags().Changed("ha-id") {
					return usageError{errors.New("give URLs or --zk (and --ha-id), not both")}
				}
				urls := make([]string, len(args))
				for i, a := range args {
					urls[i] = statusURL(a)
				}
				o.members = func(context.Context) ([]string, error) { return urls, nil }
			} else {
				servers, chroot, err := splitConnect(zkConnect)
				if err != nil {
					return usageError{err}
				}
				access, err := af.access()
				if err != nil {
					return err
				}
				o.members = zkMembers(servers, chroot+root, haID, access)
				o.refresh = time.Second
			}
			err := watch(ctx, cmd.OutOrStdout(), o)
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&zkConnect, "zk", "127.0.0.1:2181", "ZooKeeper connect string host:port[,host:port...][/chroot]")
	f.StringVar(&root, "zk-root", "/hanode", "hanode's root znode (ZK_ROOT)")
	f.StringVar(&haID, "ha-id", "", "watch only this HA group (default: every group)")
	f.DurationVar(&o.interval, "interval", 20*time.Millisecond, "how often each member is asked")
	f.DurationVar(&duration, "for", 0, "stop after this long (default: until interrupted)")
	f.BoolVar(&o.asJSON, "json", false, "print one JSON object per change")
	af.bind(f)
	return cmd
}

// watchOptions configure watch.
type watchOptions struct {
	// members returns the status URLs to watch; called at the start and
	// every refresh (0: once).
	members  func(context.Context) ([]string, error)
	refresh  time.Duration
	interval time.Duration
	asJSON   bool
}

// statusURL turns "host:port" or "http://host:port[/]" into the status URL.
func statusURL(s string) string {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	return strings.TrimRight(s, "/") + "/v2/status"
}

// zkMembers lists the status URLs of the members published in ZooKeeper.
func zkMembers(servers []string, root, haID string, access ha.Access) func(context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		conn, err := ha.DialAccess(ctx, servers, 10*time.Second, nil, access)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		groups, err := ha.ReadCluster(conn, root)
		if err != nil {
			return nil, err
		}
		var urls []string
		for _, g := range groups {
			if haID != "" && g.HAID != haID {
				continue
			}
			for _, m := range g.Members {
				if m.HTTP != "" {
					urls = append(urls, statusURL(m.HTTP))
				}
			}
		}
		return urls, nil
	}
}

// observation is one answer (or its absence) from a member, stamped when it
// arrived.
type observation struct {
	url    string
	at     time.Time
	name   string // the member's own name; the URL's host when it did not answer
	state  string // its state, "active" only when it would ping ok; "down" when it did not answer
	term   int64
	leader string
	detail string // why down, or why an active node is not ok
}

// active reports whether the member answered as the active one.
func (o observation) active() bool { return o.state == "active" }

// watch polls the members until ctx ends and prints every change.
func watch(ctx context.Context, out io.Writer, o watchOptions) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	obs := make(chan observation, 64)
	polled := map[string]bool{}
	add := func() error {
		urls, err := o.members(ctx)
		if err != nil {
			return err
		}
		sort.Strings(urls)
		for _, u := range urls {
			if !polled[u] {
				polled[u] = true
				go poll(ctx, u, o.interval, obs)
			}
		}
		return nil
	}
	if err := add(); err != nil {
		return err
	}
	if len(polled) == 0 && o.refresh == 0 {
		return usageError{errors.New("no member to watch")}
	}
	var refresh <-chan time.Time
	if o.refresh > 0 {
		t := time.NewTicker(o.refresh)
		defer t.Stop()
		refresh = t.C
	}
	p := printer{out: out, asJSON: o.asJSON, interval: o.interval, last: map[string]observation{}, lastActive: map[string]time.Time{}}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-refresh:
			if err := add(); err != nil && ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "hanode watch: cannot list the members: %v\n", err)
			}
		case ob := <-obs:
			p.see(ob)
		}
	}
}

// poll asks one member every interval and sends each answer.
func poll(ctx context.Context, url string, interval time.Duration, obs chan<- observation) {
	client := &http.Client{Timeout: max(10*interval, time.Second)}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ob := ask(ctx, client, url)
		select {
		case obs <- ob:
		case <-ctx.Done():
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// ask gets one status and stamps it on arrival.
func ask(ctx context.Context, client *http.Client, url string) observation {
	ob := observation{url: url, name: hostOf(url), state: "down"}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		ob.at, ob.detail = time.Now(), err.Error()
		return ob
	}
	resp, err := client.Do(req)
	if err != nil {
		ob.at, ob.detail = time.Now(), shortErr(err)
		return ob
	}
	defer resp.Body.Close()
	var st ping.Status
	err = json.NewDecoder(resp.Body).Decode(&st)
	ob.at = time.Now()
	if err != nil || resp.StatusCode != http.StatusOK {
		ob.detail = fmt.Sprintf("HTTP %d: %v", resp.StatusCode, err)
		return ob
	}
	ob.name, ob.state, ob.term, ob.leader = st.Name, st.State, st.Term, st.Leader
	if st.State == "active" && st.Duty != nil && !st.Duty.Serving {
		ob.state, ob.detail = "active-duty-down", "the duty is "+st.Duty.State
	}
	if ob.state != "active" && st.Reason != "" && ob.detail == "" {
		ob.detail = st.Reason
	}
	return ob
}

func hostOf(url string) string {
	s := strings.TrimSuffix(url, "/v2/status")
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	return s
}

// shortErr drops the request's own words from a client error.
func shortErr(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}

// printer prints changes; it is owned by watch's goroutine.
type printer struct {
	out        io.Writer
	asJSON     bool
	interval   time.Duration
	last       map[string]observation // by URL
	lastActive map[string]time.Time   // by URL: the latest answer "active"
	activeURL  string                 // the member that became active last
}

// see prints ob if it changes what its member last answered. When a member
// becomes active, it also prints the takeover: how long before the
// previous active member had last answered active (at most that long no
// member did, give or take one polling interval), or that both did at once.
func (p *printer) see(ob observation) {
	if p.lastActive == nil {
		p.lastActive = map[string]time.Time{}
	}
	if ob.active() {
		defer func() { p.lastActive[ob.url] = ob.at }()
	}
	prev, seen := p.last[ob.url]
	if seen && prev.state == ob.state && prev.term == ob.term && prev.leader == ob.leader {
		return
	}
	if seen && ob.state == "down" {
		ob.name = prev.name // a member that stopped answering keeps its name
	}
	p.last[ob.url] = ob
	from := "(new)"
	if seen {
		from = prev.state
	}
	var takeover string
	if ob.active() && (!seen || !prev.active()) {
		if before, ok := p.lastActive[p.activeURL]; ok && p.activeURL != ob.url {
			other := p.last[p.activeURL].name
			if gap := ob.at.Sub(before); gap >= 0 {
				takeover = fmt.Sprintf("%s answered active %.1f ms after %s last did (polled every %s)",
					ob.name, float64(gap.Microseconds())/1000, other, p.interval)
			} else {
				takeover = fmt.Sprintf("%s answered active while %s still did (%.1f ms apart)",
					ob.name, other, float64(-gap.Microseconds())/1000)
			}
		}
		p.activeURL = ob.url
	}
	stamp := ob.at.UTC().Format("2006-01-02T15:04:05.000000Z")
	if p.asJSON {
		rec := map[string]any{"at": ob.at.UTC().Format(time.RFC3339Nano), "member": ob.name, "url": ob.url,
			"from": from, "to": ob.state, "term": ob.term, "leader": ob.leader, "detail": ob.detail}
		if takeover != "" {
			rec["takeover"] = takeover
		}
		b, _ := json.Marshal(rec)
		fmt.Fprintf(p.out, "%s\n", b)
		return
	}
	line := fmt.Sprintf("%s  %-12s %s -> %s  term=%d leader=%s", stamp, ob.name, from, ob.state, ob.term, orNone(ob.leader))
	if ob.detail != "" {
		line += " (" + ob.detail + ")"
	}
	fmt.Fprintln(p.out, line)
	if takeover != "" {
		fmt.Fprintf(p.out, "%s  takeover: %s\n", stamp, takeover)
	}
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
