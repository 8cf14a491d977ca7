package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

// debugPanicFlag names the hidden, test-only flag of `hanode run` that makes
// the process panic from a goroutine that long after the command started:
// the end-to-end tests use it to check that a Go panic exits with the
// runtime's status 2, which the shipped unit restarts (README.md, "Exit
// status"). It is not for production and not part of the documented CLI.
const debugPanicFlag = "debug-panic-after"

// addDebugFlags registers the test-only flags on cmd, hidden from help.
func addDebugFlags(cmd *cobra.Command) {
	cmd.Flags().Duration(debugPanicFlag, 0, "test only: panic this long after start (0: never)")
	_ = cmd.Flags().MarkHidden(debugPanicFlag)
}

// armDebugPanic starts what the test-only flags ask for; call it first in
// the command's RunE. With --debug-panic-after=D > 0, a goroutine panics D
// later, as an unrecovered panic anywhere in hanode would.
func armDebugPanic(cmd *cobra.Command) {
	d, err := cmd.Flags().GetDuration(debugPanicFlag)
	if err != nil || d <= 0 {
		return
	}
	time.AfterFunc(d, func() {
		panic(fmt.Sprintf("test-only panic: --%s=%v", debugPanicFlag, d))
	})
}
