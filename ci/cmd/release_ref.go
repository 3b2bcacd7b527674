package cmd

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ipex-flake/ipex-flake/internal/childenv"
	"github.com/ipex-flake/ipex-flake/internal/clierr"
)

// ReleaseCheckRefOptions are the flags of `ci release check-ref`.
type ReleaseCheckRefOptions struct {
	IO     *IO
	Dir    string
	Ref    string
	Rev    string
	Branch string
	Remote string
}

// phaseTagRef is the tag that starts a release.
var phaseTagRef = regexp.MustCompile(`^refs/tags/phase[0-9]+-complete$`)

func newReleaseCheckRefCmd(io *IO, runF func(context.Context, *ReleaseCheckRefOptions) error) *cobra.Command {
	o := &ReleaseCheckRefOptions{IO: io}
	c := &cobra.Command{
		Use:   "check-ref",
		Short: "Refuse a release from anything but the main branch or a phase tag on it",
		Long: `Check that a release run starts from the release branch or from a
phaseN-complete tag that points at a commit of the release branch. A tag
pushed on a side branch, or a run started by hand from another branch, is
refused with exit 2 before anything is built or promoted.

The commit must be reachable from REMOTE/BRANCH (the checkout needs the full
history: actions/checkout with fetch-depth: 0).

Defaults come from GitHub Actions: --ref $GITHUB_REF, --rev $GITHUB_SHA.`,
		Example: `  ci release check-ref --ref refs/tags/phase4-complete --rev 1a2b3c`,
		Args:    cobra.NoArgs,
		RunE:    func(c *cobra.Command, _ []string) error { return runF(c.Context(), o) },
	}
	f := c.Flags()
	f.StringVar(&o.Ref, "ref", "", "the ref the run started from (default $GITHUB_REF)")
	f.StringVar(&o.Rev, "rev", "", "the commit to release (default $GITHUB_SHA, else HEAD)")
	f.StringVar(&o.Branch, "branch", "main", "the release branch")
	f.StringVar(&o.Remote, "remote", "origin", "the remote whose release branch counts (\"\" for the local branch)")
	f.StringVar(&o.Dir, "dir", ".", "the git checkout")
	return c
}

func runReleaseCheckRef(ctx context.Context, o *ReleaseCheckRefOptions) error {
	ref, rev := o.Ref, o.Rev
	if ref == "" {
		ref = o.IO.Getenv("GITHUB_REF")
	}
	if rev == "" {
		rev = o.IO.Getenv("GITHUB_SHA")
	}
	if rev == "" {
		rev = "HEAD"
	}
	branchRef := "refs/heads/" + o.Branch
	switch {
	case ref == "":
		return clierr.Usagef("no ref: pass --ref (GITHUB_REF is not set)")
	case ref != branchRef && !phaseTagRef.MatchString(ref):
		return clierr.Usagef("refusing to release from %s: releases start only from %s or a phaseN-complete tag on it; run the workflow from %s, or tag a commit of %s (git tag phase4-complete <commit on %s>)",
			ref, branchRef, o.Branch, o.Branch, o.Branch)
	}
	tip := o.Branch
	if o.Remote != "" {
		tip = o.Remote + "/" + o.Branch
	}
	if gitOut(ctx, o.Dir, "rev-parse", "--verify", "--quiet", tip+"^{commit}") == "" {
		return clierr.Usagef("%s is not in the checkout %s: fetch the whole history (actions/checkout with fetch-depth: 0, or git fetch %s %s)", tip, o.Dir, o.Remote, o.Branch)
	}
	commit := gitOut(ctx, o.Dir, "rev-parse", "--verify", "--quiet", rev+"^{commit}")
	if commit == "" {
		return clierr.Usagef("%s is not a commit of the checkout %s", rev, o.Dir)
	}
	mb := exec.CommandContext(ctx, "git", "-C", o.Dir, "merge-base", "--is-ancestor", commit, tip)
	mb.Env = childenv.Environ()
	err := mb.Run()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
			return clierr.Usagef("refusing to release %.12s from %s: the commit is not on %s; tag a commit of %s instead (git push origin :%s removes this tag)",
				commit, ref, tip, o.Branch, strings.TrimPrefix(ref, "refs/tags/"))
		}
		return fmt.Errorf("git merge-base: %w", err)
	}
	fmt.Fprintf(o.IO.Out, "%s at %.12s is on %s: release allowed\n", ref, commit, tip)
	return nil
}
