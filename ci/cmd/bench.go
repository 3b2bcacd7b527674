package cmd

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/build"
)

func init() { register(newBenchCmd) }

// newBenchCmd is `ci bench`: benchmarks that time the pipeline against
// plain nix in one run on one machine and print the ratios.
func newBenchCmd(io *IO) *cobra.Command {
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure the pipeline against plain nix (prints ratios)",
		Args:  cobra.NoArgs,
	}
	c.AddCommand(newBenchBuildCmd(io), newBenchPushCmd(io))
	return c
}

// BenchBuildOptions are the flags of `ci bench build`.
type BenchBuildOptions struct {
	Workloads []string
	Reps      int
	Jobs      int
}

func newBenchBuildCmd(io *IO) *cobra.Command {
	opts := &BenchBuildOptions{}
	c := &cobra.Command{
		Use:   "build",
		Short: "ci build against one nix build and nix in calls of 100, medians of repetitions",
		Long: `On generated flakes (no inputs, /bin/sh builders) measure, each side building
fresh derivations of the same shape, repeated with the order of the sides
alternated:

  one nix build        one nix build of every attribute
  nix, calls of 100    the same attributes in sequential nix builds of 100
  ci build             ci build with an empty binary cache

and, with every output in a file:// cache and none in the store, ci build
against nix build --dry-run with that cache as its only substituter (both
only answer "what is cached?"). Prints each side's median and spread
((max−min) ÷ median), the ratios of medians, ci build's evaluation processes
and the load average before and after each workload.

Targets: at 100 outputs or fewer ci ÷ one nix build ≤ 1.05; at 1000 outputs
or more ci ÷ one nix build ≤ 0.5 and ci ÷ nix in calls of 100 ≤ 1.0.
Exit code 1 when a target is missed, 2 on bad flags.`,
		Example: `  ci bench build
  ci bench build --workloads 100,1000,2000,1000/10 --reps 5`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runBenchBuild(c.Context(), io, opts) },
	}
	var defaults []string
	for _, w := range build.DefaultWorkloads {
		defaults = append(defaults, w.String())
	}
	c.Flags().StringSliceVar(&opts.Workloads, "workloads", defaults, "generated flakes, a comma-separated `LIST` of N (N independent outputs) or N/K (N outputs over K shared dependencies)")
	c.Flags().IntVar(&opts.Reps, "reps", 3, "repetitions of every measurement (at least 3)")
	c.Flags().IntVar(&opts.Jobs, "jobs", 0, "nix --max-jobs of every side (0: one per CPU)")
	return c
}

func runBenchBuild(ctx context.Context, io *IO, opts *BenchBuildOptions) error {
	if opts.Reps < 3 {
		return clierr.Usagef("--reps %d: a median needs at least 3 repetitions", opts.Reps)
	}
	if opts.Jobs < 0 {
		return clierr.Usagef("--jobs %d: give a number ≥ 1, or 0 for one per CPU", opts.Jobs)
	}
	bo := build.BenchOptions{Reps: opts.Reps, Jobs: opts.Jobs}
	for _, s := range opts.Workloads {
		w, err := build.ParseWorkload(s)
		if err != nil {
			return clierr.Usage(err)
		}
		bo.Workloads = append(bo.Workloads, w)
	}
	_, err := build.RunBench(ctx, io.Out, bo)
	if errors.Is(err, build.ErrTargetMissed) {
		return clierr.Failedf("%v", err)
	}
	return err
}
