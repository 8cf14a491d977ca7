package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/spf13/cobra"

	"github.com/hanode/hanode/conf"
	"github.com/hanode/hanode/ha"
)

// Exit statuses of hanode status's verdict (README.md, "Exit status"). The
// issue fixes them: 0 every group has exactly one active member, 1 some
// group has none, 2 some group has two or more. 2 is also the Go runtime's
// status for a panic: a script cannot tell that from two actives, but
// hanode status never panics by design, and a crash prints a trace.
const (
	exitOneActive      = 0
	exitNoActive       = 1
	exitSeveralActives = 2
)

func newStatusCmd() *cobra.Command {
	var (
		asJSON        bool
		timeout       time.Duration
		memberTimeout time.Duration
	)
	af := &accessFlags{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every HA group's members as each reports itself, and who really serves",
		Long: `status reads the HA groups from ZooKeeper, asks every member its own state
(GET /v2/status on the HTTP address it published), and shows both views: the
state, term, since, lease left and health each member reports, whether it
answers ok on its ping, and where its answer disagrees with ZooKeeper's leader
record (a leader that is fencing or disconnected, a member answering active
that ZooKeeper does not name).

ZooKeeper's address comes from the node's env file (/etc/default/hanode, or
--env-file), then HANODE_ZK and HANODE_ZK_ROOT, then --zk and --zk-root.

Exit status: 0 when every group has exactly one member answering ok, 1 when a
group has none (or ZooKeeper cannot be read), 2 when a group has two or more;
78 for bad usage or configuration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			rep, err := readStatus(cmd, af, timeout, memberTimeout)
			if err != nil {
				if asJSON {
					return shownError{err, writeJSON(out, map[string]string{"error": err.Error()})}
				}
				return err
			}
			if asJSON {
				if err := writeJSON(out, rep); err != nil {
					return err
				}
			} else if err := printStatus(out, rep, time.Now()); err != nil {
				return err
			}
			if rep.Exit != exitOneActive {
				return shownError{verdictError{code: rep.Exit, msg: rep.Verdict}, nil}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.String("env-file", "", "env file to read ZK and ZK_ROOT from (default /etc/default/hanode when it exists)")
	conf.BindClientFlags(f)
	f.BoolVar(&asJSON, "json", false, "print one JSON document (errors too: {\"error\": ...})")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "give up when ZooKeeper does not answer within this")
	f.DurationVar(&memberTimeout, "member-timeout", 2*time.Second, "how long each member has to answer its /v2/status")
	af.bind(f)
	return cmd
}

// readStatus reads the configuration, ZooKeeper and every member.
func readStatus(cmd *cobra.Command, af *accessFlags, timeout, memberTimeout time.Duration) (statusReport, error) {
	if timeout <= 0 || memberTimeout <= 0 {
		return statusReport{}, usageError{fmt.Errorf("--timeout %s and --member-timeout %s must be positive", timeout, memberTimeout)}
	}
	envFile, _ := cmd.Flags().GetString("env-file")
	cfg, err := conf.LoadClient(conf.LoadOptions{EnvFile: envFile, Environ: os.Environ(), Flags: cmd.Flags()})
	if err != nil {
		return statusReport{}, err
	}
	root := cfg.ZKChroot() + cfg.ZKRoot
	access, err := af.access()
	if err != nil {
		return statusReport{}, err
	}

	ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
	defer cancel()
	conn, err := dialStatus(ctx, cfg.ZKServers(), access)
	if err != nil {
		return statusReport{}, err
	}
	defer conn.Close()
	// A server that stalls after the handshake would hold each read for
	// the session's receive timeout: closing the connection ends them.
	stop := context.AfterFunc(ctx, conn.Close)
	defer stop()
	groups, jobs, err := readGroups(conn, root)
	if ctx.Err() != nil {
		err = fmt.Errorf("ZooKeeper at %s did not answer the reads within %s", cfg.ZK, timeout)
	}
	if err != nil {
		return statusReport{}, err
	}
	if len(groups) == 0 {
		return statusReport{}, noGroups(conn, root, cfg)
	}

	client := &http.Client{Timeout: memberTimeout}
	answers := askMembers(cmd.Context(), client, groups)
	rep := buildReport(groups, answers)
	rep.ZK, rep.Root, rep.EnvFile, rep.Jobs = cfg.ZK, root, cfg.EnvFile, jobs
	return rep, nil
}

// readGroups reads every group and its jobs' records.
func readGroups(conn *zk.Conn, root string) ([]ha.GroupStatus, map[string][]ha.JobEntry, error) {
	groups, err := ha.ReadCluster(conn, root)
	if err != nil {
		return nil, nil, err
	}
	jobs, err := readJobs(conn, root, groups)
	return groups, jobs, err
}

// noGroups says why root holds no group, in words that point at ZK_ROOT.
func noGroups(conn *zk.Conn, root string, cfg *conf.Client) error {
	where := fmt.Sprintf("ZK=%q (from %s), ZK_ROOT=%q (from %s)", cfg.ZK, cfg.Source(conf.KeyZK), cfg.ZKRoot,
		cfg.Source(conf.KeyZKRoot))
	if ok, _, err := conn.Exists(root); err == nil && !ok {
		return fmt.Errorf("no hanode groups under %s: the znode does not exist; is ZK_ROOT (or ZK's chroot) right? %s", root, where)
	}
	return fmt.Errorf("no hanode groups under %s: no member has joined a group there yet; is ZK_ROOT right? %s", root, where)
}

// writeJSON prints v as indented JSON.
func writeJSON(out interface{ Write([]byte) (int, error) }, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// shownError is an error the command has already reported on its output
// (a JSON error document, or the verdict under the table): execute maps it
// to its exit status and prints nothing more; writeErr, when not nil, is a
// failure to write that report, which is printed instead.
type shownError struct {
	error
	writeErr error
}

func (s shownError) Unwrap() error { return s.error }

// verdictError is hanode status's verdict when it is not "one active in
// every group"; its code is the exit status.
type verdictError struct {
	code int
	msg  string
}

func (v verdictError) Error() string { return v.msg }

// asShown reports whether err was already shown, and what to print instead
// (nil: nothing).
func asShown(err error) (bool, error) {
	var s shownError
	if !errors.As(err, &s) {
		return false, nil
	}
	return true, s.writeErr
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
