package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/host"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

// Workload is one generated flake of the build benchmark: Outputs packages,
// independent or over Shared shared dependencies.
type Workload struct {
	Outputs int
	Shared  int
}

func (w Workload) String() string {
	if w.Shared > 0 {
		return fmt.Sprintf("%d/%d", w.Outputs, w.Shared)
	}
	return fmt.Sprint(w.Outputs)
}

// ParseWorkload reads "N" (independent outputs) or "N/K" (N outputs over K
// shared dependencies).
func ParseWorkload(s string) (Workload, error) {
	var w Workload
	n, k, shared := strings.Cut(s, "/")
	if _, err := fmt.Sscanf(n, "%d", &w.Outputs); err != nil || w.Outputs < 1 {
		return w, fmt.Errorf("workload %q: want N or N/K with N ≥ 1 outputs and K shared dependencies", s)
	}
	if shared {
		if _, err := fmt.Sscanf(k, "%d", &w.Shared); err != nil || w.Shared < 1 {
			return w, fmt.Errorf("workload %q: want N or N/K with K ≥ 1 shared dependencies", s)
		}
	}
	return w, nil
}

// DefaultWorkloads are the workloads of `ci bench build`.
var DefaultWorkloads = []Workload{{Outputs: 100}, {Outputs: 1000}, {Outputs: 2000}, {Outputs: 1000, Shared: 10}}

// Targets are the ratios `ci bench build` requires, each of medians.
type Targets struct {
	// Small bounds ci ÷ one nix build at SmallMax outputs or fewer.
	Small    float64
	SmallMax int
	// OneCall and Batched bound ci ÷ one nix build and ci ÷ nix in calls of
	// BatchSize at LargeMin outputs or more.
	OneCall, Batched float64
	LargeMin         int
}

// DefaultTargets are issue 14's targets.
var DefaultTargets = Targets{Small: 1.05, SmallMax: 100, OneCall: 0.5, Batched: 1.0, LargeMin: 1000}

// ErrTargetMissed is returned when a measured ratio misses its target.
var ErrTargetMissed = errors.New("benchmark target missed")

// BenchOptions configure the build benchmark.
type BenchOptions struct {
	Workloads []Workload
	// Reps is the number of repetitions of every measurement (≥ 3 for a
	// median; fewer only in tests).
	Reps int
	// Jobs is --max-jobs of every nix build on every side (0: one per CPU).
	Jobs int
	// Dir holds the generated flakes and caches ("" = a temporary directory).
	Dir     string
	Targets Targets
}

// Sample is the repetitions of one measurement.
type Sample []time.Duration

// Median is the middle repetition (the mean of the middle two).
func (s Sample) Median() time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := slices.Clone(s)
	slices.Sort(c)
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}

// Spread is (max − min) ÷ median.
func (s Sample) Spread() float64 {
	if len(s) == 0 || s.Median() == 0 {
		return 0
	}
	return (slices.Max(s) - slices.Min(s)).Seconds() / s.Median().Seconds()
}

func (s Sample) String() string {
	return fmt.Sprintf("%s ±%.0f%%", s.Median().Round(10*time.Millisecond), 100*s.Spread())
}

// BenchResult is one workload's measurements.
type BenchResult struct {
	Workload Workload
	// OneCall is one `nix build` of every attribute; Batched the same in
	// sequential calls of DefaultBatchSize attributes; CI is `ci build`
	// with an empty cache.
	OneCall, Batched, CI Sample
	// CICached is `ci build` with every output in a file:// cache and none
	// in the store; NixDryRun is `nix build --dry-run` with that cache as
	// the only substituter: both only answer what is cached.
	CICached, NixDryRun Sample
	EvalProcesses       int
	// Load is the 1-minute load average before and after.
	LoadBefore, LoadAfter string
	// Missed lists the targets this workload missed.
	Missed []string
}

func ratio(a, b Sample) float64 { return a.Median().Seconds() / b.Median().Seconds() }

// RunBench measures `ci build` against plain nix on generated flakes with
// /bin/sh builders: one `nix build` of every attribute, the same attributes
// in sequential `nix build` calls of 100, and `ci build`, each building
// fresh derivations of the same shape, repeated with the order of the sides
// alternated; then a fully cached `ci build` against `nix build --dry-run`
// with the same cache. It returns ErrTargetMissed (after printing every
// result) when a ratio of medians misses its target.
func RunBench(ctx context.Context, w io.Writer, o BenchOptions) ([]BenchResult, error) {
	if len(o.Workloads) == 0 {
		o.Workloads = DefaultWorkloads
	}
	o.Reps = positiveOr(o.Reps, 3)
	o.Jobs = positiveOr(o.Jobs, runtime.NumCPU())
	if o.Targets == (Targets{}) {
		o.Targets = DefaultTargets
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "ipex-flake-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	fmt.Fprintf(w, "ci bench build: %d repetitions, --max-jobs %d on every side, %d CPUs\n", o.Reps, o.Jobs, runtime.NumCPU())

	var results []BenchResult
	for _, wl := range o.Workloads {
		fmt.Fprintf(w, "== %s outputs\n", wl)
		r, err := benchOne(ctx, w, dir, wl, o)
		if err != nil {
			return results, fmt.Errorf("%s outputs: %w", wl, err)
		}
		results = append(results, r)
	}
	printBench(w, results, o.Targets)
	var missed []string
	for _, r := range results {
		missed = append(missed, r.Missed...)
	}
	if len(missed) > 0 {
		return results, fmt.Errorf("%w: %s", ErrTargetMissed, strings.Join(missed, "; "))
	}
	return results, nil
}

// offlineConf turns off substituters for every command of the benchmark,
// so that it measures building, not network timeouts.
const offlineConf = "substituters =\nexperimental-features = nix-command flakes\nwarn-dirty = false"

// offline is an engine whose commands run with offlineConf added to their
// nix configuration (the process's own environment is left alone).
type offline struct{ engine.Engine }

// Run implements engine.Engine.
func (e offline) Run(ctx context.Context, c engine.Cmd) (engine.Result, error) {
	env := maps.Clone(c.Env)
	if env == nil {
		env = map[string]string{}
	}
	// Engines add Env's NIX_CONFIG lines to the process's; the command's
	// own lines come last and win.
	env["NIX_CONFIG"] = strings.TrimSuffix(offlineConf+"\n"+c.Env["NIX_CONFIG"], "\n")
	c.Env = env
	return e.Engine.Run(ctx, c)
}

// openHost opens the host engine on dir, offline.
func openHost(dir string) (engine.Engine, error) {
	eng, err := host.New(engine.Options{Source: dir})
	if err != nil {
		return nil, err
	}
	return offline{eng}, nil
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(data))[0]
}

// side is one way of building a fresh flake of the workload.
type side struct {
	name string
	run  func(ctx context.Context, dir string, attrs []string) (time.Duration, error)
}

// buildSides are the three sides of a workload's build measurement: one
// nix build, nix in calls of DefaultBatchSize, and ci build. The ci build
// side keeps its evaluation processes and the flake it built last, whose
// outputs benchCached measures.
type buildSides struct {
	jobs          int
	evalProcesses int
	lastCI        string
}

// sides lists the sides in the order of BenchResult's samples.
func (b *buildSides) sides() []side {
	return []side{{"one nix build", b.oneCall}, {"nix build in calls of 100", b.batched}, {"ci build", b.ci}}
}

// oneCall is one `nix build` of every attribute.
func (b *buildSides) oneCall(ctx context.Context, dir string, attrs []string) (time.Duration, error) {
	eng, err := openHost(dir)
	if err != nil {
		return 0, err
	}
	defer eng.Close()
	args := []string{"build", "--no-link", "--max-jobs", fmt.Sprint(b.jobs)}
	for _, a := range attrs {
		args = append(args, dir+"#"+a)
	}
	return timed(ctx, eng, nixcli.Nix(args...))
}

// batched is the same attributes in sequential calls of DefaultBatchSize.
func (b *buildSides) batched(ctx context.Context, dir string, attrs []string) (time.Duration, error) {
	var total time.Duration
	for lo := 0; lo < len(attrs); lo += DefaultBatchSize {
		d, err := b.oneCall(ctx, dir, attrs[lo:min(lo+DefaultBatchSize, len(attrs))])
		total += d
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// ci is `ci build` with an empty binary cache.
func (b *buildSides) ci(ctx context.Context, dir string, attrs []string) (time.Duration, error) {
	eng, err := openHost(dir)
	if err != nil {
		return 0, err
	}
	defer eng.Close()
	lookup, err := cache.New("file://"+filepath.Join(dir, "empty-cache"), nil)
	if err != nil {
		return 0, err
	}
	d, st, err := timeCI(ctx, eng, dir, b.jobs, lookup, report.StatusBuilt, len(attrs))
	if err != nil {
		return d, err
	}
	b.evalProcesses = st.EvalProcesses
	b.lastCI = dir
	return d, nil
}

// timeCI times `ci build` of flakeDir asking lookup, and checks that all
// want outputs end with status.
func timeCI(ctx context.Context, eng engine.Engine, flakeDir string, jobs int, lookup cache.Lookup, status string, want int) (time.Duration, *Stats, error) {
	t0 := time.Now()
	rep, st, err := Run(ctx, Options{Engine: eng, Flake: flakeDir, Systems: []string{"x86_64-linux"}, Jobs: jobs, Cache: lookup})
	d := time.Since(t0)
	if err != nil {
		return d, nil, err
	}
	if c := rep.Counts(); c[status] != want {
		return d, nil, fmt.Errorf("ci build: %d of %d outputs %s: %v", c[status], want, status, c)
	}
	return d, st, nil
}

// benchOne measures one workload: the three build sides in alternating
// order, then the cached sides, and the targets its ratios miss.
func benchOne(ctx context.Context, w io.Writer, dir string, wl Workload, o BenchOptions) (BenchResult, error) {
	r := BenchResult{Workload: wl, LoadBefore: loadavg()}
	var attrs []string
	for i := 0; i < wl.Outputs; i++ {
		attrs = append(attrs, fmt.Sprintf("packages.x86_64-linux.pkg-%04d", i))
	}
	bs := &buildSides{jobs: o.Jobs}
	samples, err := alternate(ctx, w, dir, wl, bs.sides(), attrs, o.Reps)
	if err != nil {
		return r, err
	}
	r.OneCall, r.Batched, r.CI = samples[0], samples[1], samples[2]
	r.EvalProcesses = bs.evalProcesses

	if err := benchCached(ctx, w, dir, bs.lastCI, attrs, o, &r); err != nil {
		return r, fmt.Errorf("cached: %w", err)
	}
	r.LoadAfter = loadavg()
	r.Missed = o.Targets.missed(r)
	return r, nil
}

// alternate builds a fresh flake of the workload on every side, reps
// times, the order of the sides reversed on every other repetition, and
// returns each side's times.
func alternate(ctx context.Context, w io.Writer, dir string, wl Workload, sides []side, attrs []string, reps int) ([]Sample, error) {
	samples := make([]Sample, len(sides))
	for rep := 0; rep < reps; rep++ {
		order := make([]int, len(sides))
		for i := range order {
			order[i] = i
		}
		if rep%2 == 1 {
			slices.Reverse(order)
		}
		for _, si := range order {
			s := sides[si]
			d := filepath.Join(dir, fmt.Sprintf("%s-%d-%d-%d", strings.ReplaceAll(wl.String(), "/", "over"), si, rep, time.Now().UnixNano()))
			if err := fixture.Write(d, flakeFor(wl, filepath.Base(d))); err != nil {
				return nil, err
			}
			t, err := s.run(ctx, d, attrs)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
			samples[si] = append(samples[si], t)
			fmt.Fprintf(w, "  rep %d  %-26s %s\n", rep+1, s.name, t.Round(time.Millisecond))
		}
	}
	return samples, nil
}

// missed lists the targets the workload's ratios of medians miss.
func (t Targets) missed(r BenchResult) []string {
	var missed []string
	wl := r.Workload
	if wl.Outputs <= t.SmallMax && ratio(r.CI, r.OneCall) > t.Small {
		missed = append(missed, fmt.Sprintf("%s outputs: ci ÷ one nix build %.3f > %.2f", wl, ratio(r.CI, r.OneCall), t.Small))
	}
	if wl.Outputs >= t.LargeMin {
		if x := ratio(r.CI, r.OneCall); x > t.OneCall {
			missed = append(missed, fmt.Sprintf("%s outputs: ci ÷ one nix build %.3f > %.2f", wl, x, t.OneCall))
		}
		if x := ratio(r.CI, r.Batched); x > t.Batched {
			missed = append(missed, fmt.Sprintf("%s outputs: ci ÷ nix in calls of 100 %.3f > %.2f", wl, x, t.Batched))
		}
	}
	return missed
}

func flakeFor(wl Workload, nonce string) fixture.Flake {
	if wl.Shared > 0 {
		return fixture.SharedDeps(wl.Outputs, wl.Shared, nonce)
	}
	return fixture.Independent(wl.Outputs, nonce)
}

// benchCached puts the outputs of the last ci build into a file:// cache,
// deletes them from the store, and times both sides answering "what is
// cached?": ci build (evaluation and cache lookup) against nix build
// --dry-run with the cache as the only substituter.
func benchCached(ctx context.Context, w io.Writer, dir, flakeDir string, attrs []string, o BenchOptions, r *BenchResult) error {
	eng, err := openHost(flakeDir)
	if err != nil {
		return err
	}
	defer eng.Close()
	disc, err := Discover(ctx, eng, flakeDir, []string{"x86_64-linux"}, nil, 1)
	if err != nil {
		return err
	}
	var outs []string
	for _, d := range disc.Outputs {
		outs = append(outs, d.OutPaths()...)
	}
	cacheDir := filepath.Join(dir, filepath.Base(flakeDir)+"-cache")
	if _, err := timed(ctx, eng, nixcli.Nix(append([]string{"copy", "--to", "file://" + cacheDir}, outs...)...)); err != nil {
		return err
	}
	if _, err := timed(ctx, eng, nixcli.Nix(append([]string{"store", "delete"}, outs...)...)); err != nil {
		return err
	}
	lookup, err := cache.New("file://"+cacheDir, nil)
	if err != nil {
		return err
	}
	ciCached := func() (time.Duration, error) {
		d, _, err := timeCI(ctx, eng, flakeDir, o.Jobs, lookup, report.StatusCached, len(attrs))
		return d, err
	}
	dryRun := func() (time.Duration, error) {
		args := []string{"build", "--dry-run", "--no-link", "--option", "substituters", "file://" + cacheDir, "--option", "require-sigs", "false"}
		for _, a := range attrs {
			args = append(args, flakeDir+"#"+a)
		}
		return timed(ctx, eng, nixcli.Nix(args...))
	}
	for rep := 0; rep < o.Reps; rep++ {
		first, second := ciCached, dryRun
		if rep%2 == 1 {
			first, second = dryRun, ciCached
		}
		a, err := first()
		if err != nil {
			return err
		}
		b, err := second()
		if err != nil {
			return err
		}
		if rep%2 == 1 {
			a, b = b, a
		}
		r.CICached = append(r.CICached, a)
		r.NixDryRun = append(r.NixDryRun, b)
		fmt.Fprintf(w, "  rep %d  ci build, all cached %s · nix build --dry-run %s\n", rep+1, a.Round(time.Millisecond), b.Round(time.Millisecond))
	}
	return nil
}

func timed(ctx context.Context, eng engine.Engine, args []string) (time.Duration, error) {
	var errb bytes.Buffer
	t0 := time.Now()
	res, err := eng.Run(ctx, engine.Cmd{Args: args, Stdout: io.Discard, Stderr: &errb})
	d := time.Since(t0)
	if err != nil {
		return d, err
	}
	if res.ExitCode != 0 {
		return d, fmt.Errorf("%s: %s", strings.Join(args[:min(4, len(args))], " "), CleanNixError(errb.String()))
	}
	return d, nil
}

func printBench(w io.Writer, rs []BenchResult, t Targets) {
	fmt.Fprintf(w, "\nmedian ±spread (max−min ÷ median) of each side; ratios are of medians.\n")
	fmt.Fprintf(w, "targets: ≤%d outputs ci÷one ≤ %.2f; ≥%d outputs ci÷one ≤ %.2f and ci÷batched ≤ %.2f\n",
		t.SmallMax, t.Small, t.LargeMin, t.OneCall, t.Batched)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "outputs\treps\tone nix build\tnix, calls of 100\tci build\tci÷one\tci÷batched\tci cached\tnix --dry-run\tcached÷dry-run\teval procs\tload before→after\tresult\t\n")
	for _, r := range rs {
		res := "ok"
		if len(r.Missed) > 0 {
			res = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%.3f\t%.3f\t%s\t%s\t%.3f\t%d\t%s→%s\t%s\t\n", r.Workload, len(r.CI),
			r.OneCall, r.Batched, r.CI, ratio(r.CI, r.OneCall), ratio(r.CI, r.Batched),
			r.CICached, r.NixDryRun, ratio(r.CICached, r.NixDryRun), r.EvalProcesses, r.LoadBefore, r.LoadAfter, res)
	}
	tw.Flush()
	for _, r := range rs {
		for _, m := range r.Missed {
			fmt.Fprintf(w, "MISSED: %s\n", m)
		}
	}
}
