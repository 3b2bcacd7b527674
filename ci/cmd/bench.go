package cmd

import (
	"github.com/spf13/cobra"

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

func newBenchBuildCmd(io *IO) *cobra.Command {
	opts := build.BenchOptions{}
	c := &cobra.Command{
		Use:   "build",
		Short: "ci build ÷ nix build, evaluation processes, cached rerun ÷ nix substitution",
		Long: `On generated flakes of 10, 100 and 1000 outputs (no inputs, /bin/sh builders),
measure in one run: ci build wall time ÷ plain nix build of the same
attributes (target ≤ 1.10 at 100 outputs); the evaluation processes ci build
starts (target 1); and a rerun whose outputs are all in a file:// cache ÷
nix build with that cache as its only substituter (target ≤ 1.0).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			_, err := build.RunBench(c.Context(), io.Out, opts)
			return err
		},
	}
	c.Flags().IntSliceVar(&opts.Sizes, "sizes", []int{10, 100, 1000}, "numbers of outputs of the generated flakes")
	c.Flags().IntVar(&opts.Jobs, "jobs", 0, "nix --max-jobs for both sides (0: one per CPU)")
	return c
}
