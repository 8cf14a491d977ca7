package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// debugPanicFlag names the hidden, test-only flag of `hanode run` that makes
// the process panic from a goroutine that long after the command started:
// the end-to-end tests use it to check that a Go panic exits with the
// runtime's status 2, which the shipped unit restarts (README.md, "Exit
// status"). It is not for production and not part of the documented CLI.
const debugPanicFlag = "debug-panic-after"

// debugPanicSignalFlag names the hidden, test-only flag of `hanode run` that
// makes SIGUSR2 panic a goroutine: tests and benchmarks choose the moment of
// the panic (the leader's, mid-lease) to check what a Go panic of the
// coordinator leaves to its duty guard (issue 17). Without the flag SIGUSR2
// keeps its default action. It is not for production and not part of the
// documented CLI.
const debugPanicSignalFlag = "debug-panic-on-sigusr2"

// addDebugFlags registers the test-only flags on cmd, hidden from help.
func addDebugFlags(cmd *cobra.Command) {
	cmd.Flags().Duration(debugPanicFlag, 0, "test only: panic this long after start (0: never)")
	_ = cmd.Flags().MarkHidden(debugPanicFlag)
	cmd.Flags().Bool(debugPanicSignalFlag, false, "test only: panic when SIGUSR2 arrives")
	_ = cmd.Flags().MarkHidden(debugPanicSignalFlag)
}

// armDebugPanic starts what the test-only flags ask for; call it first in
// the command's RunE. With --debug-panic-after=D > 0, a goroutine panics D
// later, as an unrecovered panic anywhere in hanode would; with
// --debug-panic-on-sigusr2, a goroutine panics when SIGUSR2 arrives.
func armDebugPanic(cmd *cobra.Command) {
	if on, err := cmd.Flags().GetBool(debugPanicSignalFlag); err == nil && on {
		usr2 := make(chan os.Signal, 1)
		signal.Notify(usr2, syscall.SIGUSR2)
		go func() {
			<-usr2
			panic(fmt.Sprintf("test-only panic: --%s", debugPanicSignalFlag))
		}()
	}
	d, err := cmd.Flags().GetDuration(debugPanicFlag)
	if err != nil || d <= 0 {
		return
	}
	time.AfterFunc(d, func() {
		panic(fmt.Sprintf("test-only panic: --%s=%v", debugPanicFlag, d))
	})
}
