package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/ltikeys/ltikeys/storage"
)

// migrateOptions are the flags of migrate and its subcommands.
type migrateOptions struct {
	log   logOptions
	store storeOptions
}

func newMigrateCommand() *cobra.Command {
	var o migrateOptions
	group := &cobra.Command{
		Use:   "migrate",
		Short: "Show or apply the database schema's migrations",
		Long: `migrate shows and applies the schema migrations built into this binary, on
the database serve would use: --database-url, or the embedded SQLite
database in --data-dir. serve applies pending migrations itself when it
starts, so nothing needs this command; it is for operators who migrate
before rolling out a release, and for seeing where a database stands.

Migrating holds a lock (a PostgreSQL advisory lock; for SQLite, a lock on
the file <database>-migrate.lock beside the database), so any number of
serve and migrate processes may start at once: each migration is applied
once, in a transaction of its own, and the others wait for it. A schema
that a later release wrote is refused and left as it is. A database that a
release before versioned migrations created is taken over as migration 1,
without running it (its status is "baseline" until then).

The database URL is never printed but redacted (its password replaced by
REDACTED).`,
		Args: subcommandArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	flags := group.PersistentFlags()
	o.log.register(flags)
	o.store.registerDatabase(flags)
	addEnvUsage(flags)
	group.AddCommand(newMigrateStatusCommand(&o), newMigrateUpCommand(&o))
	return group
}

func newMigrateStatusCommand(o *migrateOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "List the migrations, applied and pending",
		Long: `status prints the database (URL redacted), then one line per migration:
its version, its state (applied, pending, or baseline for the schema of a
release before versioned migrations, which "migrate up" and serve take
over as migration 1), when it was applied by the database's clock, and
its file. A migration that a later release applied, which this binary
does not have, is listed as unknown, and status then exits non-zero: this
release refuses that database. status changes nothing and waits for no
lock; it does not create a missing SQLite database.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := o.log.logger()
			if err != nil {
				return err
			}
			url := o.store.url()
			ms, statusErr := storage.MigrationStatus(cmd.Context(), url, storage.WithLogger(log.With("component", "storage")))
			if statusErr != nil && ms == nil {
				return fmt.Errorf("--%s: %w", databaseURLFlag, statusErr)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "database: %s\n", escapeText(storage.RedactDatabaseURL(url)))
			if err := printMigrations(w, ms); err != nil {
				return err
			}
			if statusErr != nil {
				return fmt.Errorf("--%s: %w", databaseURLFlag, statusErr)
			}
			return nil
		},
	}
}

// printMigrations writes one line per migration under a header.
func printMigrations(w io.Writer, ms []storage.Migration) error {
	lines := [][]string{{"VERSION", "STATE", "APPLIED AT", "MIGRATION"}}
	for _, m := range ms {
		at, name := "-", m.Name
		if !m.AppliedAt.IsZero() {
			at = m.AppliedAt.Format("2006-01-02 15:04:05")
		}
		if name == "" {
			name = "(unknown to this binary)"
		}
		lines = append(lines, []string{strconv.FormatInt(m.Version, 10), m.State.String(), at, name})
	}
	return writeTable(w, lines)
}

func newMigrateUpCommand(o *migrateOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "up",
		Short: "Apply the pending migrations",
		Long: `up applies every pending migration, in order, each in a transaction of its
own, and prints one line for each migration it applied (or took over as the
schema of an earlier release), then the schema version. It is idempotent:
with nothing pending it applies nothing. If a migration fails, it is rolled
back, the ones before it stay applied, and up exits non-zero naming it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := o.log.logger()
			if err != nil {
				return err
			}
			url := o.store.url()
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "database: %s\n", escapeText(storage.RedactDatabaseURL(url)))
			done, err := storage.Migrate(cmd.Context(), url, storage.WithLogger(log.With("component", "storage")))
			for _, m := range done {
				if m.State == storage.MigrationBaseline {
					fmt.Fprintf(w, "recorded %s as applied: the database has the schema of an earlier release\n", m.Name)
				} else {
					fmt.Fprintf(w, "applied %s\n", m.Name)
				}
			}
			if err != nil {
				return fmt.Errorf("--%s: %w", databaseURLFlag, err)
			}
			if len(done) == 0 {
				fmt.Fprintf(w, "nothing to apply: the schema is at version %d\n", storage.SchemaVersion)
			} else {
				fmt.Fprintf(w, "the schema is at version %d\n", storage.SchemaVersion)
			}
			return nil
		},
	}
}
