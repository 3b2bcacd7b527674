// Package build is the engine-independent plan behind `ci build`: discover
// every flake output in one evaluation, skip what the binary cache has and
// what this machine cannot build, build the rest with one nix scheduler, and
// give every output a status.
package build

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

// Progress receives what the build does while it runs.
type Progress interface {
	// Phase announces a step ("evaluating …", "building 12 derivations").
	Phase(msg string)
	// Event reports a derivation's build starting, logging or finishing.
	Event(e Event)
}

// Options configure one build.
type Options struct {
	// Engine runs nix.
	Engine engine.Engine
	// Flake is the flake reference as the engine sees it.
	Flake string
	// Systems to build for.
	Systems []string
	// Jobs is nix's --max-jobs (0: nix's own setting) and the bound on
	// concurrent isolation evaluations.
	Jobs int
	// Attrs are --attr globs (empty: all outputs).
	Attrs []string
	// Cache is asked for outputs it already has (nil: no lookup).
	Cache cache.Lookup
	// Progress receives progress (nil: none).
	Progress Progress
	// Secrets are given to the evaluation and build commands as secret
	// environment variables, e.g. NIX_CONFIG with access-tokens for
	// fetching the flake's inputs.
	Secrets map[string]string
	// Remote sends builds to Nix remote builders (builders.go).
	Remote Remote
	// Shard builds one shard of the outputs (shard.go); Count 0: all.
	// ShardPlan, when set, is the digest the shard's plan must have.
	Shard     Shard
	ShardPlan string
}

// secretEngine adds secret variables to every command it runs.
type secretEngine struct {
	engine.Engine
	secrets map[string]string
}

func (e secretEngine) Run(ctx context.Context, c engine.Cmd) (engine.Result, error) {
	merged := maps.Clone(c.Secrets)
	if merged == nil {
		merged = map[string]string{}
	}
	for k, v := range e.secrets {
		if _, ok := merged[k]; !ok {
			merged[k] = v
		}
	}
	c.Secrets = merged
	return e.Engine.Run(ctx, c)
}

// Stats are counters of one run, for benchmarks and summaries.
type Stats struct {
	EvalProcesses int
	Derivations   int
	Eval, Lookup  time.Duration
	Build         time.Duration
}

// ErrInterrupted is returned with a partial report when the build was
// cancelled (SIGINT): what finished is reported, a rerun completes the rest.
var ErrInterrupted = errors.New("interrupted")

type nopProgress struct{}

func (nopProgress) Phase(string) {}
func (nopProgress) Event(Event)  {}

// Run builds the selected outputs and returns a report with one entry per
// output. The error is non-nil only when the flake could not be evaluated
// at all (*EvalError), the engine failed, or the run was interrupted; failed
// outputs are reported in the report, not as an error.
func Run(ctx context.Context, opts Options) (*report.Report, *Stats, error) {
	prog := opts.Progress
	if prog == nil {
		prog = nopProgress{}
	}
	st := &Stats{}
	rep := &report.Report{Flake: opts.Flake, Engine: opts.Engine.Name()}
	if opts.Cache != nil {
		rep.Cache = opts.Cache.URI()
	}

	prog.Phase(fmt.Sprintf("evaluating %s for %s", opts.Flake, strings.Join(opts.Systems, ", ")))
	t0 := time.Now()
	var (
		machine *Machine
		merr    error
		wg      sync.WaitGroup
	)
	wg.Add(1)
	plain := opts.Engine
	go func() {
		defer wg.Done()
		// The configuration is read without secrets: nix prints its settings.
		machine, merr = ProbeMachine(ctx, plain)
	}()
	if len(opts.Secrets) > 0 {
		opts.Engine = secretEngine{Engine: opts.Engine, secrets: opts.Secrets}
	}
	disc, err := Discover(ctx, opts.Engine, opts.Flake, opts.Systems, opts.Attrs, jobsOr(opts.Jobs, 4))
	wg.Wait()
	st.Eval = time.Since(t0)
	if disc != nil {
		st.EvalProcesses = disc.EvalProcesses
	}
	if err != nil {
		return nil, st, err
	}
	if merr != nil {
		return nil, st, fmt.Errorf("asking nix for its configuration: %w", merr)
	}
	if err := applyRemote(ctx, plain, machine, opts.Remote); err != nil {
		return nil, st, err
	}
	if opts.Shard.Count > 0 {
		if disc.Outputs, err = selectShard(ctx, opts, machine, prog, disc.Outputs); err != nil {
			return nil, st, err
		}
	}

	// One entry per output; todo holds those still to decide.
	outs := make([]report.Output, len(disc.Outputs))
	var todo []int
	for i, d := range disc.Outputs {
		o := report.Output{Attr: d.Attr, System: d.System, DrvPath: d.DrvPath, OutPaths: d.OutPaths()}
		switch {
		case !d.OK:
			o.Status, o.Reason = report.StatusFailed, "evaluation failed: "+d.Error
		default:
			sys := d.DrvSystem
			if sys == "" {
				sys = d.System
			}
			if ok, why := machine.CanBuild(sys, d.Features); !ok {
				o.Status, o.Reason = report.StatusSkipped, why
			} else {
				todo = append(todo, i)
			}
		}
		outs[i] = o
	}

	// Skip what the cache already has.
	if opts.Cache != nil && len(todo) > 0 {
		var paths []string
		for _, i := range todo {
			paths = append(paths, outs[i].OutPaths...)
		}
		prog.Phase(fmt.Sprintf("asking %s for %d output paths", opts.Cache.URI(), len(paths)))
		t1 := time.Now()
		has, err := opts.Cache.Has(ctx, paths)
		st.Lookup = time.Since(t1)
		if err != nil {
			if ctx.Err() != nil {
				return nil, st, ErrInterrupted
			}
			prog.Phase(fmt.Sprintf("warning: cache lookup failed, building everything: %v", err))
		} else {
			rest := todo[:0]
			for _, i := range todo {
				if allIn(has, outs[i].OutPaths) {
					outs[i].Status = report.StatusCached
				} else {
					rest = append(rest, i)
				}
			}
			todo = rest
		}
	}

	// Build the rest with one nix scheduler.
	if len(todo) > 0 {
		t2 := time.Now()
		err := buildAll(ctx, opts, machine, prog, outs, todo, st)
		st.Build = time.Since(t2)
		if err != nil {
			rep.Outputs = outs
			return rep, st, err
		}
	}
	rep.Outputs = outs
	return rep, st, nil
}

func jobsOr(j, def int) int {
	if j > 0 {
		return j
	}
	return def
}

func allIn(has map[string]bool, paths []string) bool {
	if len(paths) == 0 {
		return false
	}
	for _, p := range paths {
		if !has[p] {
			return false
		}
	}
	return true
}

func buildAll(ctx context.Context, opts Options, m *Machine, prog Progress, outs []report.Output, todo []int, st *Stats) error {
	seen := map[string]bool{}
	var drvs []string
	for _, i := range todo {
		if d := outs[i].DrvPath; !seen[d] {
			seen[d] = true
			drvs = append(drvs, d)
		}
	}
	sort.Strings(drvs)
	st.Derivations = len(drvs)
	prog.Phase(fmt.Sprintf("building %d outputs (%d derivations and what they need)", len(todo), len(drvs)))

	args := []string{"build", "--keep-going", "--no-link", "--log-format", "internal-json", "-v"}
	switch {
	case opts.Jobs > 0:
		args = append(args, "--max-jobs", strconv.Itoa(opts.Jobs))
	case !m.MaxJobsSet:
		// nix's own default is one job at a time; build in parallel unless
		// nix.conf chose a number.
		args = append(args, "--max-jobs", "auto")
	}
	args = append(args, opts.Remote.remoteArgs()...)
	for _, d := range drvs {
		args = append(args, m.Version.DrvInstallable(d))
	}
	parser := newEventParser(prog.Event, func() bool { return ctx.Err() != nil }, drvs)
	lw := newLineWriter(parser.Line)
	var stdout bytes.Buffer
	res, runErr := opts.Engine.Run(ctx, engine.Cmd{Args: nixcli.Nix(args...), Env: opts.Remote.Env, Stdout: &stdout, Stderr: lw})
	lw.Flush()
	parser.explainRemote()
	interrupted := ctx.Err() != nil
	if runErr != nil && !interrupted {
		return fmt.Errorf("running nix build: %w", runErr)
	}

	// Which outputs exist now? nix exits 0 only when all of them do.
	valid := map[string]bool{}
	var paths []string
	for _, i := range todo {
		paths = append(paths, outs[i].OutPaths...)
	}
	if res.ExitCode == 0 && !interrupted {
		for _, p := range paths {
			valid[p] = true
		}
	} else {
		vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		invalid, err := invalidPaths(vctx, opts.Engine, paths)
		if err != nil {
			return fmt.Errorf("checking which outputs were built: %w", err)
		}
		for _, p := range paths {
			valid[p] = !invalid[p]
		}
	}

	var unexplained []string
	for _, i := range todo {
		o := &outs[i]
		if _, own := parser.Failed[o.DrvPath]; !own && !allIn(valid, o.OutPaths) && !interrupted {
			unexplained = append(unexplained, o.DrvPath)
		}
	}
	causes := failedDependencies(ctx, opts.Engine, m, unexplained, parser.Failed)

	for _, i := range todo {
		o := &outs[i]
		if !res.Buffered {
			// Timed from the lines as they came; an engine that hands the
			// log over at the end (Dagger) gives no times, so none is set.
			o.DurationMs = parser.Elapsed[o.DrvPath].Milliseconds()
		}
		o.Builder = parser.Builders[o.DrvPath]
		if allIn(valid, o.OutPaths) {
			o.Status = report.StatusBuilt
			continue
		}
		o.Status = report.StatusFailed
		o.Log = parser.Logs[o.DrvPath]
		switch msg, ok := parser.Failed[o.DrvPath]; {
		case ok:
			o.Reason = msg
		case causes[o.DrvPath] != "":
			dep := causes[o.DrvPath]
			o.Reason = fmt.Sprintf("dependency %s failed: %s", filepath.Base(dep), parser.Failed[dep])
			o.Log = parser.Logs[dep]
		case parser.DepFailed[o.DrvPath] != "":
			o.Reason = parser.DepFailed[o.DrvPath]
		case interrupted:
			o.Reason = "interrupted before it was built: rerun to finish"
		case len(parser.Other) > 0:
			o.Reason = strings.Join(parser.Other, "; ")
		default:
			o.Reason = fmt.Sprintf("not built (nix build exited with %d)", res.ExitCode)
		}
	}
	// The outcome of the requested derivations, now that the store says it.
	told := map[string]bool{}
	for _, i := range todo {
		o := outs[i]
		if told[o.DrvPath] {
			continue
		}
		told[o.DrvPath] = true
		kind := BuildFinished
		if o.Status == report.StatusFailed {
			kind = BuildFailed
		}
		// Nix ends the activity of a requested derivation only when it
		// exits, so its duration is not known well enough to show here.
		prog.Event(Event{Kind: kind, DrvPath: o.DrvPath})
	}
	if interrupted {
		return ErrInterrupted
	}
	return nil
}

// failedDependencies finds, for each derivation, a failed derivation in its
// closure: nix names the failed dependency only for derivations that are not
// themselves requested, so the graph is read with one `nix derivation show -r`.
func failedDependencies(ctx context.Context, eng engine.Engine, m *Machine, drvs []string, failed map[string]string) map[string]string {
	causes := map[string]string{}
	if len(drvs) == 0 || len(failed) == 0 {
		return causes
	}
	sub := []string{"show-derivation", "-r"}
	if m.Version.AtLeast(2, 20) {
		sub = []string{"derivation", "show", "-r"}
	}
	var out bytes.Buffer
	res, err := eng.Run(ctx, engine.Cmd{Args: nixcli.Nix(append(sub, drvs...)...), Stdout: &out, Stderr: io.Discard})
	if err != nil || res.ExitCode != 0 {
		return causes
	}
	graph, err := parseDerivationGraph(out.Bytes())
	if err != nil {
		return causes
	}
	for _, d := range drvs {
		seen := map[string]bool{d: true}
		queue := []string{d}
		for len(queue) > 0 && causes[d] == "" {
			cur := queue[0]
			queue = queue[1:]
			for _, in := range graph[cur] {
				if seen[in] {
					continue
				}
				seen[in] = true
				if _, ok := failed[in]; ok {
					causes[d] = in
					break
				}
				queue = append(queue, in)
			}
		}
	}
	return causes
}

// parseDerivationGraph reads `nix derivation show` JSON into drv -> input
// drvs. Store paths may be printed in full or, in newer nix, as base names.
func parseDerivationGraph(data []byte) (map[string][]string, error) {
	var raw map[string]struct {
		InputDrvs map[string]json.RawMessage `json:"inputDrvs"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	full := func(p string) string {
		if strings.HasPrefix(p, "/") {
			return p
		}
		return "/nix/store/" + p
	}
	g := map[string][]string{}
	for d, v := range raw {
		var ins []string
		for in := range v.InputDrvs {
			ins = append(ins, full(in))
		}
		sort.Strings(ins)
		g[full(d)] = ins
	}
	return g, nil
}

// invalidPaths asks the engine's store which paths are not valid.
func invalidPaths(ctx context.Context, eng engine.Engine, paths []string) (map[string]bool, error) {
	var out, errb bytes.Buffer
	res, err := eng.Run(ctx, engine.Cmd{
		Args:   append([]string{"nix-store", "--check-validity", "--print-invalid"}, paths...),
		Stdout: &out, Stderr: &errb,
	})
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("nix-store --check-validity: %s", CleanNixError(errb.String()))
	}
	invalid := map[string]bool{}
	for _, l := range strings.Split(out.String(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			invalid[l] = true
		}
	}
	return invalid, nil
}

// lineWriter calls fn for every complete line written to it.
type lineWriter struct {
	mu  sync.Mutex
	buf []byte
	fn  func(string)
}

var _ io.Writer = (*lineWriter)(nil)

func newLineWriter(fn func(string)) *lineWriter { return &lineWriter{fn: fn} }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.fn(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// Flush hands a final unterminated line to fn.
func (w *lineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		sc := bufio.NewScanner(bytes.NewReader(w.buf))
		for sc.Scan() {
			w.fn(sc.Text())
		}
		w.buf = nil
	}
}
