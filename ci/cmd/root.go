// Package cmd holds the cobra commands of `go run ./ci`. Each command has an
// options struct and a run function, so flag parsing and behaviour are tested
// apart.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
)

// IO is the terminal the commands talk to.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
	// TTY reports whether Err is an interactive terminal (live progress).
	TTY bool
	// Width is the terminal's width in columns (0 when not a terminal).
	Width int
	// Getenv reads the environment (tests replace it).
	Getenv func(string) string
}

// SystemIO returns the process's standard streams.
func SystemIO() *IO {
	io := &IO{
		In: os.Stdin, Out: os.Stdout, Err: os.Stderr,
		TTY:    term.IsTerminal(int(os.Stderr.Fd())),
		Getenv: os.Getenv,
	}
	if io.TTY {
		io.Width, _, _ = term.GetSize(int(os.Stderr.Fd()))
	}
	return io
}

// NewRootCmd builds the command tree.
func NewRootCmd(io *IO) *cobra.Command {
	root := &cobra.Command{
		Use:   "ci",
		Short: "Build, test, cache and release the ipex-flake",
		Long: `ci is the ipex-flake pipeline. The same commands run on a maintainer's laptop
and in GitHub Actions:

  ci build      build every flake output (Dagger containers or the host's nix)
  ci test       run the unit, integration, performance and security stages
  ci matrix     print the GitHub Actions matrix of stages × systems
  ci push       push what passed to the binary cache, signed and verified
  ci release    promote a commit through the dev, beta and stable channels
  ci verify     rebuild outputs bit for bit; check a release's provenance
  ci bench      measure the pipeline against plain nix
  ci docs       write the command-line reference (docs/cli)
  ci report     merge the reports of a sharded build, compare two reports

Exit codes: 0 success, 1 something failed, 2 usage or configuration error
(nothing was started or changed).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(io.Out)
	root.SetErr(io.Err)
	root.SetIn(io.In)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return clierr.Usagef("%v\nRun '%s --help' for the flags.", err, c.CommandPath())
	})
	for _, add := range commands {
		root.AddCommand(add(io))
	}
	return root
}

// commands lists the subcommand constructors; each command file adds itself.
var commands []func(*IO) *cobra.Command

func register(f func(*IO) *cobra.Command) { commands = append(commands, f) }

// Main runs the command line and returns the exit code. SIGINT and SIGTERM
// cancel the command's context: running work is stopped and what finished is
// reported.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, SystemIO(), args)
}

// Run executes args against io and maps the error to an exit code.
func Run(ctx context.Context, io *IO, args []string) int {
	root := NewRootCmd(io)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return clierr.ExitOK
	}
	if isCobraUsage(err) {
		err = clierr.Usage(err)
	}
	fmt.Fprintf(io.Err, "error: %v\n", err)
	return clierr.Code(err)
}

// isCobraUsage recognises cobra's own argument errors (unknown command,
// wrong number of args), which are usage errors.
func isCobraUsage(err error) bool {
	var u *clierr.UsageError
	if errors.As(err, &u) {
		return false
	}
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "unknown flag", "unknown shorthand"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
