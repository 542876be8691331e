package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ltikeys/ltikeys/storage"
	"go.yaml.in/yaml/v3"
)

// configFlag names the YAML configuration file.
const configFlag = "config"

// Annotations on flags: where a flag's value came from, and that its value
// is a secret that --print-config and errors must never show.
const (
	sourceAnnotation = "ltikeys/source"
	secretAnnotation = "ltikeys/secret"
)

// Where a flag's effective value came from, in order of precedence.
const (
	sourceFlag    = "flag"
	sourceEnv     = "env"
	sourceFile    = "file"
	sourceDefault = "default"
)

// secretEnvs are the settings that exist only as environment variables,
// because they are secrets (or, for the token hashes and certificate
// scopes, grant access): --print-config says whether each is set, never its
// value.
var secretEnvs = []string{masterKeysEnv, tokensEnv, certScopesEnv}

// markSecret marks a flag whose value must never be printed.
func markSecret(flags *pflag.FlagSet, name string) {
	_ = flags.SetAnnotation(name, secretAnnotation, []string{"true"})
}

func isSecret(f *pflag.Flag) bool {
	return len(f.Annotations[secretAnnotation]) > 0
}

// resolveConfig sets every flag of cmd by precedence: the command line, then
// its LTIKEYS_ environment twin, then the --config file, then the default,
// recording where each value came from for --print-config. A flag without
// an environment twin (see envAnnotation) is set from the command line or
// not at all.
func resolveConfig(cmd *cobra.Command) error {
	flags := cmd.Flags()
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			setSource(f, sourceFlag)
		}
	})
	if err := applyEnv(flags, cmd.ErrOrStderr()); err != nil {
		return err
	}
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Changed && source(f) == sourceDefault {
			setSource(f, sourceEnv)
		}
	})
	cf := flags.Lookup(configFlag)
	if cf == nil || cf.Value.String() == "" {
		return nil
	}
	return applyConfigFile(cmd, cf.Value.String())
}

// applyConfigFile sets, from the YAML file at path, every flag of cmd that
// is not already set. Its keys are the flags that have environment twins,
// and only those. A key that is such a flag of another command only
// (serve's --grpc-addr in a file shared with rewrap) is ignored; a key that
// names a flag that says what a command does (--registration-id), or no
// flag at all, is an error, the latter naming the keys it was probably
// meant as, so a typo does not pass unnoticed.
func applyConfigFile(cmd *cobra.Command, path string) error {
	text, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--%s: %w", configFlag, err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(text, &doc); err != nil {
		return fmt.Errorf("--%s %s: %w", configFlag, path, err)
	}
	settable, commandLineOnly := flagNames(cmd.Root())
	flags := cmd.Flags()
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if key == configFlag {
			return fmt.Errorf("--%s %s: a configuration file cannot name another", configFlag, path)
		}
		f := flags.Lookup(key)
		if f == nil || envTwin(f) == "" {
			switch {
			case settable[key]:
				continue
			case f != nil || commandLineOnly[key]:
				return fmt.Errorf("--%s %s: key %q: --%s says what a command does, so it is given on the command line only, never in a file or the environment", configFlag, path, key, key)
			}
			return fmt.Errorf("--%s %s: unknown key %q: keys are flag names without the dashes%s (see %s --help)", configFlag, path, key, keySuggestion(key, settable), cmd.CommandPath())
		}
		if isSecret(f) {
			if err := checkPrivateFile(path); err != nil {
				return fmt.Errorf("--%s %s sets %s: %w", configFlag, path, key, err)
			}
		}
		if f.Changed {
			continue
		}
		value, err := scalar(doc[key])
		if err != nil {
			return fmt.Errorf("--%s %s: %s: %w", configFlag, path, key, err)
		}
		if err := flags.Set(key, value); err != nil {
			if isSecret(f) {
				return fmt.Errorf("--%s %s: %s: invalid value", configFlag, path, key)
			}
			return fmt.Errorf("--%s %s: %s: %w", configFlag, path, key, err)
		}
		setSource(f, sourceFile)
	}
	return nil
}

// keySuggestion is what an error about the unknown configuration key adds:
// the settable keys it was probably meant as ("grpc_addr" is "grpc-addr",
// "grpc-adr" too), or nothing.
func keySuggestion(key string, settable map[string]bool) string {
	if dashed := strings.ReplaceAll(strings.ToLower(key), "_", "-"); settable[dashed] {
		return fmt.Sprintf("; did you mean %q?", dashed)
	}
	names := make([]string, 0, len(settable))
	for n := range settable {
		names = append(names, n)
	}
	if s := closest(key, names); len(s) > 0 {
		return "; did you mean " + orList(quoteAll(s)) + "?"
	}
	return ""
}

// scalar turns a YAML value into the text a flag parses.
func scalar(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool, int, int64, uint64, float64:
		return fmt.Sprint(v), nil
	case nil:
		return "", fmt.Errorf("empty value: remove the key to use the default")
	default:
		return "", fmt.Errorf("want a single value, got %T", v)
	}
}

// checkPrivateFile refuses a file that group or others can read.
func checkPrivateFile(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("it holds a secret but is accessible by group or others (mode %#o): chmod 600 it", perm)
	}
	return nil
}

// flagNames returns the names of the flags of the commands under root:
// settable those that some command gives an environment twin, which a
// --config file may set, and commandLineOnly those that no command does.
func flagNames(root *cobra.Command) (settable, commandLineOnly map[string]bool) {
	settable, commandLineOnly = map[string]bool{}, map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		add := func(f *pflag.Flag) {
			if envTwin(f) != "" {
				settable[f.Name] = true
			} else {
				commandLineOnly[f.Name] = true
			}
		}
		c.Flags().VisitAll(add)
		c.PersistentFlags().VisitAll(add)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for name := range settable {
		delete(commandLineOnly, name)
	}
	return settable, commandLineOnly
}

func setSource(f *pflag.Flag, src string) {
	if f.Annotations == nil {
		f.Annotations = map[string][]string{}
	}
	f.Annotations[sourceAnnotation] = []string{src}
}

func source(f *pflag.Flag) string {
	if s := f.Annotations[sourceAnnotation]; len(s) > 0 {
		return s[0]
	}
	return sourceDefault
}

// printConfig writes cmd's effective configuration as YAML that --config
// accepts, each value commented with where it came from. Secrets are
// redacted: flags marked secret, passwords in URLs and connection strings
// (the whole database URL if it does not parse),
// and the environment-only secrets, of which it says only whether they are
// set.
func printConfig(w io.Writer, cmd *cobra.Command) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Effective configuration of %q.\n", cmd.CommandPath())
	b.WriteString("# Precedence: command line > LTIKEYS_ environment > --config file > default.\n")
	b.WriteString("# Secrets are redacted.\n")
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" || f.Name == "print-config" || f.Name == configFlag {
			return
		}
		value := f.Value.String()
		switch {
		case isSecret(f) && value != "":
			value = storage.Redacted
		case f.Name == databaseURLFlag:
			value = storage.RedactDatabaseURL(value)
		default:
			value = redactPasswords(value)
		}
		if f.Value.Type() == "string" {
			value = strconv.Quote(value)
		}
		src := source(f)
		switch src {
		case sourceEnv:
			src += " " + envName(f.Name)
		case sourceFile:
			src += " " + cmd.Flags().Lookup(configFlag).Value.String()
		}
		fmt.Fprintf(&b, "%s: %s # %s\n", f.Name, value, src)
	})
	for _, env := range secretEnvs {
		state := "not set"
		if _, ok := os.LookupEnv(env); ok {
			state = "set (value redacted)"
		}
		fmt.Fprintf(&b, "# %s: %s\n", env, state)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// dsnPassword matches a password in a key=value connection string or a URL
// query.
var dsnPassword = regexp.MustCompile(`(?i)\b((?:ssl)?password)\s*=\s*('[^']*'|[^\s&]*)`)

// redactPasswords hides the password of a URL's user information and any
// password=… or sslpassword=… setting.
func redactPasswords(value string) string {
	if u, err := url.Parse(value); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
			value = u.String()
		}
	}
	return dsnPassword.ReplaceAllString(value, "${1}=REDACTED")
}
