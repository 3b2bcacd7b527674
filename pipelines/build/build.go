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
	"path/filepath"
	"sort"
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
		case d.Unselected:
			o.Status, o.Reason = report.StatusSkipped, NotSelectedReason
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

	// Outputs already valid in the local store need no build.
	if len(todo) > 0 {
		var paths []string
		for _, i := range todo {
			paths = append(paths, outs[i].OutPaths...)
		}
		invalid, err := invalidPaths(ctx, opts.Engine, paths)
		if err != nil {
			if ctx.Err() != nil {
				return nil, st, ErrInterrupted
			}
			return nil, st, fmt.Errorf("asking the store which outputs it has: %w", err)
		}
		rest := todo[:0]
		for _, i := range todo {
			if len(outs[i].OutPaths) > 0 && !anyIn(invalid, outs[i].OutPaths) {
				outs[i].Status = report.StatusPresent
			} else {
				rest = append(rest, i)
			}
		}
		todo = rest
	}

	if opts.DryRun {
		for _, i := range todo {
			outs[i].Status = report.StatusWouldBuild
		}
		rep.Outputs = outs
		return rep, st, nil
	}

	// Build the rest.
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

// buildState collects what the nix processes of one build report.
type buildState struct {
	mu        sync.Mutex
	failed    map[string]string // a derivation's own build failed
	depFailed map[string]string
	logs      map[string][]string
	elapsed   map[string]time.Duration
	started   map[string]time.Time
	stopped   map[string]time.Time
	other     []string
	exitCodes []int
	// buffered: an engine handed nix's log over only when it ended.
	buffered bool
	// builders maps a derivation to the machine that built it.
	builders map[string]string
	// blocked maps a requested derivation that was not started to the
	// failed derivation it needs.
	blocked map[string]string
	// notStarted holds requested derivations left when the build was
	// interrupted.
	notStarted map[string]bool
}

func (s *buildState) add(p *eventParser, exit int, buffered bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buffered = s.buffered || buffered
	for d, v := range p.Failed {
		s.failed[d] = v
	}
	for d, v := range p.DepFailed {
		if _, ok := s.depFailed[d]; !ok {
			s.depFailed[d] = v
		}
	}
	for d, v := range p.Logs {
		s.logs[d] = v
	}
	for d, v := range p.Elapsed {
		s.elapsed[d] = v
	}
	for d, v := range p.Started {
		s.started[d] = v
	}
	for d, v := range p.Stopped {
		s.stopped[d] = v
	}
	for d, v := range p.Builders {
		if cur := s.builders[d]; cur == "" || cur == BuilderLocal {
			s.builders[d] = v
		}
	}
	s.other = append(s.other, p.Other...)
	s.exitCodes = append(s.exitCodes, exit)
}

func (s *buildState) failedSnapshot() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.failed)
}

// buildAll builds the requested derivations in stages of batches, a few
// nix processes at a time (see planStages), and gives every output in
// todo its status.
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
	batch := opts.BatchSize
	if batch <= 0 {
		batch = DefaultBatchSize
	}
	procs := opts.Processes
	if procs <= 0 {
		procs = DefaultProcesses
	}

	// Plan: with more than one process, read the graph so that shared
	// dependencies build first, once.
	var graph *drvGraph
	if procs > 1 && len(drvs) > minBatch {
		g, err := loadGraph(ctx, opts.Engine, m, drvs)
		switch {
		case err != nil && ctx.Err() != nil:
			return ErrInterrupted
		case err != nil:
			prog.Phase(fmt.Sprintf("warning: reading the derivation graph failed, building in one stage: %v", err))
		default:
			graph = g
		}
	}
	stages := planStages(drvs, graph, batch, procs, 0)
	nb := 0
	for _, sg := range stages {
		nb += len(sg)
	}
	prog.Phase(fmt.Sprintf("building %d outputs (%d derivations and what they need) in %d nix processes, %d at a time",
		len(todo), len(drvs), nb, min(procs, nb)))

	bs := &buildState{
		failed: map[string]string{}, depFailed: map[string]string{}, logs: map[string][]string{},
		elapsed: map[string]time.Duration{}, started: map[string]time.Time{}, stopped: map[string]time.Time{},
		blocked: map[string]string{}, notStarted: map[string]bool{}, builders: map[string]string{},
	}
	merger := &countsMerger{per: map[int]Counts{}, emit: prog.Event}
	var runErr error
	var errOnce sync.Once
	bi := 0
	for _, sg := range stages {
		failedSoFar := bs.failedSnapshot()
		var wg sync.WaitGroup
		sem := make(chan struct{}, procs)
		for _, b := range sg {
			var run []string
			for _, d := range b {
				if graph != nil {
					if dep := graph.FailedIn(d, failedSoFar); dep != "" {
						bs.mu.Lock()
						bs.blocked[d] = dep
						bs.mu.Unlock()
						continue
					}
				}
				run = append(run, d)
			}
			if len(run) == 0 {
				continue
			}
			sem <- struct{}{}
			if ctx.Err() != nil {
				<-sem
				bs.mu.Lock()
				for _, d := range run {
					bs.notStarted[d] = true
				}
				bs.mu.Unlock()
				continue
			}
			wg.Add(1)
			go func(i int, run []string) {
				defer func() { <-sem; wg.Done() }()
				p, res, err := runBatch(ctx, opts, m, run, merger.forBatch(i, prog.Event))
				if err != nil && ctx.Err() == nil {
					errOnce.Do(func() { runErr = fmt.Errorf("running nix build: %w", err) })
				}
				bs.add(p, res.ExitCode, res.Buffered)
			}(bi, run)
			bi++
		}
		wg.Wait()
		if runErr != nil {
			return runErr
		}
	}
	interrupted := ctx.Err() != nil

	// Which outputs exist now? nix exits 0 only when all of them do.
	valid := map[string]bool{}
	var paths []string
	for _, i := range todo {
		paths = append(paths, outs[i].OutPaths...)
	}
	allOK := !interrupted && len(bs.blocked) == 0 && len(bs.exitCodes) == nb
	for _, c := range bs.exitCodes {
		allOK = allOK && c == 0
	}
	if allOK {
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

	// Which failed dependency made a requested derivation fail?
	causes := map[string]string{}
	var unexplained []string
	for _, d := range drvs {
		if _, own := bs.failed[d]; own || bs.blocked[d] != "" || bs.notStarted[d] {
			continue
		}
		if o := outs[firstOutput(outs, todo, d)]; !allIn(valid, o.OutPaths) && !interrupted {
			if graph != nil {
				if dep := graph.FailedIn(d, bs.failed); dep != "" {
					causes[d] = dep
					continue
				}
			}
			unexplained = append(unexplained, d)
		}
	}
	maps.Copy(causes, failedDependencies(ctx, opts.Engine, m, unexplained, bs.failed))
	maps.Copy(causes, bs.blocked)

	// Times are taken as nix's log arrives: an engine that hands the log
	// over when the command ends (Dagger: Result.Buffered) gives none.
	durations := map[string]*int64{}
	if !bs.buffered {
		durations = buildDurations(ctx, opts.Engine, outs, todo, valid, bs)
	} else {
		clear(bs.elapsed)
	}
	for _, i := range todo {
		o := &outs[i]
		o.Builder = bs.builders[o.DrvPath]
		if allIn(valid, o.OutPaths) {
			o.Status = report.StatusBuilt
			o.DurationMs = durations[o.DrvPath]
			continue
		}
		o.Status = report.StatusFailed
		o.Log = bs.logs[o.DrvPath]
		switch msg, ok := bs.failed[o.DrvPath]; {
		case ok:
			o.Reason = msg
			if d, ok := bs.elapsed[o.DrvPath]; ok {
				o.DurationMs = report.Ms(d)
			}
		case causes[o.DrvPath] != "":
			dep := causes[o.DrvPath]
			o.Reason = fmt.Sprintf("dependency %s failed: %s", filepath.Base(dep), bs.failed[dep])
			o.Log = bs.logs[dep]
			o.FailedDependency = dep
		case bs.depFailed[o.DrvPath] != "":
			o.Reason = bs.depFailed[o.DrvPath]
		case interrupted:
			o.Reason = "interrupted before it was built: rerun to finish"
		case len(bs.other) > 0:
			o.Reason = strings.Join(bs.other, "; ")
		default:
			o.Reason = fmt.Sprintf("not built (nix build exited with %v)", bs.exitCodes)
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
		var el time.Duration
		if o.DurationMs != nil {
			el = time.Duration(*o.DurationMs) * time.Millisecond
		}
		prog.Event(Event{Kind: kind, DrvPath: o.DrvPath, Elapsed: el})
	}
	if interrupted {
		return ErrInterrupted
	}
	return nil
}

func firstOutput(outs []report.Output, todo []int, drv string) int {
	for _, i := range todo {
		if outs[i].DrvPath == drv {
			return i
		}
	}
	return todo[0]
}

// buildDurations measures each built requested derivation from the start
// of its build activity to its end. A dependency's activity stops when its
// build ends; a requested derivation's activity stops only when nix exits,
// so its end is the earlier of that stop and the end of the second in which
// the store registered its output (registrationTime has whole seconds).
// Derivations whose start or end is unknown get no duration.
func buildDurations(ctx context.Context, eng engine.Engine, outs []report.Output, todo []int, valid map[string]bool, bs *buildState) map[string]*int64 {
	res := map[string]*int64{}
	var ask []string
	first := map[string]string{} // out path -> drv
	for _, i := range todo {
		o := outs[i]
		if !allIn(valid, o.OutPaths) || res[o.DrvPath] != nil {
			continue
		}
		if d, ok := bs.elapsed[o.DrvPath]; ok {
			res[o.DrvPath] = report.Ms(d)
			continue
		}
		if _, ok := bs.started[o.DrvPath]; ok && first[o.OutPaths[0]] == "" {
			first[o.OutPaths[0]] = o.DrvPath
			ask = append(ask, o.OutPaths[0])
		}
	}
	if len(ask) == 0 {
		return res
	}
	var out bytes.Buffer
	r, err := eng.Run(ctx, engine.Cmd{Args: nixcli.Nix(append([]string{"path-info", "--json"}, ask...)...), Stdout: &out, Stderr: io.Discard})
	if err != nil || r.ExitCode != 0 {
		return res
	}
	infos, err := nixcli.ParsePathInfo(out.Bytes())
	if err != nil {
		return res
	}
	for _, pi := range infos {
		d := first[pi.Path]
		start, ok := bs.started[d]
		if d == "" || !ok || pi.RegistrationTime == 0 {
			continue
		}
		end := time.Unix(pi.RegistrationTime+1, 0)
		if stop, ok := bs.stopped[d]; ok && stop.Before(end) {
			end = stop
		}
		if end.Before(start) {
			continue // registered before this build started: not ours
		}
		res[d] = report.Ms(end.Sub(start))
	}
	return res
}

// failedDependencies finds, for each derivation, a failed derivation in its
// closure: nix names the failed dependency only for derivations that are not
// themselves requested, so the graph is read with one `nix derivation show -r`.
func failedDependencies(ctx context.Context, eng engine.Engine, m *Machine, drvs []string, failed map[string]string) map[string]string {
	causes := map[string]string{}
	if len(drvs) == 0 || len(failed) == 0 {
		return causes
	}
	graph, err := showDerivations(ctx, eng, m.Version, drvs)
	if err != nil {
		return causes
	}
	for _, d := range drvs {
		seen := map[string]bool{d: true}
		queue := []string{d}
		for len(queue) > 0 && causes[d] == "" {
			cur := queue[0]
			queue = queue[1:]
			for _, in := range graph[cur].Inputs {
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

// invalidPaths asks the engine's store which paths are not valid, a few
// thousand paths per call to stay below the argument list's limit.
func invalidPaths(ctx context.Context, eng engine.Engine, paths []string) (map[string]bool, error) {
	invalid := map[string]bool{}
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
				invalid[l] = true
			}
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
