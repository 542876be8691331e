package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ltikeys/ltikeys/server"
)

// envPrefix is the prefix of every flag's environment twin.
const envPrefix = "LTIKEYS_"

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "ltikeys",
		Short: "Key management for LTI 1.3 tools",
		Long: `ltikeys holds one RSA key pair per LTI 1.3 platform registration, serves the
tool's internal services over gRPC (create registrations, look up signing
keys, rotate and retire keys) and publishes the public keys as a JWK Set at
/.well-known/jwks.json.

Every flag has an environment twin: --grpc-addr is LTIKEYS_GRPC_ADDR. Flags
can also be set in a YAML file named by --config (LTIKEYS_CONFIG), one
"flag-name: value" line each. A flag given on the command line wins over the
environment, which wins over the file, which wins over the default.

The client commands (registration, key, sign, jwks) call a running server: with
no flags they reach the local "ltikeys serve" defaults and use the admin
token it generated in ./ltikeys-data/admin.token.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return resolveConfig(cmd)
		},
	}
	root.PersistentFlags().String(configFlag, "", "YAML file of flag-name: value settings; flags and environment variables win over it [$"+envName(configFlag)+"]")
	root.AddCommand(newServeCommand(), newRewrapCommand(), newMigrateCommand())
	root.AddCommand(clientCommands()...)
	return root
}

// envName returns the environment variable that sets a flag.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnv sets every flag not given on the command line from its
// environment twin, if that is set.
func applyEnv(flags *pflag.FlagSet) error {
	var err error
	flags.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := envName(f.Name)
		if v, ok := os.LookupEnv(name); ok {
			if setErr := flags.Set(f.Name, v); setErr != nil {
				err = fmt.Errorf("%s: %w", name, setErr)
			}
		}
	})
	return err
}

// addEnvUsage appends each flag's environment twin to its usage text.
func addEnvUsage(flags *pflag.FlagSet) {
	flags.VisitAll(func(f *pflag.Flag) {
		f.Usage += " [$" + envName(f.Name) + "]"
	})
}

// logOptions are the logging flags shared by every command.
type logOptions struct {
	level  string
	format string
}

func (o *logOptions) register(flags *pflag.FlagSet) {
	flags.StringVar(&o.level, "log-level", "info", "log level: debug, info, warn or error")
	flags.StringVar(&o.format, "log-format", "text", "log format: text or json")
}

func (o *logOptions) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	// Records logged with a call's context carry its request id.
	switch o.format {
	case "text":
		return slog.New(server.ContextLogHandler(slog.NewTextHandler(os.Stderr, opts))), nil
	case "json":
		return slog.New(server.ContextLogHandler(slog.NewJSONHandler(os.Stderr, opts))), nil
	default:
		return nil, fmt.Errorf("--log-format: want text or json, got %q", o.format)
	}
}
