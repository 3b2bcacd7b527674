package cmd

import (
	"github.com/spf13/cobra"

	"github.com/ipex-flake/ipex-flake/pipelines/push"
)

// newBenchPushCmd is `ci bench push`: push time ÷ `nix store sign` plus
// `nix copy --to` time for one closure, and narinfo lookups per second,
// against a local nginx WebDAV cache.
func newBenchPushCmd(io *IO) *cobra.Command {
	opts := push.BenchOptions{}
	c := &cobra.Command{
		Use:   "push",
		Short: "Measure ci push against nix store sign + nix copy, and narinfo lookups per second",
		Long: `On a generated closure and a local nginx WebDAV cache, both sides sign the
same closure with the same key and upload it to a fresh cache: nix store sign
plus nix copy --to, and ci push (write check, lookups, sign, copy, read-back
verification). The order alternates between repetitions; every repetition,
the median ratio and its spread are printed. Exits 1 when the median of
push ÷ copy is over 1.05.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return push.RunPushBench(c.Context(), io.Out, opts)
		},
	}
	f := c.Flags()
	f.IntVar(&opts.Paths, "paths", 20, "store paths in the pushed closure")
	f.IntVar(&opts.Lines, "lines", 20000, "lines of ~100 bytes per store path")
	f.IntVar(&opts.Lookups, "lookups", 1000, "narinfo lookups to time")
	f.IntVar(&opts.Reps, "reps", 3, "repetitions of each side (at least 3)")
	return c
}
