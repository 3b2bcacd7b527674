package cmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

// ReportDiffOptions are the arguments of `ci report diff`.
type ReportDiffOptions struct {
	// A and B are the two build reports.
	A, B string
}

func newReportDiffCmdWith(io *IO, runF func(context.Context, *IO, *ReportDiffOptions) error) *cobra.Command {
	o := &ReportDiffOptions{}
	return &cobra.Command{
		Use:   "diff A B",
		Short: "Compare two build reports: statuses, drvPaths and outPaths",
		Long: `Compare two build reports (ci build --report) output by output: the same
outputs, each with the same status, drvPath and outPaths. Reasons, logs and
durations are not compared. Used to check that two engines (dagger and host)
build a flake alike:

  ci build --engine host   --flake ./examples/offline --report host.json
  ci build --engine dagger --flake ./examples/offline --report dagger.json
  ci report diff host.json dagger.json

Exit codes: 0 the reports agree, 1 they differ (each difference is printed)
or hold no outputs, 2 a report cannot be read.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 2 {
				return clierr.Usagef("ci report diff takes two report files, got %d: ci report diff A.json B.json", len(args))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			o.A, o.B = args[0], args[1]
			return runF(c.Context(), io, o)
		},
	}
}

func runReportDiff(_ context.Context, io *IO, o *ReportDiffOptions) error {
	a, err := report.Read(o.A)
	if err != nil {
		return clierr.Usagef("ci report diff: %v", err)
	}
	b, err := report.Read(o.B)
	if err != nil {
		return clierr.Usagef("ci report diff: %v", err)
	}
	if len(a.Outputs) == 0 && len(b.Outputs) == 0 {
		return clierr.Failedf("%s and %s hold no outputs: nothing to compare", o.A, o.B)
	}
	diffs := report.Diff(a, b)
	for _, d := range diffs {
		fmt.Fprintln(io.Out, d)
	}
	if len(diffs) > 0 {
		return clierr.Failedf("%s (%s engine) and %s (%s engine) differ in %d places", o.A, a.Engine, o.B, b.Engine, len(diffs))
	}
	fmt.Fprintf(io.Err, "%s (%s engine) and %s (%s engine) agree: %d outputs, same statuses, drvPaths and outPaths\n",
		o.A, a.Engine, o.B, b.Engine, len(a.Outputs))
	return nil
}
