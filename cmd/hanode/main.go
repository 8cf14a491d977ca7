// Command hanode runs one member of a ZooKeeper HA group and answers load
// balancers' health checks; see README.md.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hanode/hanode/conf"
	"github.com/hanode/hanode/ha"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

// Exit statuses, stable for systemd's RestartPreventExitStatus and scripts
// (README.md, "Exit status"). The two final ones are sysexits(3) codes, which
// nothing else in a Go program uses: the Go runtime exits 2 on a panic, a
// fatal error and SIGQUIT (its goroutine dump), and that must stay
// restartable, so no code of hanode's own may be 2. The one exception is
// hanode status's verdict (status.go), whose codes the issue fixes: it is
// never run by systemd, and 2 there means two active members.
const (
	exitOK      = 0
	exitFailure = 1  // runtime failure (cannot listen, ZooKeeper error): restart
	exitRefused = 77 // EX_NOPERM: the cluster refused this node (name in use, group mismatch)
	exitConfig  = 78 // EX_CONFIG: bad configuration or usage; nothing was started
)

func main() {
	os.Exit(execute(os.Args[1:]))
}

// execute runs the CLI and maps errors to exit statuses.
func execute(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	code := exitStatus(err)
	if shown, writeErr := asShown(err); shown { // hanode status reported it on stdout
		if writeErr != nil {
			fmt.Fprintf(os.Stderr, "hanode: %v\n", writeErr)
		}
		return code
	}
	switch code {
	case exitOK:
	case exitRefused:
		fmt.Fprintf(os.Stderr, "hanode: refused: %v\n", err)
	default:
		fmt.Fprintf(os.Stderr, "hanode: %v\n", err)
	}
	return code
}

// exitStatus is the exit status for the error a command returned.
func exitStatus(err error) int {
	var verdict verdictError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &verdict): // hanode status: 1 no active, 2 two or more (status.go)
		return verdict.code
	case errors.As(err, new(usageError)) || errors.Is(err, conf.ErrInvalid):
		return exitConfig
	case ha.IsRefusal(err):
		return exitRefused
	default:
		return exitFailure
	}
}

// usageError marks command-line misuse (exit status 78, as a bad
// configuration: restarting cannot fix either).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "hanode",
		Short:         "ZooKeeper HA-group coordinator: one active copy per group, warm standbys",
		Long:          rootLong,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		// As cobra's own check: suggest commands one or two edits away.
		SuggestionsMinimumDistance: 2,
		// Runnable, so that an unknown command reaches Args (a usage
		// error) instead of cobra's own check (a plain error, exit 1).
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf("; did you mean %s?", strings.Join(s, ", "))
			}
			return usageError{errors.New(msg)}
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.SetVersionTemplate("hanode {{.Version}}\n") // as `hanode version`
	root.AddCommand(newRunCmd(), newStatusCmd(), newCheckConfigCmd(), newVersionCmd(), newGuardCmd(),
		newGenManCmd(), newWatchCmd(), newPauseCmd(), newResumeCmd(), newHistoryCmd(), newSwitchoverCmd())
	for _, c := range root.Commands() {
		if args := c.Args; args != nil {
			c.Args = func(cmd *cobra.Command, a []string) error {
				if err := args(cmd, a); err != nil {
					return usageError{err}
				}
				return nil
			}
		}
	}
	return root
}

// rootLong is the root command's help, and the DESCRIPTION of hanode(1).
const rootLong = `hanode coordinates HA groups over ZooKeeper: several copies of a server run
the same role, and in each group exactly one copy is active and runs the
active duty (ACTIVE_CMD); the others are warm standbys. Load balancers ask
every copy who is active on its ping endpoints.

"hanode run" runs one member; it reads /etc/default/hanode (or --env-file),
then the environment (HANODE_ and the key), then its flags, later wins.
"hanode check-config" prints every effective setting and where it came from,
"hanode status" reads the groups from ZooKeeper, and "hanode watch" follows
the members' states as they change.

Exit status: 0 after a shutdown, 1 on a runtime failure (restartable),
77 when the cluster refused the node (name in use, group mismatch) and
78 for a bad configuration or usage; neither is fixed by a restart.
"hanode status" exits 0 when every group has exactly one active member,
1 when a group has none and 2 when a group has two or more.`

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print hanode's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "hanode %s\n", version)
		},
	}
}
