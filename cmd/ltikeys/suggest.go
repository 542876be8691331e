package main

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// suggestionDistance is the largest edit distance at which a name is
// offered for a misspelt one, for commands, flags and --config keys alike.
const suggestionDistance = 2

// editDistance is the Levenshtein distance between a and b, counted in
// runes and ignoring case: the fewest insertions, deletions and
// substitutions that turn one into the other.
func editDistance(a, b string) int {
	s, t := []rune(strings.ToLower(a)), []rune(strings.ToLower(b))
	prev := make([]int, len(t)+1)
	cur := make([]int, len(t)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(s); i++ {
		cur[0] = i
		for j := 1; j <= len(t); j++ {
			cost := 1
			if s[i-1] == t[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(t)]
}

// closest returns the candidates that name was probably meant as: those
// within suggestionDistance of it, and those it is a prefix of (an
// abbreviation), nearest first, then by name; at most three. It offers
// nothing for a one-letter name, which is near everything.
func closest(name string, candidates []string) []string {
	type match struct {
		name string
		d    int
	}
	var found []match
	for _, c := range candidates {
		if c == name {
			continue
		}
		d := editDistance(name, c)
		if len([]rune(name)) > 1 && (d <= suggestionDistance || strings.HasPrefix(strings.ToLower(c), strings.ToLower(name))) {
			found = append(found, match{c, d})
		}
	}
	sort.Slice(found, func(i, j int) bool {
		if found[i].d != found[j].d {
			return found[i].d < found[j].d
		}
		return found[i].name < found[j].name
	})
	var out []string
	for _, m := range found {
		if !slices.Contains(out, m.name) {
			out = append(out, m.name)
		}
	}
	if len(out) > 3 {
		out = out[:3]
	}
	return out
}

// orList joins names as "a", "a or b", or "a, b or c".
func orList(names []string) string {
	if len(names) <= 1 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// subcommandArgs is the Args of a command that groups subcommands: it
// takes no argument but the name of a subcommand, which cobra has
// consumed by then, so an argument left is a subcommand that does not
// exist. The error names the subcommands it was probably meant as. (A
// group without Args would print its help and succeed; cobra.NoArgs
// suggests nothing.)
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = suggestionDistance
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + orList(quoteAll(s)) + "?"
	}
	return fmt.Errorf("%s (see '%s --help')", msg, cmd.CommandPath())
}

func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = fmt.Sprintf("%q", n)
	}
	return out
}

// flagError is every command's FlagErrorFunc. To an unknown flag it adds
// the flags of cmd it was probably meant as (--registraton-id is
// --registration-id; -registration-id, with one dash, too), or, failing
// those, the commands that do have it.
func flagError(cmd *cobra.Command, err error) error {
	var unknown *pflag.NotExistError
	if !errors.As(err, &unknown) {
		return err
	}
	name := unknown.GetSpecifiedName()
	if short := unknown.GetSpecifiedShortnames(); short != "" {
		// -registration-id is taken for the shorthands r, e, g, …
		if cmd.Flags().Lookup(short) != nil {
			return fmt.Errorf("%w; did you mean --%s? (long flags take two dashes)", err, short)
		}
		name = short
	}
	var own []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			own = append(own, f.Name)
		}
	})
	if s := closest(name, own); len(s) > 0 {
		for i := range s {
			s[i] = "--" + s[i]
		}
		return fmt.Errorf("%w; did you mean %s? (see '%s --help')", err, orList(s), cmd.CommandPath())
	}
	if others := commandsWithFlag(cmd.Root(), name); len(others) > 0 {
		return fmt.Errorf("%w: --%s is a flag of other commands (%s), not of %s (see '%s --help')", err, name, strings.Join(others, ", "), cmd.CommandPath(), cmd.CommandPath())
	}
	return fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())
}

// commandsWithFlag returns the paths of the commands under root that
// define a flag called name, a persistent one counting for the command
// that defines it, not for those that inherit it.
func commandsWithFlag(root *cobra.Command, name string) []string {
	var paths []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.LocalFlags().Lookup(name) != nil {
			paths = append(paths, c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return paths
}
