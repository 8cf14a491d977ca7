// Command hanode runs one member of a ZooKeeper HA group and answers load
// balancers' health checks; see README.md.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/hanode/hanode/conf"
	"github.com/hanode/hanode/ha"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

// Exit statuses, stable for systemd's RestartPreventExitStatus and scripts.
const (
	exitOK      = 0
	exitFailure = 1 // runtime failure (cannot listen, ZooKeeper error)
	exitConfig  = 2 // bad configuration or usage: nothing was started
	exitRefused = 3 // the cluster refused this node: name in use, group mismatch
)

func main() {
	os.Exit(execute(os.Args[1:]))
}

// execute runs the CLI and maps errors to exit statuses.
func execute(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, new(usageError)) || errors.Is(err, conf.ErrInvalid):
		fmt.Fprintf(os.Stderr, "hanode: %v\n", err)
		return exitConfig
	case ha.IsRefusal(err):
		fmt.Fprintf(os.Stderr, "hanode: refused: %v\n", err)
		return exitRefused
	default:
		fmt.Fprintf(os.Stderr, "hanode: %v\n", err)
		return exitFailure
	}
}

// usageError marks command-line misuse (exit status 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "hanode",
		Short:         "ZooKeeper HA-group coordinator: one active copy per group, warm standbys",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newRunCmd(), newStatusCmd(), newCheckConfigCmd(), newVersionCmd(), newGuardCmd())
	return root
}

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
