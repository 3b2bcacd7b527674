package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/gpuclass"
	"github.com/ipex-flake/ipex-flake/pipelines/quality"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
	"github.com/ipex-flake/ipex-flake/pipelines/stage"
	"github.com/ipex-flake/ipex-flake/release/notify"
	"github.com/ipex-flake/ipex-flake/release/slack"
)

func init() { register(newTestCmd) }

// TestOptions are the flags of `ci test`.
type TestOptions struct {
	IO *IO

	Stages   []string
	All      bool
	Require  bool
	Assume   []string
	Timeouts []string

	Flake   string
	Engine  string
	Systems []string

	// Security stage.
	Report      string
	FailOn      string
	MaxInputAge time.Duration
	SBOMDir     string

	// Performance stage.
	Baseline  string
	PerfOut   string
	Tolerance float64
	Users     int
	Requests  int

	// Integration and performance: the services under test.
	ExternalServices bool
	Model            string
	ReadyTimeout     time.Duration
	// GPUClass records the GPU stages' results per class (STAGE@CLASS).
	GPUClass string

	// NoRecord leaves the results store alone.
	NoRecord bool
	// Rev is the commit the results are recorded against (default: the
	// pull request's head on pull_request events, else $GITHUB_SHA, else HEAD).
	Rev string

	// Roots of /sys, /dev and /proc for feature detection (hidden flags).
	SysRoot, DevRoot, ProcRoot string
}

func newTestCmd(io *IO) *cobra.Command { return newTestCmdWith(io, runTest) }

func newTestCmdWith(io *IO, runF func(context.Context, *TestOptions) error) *cobra.Command {
	o := &TestOptions{IO: io}
	c := &cobra.Command{
		Use:   "test (--stage NAME ... | --all)",
		Short: "Run the unit, integration, performance and security stages",
		Long: `Run test stages, each within its time limit. A stage whose requirements this
machine lacks is skipped with its reason (exit 0, or 1 with --require); it is
never reported as passed. Each result is recorded against the commit, bound
to the flake (its directory in the repository and narHash) and the build
report (--report, default ` + "`" + report.DefaultReportPath + "`" + `, by the digest of its
out paths): ci push and ci release accept only results bound to the flake
and report they push or promote. Results go to GitHub commit statuses
(context ci/<stage>) when GITHUB_TOKEN and GITHUB_REPOSITORY are set, else
.git/ipex-ci/results.json.

Stages (in --all order):
` + stageHelp(),
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runF(c.Context(), o)
		},
	}
	f := c.Flags()
	f.StringArrayVar(&o.Stages, "stage", nil, "stage to run: "+strings.Join(stage.Names(), ", ")+" (repeatable)")
	f.BoolVar(&o.All, "all", false, "run every stage in order")
	f.BoolVar(&o.Require, "require", false, "fail (exit 1) when a stage is skipped")
	f.StringArrayVar(&o.Assume, "assume", nil, "treat a feature as present: intel-gpu, kvm, big-memory (repeatable)")
	f.StringArrayVar(&o.Timeouts, "timeout", nil, "override a time limit: STAGE=DURATION, e.g. unit=45m (repeatable)")
	f.StringVar(&o.Flake, "flake", ".", "flake directory or reference")
	f.StringVar(&o.Engine, "engine", engine.KindAuto, "where nix runs: auto, dagger or host")
	f.StringSliceVar(&o.Systems, "systems", nil, "systems whose checks run (default: this machine's)")
	f.StringVar(&o.Report, "report", "", "build report (ci build --report) the stages test: results are bound to it, and security writes SBOMs of its outputs (default for binding: "+report.DefaultReportPath+")")
	f.StringVar(&o.FailOn, "fail-on", "high", "security: lowest finding severity that fails the stage (low, medium, high, critical)")
	f.DurationVar(&o.MaxInputAge, "max-input-age", 90*24*time.Hour, "security: flake.lock inputs older than this are findings")
	f.StringVar(&o.SBOMDir, "sbom-dir", "sbom", "security: directory for the CycloneDX SBOMs")
	f.StringVar(&o.Baseline, "baseline", "tests/performance/baseline.json", "performance: accepted results to compare with")
	f.StringVar(&o.PerfOut, "perf-out", "performance-results.json", "performance: where this run's results go")
	f.Float64Var(&o.Tolerance, "tolerance", 0.2, "performance: allowed regression against the baseline (0.2 = 20%)")
	f.IntVar(&o.Users, "users", 100, "performance: concurrent users")
	f.IntVar(&o.Requests, "requests", 200, "performance: requests per measurement")
	f.BoolVar(&o.ExternalServices, "external-services", false, "integration/performance: test the services already running at OLLAMA_HOST and COMFYUI_URL instead of starting ollama-ipex and comfyui-ipex from the build report; results record \"external service\", which beta and stable refuse without --allow-external-services")
	f.StringVar(&o.Model, "model", "", "integration/performance: Ollama model to use: a name to pull, or a local GGUF file to import (default: the server's first model)")
	f.DurationVar(&o.ReadyTimeout, "ready-timeout", 2*time.Minute, "integration/performance: how long a started service gets to answer")
	f.StringVar(&o.GPUClass, "gpu-class", "", "GPU class of this runner (from "+gpuclass.DefaultPath+"): integration and performance results are recorded as STAGE@CLASS")
	f.BoolVar(&o.NoRecord, "no-record", false, "do not record results against the commit")
	f.StringVar(&o.Rev, "rev", "", "commit `SHA` the results are recorded against (default: a pull request's head commit, else $GITHUB_SHA, else HEAD)")
	f.StringVar(&o.SysRoot, "sys-root", "/sys", "root of sysfs for feature detection")
	f.StringVar(&o.DevRoot, "dev-root", "/dev", "root of /dev for feature detection")
	f.StringVar(&o.ProcRoot, "proc-root", "/proc", "root of procfs for feature detection")
	for _, h := range []string{"sys-root", "dev-root", "proc-root"} {
		_ = f.MarkHidden(h)
	}
	return c
}

func stageHelp() string {
	var b strings.Builder
	for _, s := range stage.Table {
		req := "any machine"
		if len(s.Requires) > 0 {
			var fs []string
			for _, f := range s.Requires {
				fs = append(fs, string(f))
			}
			req = "needs " + strings.Join(fs, ", ")
		}
		fmt.Fprintf(&b, "  %-12s %s (%s, %s)\n", s.Name, s.Summary, s.Timeout, req)
	}
	return b.String()
}

// plan checks the options and returns the stage names to run and the
// wrapper options. Every error is a usage error.
func (o *TestOptions) plan() ([]string, stage.Options, error) {
	var opts stage.Options
	names := o.Stages
	switch {
	case o.All && len(names) > 0:
		return nil, opts, clierr.Usagef("use --all or --stage, not both")
	case o.All:
		names = stage.Names()
	case len(names) == 0:
		return nil, opts, clierr.Usagef("name a stage with --stage (%s) or use --all", strings.Join(stage.Names(), ", "))
	}
	seen := map[string]bool{}
	var ordered []string
	for _, n := range names {
		if _, ok := stage.Lookup(n); !ok {
			return nil, opts, clierr.Usagef("unknown stage %q: use --stage %s", n, strings.Join(stage.Names(), ", "))
		}
		seen[n] = true
	}
	for _, n := range stage.Names() { // table order, each once
		if seen[n] {
			ordered = append(ordered, n)
		}
	}
	opts.Host = stage.Host{SysRoot: o.SysRoot, DevRoot: o.DevRoot, ProcRoot: o.ProcRoot}
	for _, a := range o.Assume {
		f, err := stage.ParseFeature(a)
		if err != nil {
			return nil, opts, clierr.Usagef("--assume: %v", err)
		}
		opts.Host.Assume = append(opts.Host.Assume, f)
	}
	opts.Timeouts = map[string]time.Duration{}
	for _, t := range o.Timeouts {
		name, dur, ok := strings.Cut(t, "=")
		if !ok {
			return nil, opts, clierr.Usagef("--timeout %q: use STAGE=DURATION, e.g. unit=45m", t)
		}
		if _, known := stage.Lookup(name); !known {
			return nil, opts, clierr.Usagef("--timeout %q: unknown stage %q (%s)", t, name, strings.Join(stage.Names(), ", "))
		}
		d, err := time.ParseDuration(dur)
		if err != nil || d <= 0 {
			return nil, opts, clierr.Usagef("--timeout %q: %q is not a positive duration such as 45m or 2h", t, dur)
		}
		opts.Timeouts[name] = d
	}
	switch o.FailOn {
	case "low", "medium", "high", "critical":
	default:
		return nil, opts, clierr.Usagef("--fail-on %q: use low, medium, high or critical", o.FailOn)
	}
	if o.Tolerance < 0 {
		return nil, opts, clierr.Usagef("--tolerance must be 0 or more (0.2 = 20%% worse than the baseline)")
	}
	if o.ReadyTimeout < 0 {
		return nil, opts, clierr.Usagef("--ready-timeout must be a positive duration such as 2m")
	}
	if o.Users < 1 || o.Requests < 1 {
		return nil, opts, clierr.Usagef("--users and --requests must be at least 1")
	}
	return ordered, opts, nil
}

func (o *TestOptions) newStage(name string, env *quality.Env) stage.Stage {
	switch name {
	case "unit":
		return &quality.Unit{Env: env}
	case "integration":
		return &quality.Integration{Env: env}
	case "performance":
		return &quality.Performance{Env: env, Baseline: o.Baseline, Out: o.PerfOut,
			Tolerance: o.Tolerance, Users: o.Users, Requests: o.Requests}
	default:
		return &quality.Security{Env: env, Report: o.Report, FailOn: o.FailOn,
			MaxInputAge: o.MaxInputAge, SBOMDir: o.SBOMDir}
	}
}

func runTest(ctx context.Context, o *TestOptions) error {
	names, opts, err := o.plan()
	if err != nil {
		return err
	}
	if err := o.checkGPUClass(); err != nil {
		return err
	}
	io := o.IO
	env := &quality.Env{Flake: o.Flake, EngineKind: o.Engine, Getenv: io.Getenv,
		Systems: o.Systems, Host: opts.Host, Out: io.Err}
	defer env.Close()

	rep, repPath, repErr := o.readReport()
	if o.Report != "" && repErr != nil {
		return clierr.Usagef("--report %s: %v (pass the file written by ci build --report)", o.Report, repErr)
	}
	env.Services = &quality.ServiceOptions{External: o.ExternalServices, Report: rep, Model: o.Model, ReadyTimeout: o.ReadyTimeout}
	rec := openRecorder(ctx, io, env, o.NoRecord, o.Rev)
	rec.external = o.ExternalServices
	if rec.store != nil {
		rec.binding = o.binding(ctx, env, rep, repPath, repErr)
	}
	var failed, skipped []string
	descs := map[string]string{}
	for _, name := range names {
		st := o.newStage(name, env)
		fmt.Fprintf(io.Err, "==> %s (limit %s)\n", name, opts.TimeoutFor(name))
		rec.record(ctx, o.recordedName(name), results.StatePending, "running")
		out := stage.Run(ctx, st, opts)
		if clierr.Code(out.Err) == clierr.ExitUsage {
			return out.Err
		}
		fmt.Fprintf(io.Out, "%-12s %-9s %s\n", name, out.State, summary(out))
		state, desc := results.StateFailed, out.Description()
		switch out.State {
		case stage.Passed:
			state = results.StatePassed
		case stage.Skipped:
			// The stores mark skipped results themselves.
			state, desc = results.StateSkipped, strings.TrimPrefix(desc, results.SkippedPrefix)
			skipped = append(skipped, name)
		default:
			failed = append(failed, name)
			descs[name] = desc
		}
		rec.record(ctx, o.recordedName(name), state, o.classDescription(st, desc))
		if ctx.Err() != nil {
			return clierr.Failedf("interrupted during %s", name)
		}
	}
	notifyFailures(ctx, io, rec.rev, failed, descs)
	switch {
	case len(failed) > 0:
		return clierr.Failedf("stages failed: %s", strings.Join(failed, ", "))
	case len(skipped) > 0 && o.Require:
		return clierr.Failedf("stages skipped and --require is set: %s", strings.Join(skipped, ", "))
	}
	return nil
}

// notifyFailures sends a message per failed stage to Slack (or prints it when
// Slack is not configured) and, when configured, by email. A failed notification is reported and never
// changes the stages' result.
func notifyFailures(ctx context.Context, io *IO, rev string, failed []string, descs map[string]string) {
	if len(failed) == 0 {
		return
	}
	n, err := notify.FromEnv(io.Getenv, io.Err)
	if err != nil {
		fmt.Fprintf(io.Err, "warning: failed stages are announced on Slack only: %v\n", err)
		n = slack.FromEnv(io.Getenv, io.Err)
	}
	var repoURL, runURL string
	if server, repo := io.Getenv("GITHUB_SERVER_URL"), io.Getenv("GITHUB_REPOSITORY"); server != "" && repo != "" {
		repoURL = server + "/" + repo
		if id := io.Getenv("GITHUB_RUN_ID"); id != "" {
			runURL = repoURL + "/actions/runs/" + id
		}
	}
	for _, name := range failed {
		err := slack.StageFailed(ctx, n, slack.StageFailure{Stage: name, Rev: rev, Description: descs[name], URL: runURL, RepoURL: repoURL})
		if err != nil {
			fmt.Fprintf(io.Err, "warning: could not announce that %s failed (to %s): %v\n", name, n.Target(), err)
		}
	}
}

// summary is the rest of a stage's result line after its state: the reason
// and the count of checks, in full (the recorded description is cut to
// GitHub's 140 characters).
func summary(o stage.Outcome) string {
	s := o.Reason
	if o.State == stage.TimedOut {
		s = strings.TrimPrefix(s, stage.TimedOut+" ") // "timed out after 30m0s"
	}
	if c := stage.CountChecks(o.Checks); c != "" {
		if s != "" {
			s += " "
		}
		s += "(" + c + ")"
	}
	return s
}

// recorder writes stage results against the commit; failures to record
// are reported and do not change the stage's result.
type recorder struct {
	io      *IO
	store   results.Store
	rev     string
	binding results.Binding
	// external marks results of stages that tested external services.
	external bool
}

func (r *recorder) record(ctx context.Context, name, state, desc string) {
	if r.store == nil {
		return
	}
	err := r.store.Record(ctx, results.Result{Stage: name, Rev: r.rev, State: state, Description: desc,
		URL: runURL(r.io.Getenv), Binding: r.binding, External: r.external && usesServices(name), Time: time.Now().UTC()})
	if err != nil {
		fmt.Fprintf(r.io.Err, "warning: result of %s not recorded: %v\n", name, err)
	}
}

// usesServices reports whether stage name tests the running services.
func usesServices(name string) bool { return name == "integration" || name == "performance" }

// binding names what the results of this run test: the flake (its
// directory in the repository and narHash) and the build report (its
// digest). What cannot be resolved stays empty, and no gate accepts a
// result with an empty binding; the note says how to fix it.
func (o *TestOptions) binding(ctx context.Context, env *quality.Env, rep *report.Report, path string, err error) results.Binding {
	io := o.IO
	var b results.Binding
	if fb, ferr := results.ResolveFlake(ctx, env.Flake); ferr != nil {
		fmt.Fprintf(io.Err, "note: %v: results name no flake, and no gate accepts them\n", ferr)
	} else {
		b.Flake, b.NarHash = fb.Flake, fb.NarHash
	}
	switch {
	case err == nil:
		b.Report = rep.Digest()
		fmt.Fprintf(io.Err, "results are bound to flake %s (%s) and build report %s (%s)\n", orDash(b.Flake), orDash(b.NarHash), path, b.Report)
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(io.Err, "note: no build report at %s: results name no build report, and no push or promotion accepts them; run `ci build --report %s` first or pass --report\n", path, path)
	default:
		fmt.Fprintf(io.Err, "note: %v: results name no build report, and no push or promotion accepts them\n", err)
	}
	return b
}

// readReport reads --report, or the default report path.
func (o *TestOptions) readReport() (*report.Report, string, error) {
	path := o.Report
	if path == "" {
		path = report.DefaultReportPath
	}
	rep, err := report.Read(path)
	return rep, path, err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// runURL links a status to the GitHub Actions run that produced it.
func runURL(getenv func(string) string) string {
	server, repo, id := getenv("GITHUB_SERVER_URL"), getenv("GITHUB_REPOSITORY"), getenv("GITHUB_RUN_ID")
	if server == "" || repo == "" || id == "" {
		return ""
	}
	return server + "/" + repo + "/actions/runs/" + id
}

// openRecorder picks GitHub statuses when GITHUB_TOKEN and
// GITHUB_REPOSITORY are set, else the results file in the git directory.
func openRecorder(ctx context.Context, io *IO, env *quality.Env, off bool, rev string) *recorder {
	r := &recorder{io: io}
	if off {
		return r
	}
	dir := env.Dir()
	if dir == "" {
		dir = "."
	}
	r.rev = rev
	if r.rev == "" {
		r.rev = commitUnderTest(io.Getenv)
	}
	if r.rev == "" {
		r.rev = gitOut(ctx, dir, "rev-parse", "HEAD")
	}
	if r.rev == "" {
		fmt.Fprintf(io.Err, "note: %s is not a git checkout with a commit: results are not recorded\n", dir)
		return r
	}
	if tok, repo := io.Getenv("GITHUB_TOKEN"), io.Getenv("GITHUB_REPOSITORY"); tok != "" && repo != "" {
		s, err := results.NewGitHubStore(repo, tok, io.Getenv("GITHUB_API_URL"), nil)
		if err == nil {
			r.store = s
			fmt.Fprintf(io.Err, "recording results as commit statuses on %s@%.12s\n", repo, r.rev)
			return r
		}
		fmt.Fprintf(io.Err, "warning: %v: recording to the local results file instead\n", err)
	}
	gitDir := gitOut(ctx, dir, "rev-parse", "--absolute-git-dir")
	if gitDir == "" {
		fmt.Fprintf(io.Err, "note: no git directory for %s: results are not recorded\n", dir)
		return r
	}
	r.store = &results.FileStore{Path: results.DefaultPath(gitDir)}
	fmt.Fprintf(io.Err, "recording results in %s for %.12s\n", filepath.Clean(results.DefaultPath(gitDir)), r.rev)
	return r
}
