package cmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	goio "io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/build"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/daggerengine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/pick"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
	"github.com/ipex-flake/ipex-flake/pipelines/progress"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

func init() { register(newBuildCmd) }

// BuildOptions are the flags of `ci build`.
type BuildOptions struct {
	Flake   string
	Engine  string
	Systems []string
	Jobs    int
	Cache   string
	Attrs   []string
	Report  string
	JUnit   string
	Image   string
	// Builders and LocalJobs send builds to Nix remote builders; Shard
	// selects one shard of the outputs (build_scale.go).
	Builders  string
	LocalJobs OptionalInt
	Shard     string
	ShardPlan string
	// PushTo is the staging cache (build_pushto.go).
	PushTo string
	// DaggerConnectTimeout bounds connecting to the Dagger engine (0: 60 s).
	DaggerConnectTimeout time.Duration
	// DryRun evaluates and asks the cache and the store; builds nothing.
	DryRun bool
	// reportSet is true when --report was given (a dry run writes the
	// report only then).
	reportSet bool
}

func newBuildCmd(io *IO) *cobra.Command { return newBuildCmdWith(io, runBuild) }

func newBuildCmdWith(io *IO, runF func(context.Context, *IO, *BuildOptions) error) *cobra.Command {
	opts := &BuildOptions{}
	c := &cobra.Command{
		Use:   "build",
		Short: "Build every output of the flake",
		Long: `Build every output of the flake: packages, checks, devShells, formatter, the
programs of apps, nixosConfigurations.*.config.system.build.toplevel and
homeConfigurations.*.activationPackage, for each selected system.

All outputs are evaluated in one nix evaluation; outputs the binary cache
already has are reported "cached", outputs already in the local store
"present", and neither is built; the rest are built in batches of about 100
derivations by a few nix processes at once, shared dependencies first (each
builds once; one failure does not stop the others). Every output ends built,
present, cached, failed or skipped (with the reason: a system or system
feature this machine lacks, or a system not selected with --systems).

--attr nixosConfigurations.NAME and homeConfigurations.NAME select the
configuration's toplevel and activation package. Patterns or --systems
that select nothing are a usage error (exit 2) that lists the attribute
prefixes the flake has; the report is then left as it was.

--dry-run is the evaluation gate: every output is evaluated and reported
with its drvPath as "would build", "cached", "present", "skipped" or
"failed" (with the evaluation error); nothing is built.

Exit codes: 0 every selected output is built, present or cached (or
skipped), 1 an output failed (with --dry-run: failed to evaluate), 2 usage
or configuration error (nothing was built).`,
		Example: `  ci build
  ci build --engine host --attr 'packages.*.ollama-ipex' --jobs 4
  ci build --flake ./examples/offline --cache file:///tmp/cache
  ci build --dry-run                                 # the evaluation gate
  ci build --attr nixosConfigurations.workstation
  ci build --engine dagger --image ./nix-image.tar   # offline Dagger base image`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			opts.reportSet = c.Flags().Changed("report")
			return runF(c.Context(), io, opts)
		},
	}
	f := c.Flags()
	f.BoolVar(&opts.DryRun, "dry-run", false, "evaluate every output and report its drvPath and whether it would build, is cached or present, or fails to evaluate; build nothing (exit 1 when an output fails to evaluate; the report is written only with an explicit --report)")
	f.StringVar(&opts.Flake, "flake", ".", "flake to build: a local directory or any nix flake `REF` (github:owner/repo)")
	f.StringVar(&opts.Engine, "engine", engine.KindAuto, "where nix runs, `auto|dagger|host`: dagger in containers, host on this machine's nix, auto picks dagger when an engine is reachable, else host")
	f.StringSliceVar(&opts.Systems, "systems", nil, "systems to build for, a comma-separated `LIST` (default: this machine's, "+currentSystem()+")")
	f.IntVar(&opts.Jobs, "jobs", 0, "build `N` derivations in parallel in each nix process (nix --max-jobs; 0: nix.conf's max-jobs, or one per CPU when nix.conf sets none)")
	f.StringVar(&opts.Cache, "cache", "", "binary cache asked for outputs it already has, a nix `STORE_URI`: file://, http(s)://, s3://… (default "+cache.DefaultURI()+")")
	f.StringArrayVar(&opts.Attrs, "attr", nil, "select outputs whose attribute path matches `GLOB`, repeatable: * within one segment, ** across segments (e.g. 'packages.*.ollama-*')")
	f.StringVar(&opts.Report, "report", report.DefaultReportPath, "write the JSON report of every output to `FILE` (read by ci push and ci release)")
	f.StringVar(&opts.JUnit, "junit", "", "also write JUnit XML with one testcase per output to `FILE` (a testcase has a time only when its build time is known)")
	addScaleFlags(f, opts)
	f.StringVar(&opts.PushTo, "push-to", "", pushToHelp)
	f.StringVar(&opts.Image, "image", daggerengine.DefaultImage, "Dagger base image with nix: a registry reference or, for offline machines, a local OCI tarball (`REF_OR_OCI_TAR`)")
	f.DurationVar(&opts.DaggerConnectTimeout, "dagger-connect-timeout", daggerengine.DefaultConnectTimeout, "give up on a Dagger engine that has not answered within `D` (exit 2; --engine auto uses the host's nix instead; 0: the default)")
	return c
}

var systemRe = regexp.MustCompile(`^[a-z0-9_]+-[a-z0-9_]+$`)

// currentSystem is this machine's nix system name.
func currentSystem() string {
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "riscv64": "riscv64"}[runtime.GOARCH]
	if arch == "" {
		arch = runtime.GOARCH
	}
	return arch + "-" + runtime.GOOS
}

// flakeSource splits --flake into the host directory to mount as the source
// (empty for remote refs) and reports usage errors for local paths that
// hold no flake.
func flakeSource(ref string) (dir string, remote bool, err error) {
	if ref == "" {
		return "", false, clierr.Usagef("--flake is empty: pass a directory holding flake.nix or a flake reference")
	}
	local := strings.TrimPrefix(ref, "path:")
	if strings.Contains(local, "#") {
		return "", false, clierr.Usagef("--flake %q: give the flake without an attribute; select outputs with --attr", ref)
	}
	looksLocal := strings.HasPrefix(local, ".") || strings.HasPrefix(local, "/") || strings.HasPrefix(ref, "path:")
	if !looksLocal {
		if st, err := os.Stat(local); err != nil || !st.IsDir() || strings.Contains(local, ":") {
			return "", true, nil
		}
	}
	abs, err := filepath.Abs(local)
	if err != nil {
		return "", false, clierr.Usage(err)
	}
	if _, err := os.Stat(filepath.Join(abs, "flake.nix")); err != nil {
		return "", false, clierr.Usagef("--flake %s: no flake.nix in %s: pass the directory that holds flake.nix", ref, abs)
	}
	return abs, false, nil
}

func (o *BuildOptions) validate() error {
	if o.DryRun && o.PushTo != "" {
		return clierr.Usagef("--dry-run builds and uploads nothing: drop --push-to %s (or --dry-run)", o.PushTo)
	}
	if o.Jobs < 0 {
		return clierr.Usagef("--jobs %d: give a number of jobs ≥ 1, or 0 for nix's own setting", o.Jobs)
	}
	if len(o.Systems) == 0 {
		o.Systems = []string{currentSystem()}
	}
	for _, s := range o.Systems {
		if !systemRe.MatchString(s) {
			return clierr.Usagef("--systems: %q is not a nix system name: use names like x86_64-linux,aarch64-linux", s)
		}
	}
	switch {
	case o.DaggerConnectTimeout < 0:
		return clierr.Usagef("--dagger-connect-timeout %s: give a positive duration such as 60s or 2m", o.DaggerConnectTimeout)
	case o.DaggerConnectTimeout == 0:
		o.DaggerConnectTimeout = daggerengine.DefaultConnectTimeout
	}
	switch o.Engine {
	case engine.KindAuto, engine.KindDagger, engine.KindHost:
	default:
		return clierr.Usagef("unknown engine %q: use --engine auto, dagger or host", o.Engine)
	}
	if o.PushTo != "" {
		if err := cache.Validate(o.PushTo); err != nil {
			return err
		}
	}
	if o.Cache == "" {
		o.Cache = cache.DefaultURI()
		if o.PushTo != "" {
			o.Cache = o.PushTo
		}
	}
	if err := cache.Validate(o.Cache); err != nil {
		return err
	}
	if _, err := build.GlobsToRegexps(o.Attrs); err != nil {
		return clierr.Usage(err)
	}
	return o.validateScale()
}

func runBuild(ctx context.Context, io *IO, opts *BuildOptions) error {
	if err := opts.validate(); err != nil {
		return err
	}
	dir, remote, err := flakeSource(opts.Flake)
	if err != nil {
		return err
	}
	staging, err := newStaging(ctx, io, opts)
	if err != nil {
		return err
	}
	eng, flakeRef, err := opts.openEngine(ctx, io, dir, remote)
	if err != nil {
		return err
	}
	defer eng.Close()
	rem, err := opts.remote(eng, io)
	if err != nil {
		return err
	}
	lookup, err := cache.New(opts.Cache, nixPathInfoLookup(eng))
	if err != nil {
		return err
	}
	prog := progress.New(io.Err, progress.Detect(io.Getenv, io.TTY))
	prog.SummaryFile = io.Getenv("GITHUB_STEP_SUMMARY")
	prog.Width = io.Width
	shown := opts.Flake
	if !remote {
		shown = dir
	}
	fmt.Fprintf(io.Err, "ci build: %s on the %s engine, systems %s, cache %s\n", shown, eng.Name(), strings.Join(opts.Systems, ","), opts.Cache)

	bprog := staging.wrap(ctx, eng, prog)
	defer staging.stop()
	stopTicking := prog.Ticking(ctx)
	rep, _, runErr := build.Run(ctx, build.Options{
		Engine: eng, Flake: flakeRef, Systems: opts.Systems, Jobs: opts.Jobs,
		Attrs: opts.Attrs, Cache: lookup, Progress: bprog, Secrets: nixSecrets(io.Getenv),
		Remote: rem, Shard: opts.shard(), ShardPlan: opts.ShardPlan,
		DryRun: opts.DryRun,
	})
	stopTicking()
	if err := withoutReport(ctx, rep, runErr); err != nil {
		return err
	}
	stageErr := staging.finish(ctx, rep)
	rep.Flake = opts.Flake
	if !remote {
		rep.Rev = gitOut(ctx, dir, "rev-parse", "HEAD")
	}
	rep.Sort()
	if err := opts.writeResults(io, prog, rep); err != nil {
		return err
	}
	return opts.outcome(rep, runErr, stageErr)
}

// openEngine opens the engine on the flake's directory (on the working
// directory for a remote flake reference) and returns the flake as the
// engine sees it.
func (o *BuildOptions) openEngine(ctx context.Context, io *IO, dir string, remote bool) (engine.Engine, string, error) {
	src := dir
	if remote {
		src = "."
	}
	eng, err := pick.Open(ctx, o.Engine, io.Getenv, engine.Options{
		Source: src, Image: o.Image, Log: io.Err, ConnectTimeout: o.DaggerConnectTimeout,
	})
	if err != nil {
		return nil, "", err
	}
	if remote {
		return eng, o.Flake, nil
	}
	return eng, eng.SourcePath(), nil
}

// withoutReport is the error of a build that has nothing to report: a
// flake that does not evaluate or a selection that matches nothing (exit
// 2), an interruption before anything was built, or the engine's failure.
// It is nil when the build has a report.
func withoutReport(ctx context.Context, rep *report.Report, runErr error) error {
	var evalErr *build.EvalError
	var selErr *build.SelectionError
	switch {
	case errors.As(runErr, &evalErr):
		return clierr.Usagef("%v\n%s", runErr, evalErr.Hint())
	case errors.As(runErr, &selErr):
		return clierr.Usage(selErr)
	case rep == nil && runErr != nil:
		if ctx.Err() != nil {
			return clierr.Failedf("interrupted before anything was built")
		}
		return runErr
	}
	return nil
}

// writeResults prints the summary (and, for a dry run, every output's
// drvPath) and writes the report and the JUnit file.
func (o *BuildOptions) writeResults(io *IO, prog *progress.Printer, rep *report.Report) error {
	if len(rep.Outputs) == 0 {
		fmt.Fprintf(io.Err, "warning: no outputs selected (systems %s, --attr %s)\n", strings.Join(o.Systems, ","), strings.Join(o.Attrs, " "))
	}
	if err := prog.Finish(rep); err != nil {
		fmt.Fprintf(io.Err, "warning: %v\n", err)
	}
	if o.DryRun {
		printDryRun(io.Out, rep)
	}
	if o.Report != "" && (!o.DryRun || o.reportSet) {
		if err := rep.Write(o.Report); err != nil {
			return fmt.Errorf("writing the report: %w", err)
		}
		fmt.Fprintf(io.Err, "report: %s\n", o.Report)
	}
	if o.JUnit != "" {
		if err := rep.WriteJUnit(o.JUnit); err != nil {
			return fmt.Errorf("writing the JUnit file: %w", err)
		}
	}
	return nil
}

// outcome is ci build's exit once the results are written: 1 when it was
// interrupted, the engine or the staging cache failed, or an output failed
// (to evaluate, for a dry run).
func (o *BuildOptions) outcome(rep *report.Report, runErr, stageErr error) error {
	if errors.Is(runErr, build.ErrInterrupted) {
		return clierr.Failedf("interrupted: %s; rerun to finish the rest", progress.Counts(rep))
	}
	if runErr != nil {
		return runErr
	}
	if stageErr != nil {
		return stageErr
	}
	if n := rep.Counts()[report.StatusFailed]; n > 0 {
		if o.DryRun {
			return clierr.Failedf("%d of %d outputs failed to evaluate", n, len(rep.Outputs))
		}
		return clierr.Failedf("%d of %d outputs failed", n, len(rep.Outputs))
	}
	return nil
}

// printDryRun writes one line per output: status, attribute, and the
// drvPath (or, for failures and skips, the reason).
func printDryRun(w goio.Writer, rep *report.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, o := range rep.Outputs {
		what := o.DrvPath
		if o.Status == report.StatusFailed || o.Status == report.StatusSkipped || what == "" {
			what = strings.ReplaceAll(o.Reason, "\n", " ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", o.Status, o.Attr, what)
	}
	tw.Flush()
}

// nixSecrets gives nix GITHUB_TOKEN as an access token for fetching flake
// inputs from GitHub (the API's limit without one is 60 requests an hour).
// It travels as a secret NIX_CONFIG: never in arguments, logs or images.
func nixSecrets(getenv func(string) string) map[string]string {
	tok := strings.TrimSpace(getenv("GITHUB_TOKEN"))
	if tok == "" {
		return nil
	}
	host := "github.com"
	if server := getenv("GITHUB_SERVER_URL"); server != "" {
		if u, err := url.Parse(server); err == nil && u.Host != "" {
			host = u.Host
		}
	}
	return map[string]string{"NIX_CONFIG": "access-tokens = " + host + "=" + tok}
}

// nixPathInfoLookup answers cache lookups for store types read through nix
// (s3://, ssh://): `nix path-info --store URI --json` lists the valid ones.
func nixPathInfoLookup(eng engine.Engine) cache.FallbackFunc {
	return func(ctx context.Context, uri string, paths []string) (map[string]bool, error) {
		var out, errb bytes.Buffer
		args := nixcli.Nix(append([]string{"path-info", "--json", "--store", uri}, paths...)...)
		if _, err := eng.Run(ctx, engine.Cmd{Args: args, Stdout: &out, Stderr: &errb}); err != nil {
			return nil, err
		}
		// Nix 2.19+ prints null for paths the store lacks; older nix stops
		// at the first one, so then each path is asked on its own.
		if out.Len() == 0 && strings.Contains(errb.String(), "is not valid") && len(paths) > 1 {
			has := make(map[string]bool, len(paths))
			for _, p := range paths {
				one, err := nixPathInfoLookup(eng)(ctx, uri, []string{p})
				if err != nil {
					return nil, err
				}
				has[p] = one[p]
			}
			return has, nil
		}
		if out.Len() == 0 && strings.Contains(errb.String(), "is not valid") {
			return map[string]bool{paths[0]: false}, nil
		}
		infos, err := nixcli.ParsePathInfo(out.Bytes())
		if err != nil {
			return nil, fmt.Errorf("asking %s: %s", uri, build.CleanNixError(errb.String()))
		}
		has := make(map[string]bool, len(paths))
		for _, p := range paths {
			has[p] = false
		}
		for _, pi := range infos {
			has[pi.Path] = true
		}
		return has, nil
	}
}
