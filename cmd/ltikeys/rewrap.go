package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ltikeys/ltikeys/server"
)

func newRewrapCommand() *cobra.Command {
	var (
		logOpts   logOptions
		storeOpts storeOptions
	)
	cmd := &cobra.Command{
		Use:   "rewrap",
		Short: "Re-seal every private key under the primary master key",
		Long: `rewrap re-encrypts every stored private key under the first (primary) key of
the configured keyring, one key per transaction. Keys already sealed under it
are left alone, so rewrap is idempotent; it is safe to run while servers are
serving, and to interrupt and run again.

To retire a master key: put a new key first in the keyring (keeping the old
one after it), restart the servers, run rewrap, then remove the old key and
restart again. See docs/encryption.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logOpts.logger()
			if err != nil {
				return err
			}
			keyring, err := storeOpts.keyring(log, false)
			if err != nil {
				return err
			}
			store, err := storeOpts.openStore(cmd.Context(), log)
			if err != nil {
				return err
			}
			defer store.Close()
			stats, err := server.Rewrap(cmd.Context(), store, keyring)
			fmt.Fprintf(cmd.OutOrStdout(), "rewrapped %d keys under master key %q; %d were already current\n", stats.Rewrapped, keyring.PrimaryID(), stats.Current)
			return err
		},
	}
	logOpts.register(cmd.Flags())
	storeOpts.register(cmd.Flags())
	addEnvUsage(cmd.Flags())
	return cmd
}
