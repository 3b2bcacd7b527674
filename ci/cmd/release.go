package cmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"

	"github.com/spf13/cobra"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/shorthash"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
	"github.com/ipex-flake/ipex-flake/release/forge"
	"github.com/ipex-flake/ipex-flake/release/github"
	"github.com/ipex-flake/ipex-flake/release/gitrepo"
	"github.com/ipex-flake/ipex-flake/release/notify"
	"github.com/ipex-flake/ipex-flake/release/promote"
	"github.com/ipex-flake/ipex-flake/release/slack"
	"github.com/ipex-flake/ipex-flake/release/version"
)

func init() { register(newReleaseCmd) }

// ReleaseCommon are the flags every `ci release` subcommand shares.
type ReleaseCommon struct {
	// Repo is the GitHub repository owner/name (default $GITHUB_REPOSITORY).
	Repo string
	// PhaseVersion maps phaseN-complete tags to versions ({N} is the phase).
	PhaseVersion string
}

// ReleasePromoteOptions are the flags of `ci release promote`.
type ReleasePromoteOptions struct {
	IO         *IO
	Common     *ReleaseCommon
	To         string
	Rev        string
	DryRun     bool
	ApprovedBy string
	ReportPath string
	Cache      string
	PublicKey  string
	// AllowExternalServices lets beta and stable accept results that
	// tested external services.
	AllowExternalServices bool
	// SigningKeyFile signs the provenance (default: NIX_SIGNING_KEY_FILE,
	// NIX_SIGNING_KEY, or the local key ci push generated).
	SigningKeyFile string
}

// ReleaseStatusOptions are the flags of `ci release status`.
type ReleaseStatusOptions struct {
	IO     *IO
	Common *ReleaseCommon
	// ReportPath is the build report the gates are checked against.
	ReportPath string
}

// ReleaseVersionOptions are the flags of `ci release version`.
type ReleaseVersionOptions struct {
	IO      *IO
	Common  *ReleaseCommon
	Channel string
	Rev     string
}

func newReleaseCmd(io *IO) *cobra.Command {
	return newReleaseCmdWith(io, runReleasePromote, runReleaseStatus, runReleaseVersion)
}

func newReleaseCmdWith(io *IO,
	promoteF func(context.Context, *ReleasePromoteOptions) error,
	statusF func(context.Context, *ReleaseStatusOptions) error,
	versionF func(context.Context, *ReleaseVersionOptions) error,
) *cobra.Command {
	common := &ReleaseCommon{}
	c := &cobra.Command{
		Use:   "release",
		Short: "Promote a commit through the dev, beta and stable channels",
		Long: `Promote commits through the release channels with semver tags:

  dev     vX.Y.Z-dev.N   needs: unit passed
  beta    vX.Y.Z-beta.N  needs: unit, integration passed; the commit is on dev
  stable  vX.Y.Z         needs: all four stages passed, an approval; the commit is on beta

The version comes from the conventional commits since the last stable
release; a phaseN-complete tag stands for v0.N.0. A promotion makes, in
order: the tag, the channel ref channels/<name> (fast-forward only), the
release with notes and a channel manifest, and a Slack message. A rerun
finishes a promotion that stopped half-way and changes nothing after a
finished one.

With GITHUB_TOKEN (and GITHUB_REPOSITORY or --repo) everything happens on
GitHub (GITHUB_API_URL for GitHub Enterprise) and the gates read the ci/<stage>
commit statuses. Without it the same logic runs on the local repository:
tags and channels/* refs are made locally, the gates read the stage results
that ci test recorded in .git/ipex-ci/results.json, and the release is
printed (and kept in .git/ipex-ci/releases/).

Every gate accepts only stage results bound to the flake and the out paths
of the build report being released (--report, default ` + "`" + report.DefaultReportPath + "`" + `);
results for another flake or report refuse the promotion and name both.
beta and stable refuse results that tested external services unless
--allow-external-services is given.

Exit codes: 0 done (or already done), 1 a step failed (rerun to finish),
2 refused by a gate or bad flags (nothing was changed).

Slack: SLACK_BOT_TOKEN (+ SLACK_CHANNEL, default #ai-infrastructure) or
SLACK_WEBHOOK_URL; with neither the message is printed.`,
		Args: cobra.NoArgs,
	}
	c.PersistentFlags().StringVar(&common.Repo, "repo", "", "GitHub repository owner/name (default $GITHUB_REPOSITORY)")
	c.PersistentFlags().StringVar(&common.PhaseVersion, "phase-version", version.DefaultPhaseVersion, "version a phaseN-complete tag stands for ({N} is the phase)")
	c.AddCommand(newReleasePromoteCmd(io, common, promoteF), newReleaseStatusCmd(io, common, statusF), newReleaseVersionCmd(io, common, versionF),
		newReleaseCheckRefCmd(io, runReleaseCheckRef))
	return c
}

func newReleasePromoteCmd(io *IO, common *ReleaseCommon, runF func(context.Context, *ReleasePromoteOptions) error) *cobra.Command {
	o := &ReleasePromoteOptions{IO: io, Common: common}
	c := &cobra.Command{
		Use:   "promote --to dev|beta|stable",
		Short: "Promote a commit to a channel once its gate passes",
		Example: `  ci release promote --to dev
  ci release promote --to beta --rev phase4-complete
  ci release promote --to stable --rev v0.4.0-beta.1 --approved-by alice --report build.json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runF(c.Context(), o) },
	}
	f := c.Flags()
	f.StringVar(&o.To, "to", "", "channel: dev, beta or stable (required)")
	f.StringVar(&o.Rev, "rev", "HEAD", "commit to promote (SHA, tag or branch)")
	f.BoolVar(&o.DryRun, "dry-run", false, "compute and print everything, change nothing")
	f.StringVar(&o.ApprovedBy, "approved-by", "", "approver of a stable promotion (recorded in the release)")
	f.StringVar(&o.ReportPath, "report", "", "build report of the commit (ci build --report): the gates accept only results for its flake and out paths, and the manifest lists them (default "+report.DefaultReportPath+")")
	f.BoolVar(&o.AllowExternalServices, "allow-external-services", false, "let beta and stable accept integration/performance results that tested an external service (ci test --external-services)")
	f.StringVar(&o.Cache, "cache", "", "binary cache URI recorded in the manifest (default: the report's)")
	f.StringVar(&o.PublicKey, "public-key", "", "the cache's public signing key, recorded in the manifest (default: the provenance signing key's)")
	f.StringVar(&o.SigningKeyFile, "signing-key-file", "", "Nix secret key that signs the provenance (default: $NIX_SIGNING_KEY_FILE, $NIX_SIGNING_KEY, or the local key of ci push)")
	return c
}

func newReleaseStatusCmd(io *IO, common *ReleaseCommon, runF func(context.Context, *ReleaseStatusOptions) error) *cobra.Command {
	o := &ReleaseStatusOptions{IO: io, Common: common}
	c := &cobra.Command{
		Use:   "status",
		Short: "Show what each channel points at and what its next promotion would do",
		Long: `Show, per channel, the commit channels/<name> points at, its latest
release, and what the next promotion would do: dev takes HEAD, beta takes
dev's commit, stable takes beta's commit. A blocked promotion lists the
gates that refuse it, as ci release promote would with the same --report.
Changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runF(c.Context(), o) },
	}
	c.Flags().StringVar(&o.ReportPath, "report", report.DefaultReportPath, "build report (ci build --report) the gates are checked against, as for ci release promote --report")
	return c
}

func newReleaseVersionCmd(io *IO, common *ReleaseCommon, runF func(context.Context, *ReleaseVersionOptions) error) *cobra.Command {
	o := &ReleaseVersionOptions{IO: io, Common: common}
	c := &cobra.Command{
		Use:   "version",
		Short: "Print the version the next promotion to a channel would get",
		Long: `Print the tag the next promotion of --rev to --channel would get, without
checking its gates: the last stable release bumped by the conventional
commits since (feat: and phaseN: minor, fix: and others patch, ! or
BREAKING CHANGE: major, minor below 1.0.0), at least the version of a
phaseN-complete tag among them. A commit already released on the channel
prints that release's tag. Changes nothing.`,
		Example: `  ci release version                  # next stable version of HEAD
  ci release version --channel dev    # e.g. v0.2.0-dev.3`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runF(c.Context(), o) },
	}
	c.Flags().StringVar(&o.Channel, "channel", "stable", "channel: dev, beta or stable")
	c.Flags().StringVar(&o.Rev, "rev", "HEAD", "commit")
	return c
}

// parseChannel turns a flag value into a channel or a usage error.
func parseChannel(flag, s string) (version.Channel, error) {
	if s == "" {
		return "", clierr.Usagef("%s is required: pass %s dev, %s beta or %s stable", flag, flag, flag, flag)
	}
	c, err := version.ParseChannel(s)
	if err != nil {
		return "", clierr.Usagef("%s %q is not a channel: pass %s dev, %s beta or %s stable", flag, s, flag, flag, flag)
	}
	return c, nil
}

// versionConfig builds the phase mapping from --phase-version.
func (c *ReleaseCommon) versionConfig() (version.Config, error) {
	cfg := version.DefaultConfig()
	if c.PhaseVersion != "" {
		cfg.PhaseVersion = c.PhaseVersion
	}
	if err := cfg.Validate(); err != nil {
		return cfg, clierr.Usagef("--phase-version: %v", err)
	}
	return cfg, nil
}

// releaseSetup is the promoter of the repository in the current directory:
// GitHub when GITHUB_TOKEN is set, the local repository otherwise.
func releaseSetup(ctx context.Context, io *IO, common *ReleaseCommon) (*promote.Promoter, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	repo, err := gitrepo.Open(ctx, wd)
	if err != nil {
		return nil, clierr.Usage(err)
	}
	n, err := notify.FromEnv(io.Getenv, io.Out)
	if err != nil {
		return nil, clierr.Usage(err)
	}
	repo.Warn = io.Err
	p := &promote.Promoter{Repo: repo, Notifier: n, Log: io.Err}
	cfg, ok, err := github.ConfigFromEnv(io.Getenv, common.Repo)
	if err != nil {
		return nil, clierr.Usage(err)
	}
	if ok {
		api, err := github.New(cfg)
		if err != nil {
			return nil, clierr.Usagef("GitHub: %v (check GITHUB_API_URL)", err)
		}
		api.LocalPeel = repo.Peel
		p.Forge, p.Results = api, &github.StatusStore{Client: api}
		return p, nil
	}
	local, err := gitrepo.NewForge(ctx, repo)
	if err != nil {
		return nil, err
	}
	gd, err := repo.GitDir(ctx)
	if err != nil {
		return nil, err
	}
	p.Forge, p.Results = local, &results.FileStore{Path: results.DefaultPath(gd)}
	return p, nil
}

// openRelease checks --phase-version and opens the promoter, as every
// release subcommand does first.
func openRelease(ctx context.Context, io *IO, common *ReleaseCommon) (version.Config, *promote.Promoter, error) {
	cfg, err := common.versionConfig()
	if err != nil {
		return cfg, nil, err
	}
	p, err := releaseSetup(ctx, io, common)
	if err != nil {
		return cfg, nil, redactErr(io, err)
	}
	return cfg, p, nil
}

// openGatedRelease is openRelease with the GPU classes the gates check
// loaded into the promoter.
func openGatedRelease(ctx context.Context, io *IO, common *ReleaseCommon) (version.Config, *promote.Promoter, error) {
	cfg, p, err := openRelease(ctx, io, common)
	if err != nil {
		return cfg, nil, err
	}
	if err := withGPUClasses(p); err != nil {
		return cfg, nil, err
	}
	return cfg, p, nil
}

// approver returns --approved-by, or the approval of a GitHub Actions
// environment with required reviewers (the workflow sets CI_APPROVED_BY).
func approver(io *IO, flag string) string {
	if flag != "" {
		return flag
	}
	if io.Getenv("GITHUB_ACTIONS") == "true" {
		if who := io.Getenv("CI_APPROVED_BY"); who != "" {
			return who + " (GitHub environment approval)"
		}
	}
	return ""
}

var secretEnv = []string{"GITHUB_TOKEN", "SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL"}

// redact removes secret values from text bound for the terminal.
func redact(io *IO, s string) string {
	for _, k := range secretEnv {
		if v := io.Getenv(k); len(v) >= 4 {
			s = regexp.MustCompile(regexp.QuoteMeta(v)).ReplaceAllString(s, "<"+k+">")
		}
	}
	return s
}

// redactErr keeps the error's exit code and hides secrets in its message.
func redactErr(io *IO, err error) error {
	if err == nil {
		return nil
	}
	msg := redact(io, err.Error())
	if msg == err.Error() {
		return err
	}
	if clierr.Code(err) == clierr.ExitUsage {
		return clierr.Usagef("%s", msg)
	}
	return clierr.Failedf("%s", msg)
}

func runReleasePromote(ctx context.Context, o *ReleasePromoteOptions) error {
	opts, err := promoteOptions(ctx, o)
	if err != nil {
		return err
	}
	_, p, err := openGatedRelease(ctx, o.IO, o.Common)
	if err != nil {
		return err
	}
	if err := withProvenance(ctx, o, &opts, p); err != nil {
		return err
	}
	// A message for the terminal is shown after the steps, not amid them.
	var printed bytes.Buffer
	if pr, ok := p.Notifier.(*slack.Printer); ok {
		pr.Out = &printed
	}
	out, err := p.Run(ctx, opts)
	if err != nil {
		if out != nil {
			printSteps(o.IO, out)
		}
		return redactErr(o.IO, err)
	}
	promote.Print(o.IO.Out, out.Plan, o.DryRun)
	switch {
	case out.Plan.AlreadyStable != "":
		// Nothing to do, and promote.Print has said so.
	case o.DryRun:
		printPromoteDryRun(o.IO.Out, p, out.Plan, opts.Channel)
	default:
		printPromoted(o.IO, p, out, printed.Bytes())
	}
	return nil
}

// promoteOptions checks the flags of ci release promote and turns them into
// the promotion's options, with the binding of the build report (--report,
// else the default report when it exists).
func promoteOptions(ctx context.Context, o *ReleasePromoteOptions) (promote.Options, error) {
	ch, err := parseChannel("--to", o.To)
	if err != nil {
		return promote.Options{}, err
	}
	if o.Rev != "" && !gitrepo.ValidRev(o.Rev) {
		return promote.Options{}, clierr.Usagef("--rev %q is not a revision: pass a commit SHA, tag or branch (for example --rev HEAD)", o.Rev)
	}
	cfg, err := o.Common.versionConfig()
	if err != nil {
		return promote.Options{}, err
	}
	opts := promote.Options{Channel: ch, Rev: o.Rev, DryRun: o.DryRun, ApprovedBy: approver(o.IO, o.ApprovedBy),
		Cache: o.Cache, PublicKey: o.PublicKey, Version: cfg, AllowExternalServices: o.AllowExternalServices}
	path := o.ReportPath
	if path == "" {
		if _, err := os.Stat(report.DefaultReportPath); err == nil {
			path = report.DefaultReportPath
		}
	}
	if path == "" {
		return opts, nil
	}
	rep, err := report.Read(path)
	if err != nil {
		return promote.Options{}, clierr.Usagef("--report: %v (pass the file written by ci build --report)", err)
	}
	opts.Report = rep
	if opts.Want, err = reportBinding(ctx, rep); err != nil {
		return promote.Options{}, err
	}
	return opts, nil
}

// printPromoteDryRun says what a promotion would change: the tag, the channel
// ref, the release and the Slack message.
func printPromoteDryRun(w io.Writer, p *promote.Promoter, plan *promote.Plan, ch version.Channel) {
	if plan.Resume {
		fmt.Fprintf(w, "dry run on %s: a run would finish whatever an earlier run of this promotion left undone (ref, release, manifest, notification); nothing was changed\n", p.Forge.Kind())
		return
	}
	fmt.Fprintf(w, "dry run on %s: would create tag %s, move channels/%s to %s, publish the release below and notify %s; nothing was changed\n",
		p.Forge.Kind(), plan.Tag, ch, shorthash.Commit(plan.Rev), p.Notifier.Target())
	promote.PrintRelease(w, plan)
	msg := slack.PromotionMessage(slack.Promotion{Tag: plan.Tag, Channel: string(ch), Rev: plan.Rev,
		Previous: plan.Previous, RepoURL: p.Forge.RepoURL(), ApprovedBy: plan.ApprovedBy})
	fmt.Fprintf(w, "--- slack message ---\n%s\n", msg.Text)
}

// printPromoted reports a promotion that ran: its steps, the release a
// local run made, the message printed instead of sent, and notifications
// that failed.
func printPromoted(io *IO, p *promote.Promoter, out *promote.Outcome, printed []byte) {
	w := io.Out
	printSteps(io, out)
	if p.Forge.Kind() == "local" && out.Changed() {
		fmt.Fprintf(w, "local mode (no GITHUB_TOKEN): tags and channels/* refs were made in this repository; the release that would be published on GitHub:\n")
		promote.PrintRelease(w, out.Plan)
	}
	if !out.Changed() {
		fmt.Fprintf(w, "%s on %s was already complete: nothing changed\n", out.Plan.Tag, out.Plan.Channel)
	}
	if len(printed) > 0 {
		fmt.Fprintf(w, "\n%s", printed)
	}
	for _, e := range out.NotifyErrors {
		fmt.Fprintf(io.Err, "warning: notification failed (the release stands; rerun the promotion to send it): %s\n", redact(io, e.Error()))
	}
}

func printSteps(io *IO, out *promote.Outcome) {
	for _, s := range out.Steps {
		mark := "="
		if s.Changed {
			mark = "+"
		}
		fmt.Fprintf(io.Out, "  %s %-8s %s\n", mark, s.Name, redact(io, s.Detail))
	}
}

func runReleaseStatus(ctx context.Context, o *ReleaseStatusOptions) error {
	cfg, p, err := openGatedRelease(ctx, o.IO, o.Common)
	if err != nil {
		return err
	}
	var want results.Binding
	rep, err := report.Read(o.ReportPath)
	switch {
	case err == nil:
		if want, err = reportBinding(ctx, rep); err != nil {
			return err
		}
	case o.ReportPath != report.DefaultReportPath || !errors.Is(err, os.ErrNotExist):
		return clierr.Usagef("--report: %v (pass the file written by ci build --report)", err)
	}
	sts, err := p.Status(ctx, cfg, approver(o.IO, ""), want)
	if err != nil {
		return redactErr(o.IO, err)
	}
	fmt.Fprintf(o.IO.Out, "release channels (%s, refs %s):\n", p.Forge.Kind(), forge.ChannelRefName("<name>"))
	promote.PrintStatus(o.IO.Out, sts)
	printEvidence(ctx, o.IO.Out, p.Results, sts)
	if sts.Problems() {
		return clierr.Failedf("a release tag was moved or deleted after its release (see PROBLEM above)")
	}
	return nil
}

func runReleaseVersion(ctx context.Context, o *ReleaseVersionOptions) error {
	ch, err := parseChannel("--channel", o.Channel)
	if err != nil {
		return err
	}
	cfg, p, err := openRelease(ctx, o.IO, o.Common)
	if err != nil {
		return err
	}
	tag, err := p.NextVersion(ctx, promote.Options{Channel: ch, Rev: o.Rev, Version: cfg})
	if err != nil {
		return redactErr(o.IO, err)
	}
	fmt.Fprintln(o.IO.Out, tag)
	return nil
}
