package build

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

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

func newBuildState() *buildState {
	return &buildState{
		failed: map[string]string{}, depFailed: map[string]string{}, logs: map[string][]string{},
		elapsed: map[string]time.Duration{}, started: map[string]time.Time{}, stopped: map[string]time.Time{},
		blocked: map[string]string{}, notStarted: map[string]bool{}, builders: map[string]string{},
	}
}

func (s *buildState) failedSnapshot() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.failed)
}

// block records that d was not started because dep, which it needs, failed.
func (s *buildState) block(d, dep string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocked[d] = dep
}

// interrupt records derivations not started because the build was
// interrupted.
func (s *buildState) interrupt(drvs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range drvs {
		s.notStarted[d] = true
	}
}

// succeeded reports whether every one of the batches nix processes ran
// and exited 0, none blocked: then every output exists.
func (s *buildState) succeeded(batches int) bool {
	ok := len(s.blocked) == 0 && len(s.exitCodes) == batches
	for _, c := range s.exitCodes {
		ok = ok && c == 0
	}
	return ok
}

// batchBuild is one buildAll: the requested derivations, the graph that
// orders them, and what their nix processes report.
type batchBuild struct {
	opts Options
	m    *Machine
	prog Progress
	outs []report.Output
	todo []int
	// drvs are the requested derivations of todo, sorted.
	drvs []string
	// graph is nil when the build runs in one stage.
	graph *drvGraph
	bs    *buildState
}

// buildAll builds the requested derivations in stages of batches, a few
// nix processes at a time (see planStages), and gives every output in
// todo its status.
func buildAll(ctx context.Context, opts Options, m *Machine, prog Progress, outs []report.Output, todo []int, st *Stats) error {
	b := &batchBuild{opts: opts, m: m, prog: prog, outs: outs, todo: todo, drvs: requestedDrvs(outs, todo), bs: newBuildState()}
	st.Derivations = len(b.drvs)
	procs := positiveOr(opts.Processes, DefaultProcesses)
	if err := b.readGraph(ctx, procs); err != nil {
		return err
	}
	stages := planStages(b.drvs, b.graph, positiveOr(opts.BatchSize, DefaultBatchSize), procs, 0)
	batches := 0
	for _, sg := range stages {
		batches += len(sg)
	}
	prog.Phase(fmt.Sprintf("building %d outputs (%d derivations and what they need) in %d nix processes, %d at a time",
		len(todo), len(b.drvs), batches, min(procs, batches)))

	if err := b.runStages(ctx, stages, procs); err != nil {
		return err
	}
	interrupted := ctx.Err() != nil
	valid, err := b.validPaths(ctx, !interrupted && b.bs.succeeded(batches))
	if err != nil {
		return err
	}
	b.record(ctx, valid, b.failureCauses(ctx, valid, interrupted), interrupted)
	b.announce()
	if interrupted {
		return ErrInterrupted
	}
	return nil
}

// requestedDrvs lists the derivations of the outputs of todo, sorted, each
// once.
func requestedDrvs(outs []report.Output, todo []int) []string {
	seen := map[string]bool{}
	var drvs []string
	for _, i := range todo {
		if d := outs[i].DrvPath; !seen[d] {
			seen[d] = true
			drvs = append(drvs, d)
		}
	}
	sort.Strings(drvs)
	return drvs
}

// readGraph reads the derivation graph when more than one process builds,
// so that shared dependencies build first, once. Without it the build runs
// in one stage.
func (b *batchBuild) readGraph(ctx context.Context, procs int) error {
	if procs <= 1 || len(b.drvs) <= minBatch {
		return nil
	}
	g, err := loadGraph(ctx, b.opts.Engine, b.m, b.drvs)
	switch {
	case err != nil && ctx.Err() != nil:
		return ErrInterrupted
	case err != nil:
		b.prog.Phase(fmt.Sprintf("warning: reading the derivation graph failed, building in one stage: %v", err))
	default:
		b.graph = g
	}
	return nil
}

// runStages runs the batches of each stage, procs nix processes at a time,
// a stage after the one before has ended. A batch's derivations whose
// dependencies failed in an earlier stage are not started; once the build
// is interrupted, no batch is.
func (b *batchBuild) runStages(ctx context.Context, stages []stage, procs int) error {
	merger := &countsMerger{per: map[int]Counts{}, emit: b.prog.Event}
	var runErr error
	var errOnce sync.Once
	bi := 0
	for _, sg := range stages {
		failedSoFar := b.bs.failedSnapshot()
		var wg sync.WaitGroup
		sem := make(chan struct{}, procs)
		for _, batch := range sg {
			run := b.unblocked(batch, failedSoFar)
			if len(run) == 0 {
				continue
			}
			sem <- struct{}{}
			if ctx.Err() != nil {
				<-sem
				b.bs.interrupt(run)
				continue
			}
			wg.Add(1)
			go func(i int, run []string) {
				defer func() { <-sem; wg.Done() }()
				p, res, err := runBatch(ctx, b.opts, b.m, run, merger.forBatch(i, b.prog.Event))
				if err != nil && ctx.Err() == nil {
					errOnce.Do(func() { runErr = fmt.Errorf("running nix build: %w", err) })
				}
				b.bs.add(p, res.ExitCode, res.Buffered)
			}(bi, run)
			bi++
		}
		wg.Wait()
		if runErr != nil {
			return runErr
		}
	}
	return nil
}

// unblocked returns the derivations of batch none of whose dependencies
// are in failed, and records the others as blocked.
func (b *batchBuild) unblocked(batch []string, failed map[string]string) []string {
	var run []string
	for _, d := range batch {
		if b.graph != nil {
			if dep := b.graph.FailedIn(d, failed); dep != "" {
				b.bs.block(d, dep)
				continue
			}
		}
		run = append(run, d)
	}
	return run
}

// validPaths says which output paths of todo exist now: all of them when
// every nix process succeeded (nix exits 0 only when they all do), else
// what the store says.
func (b *batchBuild) validPaths(ctx context.Context, succeeded bool) (map[string]bool, error) {
	paths := outPaths(b.outs, b.todo)
	valid := make(map[string]bool, len(paths))
	if succeeded {
		for _, p := range paths {
			valid[p] = true
		}
		return valid, nil
	}
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	invalid, err := invalidPaths(vctx, b.opts.Engine, paths)
	if err != nil {
		return nil, fmt.Errorf("checking which outputs were built: %w", err)
	}
	for _, p := range paths {
		valid[p] = !invalid[p]
	}
	return valid, nil
}

// failureCauses finds which failed dependency made each requested
// derivation fail that did not fail itself and was neither blocked nor
// left unstarted: from the graph when it was read, else from the closures
// of the rest (failedDependencies). Blocked derivations are caused by what
// blocked them.
func (b *batchBuild) failureCauses(ctx context.Context, valid map[string]bool, interrupted bool) map[string]string {
	bs := b.bs
	causes := map[string]string{}
	var unexplained []string
	for _, d := range b.drvs {
		if _, own := bs.failed[d]; own || bs.blocked[d] != "" || bs.notStarted[d] {
			continue
		}
		if o := b.outs[firstOutput(b.outs, b.todo, d)]; !allIn(valid, o.OutPaths) && !interrupted {
			if b.graph != nil {
				if dep := b.graph.FailedIn(d, bs.failed); dep != "" {
					causes[d] = dep
					continue
				}
			}
			unexplained = append(unexplained, d)
		}
	}
	maps.Copy(causes, failedDependencies(ctx, b.opts.Engine, b.m, unexplained, bs.failed))
	maps.Copy(causes, bs.blocked)
	return causes
}

// record gives every output of todo its status: built, with its duration,
// or failed, with the reason and log.
func (b *batchBuild) record(ctx context.Context, valid map[string]bool, causes map[string]string, interrupted bool) {
	bs := b.bs
	// Times are taken as nix's log arrives: an engine that hands the log
	// over when the command ends (Dagger: Result.Buffered) gives none.
	durations := map[string]*int64{}
	if !bs.buffered {
		durations = buildDurations(ctx, b.opts.Engine, b.outs, b.todo, valid, bs)
	} else {
		clear(bs.elapsed)
	}
	for _, i := range b.todo {
		o := &b.outs[i]
		o.Builder = bs.builders[o.DrvPath]
		if allIn(valid, o.OutPaths) {
			o.Status = report.StatusBuilt
			o.DurationMs = durations[o.DrvPath]
			continue
		}
		o.Status = report.StatusFailed
		bs.explain(o, causes, interrupted)
	}
}

// explain gives a failed output its reason and log: its own build's
// failure, the failed dependency that caused it, nix's own message, the
// interruption, or nix's exit codes.
func (s *buildState) explain(o *report.Output, causes map[string]string, interrupted bool) {
	o.Log = s.logs[o.DrvPath]
	switch msg, ok := s.failed[o.DrvPath]; {
	case ok:
		o.Reason = msg
		if d, ok := s.elapsed[o.DrvPath]; ok {
			o.DurationMs = report.Ms(d)
		}
	case causes[o.DrvPath] != "":
		dep := causes[o.DrvPath]
		o.Reason = fmt.Sprintf("dependency %s failed: %s", filepath.Base(dep), s.failed[dep])
		o.Log = s.logs[dep]
		o.FailedDependency = dep
	case s.depFailed[o.DrvPath] != "":
		o.Reason = s.depFailed[o.DrvPath]
	case interrupted:
		o.Reason = "interrupted before it was built: rerun to finish"
	case len(s.other) > 0:
		o.Reason = strings.Join(s.other, "; ")
	default:
		o.Reason = fmt.Sprintf("not built (nix build exited with %v)", s.exitCodes)
	}
}

// announce reports the outcome of each requested derivation, now that the
// store says it.
func (b *batchBuild) announce() {
	told := map[string]bool{}
	for _, i := range b.todo {
		o := b.outs[i]
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
		b.prog.Event(Event{Kind: kind, DrvPath: o.DrvPath, Elapsed: el})
	}
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
