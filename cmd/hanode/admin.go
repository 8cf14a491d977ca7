package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hanode/hanode/conf"
	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/ping"
)

// The admin commands ask this host's node, through the admin API it serves
// (ping/admin.go): one implementation for the CLI and HTTP. They read the
// node's env file, so an operator types neither an address nor a token; how
// a request reaches the node (the admin socket, or HTTP with the token) is
// admintransport.go's.

func newPauseCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "pause",
		Short: "Pause the group's failover (maintenance): no member takes over until hanode resume",
		Long: `pause puts this node's HA group in maintenance mode: while it is paused no
member takes the lease over from another, so a leader that dies (or is
stopped) is not replaced; the leader keeps its duty while its lease holds.
Every member's /v2/status says "paused". hanode resume ends it.

It asks this host's node over its admin socket (ADMIN_SOCKET, no token;
as root or the node's user) when that exists, else over HTTP_LISTEN with
ADMIN_TOKEN_FILE's token, all read from the env file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			return adminCall(cmd, cfg, ping.PathAdminPause, reason)
		},
	}
	addConfigFlags(cmd.Flags())
	addSocketFlag(cmd.Flags())
	cmd.Flags().StringVar(&reason, "reason", "", "why, shown in every member's status")
	return cmd
}

func newResumeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "resume",
		Short: "Resume the group's failover after hanode pause",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			return adminCall(cmd, cfg, ping.PathAdminResume, "")
		},
	}
	addConfigFlags(cmd.Flags())
	addSocketFlag(cmd.Flags())
	return cmd
}

// localAddress is where this host reaches a node listening on listen: the
// loopback address when it listens on every address.
func localAddress(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func newHistoryCmd() *cobra.Command {
	var (
		limit  int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "history",
		Short: "Print the group's leadership changes: when, from, to, term and why",
		Long: `history prints this node's HA group's history, oldest first: every change
of leader (its cause: first leader, graceful, switchover, health, preemption,
duty lost, crash takeover) and every pause and resume, the last 1000 kept in
ZooKeeper. It asks this host's node over its admin socket (ADMIN_SOCKET)
when that exists, else over HTTP_LISTEN, both read from the env file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
			defer cancel()
			res, url, err := adminSend(ctx, cmd, cfg, adminRequest{method: http.MethodGet,
				path: fmt.Sprintf("%s?limit=%d", ping.PathHistory, limit)})
			if err != nil {
				return err
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(io.LimitReader(res.Body, 8<<20))
			if res.StatusCode != http.StatusOK {
				return fmt.Errorf("%s answered %s: %s", url, res.Status, bytes.TrimSpace(b))
			}
			if asJSON {
				_, err := cmd.OutOrStdout().Write(b)
				return err
			}
			var doc struct {
				History []ha.HistoryEntry `json:"history"`
			}
			if err := json.Unmarshal(b, &doc); err != nil {
				return fmt.Errorf("%s answered %q", url, b)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "AT (UTC)\tFROM\tTO\tTERM\tCAUSE\tREASON")
			for _, h := range doc.History {
				term := "-"
				if h.Term != 0 {
					term = strconv.FormatInt(h.Term, 10)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", h.At.UTC().Format("2006-01-02 15:04:05.000"), dash(h.From), h.To,
					term, h.Cause, dash(h.Reason))
			}
			return w.Flush()
		},
	}
	addConfigFlags(cmd.Flags())
	addSocketFlag(cmd.Flags())
	cmd.Flags().IntVar(&limit, "limit", 100, "how many of the latest entries (1 to 1000)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the JSON the node answered")
	return cmd
}

func newSwitchoverCmd() *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "switchover",
		Short: "Hand the group's leadership to a chosen (--to) or the next standby, with no overlap",
		Long: `switchover asks this host's node to hand its HA group's leadership over: to
the member named by --to, or to the next member that may lead. The members
ahead of the target step behind it, the leader stops its duty and releases
the lease, and the target claims it at once; there is never a moment with two
leaders. It is refused, with the reason, when the target is not a member, may
not lead (NOFAILOVER), already leads, or the group is paused. It returns when
the new leader answers ok.

It asks this host's node over its admin socket (ADMIN_SOCKET, no token;
as root or the node's user) when that exists, else over HTTP_LISTEN with
ADMIN_TOKEN_FILE's token, all read from the env file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			path := ping.PathAdminSwitchover
			if to != "" {
				path += "?to=" + neturl.QueryEscape(to)
			}
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			if err := adminCall(cmd, cfg, path, ""); err != nil {
				return err
			}
			took, err := waitNewLeaderOK(cmd.Context(), cfg, 10*time.Second)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "the new leader answers ok, %v after the request\n", took(start).Round(time.Millisecond))
			return err
		},
	}
	addConfigFlags(cmd.Flags())
	cmd.Flags().StringVar(&to, "to", "", "the member to lead next (its NAME); default: the next member that may lead")
	addSocketFlag(cmd.Flags())
	return cmd
}

// waitNewLeaderOK waits until the leader this host's node names answers ok
// on its ping; took measures from a start to then.
func waitNewLeaderOK(ctx context.Context, cfg *conf.Config, bound time.Duration) (func(time.Time) time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	local := "http://" + localAddress(cfg.HTTPListen)
	for {
		var st ping.Status
		if err := getJSON(ctx, local+ping.PathStatus, &st); err == nil && st.Leader != "" {
			for _, m := range st.Members {
				if m.Name != st.Leader || m.HTTP == "" {
					continue
				}
				url := m.HTTP
				if !strings.HasPrefix(url, "http") {
					url = "http://" + url
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v2/ping/net/"+cfg.NetID+"/se/", nil)
				if res, err := http.DefaultClient.Do(req); err == nil {
					_ = res.Body.Close()
					if res.StatusCode == http.StatusOK {
						at := time.Now()
						return func(start time.Time) time.Duration { return at.Sub(start) }, nil
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the new leader did not answer ok within %v", bound)
		case <-time.After(5 * time.Millisecond): // polling the leader's ping
		}
	}
}

// getJSON GETs url into v.
func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, res.Status)
	}
	return json.NewDecoder(io.LimitReader(res.Body, 8<<20)).Decode(v)
}
