package main

import (
	"fmt"
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
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "KEY\tVALUE\tSOURCE")
			for _, s := range cfg.Settings() {
				fmt.Fprintf(w, "%s\t%q\t%s\n", s.Key, s.Value, s.Source)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			mode := "standalone (always active)"
			if cfg.HA() {
				mode = fmt.Sprintf("HA group %q over ZooKeeper %s", cfg.HAID, cfg.ZK)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "configuration OK: %s\n", mode)
			return nil
		},
	}
	addConfigFlags(cmd.Flags())
	return cmd
}
