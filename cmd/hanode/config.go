package main

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hanode/hanode/conf"
)

// addConfigFlags registers --env-file and one flag per configuration key.
func addConfigFlags(fs *pflag.FlagSet) {
	fs.String("env-file", "", "env file to read (default /etc/default/hanode when it exists)")
	conf.BindFlags(fs)
}

// loadConfig loads the layered configuration for a command.
func loadConfig(cmd *cobra.Command) (*conf.Config, error) {
	envFile, _ := cmd.Flags().GetString("env-file")
	return conf.Load(conf.LoadOptions{
		EnvFile: envFile,
		Environ: os.Environ(),
		Flags:   cmd.Flags(),
	})
}

func newCheckConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check-config",
		Short: "Validate the configuration and print the effective settings with their sources",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "KEY\tVALUE\tSOURCE")
			for _, s := range cfg.Settings() {
				fmt.Fprintf(w, "%s\t%q\t%s\n", s.Key, s.Value, s.Source)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if err := printNotices(out, cfg.Notices()); err != nil {
				return err
			}
			mode := "standalone (always active)"
			if cfg.HA() {
				mode = fmt.Sprintf("HA group %q over ZooKeeper %s", cfg.HAID, cfg.ZK)
			}
			fmt.Fprintf(out, "configuration OK: %s\n", mode)
			return nil
		},
	}
	addConfigFlags(cmd.Flags())
	return cmd
}

// printNotices prints the warnings, one a line, then the variables hanode
// read but does not use, one a line with their sources.
func printNotices(out io.Writer, notices []conf.Notice) error {
	var unused []conf.Notice
	for _, n := range notices {
		if n.Kind == conf.NoticeUnused {
			unused = append(unused, n)
			continue
		}
		fmt.Fprintf(out, "%s: %s\n", n.Kind, n)
	}
	if len(unused) == 0 {
		return nil
	}
	fmt.Fprintln(out, "keys hanode does not use (ignored):")
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, n := range unused {
		fmt.Fprintf(w, "  %s\t%s\n", n.Key, n.Source)
	}
	return w.Flush()
}
