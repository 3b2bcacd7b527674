package cmd

import (
	"github.com/spf13/cobra"

	"github.com/ipex-flake/ipex-flake/pipelines/push"
)

// newBenchPushCmd is `ci bench push`: push time ÷ plain `nix copy --to`
// time for one closure, and narinfo lookups per second, against a local
// nginx WebDAV cache.
func newBenchPushCmd(io *IO) *cobra.Command {
	opts := push.BenchOptions{}
	c := &cobra.Command{
		Use:   "push",
		Short: "Measure ci push against plain nix copy, and narinfo lookups per second",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return push.RunPushBench(c.Context(), io.Out, opts)
		},
	}
	f := c.Flags()
	f.IntVar(&opts.Paths, "paths", 20, "store paths in the pushed closure")
	f.IntVar(&opts.Lines, "lines", 20000, "lines of ~100 bytes per store path")
	f.IntVar(&opts.Lookups, "lookups", 1000, "narinfo lookups to time")
	return c
}
