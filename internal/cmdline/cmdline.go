// Package cmdline checks `go run ./ci …` command lines written in workflows
// and documentation against the real command tree: the subcommand exists and
// every flag it is given is one of its flags.
package cmdline

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// invocation finds a `go run ./ci` call and what follows it on the line.
var invocation = regexp.MustCompile(`go run \./ci((?:[ \t]+[^\n|;&#\x60\\)]*)?)`)

// Find returns every `go run ./ci …` command line in text that names a
// command, each as the arguments after `./ci`, with backslash continuations
// joined.
func Find(text string) [][]string {
	text = strings.ReplaceAll(text, "\\\n", " ")
	var out [][]string
	for _, m := range invocation.FindAllStringSubmatch(text, -1) {
		args := Split(m[1])
		if len(args) == 0 || args[0] == "1" {
			// `go run ./ci` alone, or `go run ./ci <command>`: no command named.
			continue
		}
		out = append(out, args)
	}
	return out
}

// Split splits a shell command line into words: quotes group, and a word
// that holds a shell expansion (`$X`, `${X:-d}`, `$(…)`) or a placeholder
// (`<FILE>`, `…`) stands for a value, so it becomes "1". A word that is a
// whole `${X:+…}` expansion is an optional part and is dropped.
func Split(line string) []string {
	var words []string
	var cur strings.Builder
	expansion, inWord := false, false
	quote := rune(0)
	flush := func() {
		if !inWord {
			return
		}
		w := cur.String()
		switch {
		case strings.HasPrefix(w, "${") && strings.Contains(w, ":+"):
		case expansion || strings.ContainsAny(w, "<>…") || strings.Contains(w, "..."):
			words = append(words, "1")
		default:
			words = append(words, w)
		}
		cur.Reset()
		expansion, inWord = false, false
	}
	depth := 0
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
				continue
			}
			if r == '$' && quote == '"' {
				expansion = true
			}
			cur.WriteRune(r)
		case r == '{' && expansion:
			depth++
			cur.WriteRune(r)
		case r == '}' && depth > 0:
			depth--
			cur.WriteRune(r)
		case depth > 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote = r
			inWord = true
		case r == ' ' || r == '\t' || r == '\n':
			flush()
		default:
			if r == '$' {
				expansion = true
			}
			cur.WriteRune(r)
			inWord = true
		}
	}
	flush()
	return words
}

// Check resolves args against root: the subcommand must exist and its flags
// must parse. It returns the resolved command's path.
func Check(root *cobra.Command, args []string) (string, error) {
	c, rest, err := root.Find(args)
	if err != nil {
		return "", fmt.Errorf("ci %s: %w", strings.Join(args, " "), err)
	}
	if c == root && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return "", fmt.Errorf("ci %s: no subcommand %q", strings.Join(args, " "), args[0])
	}
	if c.HasSubCommands() && !c.Runnable() && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		return "", fmt.Errorf("ci %s: %s has no subcommand %q", strings.Join(args, " "), c.CommandPath(), rest[0])
	}
	c.InitDefaultHelpFlag()
	if err := c.ParseFlags(rest); err != nil && !errors.Is(err, pflag.ErrHelp) {
		return "", fmt.Errorf("ci %s: %s: %w", strings.Join(args, " "), c.CommandPath(), err)
	}
	return c.CommandPath(), nil
}
