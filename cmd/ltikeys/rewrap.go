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

To retire a master key: add the new key to the keyring after the old one and
restart every server; move it first and restart again (with several replicas,
every server must be able to open the new key before any seals with it); run
rewrap; then remove the old key and restart. See docs/encryption.md.

rewrap never generates a master key: with the embedded database and no key
configured it uses the key file serve generated in --data-dir.`,
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
