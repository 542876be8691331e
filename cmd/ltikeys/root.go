package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
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

The flags of serve, rewrap and migrate, and --config, have environment
twins: --grpc-addr is LTIKEYS_GRPC_ADDR. Of the client commands'
flags only those that say how to reach the server have one (--server,
--tls…, --token, --data-dir, --timeout, and jwks's --http-server): flags
that say what to do (ids, kids, claims, endpoints, states, page tokens,
-o, …) are read from the command line only. --help shows each twin as
[$LTIKEYS_…]. The same flags can be set in a YAML file named by --config,
one "flag-name: value" line each. A flag given on the command line wins over
the environment, which wins over the file, which wins over the default.

The client commands (registration, key, sign, platform, jwks) call a running
server: with no flags they reach the local "ltikeys serve" defaults and use
the admin token it generated in ./ltikeys-data/admin.token.`,
		Version:       versionText(debug.ReadBuildInfo()),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          subcommandArgs,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return resolveConfig(cmd)
		},
	}
	root.SetVersionTemplate("{{.Version}}")
	root.SetFlagErrorFunc(flagError)
	root.PersistentFlags().String(configFlag, "", "YAML file of flag-name: value settings; flags and environment variables win over it")
	addEnvTwin(root.PersistentFlags().Lookup(configFlag))
	root.AddCommand(newServeCommand(), newRewrapCommand(), newMigrateCommand(), newVersionCommand())
	root.AddCommand(clientCommands()...)
	return root
}

// envName returns the name a flag's environment twin has, if it has one.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// envAnnotation marks a flag that has an environment twin; its value is
// the variable's name. A flag without it has no twin, and a --config file
// cannot set it either: the client commands' flags that say what to do
// are given on the command line only, so a variable left exported from an
// earlier call cannot change what the next one does.
const envAnnotation = "ltikeys/env"

// addEnvUsage gives every flag of flags an environment twin (see
// addEnvTwin). serve, rewrap and migrate call it on all their flags; the
// client commands only on the flags that say how to reach the server.
func addEnvUsage(flags *pflag.FlagSet) {
	flags.VisitAll(addEnvTwin)
}

// addEnvTwin gives f an environment twin, envName of its name, and
// appends the twin to its usage text, so --help shows it.
func addEnvTwin(f *pflag.Flag) {
	if envTwin(f) != "" {
		return
	}
	name := envName(f.Name)
	if f.Annotations == nil {
		f.Annotations = map[string][]string{}
	}
	f.Annotations[envAnnotation] = []string{name}
	f.Usage += " [$" + name + "]"
}

// envTwin returns the environment variable that sets f, or "" if none
// does.
func envTwin(f *pflag.Flag) string {
	if v := f.Annotations[envAnnotation]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// applyEnv sets every flag not given on the command line from its
// environment twin, if it has one and that is set. A variable named like
// a flag that has no twin is ignored, with a warning to warn: the flag
// says what the command does, and is read from the command line only.
func applyEnv(flags *pflag.FlagSet, warn io.Writer) error {
	var err error
	flags.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := envTwin(f)
		if name == "" {
			if _, set := os.LookupEnv(envName(f.Name)); set && f.Name != "help" && f.Name != "version" {
				fmt.Fprintf(warn, "ltikeys: warning: ignoring %s: --%s has no environment twin; give it on the command line\n", envName(f.Name), f.Name)
			}
			return
		}
		if v, ok := os.LookupEnv(name); ok {
			if setErr := flags.Set(f.Name, v); setErr != nil {
				err = fmt.Errorf("%s: %w", name, setErr)
			}
		}
	})
	return err
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
