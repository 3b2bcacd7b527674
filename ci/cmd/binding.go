package cmd

import (
	"context"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
)

// reportBinding is what a gate requires results to be bound to: the flake
// the report was built from (directory in the repository and narHash, read
// now with the host's nix) and the report's digest.
func reportBinding(ctx context.Context, rep *report.Report) (results.Binding, error) {
	b, err := results.ResolveFlake(ctx, rep.Flake)
	if err != nil {
		return results.Binding{}, clierr.Usagef("cannot tell which flake the build report is of (%v): run in the checkout the report was built from", err)
	}
	b.Report = rep.Digest()
	return b, nil
}
