package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version of this binary",
		Long: `version prints what this binary was built from, as "ltikeys --version"
does: the module version ("(devel)" for a build from a source tree), the
version control commit, marked "(modified)" if the tree had uncommitted
changes ("unknown" for a build without version control information, such
as one with -buildvcs=false), the Go version it was built with and the
platform it runs on. It reads nothing but the binary.`,
		Args: cobra.NoArgs,
		// Not the root's, which reads the environment and --config.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := io.WriteString(cmd.OutOrStdout(), cmd.Root().Version)
			return err
		},
	}
}

// versionText describes a binary from its build information, as
// debug.ReadBuildInfo returns it (ok false when the binary has none), one
// "name: value" line each: version, commit, go and platform.
func versionText(info *debug.BuildInfo, ok bool) string {
	version, commit, goVersion := "unknown", "unknown", runtime.Version()
	if ok {
		version = info.Main.Version
		if version == "" {
			version = "(devel)"
		}
		if info.GoVersion != "" {
			goVersion = info.GoVersion
		}
		var revision, modified string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if revision != "" {
			commit = revision
			if modified == "true" {
				commit += " (modified)"
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "version: %s\n", version)
	fmt.Fprintf(&b, "commit: %s\n", commit)
	fmt.Fprintf(&b, "go: %s\n", goVersion)
	fmt.Fprintf(&b, "platform: %s/%s\n", runtime.GOOS, runtime.GOARCH)
	return b.String()
}
