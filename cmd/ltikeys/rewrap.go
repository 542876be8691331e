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
		Short: "Re-seal every private key under the primary master key, in the current format",
		Long: `rewrap re-encrypts every stored private key under the first (primary) key of
the configured keyring, one key per transaction, in the current envelope
format (2), which binds each key to its kid and to the registration that owns
it. Keys sealed in format 1 by an older release are upgraded even when they
are already under the primary key; keys in format 2 under the primary key are
left alone, so rewrap is idempotent; it is safe to run while servers are
serving, and to interrupt and run again. It reports how many keys it
rewrapped, how many of those it upgraded from format 1, and how many were
already current.

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
			fmt.Fprintf(cmd.OutOrStdout(), "rewrapped %d keys under master key %q (%d upgraded from envelope format 1); %d were already current\n",
				stats.Rewrapped, keyring.PrimaryID(), stats.Upgraded, stats.Current)
			return err
		},
	}
	logOpts.register(cmd.Flags())
	storeOpts.register(cmd.Flags())
	addEnvUsage(cmd.Flags())
	return cmd
}
