package cmd

import (
	"context"

	"github.com/spf13/cobra"
)

// VerifyReleaseOptions are the flags of `ci verify release`.
type VerifyReleaseOptions struct {
	IO  *IO
	Tag string
}

func newVerifyReleaseCmd(io *IO, runF func(context.Context, *VerifyReleaseOptions) error) *cobra.Command {
	o := &VerifyReleaseOptions{IO: io}
	return &cobra.Command{Use: "release TAG", Args: cobra.ExactArgs(1), RunE: func(c *cobra.Command, args []string) error { o.Tag = args[0]; return runF(c.Context(), o) }}
}

func runVerifyRelease(ctx context.Context, o *VerifyReleaseOptions) error { return nil }
