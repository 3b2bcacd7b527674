// Package build is the engine-independent plan behind `ci build`: discover
// every flake output in one evaluation, skip what the binary cache or the
// local store has and what this machine cannot build, build the rest in
// batches on a few concurrent nix processes (shared dependencies first),
// and give every output a status.
package build

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
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
	// BatchSize is the most derivations one nix build is asked for (0:
	// DefaultBatchSize).
	BatchSize int
	// Processes is how many nix build processes run at once (0:
	// DefaultProcesses). Jobs applies to each.
	Processes int
	// DryRun evaluates and asks the cache and the store, and builds
	// nothing: outputs that would be built are reported "would build".
	DryRun bool
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

// NotSelectedReason is the reason of outputs of systems not selected.
const NotSelectedReason = "system not selected (--systems)"

// ErrInterrupted is returned with a partial report when the build was
// cancelled (SIGINT): what finished is reported, a rerun completes the rest.
var ErrInterrupted = errors.New("interrupted")

type nopProgress struct{}

func (nopProgress) Phase(string) {}
func (nopProgress) Event(Event)  {}

// Run builds the selected outputs and returns a report with one entry per
// output. The error is non-nil only when the flake could not be evaluated
// at all (*EvalError), the selection matches nothing (*SelectionError, with
// a nil report), the engine failed, or the run was interrupted; failed
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
	plain := opts.Engine
	if len(opts.Secrets) > 0 {
		opts.Engine = secretEngine{Engine: opts.Engine, secrets: opts.Secrets}
	}
	disc, machine, err := evaluate(ctx, plain, opts, st)
	if err != nil {
		return nil, st, err
	}
	if err := applyRemote(ctx, plain, machine, opts.Remote); err != nil {
		return nil, st, err
	}
	if opts.Shard.Count > 0 {
		if disc.Outputs, err = selectShard(ctx, opts, machine, prog, disc.Outputs); err != nil {
			return nil, st, err
		}
	}

	outs, todo := classify(disc.Outputs, machine)
	if todo, err = skipCached(ctx, opts, prog, outs, todo, st); err != nil {
		return nil, st, err
	}
	if todo, err = skipPresent(ctx, opts.Engine, outs, todo); err != nil {
		return nil, st, err
	}
	rep.Outputs = outs
	if opts.DryRun {
		for _, i := range todo {
			outs[i].Status = report.StatusWouldBuild
		}
		return rep, st, nil
	}
	if len(todo) > 0 {
		t0 := time.Now()
		err = buildAll(ctx, opts, machine, prog, outs, todo, st)
		st.Build = time.Since(t0)
	}
	return rep, st, err
}

// evaluate discovers the flake's outputs while it asks nix for the
// machine's configuration. The configuration is read on plain, the engine
// without secrets: nix prints its settings.
func evaluate(ctx context.Context, plain engine.Engine, opts Options, st *Stats) (*Discovery, *Machine, error) {
	t0 := time.Now()
	var (
		machine *Machine
		merr    error
		wg      sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		machine, merr = ProbeMachine(ctx, plain)
	}()
	disc, err := Discover(ctx, opts.Engine, opts.Flake, opts.Systems, opts.Attrs, positiveOr(opts.Jobs, 4))
	wg.Wait()
	st.Eval = time.Since(t0)
	if disc != nil {
		st.EvalProcesses = disc.EvalProcesses
	}
	if err != nil {
		return nil, nil, err
	}
	if merr != nil {
		return nil, nil, fmt.Errorf("asking nix for its configuration: %w", merr)
	}
	return disc, machine, nil
}

// classify gives every discovered output its report entry and decides
// those that are not selected, failed to evaluate or cannot be built here;
// todo holds the indexes of the rest.
func classify(found []Output, m *Machine) (outs []report.Output, todo []int) {
	outs = make([]report.Output, len(found))
	for i, d := range found {
		o := report.Output{Attr: d.Attr, System: d.System, DrvPath: d.DrvPath, OutPaths: d.OutPaths()}
		switch {
		case !d.Selected():
			o.Status, o.Reason = report.StatusSkipped, NotSelectedReason
		case !d.OK:
			o.Status, o.Reason = report.StatusFailed, "evaluation failed: "+d.Error
		default:
			sys := d.DrvSystem
			if sys == "" {
				sys = d.System
			}
			if ok, why := m.CanBuild(sys, d.Features); !ok {
				o.Status, o.Reason = report.StatusSkipped, why
			} else {
				todo = append(todo, i)
			}
		}
		outs[i] = o
	}
	return outs, todo
}

// skipCached marks "cached" the outputs of todo the binary cache already
// has and returns the rest. A failed lookup is a warning: then everything
// is built.
func skipCached(ctx context.Context, opts Options, prog Progress, outs []report.Output, todo []int, st *Stats) ([]int, error) {
	if opts.Cache == nil || len(todo) == 0 {
		return todo, nil
	}
	paths := outPaths(outs, todo)
	prog.Phase(fmt.Sprintf("asking %s for %d output paths", opts.Cache.URI(), len(paths)))
	t0 := time.Now()
	has, err := opts.Cache.Has(ctx, paths)
	st.Lookup = time.Since(t0)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ErrInterrupted
		}
		prog.Phase(fmt.Sprintf("warning: cache lookup failed, building everything: %v", err))
		return todo, nil
	}
	return settle(outs, todo, report.StatusCached, func(o report.Output) bool { return allIn(has, o.OutPaths) }), nil
}

// skipPresent marks "present" the outputs of todo already valid in the
// local store, which need no build, and returns the rest.
func skipPresent(ctx context.Context, eng engine.Engine, outs []report.Output, todo []int) ([]int, error) {
	if len(todo) == 0 {
		return todo, nil
	}
	invalid, err := invalidPaths(ctx, eng, outPaths(outs, todo))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ErrInterrupted
		}
		return nil, fmt.Errorf("asking the store which outputs it has: %w", err)
	}
	return settle(outs, todo, report.StatusPresent, func(o report.Output) bool {
		return len(o.OutPaths) > 0 && !anyIn(invalid, o.OutPaths)
	}), nil
}

// settle gives status to the outputs of todo for which done holds and
// returns the others, reusing todo's array.
func settle(outs []report.Output, todo []int, status string, done func(report.Output) bool) []int {
	rest := todo[:0]
	for _, i := range todo {
		if done(outs[i]) {
			outs[i].Status = status
		} else {
			rest = append(rest, i)
		}
	}
	return rest
}

// outPaths lists the output paths of the outputs of todo.
func outPaths(outs []report.Output, todo []int) []string {
	var paths []string
	for _, i := range todo {
		paths = append(paths, outs[i].OutPaths...)
	}
	return paths
}

// positiveOr is n when it is positive, else def.
func positiveOr(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}

func anyIn(set map[string]bool, paths []string) bool {
	for _, p := range paths {
		if set[p] {
			return true
		}
	}
	return false
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

// InvalidPaths asks the engine's store which of paths it lacks, in the
// order nix names them, a few thousand paths per call to stay below the
// argument list's limit.
func InvalidPaths(ctx context.Context, eng engine.Engine, paths []string) ([]string, error) {
	var invalid []string
	for lo := 0; lo < len(paths); lo += 2000 {
		var out, errb bytes.Buffer
		res, err := eng.Run(ctx, engine.Cmd{
			Args:   append([]string{"nix-store", "--check-validity", "--print-invalid"}, paths[lo:min(lo+2000, len(paths))]...),
			Stdout: &out, Stderr: &errb,
		})
		if err != nil {
			return nil, err
		}
		if res.ExitCode != 0 {
			return nil, fmt.Errorf("nix-store --check-validity: %s", CleanNixError(errb.String()))
		}
		for _, l := range strings.Split(out.String(), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				invalid = append(invalid, l)
			}
		}
	}
	return invalid, nil
}

// invalidPaths is InvalidPaths as a set.
func invalidPaths(ctx context.Context, eng engine.Engine, paths []string) (map[string]bool, error) {
	list, err := InvalidPaths(ctx, eng, paths)
	if err != nil {
		return nil, err
	}
	set := make(map[string]bool, len(list))
	for _, p := range list {
		set[p] = true
	}
	return set, nil
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
