package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hanode/hanode/ha"
)

func newStatusCmd() *cobra.Command {
	var (
		zkConnect string
		root      string
		asJSON    bool
		timeout   time.Duration
	)
	af := &accessFlags{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Read ZooKeeper and print every HA group: members, leader, term",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			servers, chroot, err := splitConnect(zkConnect)
			if err != nil {
				return usageError{err}
			}
			access, err := af.access()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			conn, err := ha.DialAccess(ctx, servers, 10*time.Second, nil, access)
			if err != nil {
				return err
			}
			defer conn.Close()
			groups, err := ha.ReadCluster(conn, chroot+root)
			if err != nil {
				return err
			}
			jobs, err := readJobs(conn, chroot+root, groups)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"zk": zkConnect, "root": chroot + root, "groups": groups, "jobs": jobs})
			}
			return printGroups(cmd.OutOrStdout(), groups, jobs)
		},
	}
	cmd.Flags().StringVar(&zkConnect, "zk", "127.0.0.1:2181", "ZooKeeper connect string host:port[,host:port...][/chroot]")
	cmd.Flags().StringVar(&root, "zk-root", "/hanode", "hanode's root znode (ZK_ROOT)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "give up when ZooKeeper does not answer within this")
	af.bind(cmd.Flags())
	return cmd
}

// splitConnect splits "h1:p1,h2:p2/chroot" into servers and chroot.
func splitConnect(s string) ([]string, string, error) {
	hosts, chroot := s, ""
	if i := strings.IndexByte(s, '/'); i >= 0 {
		hosts, chroot = s[:i], strings.TrimRight(s[i:], "/")
	}
	var servers []string
	for _, h := range strings.Split(hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			servers = append(servers, h)
		}
	}
	if len(servers) == 0 {
		return nil, "", fmt.Errorf("--zk %q names no server", s)
	}
	return servers, chroot, nil
}

func printGroups(out io.Writer, groups []ha.GroupStatus, jobs map[string][]ha.JobEntry) error {
	if len(groups) == 0 {
		_, err := fmt.Fprintln(out, "no HA groups")
		return err
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, g := range groups {
		leader := "(none)"
		switch {
		case g.Leader != "" && g.State == "fencing":
			leader = g.Leader + " (fencing the previous leader)"
		case g.Leader != "":
			leader = g.Leader
		}
		fmt.Fprintf(w, "HA_ID %s\trole %s\tregion %s\tleader %s\tterm %d\tsince %s\n",
			g.HAID, g.Role, g.Region, leader, g.Term, sinceText(g))
		fmt.Fprintln(w, "  SEQ\tNAME\tSTATE\tHOST\tHTTP\tPID\tSTARTED")
		for _, m := range g.Members {
			state := "standby"
			if m.Leader {
				state = "leader"
			}
			fmt.Fprintf(w, "  %d\t%s\t%s\t%s\t%s\t%d\t%s\n", m.Seq, m.Name, state, m.Host, m.HTTP, m.PID,
				m.Started.Format(time.RFC3339))
		}
		for _, ig := range g.Ignored {
			fmt.Fprintf(w, "  ignored %s: %s\n", ig.Znode, ig.Reason)
		}
		for _, p := range g.Problems {
			fmt.Fprintf(w, "  problem: %s\n", p)
		}
		printJobs(w, jobs[g.HAID])
	}
	return w.Flush()
}

func sinceText(g ha.GroupStatus) string {
	if g.Since.IsZero() || g.Leader == "" {
		return "-"
	}
	return fmt.Sprintf("%s (%s ago)", g.Since.Format(time.RFC3339), time.Since(g.Since).Round(time.Second))
}
