package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipex-flake/ipex-flake/internal/atomicfile"
	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/host"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
	"github.com/ipex-flake/ipex-flake/pipelines/reproduce"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
)

func init() { register(newVerifyCmd) }

// ReproducibleStage is the name under which `ci verify reproducible`
// records its result, like a stage's.
const ReproducibleStage = "reproducible"

// VerifyReproducibleOptions are the flags of `ci verify reproducible`.
type VerifyReproducibleOptions struct {
	IO           *IO
	Report       string
	Attr         string
	AllowDiffers bool
	Out          string
	NoRecord     bool
	Rev          string
	// Builder is the store URI of a second machine that rebuilds instead
	// of this one.
	Builder string
	// Runner runs nix (tests inject one; default: the host engine, whose
	// children get the allow-listed environment, never secrets).
	Runner reproduce.Runner
}

func newVerifyCmd(io *IO) *cobra.Command {
	return newVerifyCmdWith(io, runVerifyReproducible, runVerifyRelease)
}

func newVerifyCmdWith(io *IO, reproF func(context.Context, *VerifyReproducibleOptions) error,
	releaseF func(context.Context, *VerifyReleaseOptions) error) *cobra.Command {
	c := &cobra.Command{
		Use:   "verify",
		Short: "Check builds and releases: reproducibility, provenance, the cache",
		Args:  cobra.NoArgs,
	}
	c.AddCommand(newVerifyReproducibleCmd(io, reproF), newVerifyReleaseCmd(io, releaseF))
	return c
}

func newVerifyReproducibleCmd(io *IO, runF func(context.Context, *VerifyReproducibleOptions) error) *cobra.Command {
	o := &VerifyReproducibleOptions{IO: io}
	c := &cobra.Command{
		Use:   "reproducible [--attr GLOB] [--report FILE]",
		Short: "Rebuild the outputs of a build report and compare them bit for bit",
		Long: `Rebuild each selected output of a build report a second time on this
machine's nix (nix-store --realise --check --keep-failed) and compare:

  reproducible  the second build is bit for bit the first
  differs       it is not: the differing files are named, the second build is
                kept as <out>.check, and diffoscope (when on PATH) summarises
  failed        the output could not be built, or rebuilt

With --builder URI the second build runs on another machine (its store,
e.g. ssh-ng://builder): the derivation is copied there, built, and the NAR
hashes compared; a differing output is copied back into a temporary
directory and compared file by file.

The result is recorded against the commit like a stage's (stage
"reproducible": GitHub commit status ci/reproducible with GITHUB_TOKEN and
GITHUB_REPOSITORY, else .git/ipex-ci/results.json) and shown by
ci release status.

Exit codes: 0 all reproducible (or differs with --allow-differs), 1 an output
differs or failed, 2 bad flags or report.`,
		Example: `  ci verify reproducible --attr 'packages.x86_64-linux.*'
  ci verify reproducible --report build.json --out reproducible.json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runF(c.Context(), o) },
	}
	f := c.Flags()
	f.StringVar(&o.Report, "report", report.DefaultReportPath, "build report (ci build --report) whose outputs are rebuilt")
	f.StringVar(&o.Attr, "attr", "", "only outputs whose attribute matches this glob, e.g. 'packages.*.ollama-ipex'")
	f.BoolVar(&o.AllowDiffers, "allow-differs", false, "exit 0 when outputs differ (they are still reported and recorded)")
	f.StringVar(&o.Out, "out", "", "write the results as JSON to `FILE`")
	f.BoolVar(&o.NoRecord, "no-record", false, "do not record the result against the commit")
	f.StringVar(&o.Builder, "builder", "", "rebuild on this second machine instead, a store `URI` such as ssh-ng://builder (NIX_SSHOPTS applies); compared by NAR hash, a differing output copied back to compare its files")
	f.StringVar(&o.Rev, "rev", "", "commit `SHA` the result is recorded against (default: the report's, else $GITHUB_SHA, else HEAD)")
	return c
}

// ReproducibleReport is the JSON written by --out.
type ReproducibleReport struct {
	Flake   string             `json:"flake"`
	Rev     string             `json:"rev,omitempty"`
	Results []reproduce.Result `json:"results"`
}

func runVerifyReproducible(ctx context.Context, o *VerifyReproducibleOptions) error {
	rep, sel, err := reproducibleSelection(o)
	if err != nil {
		return err
	}
	run := o.Runner
	if run == nil {
		eng, err := host.New(engine.Options{})
		if err != nil {
			return err
		}
		defer eng.Close()
		run = eng
	}
	chk := reproducibleChecker(o, run)
	out := ReproducibleReport{Flake: rep.Flake, Rev: rep.Rev}
	counts := map[string]int{}
	var bad []string
	for _, s := range sel {
		fmt.Fprintf(o.IO.Err, "==> rebuilding %s (%s)\n", s.Attr, s.DrvPath)
		r := chk.Check(ctx, s)
		out.Results = append(out.Results, r)
		counts[r.Status]++
		printReproducible(o.IO.Out, r)
		if r.Status == reproduce.StatusDiffers || r.Status == reproduce.StatusFailed {
			bad = append(bad, r.Attr)
		}
		if ctx.Err() != nil {
			return clierr.Failedf("interrupted while rebuilding %s", s.Attr)
		}
	}
	summary := fmt.Sprintf("%d reproducible, %d differs, %d failed", counts[reproduce.StatusReproducible], counts[reproduce.StatusDiffers], counts[reproduce.StatusFailed])
	fmt.Fprintln(o.IO.Out, summary)
	if o.Out != "" {
		data, _ := json.MarshalIndent(out, "", "  ")
		if err := atomicfile.Write(o.Out, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	state := results.StatePassed
	if len(bad) > 0 {
		state = results.StateFailed
		summary += ": " + strings.Join(bad, ", ")
	}
	if !o.NoRecord {
		recordReproducible(ctx, o, rep, results.Result{Stage: ReproducibleStage, State: state, Description: summary})
	}
	switch {
	case counts[reproduce.StatusFailed] > 0:
		return clierr.Failedf("%s", summary)
	case counts[reproduce.StatusDiffers] > 0 && !o.AllowDiffers:
		return clierr.Failedf("%s (pass --allow-differs to accept)", summary)
	}
	return nil
}

// reproducibleSelection reads --report and picks the outputs --attr
// selects; bad flags and an empty selection are usage errors.
func reproducibleSelection(o *VerifyReproducibleOptions) (*report.Report, []report.Output, error) {
	rep, err := report.Read(o.Report)
	if err != nil {
		return nil, nil, clierr.Usagef("--report: %v (run ci build --report FILE first, or pass its report)", err)
	}
	sel, err := reproduce.Select(rep, o.Attr)
	if err != nil {
		return nil, nil, clierr.Usage(err)
	}
	if len(sel) == 0 {
		return nil, nil, clierr.Usagef("no built or cached output of %s matches --attr %q: list them with jq '.outputs[].attr' %s", o.Report, o.Attr, o.Report)
	}
	if o.Builder != "" {
		if err := cache.Validate(o.Builder); err != nil {
			return nil, nil, clierr.Usagef("--builder: %v", err)
		}
	}
	return rep, sel, nil
}

// reproducibleChecker is the checker the flags ask for: run (this
// machine's nix, or o.Runner) or --builder with NIX_SSHOPTS passed on.
func reproducibleChecker(o *VerifyReproducibleOptions, run reproduce.Runner) *reproduce.Checker {
	chk := &reproduce.Checker{Engine: run, Log: o.IO.Err, Builder: o.Builder}
	if v := o.IO.Getenv("NIX_SSHOPTS"); v != "" {
		chk.BuilderEnv = map[string]string{"NIX_SSHOPTS": v}
	}
	return chk
}

// printReproducible prints one output's verdict and, for one that differs
// or failed, what differs, where the second build is kept, and why.
func printReproducible(w io.Writer, r reproduce.Result) {
	fmt.Fprintf(w, "%-13s %s\n", r.Status, r.Attr)
	switch r.Status {
	case reproduce.StatusDiffers:
		for _, f := range r.Files() {
			fmt.Fprintf(w, "              differs: %s\n", f)
		}
		for _, op := range r.Outputs {
			if op.Check != "" {
				fmt.Fprintf(w, "              second build kept as %s\n", op.Check)
			}
			if op.Diffoscope != "" {
				fmt.Fprintf(w, "              diffoscope:\n                %s\n", strings.ReplaceAll(op.Diffoscope, "\n", "\n                "))
			}
		}
	case reproduce.StatusFailed:
		fmt.Fprintf(w, "              %s\n", r.Reason)
	}
}

// recordReproducible records r against --rev (else the report's commit),
// bound like a stage's result to the flake and this build report.
func recordReproducible(ctx context.Context, o *VerifyReproducibleOptions, rep *report.Report, r results.Result) {
	b, err := reportBinding(ctx, rep)
	if err != nil {
		fmt.Fprintf(o.IO.Err, "note: %v: the result names no flake\n", err)
	}
	r.Binding = b
	recordEvidence(ctx, o.IO, flakeDir(rep.Flake), firstNonEmpty(o.Rev, rep.Rev), r)
}

// flakeDir returns the local directory of a flake reference ("" for a
// remote one).
func flakeDir(ref string) string {
	ref = strings.TrimPrefix(ref, "path:")
	ref = strings.TrimPrefix(ref, "git+file://")
	if i := strings.IndexAny(ref, "?#"); i >= 0 {
		ref = ref[:i]
	}
	if ref == "" || strings.Contains(ref, ":") {
		return "."
	}
	if st, err := os.Stat(ref); err == nil && st.IsDir() {
		return ref
	}
	return "."
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// evidenceStore returns the results store for the repository at dir: GitHub
// commit statuses with GITHUB_TOKEN and GITHUB_REPOSITORY, else the results
// file in its git directory. nil when there is none.
func evidenceStore(ctx context.Context, io *IO, dir string) results.Store {
	if tok, repo := io.Getenv("GITHUB_TOKEN"), io.Getenv("GITHUB_REPOSITORY"); tok != "" && repo != "" {
		s, err := results.NewGitHubStore(repo, tok, io.Getenv("GITHUB_API_URL"), nil)
		if err == nil {
			return s
		}
		fmt.Fprintf(io.Err, "warning: %v: recording to the local results file instead\n", err)
	}
	gitDir := gitOut(ctx, dir, "rev-parse", "--absolute-git-dir")
	if gitDir == "" {
		return nil
	}
	return &results.FileStore{Path: results.DefaultPath(gitDir)}
}

// recordEvidence records r against rev the way ci test records a stage's
// result; a failure to record is a warning.
func recordEvidence(ctx context.Context, io *IO, dir, rev string, r results.Result) {
	if rev == "" {
		rev = commitUnderTest(io.Getenv)
	}
	if rev == "" {
		rev = gitOut(ctx, dir, "rev-parse", "HEAD")
	}
	if rev == "" {
		fmt.Fprintf(io.Err, "note: %s is not a git checkout with a commit: the result is not recorded\n", dir)
		return
	}
	st := evidenceStore(ctx, io, dir)
	if st == nil {
		fmt.Fprintf(io.Err, "note: no git directory for %s: the result is not recorded\n", dir)
		return
	}
	if len(r.Description) > 140 {
		r.Description = r.Description[:139] + "…"
	}
	r.Rev, r.URL, r.Time = rev, runURL(io.Getenv), time.Now().UTC()
	if err := st.Record(ctx, r); err != nil {
		fmt.Fprintf(io.Err, "warning: result of %s not recorded: %v\n", r.Stage, err)
		return
	}
	if fs, ok := st.(*results.FileStore); ok {
		fmt.Fprintf(io.Err, "recorded %s %s for %.12s in %s\n", r.Stage, r.State, rev, filepath.Clean(fs.Path))
	}
}
