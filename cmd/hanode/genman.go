package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newGenManCmd is the hidden command that writes the man pages (hanode.1 and
// one page per command, hanode-run.1 and so on) from the commands
// themselves; `make package` runs it on the binary it packages. The date
// is SOURCE_DATE_EPOCH's when set, so that a rebuild gives the same pages.
func newGenManCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "gen-man DIR",
		Short:  "Write the man pages to DIR (for packaging)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			root.InitDefaultVersionFlag() // cobra adds it only to the command it executes
			header := &doc.GenManHeader{Title: "HANODE", Section: "1", Source: "hanode " + version, Manual: "hanode manual"}
			if err := doc.GenManTree(root, header, dir); err != nil {
				return fmt.Errorf("gen-man: %w", err)
			}
			return nil
		},
	}
}
