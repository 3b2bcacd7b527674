package build

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/host"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
)

// Benchmark targets of `ci bench build`.
const (
	// BuildTargetRatio bounds ci build ÷ plain nix build at 100 outputs.
	BuildTargetRatio = 1.10
	// CachedTargetRatio bounds a fully cached rerun ÷ nix build
	// substituting the same outputs from that cache.
	CachedTargetRatio = 1.0
)

// BenchOptions configure the build benchmark.
type BenchOptions struct {
	// Sizes are the numbers of outputs of the generated flakes.
	Sizes []int
	// Jobs is --max-jobs for both nix build and ci build (0: one per CPU).
	Jobs int
	// Dir holds the generated flakes and caches ("" = a temporary directory).
	Dir string
}

// BenchResult is one size's measurements.
type BenchResult struct {
	Outputs       int
	NixBuild      time.Duration
	CIBuild       time.Duration
	EvalProcesses int
	CachedRerun   time.Duration
	NixSubstitute time.Duration
}

// BuildRatio is ci build ÷ nix build.
func (r BenchResult) BuildRatio() float64 { return r.CIBuild.Seconds() / r.NixBuild.Seconds() }

// CachedRatio is the cached rerun ÷ nix build substituting from the cache.
func (r BenchResult) CachedRatio() float64 {
	return r.CachedRerun.Seconds() / r.NixSubstitute.Seconds()
}

// RunBench measures, on generated flakes with /bin/sh builders, `ci build`
// against plain `nix build` of the same attributes, the evaluation processes
// started, and a rerun whose outputs are all in a file:// cache against
// `nix build` with that cache as its only substituter. Both sides of every
// ratio run in the same process on the same machine, with substituters
// other than the bench's own cache switched off.
func RunBench(ctx context.Context, w io.Writer, o BenchOptions) ([]BenchResult, error) {
	if len(o.Sizes) == 0 {
		o.Sizes = []int{10, 100, 1000}
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
	restore := offline()
	defer restore()
	if o.Jobs <= 0 {
		o.Jobs = runtime.NumCPU()
	}

	var results []BenchResult
	for _, n := range o.Sizes {
		fmt.Fprintf(w, "== %d outputs\n", n)
		r, err := benchOne(ctx, w, dir, n, o.Jobs)
		if err != nil {
			return results, fmt.Errorf("%d outputs: %w", n, err)
		}
		results = append(results, r)
	}
	printBench(w, results)
	return results, nil
}

// offline turns off substituters for this process and its children so the
// benchmark measures building, not network timeouts.
func offline() func() {
	old, had := os.LookupEnv("NIX_CONFIG")
	conf := "substituters =\nexperimental-features = nix-command flakes\nwarn-dirty = false"
	if had && old != "" {
		conf = old + "\n" + conf
	}
	os.Setenv("NIX_CONFIG", conf)
	return func() {
		if had {
			os.Setenv("NIX_CONFIG", old)
		} else {
			os.Unsetenv("NIX_CONFIG")
		}
	}
}

func benchOne(ctx context.Context, w io.Writer, dir string, n, jobs int) (BenchResult, error) {
	r := BenchResult{Outputs: n}
	stamp := fmt.Sprintf("%d-%d", n, time.Now().UnixNano())
	plainDir := filepath.Join(dir, "plain-"+stamp)
	ciDir := filepath.Join(dir, "ci-"+stamp)
	// Same shape, different nonce: both sides build everything for real.
	if err := fixture.Write(plainDir, fixture.Generated(n, "plain-"+stamp)); err != nil {
		return r, err
	}
	if err := fixture.Write(ciDir, fixture.Generated(n, "ci-"+stamp)); err != nil {
		return r, err
	}
	var attrs []string
	for i := 0; i < n; i++ {
		attrs = append(attrs, fmt.Sprintf("packages.x86_64-linux.pkg-%04d", i))
	}
	jobArgs := []string{"--max-jobs", fmt.Sprint(jobs)}

	// Plain nix build of the same attributes.
	plainEng, err := host.New(engine.Options{Source: plainDir})
	if err != nil {
		return r, err
	}
	args := append([]string{"build", "--no-link"}, jobArgs...)
	for _, a := range attrs {
		args = append(args, plainDir+"#"+a)
	}
	if r.NixBuild, err = timed(ctx, plainEng, nixcli.Nix(args...)); err != nil {
		return r, err
	}
	fmt.Fprintf(w, "nix build: %s\n", r.NixBuild.Round(time.Millisecond))

	// ci build, with an empty file:// cache asked first.
	eng, err := host.New(engine.Options{Source: ciDir})
	if err != nil {
		return r, err
	}
	cacheDir := filepath.Join(dir, "cache-"+stamp)
	lookup, err := cache.New("file://"+cacheDir, nil)
	if err != nil {
		return r, err
	}
	t0 := time.Now()
	rep, st, err := Run(ctx, Options{Engine: eng, Flake: ciDir, Systems: []string{"x86_64-linux"}, Jobs: jobs, Cache: lookup})
	r.CIBuild = time.Since(t0)
	if err != nil {
		return r, err
	}
	if c := rep.Counts(); c["built"] != n {
		return r, fmt.Errorf("ci build built %d of %d outputs", c["built"], n)
	}
	r.EvalProcesses = st.EvalProcesses
	fmt.Fprintf(w, "ci build:  %s (%d evaluation process)\n", r.CIBuild.Round(time.Millisecond), r.EvalProcesses)

	// Put the outputs into the cache and remove them from the store.
	var outs []string
	for _, o := range rep.Outputs {
		outs = append(outs, o.OutPaths...)
	}
	if _, err := timed(ctx, eng, nixcli.Nix(append([]string{"copy", "--to", "file://" + cacheDir}, outs...)...)); err != nil {
		return r, err
	}
	if _, err := timed(ctx, eng, nixcli.Nix(append([]string{"store", "delete"}, outs...)...)); err != nil {
		return r, err
	}

	// Rerun: everything is cached, nothing is built or fetched.
	t1 := time.Now()
	rep, _, err = Run(ctx, Options{Engine: eng, Flake: ciDir, Systems: []string{"x86_64-linux"}, Jobs: jobs, Cache: lookup})
	r.CachedRerun = time.Since(t1)
	if err != nil {
		return r, err
	}
	if c := rep.Counts(); c["cached"] != n {
		return r, fmt.Errorf("rerun found %d of %d outputs cached", c["cached"], n)
	}
	fmt.Fprintf(w, "ci build, all cached: %s\n", r.CachedRerun.Round(time.Millisecond))

	// nix build with that cache as its only substituter.
	args = append([]string{"build", "--no-link", "--option", "substituters", "file://" + cacheDir, "--option", "require-sigs", "false"}, jobArgs...)
	for _, a := range attrs {
		args = append(args, ciDir+"#"+a)
	}
	if r.NixSubstitute, err = timed(ctx, eng, nixcli.Nix(args...)); err != nil {
		return r, err
	}
	fmt.Fprintf(w, "nix build from the cache: %s\n", r.NixSubstitute.Round(time.Millisecond))
	return r, nil
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
		return d, fmt.Errorf("%s: %s", strings.Join(args[:4], " "), CleanNixError(errb.String()))
	}
	return d, nil
}

func printBench(w io.Writer, rs []BenchResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w)
	fmt.Fprintf(tw, "outputs\tnix build\tci build\tci÷nix (≤%.2f)\teval processes (1)\tcached rerun\tnix from cache\trerun÷nix (≤%.2f)\t\n", BuildTargetRatio, CachedTargetRatio)
	for _, r := range rs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.3f\t%d\t%s\t%s\t%.3f\t\n", r.Outputs,
			r.NixBuild.Round(time.Millisecond), r.CIBuild.Round(time.Millisecond), r.BuildRatio(), r.EvalProcesses,
			r.CachedRerun.Round(time.Millisecond), r.NixSubstitute.Round(time.Millisecond), r.CachedRatio())
	}
	tw.Flush()
}
