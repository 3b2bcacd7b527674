package cmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

func init() { register(newReportCmd) }

// ReportMergeOptions are the flags of `ci report merge`.
type ReportMergeOptions struct {
	IO     *IO
	Out    string
	Inputs []string
}

func newReportCmd(io *IO) *cobra.Command {
	c := &cobra.Command{
		Use:   "report",
		Short: "Work with build reports (ci build --report)",
		Args:  cobra.NoArgs,
	}
	c.AddCommand(newReportMergeCmd(io, runReportMerge))
	c.AddCommand(newReportDiffCmdWith(io, runReportDiff))
	return c
}

func newReportMergeCmd(io *IO, runF func(context.Context, *ReportMergeOptions) error) *cobra.Command {
	o := &ReportMergeOptions{IO: io}
	c := &cobra.Command{
		Use:   "merge --out FILE REPORT...",
		Short: "Join the reports of the shards of one build into one report",
		Long: `Join the reports of the shards of one build (ci build --shard I/N) into the
report of the whole build, which the stages, ci push and ci release read.
Every output appears once, with the status of the shard that built it. The
shards must come from the same flake and commit; shards that evaluated an
output to different derivations are refused.

  go run ./ci report merge --out .ci-out/build-report.json shards/*/build-report.json`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			o.Inputs = args
			return runF(c.Context(), o)
		},
	}
	c.Flags().StringVar(&o.Out, "out", report.DefaultReportPath, "write the merged report to `FILE`")
	return c
}

func runReportMerge(_ context.Context, o *ReportMergeOptions) error {
	var in []*report.Report
	for _, p := range o.Inputs {
		r, err := report.Read(p)
		if err != nil {
			return clierr.Usagef("%v: pass the build reports written by ci build --report", err)
		}
		in = append(in, r)
	}
	merged, err := report.Merge(in...)
	if err != nil {
		return clierr.Usagef("%v", err)
	}
	if err := merged.Write(o.Out); err != nil {
		return err
	}
	fmt.Fprintf(o.IO.Out, "%s: %d outputs from %d reports\n", o.Out, len(merged.Outputs), len(in))
	return nil
}
