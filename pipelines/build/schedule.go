package build

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
)

// Scheduling defaults, chosen with `ci bench build` on a 2-core machine
// (docs/build.md has the numbers): one nix process slows down faster than
// linearly with the number of derivations it is asked for, and builds of
// small derivations wait on process start-up and the store's database more
// than on the CPU, so a few processes with batches of about 100 win.
const (
	// DefaultBatchSize is the most derivations one nix build is asked for.
	DefaultBatchSize = 100
	// DefaultProcesses is how many nix build processes run at once.
	DefaultProcesses = 2
	// minBatch is the smallest batch worth its own nix process.
	minBatch = 25
	// maxPlanDepth bounds how often shared dependencies are split off.
	maxPlanDepth = 4
)

// drvGraph is the part of the derivation graph that still has to be built:
// derivations with an output that is not valid in the store, and their
// inputs of the same kind. Valid derivations end the walk: what they need
// is not built again.
type drvGraph struct {
	inputs  map[string][]string // to-build drv -> its to-build input drvs
	closure map[string]map[string]bool
}

// loadGraph reads the closures of drvs with one `nix derivation show -r`
// and asks the store which outputs exist.
func loadGraph(ctx context.Context, eng engine.Engine, m *Machine, drvs []string) (*drvGraph, error) {
	raw, err := showDerivations(ctx, eng, m.Version, drvs)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, d := range raw {
		paths = append(paths, d.Outputs...)
	}
	invalid, err := invalidPaths(ctx, eng, paths)
	if err != nil {
		return nil, err
	}
	g := &drvGraph{inputs: map[string][]string{}, closure: map[string]map[string]bool{}}
	toBuild := func(d string) bool {
		info, ok := raw[d]
		if !ok || len(info.Outputs) < len(info.Names) {
			return true // unknown or floating outputs: nix decides
		}
		for _, p := range info.Outputs {
			if invalid[p] {
				return true
			}
		}
		return false
	}
	for d, info := range raw {
		if !toBuild(d) {
			continue
		}
		var ins []string
		for _, in := range info.Inputs {
			if toBuild(in) {
				ins = append(ins, in)
			}
		}
		g.inputs[d] = ins
	}
	return g, nil
}

// Closure is d and every to-build derivation it needs (nil when d itself
// need not be built).
func (g *drvGraph) Closure(d string) map[string]bool {
	if c, ok := g.closure[d]; ok {
		return c
	}
	if _, ok := g.inputs[d]; !ok {
		return nil
	}
	c := map[string]bool{d: true}
	for _, in := range g.inputs[d] {
		for x := range g.Closure(in) {
			c[x] = true
		}
	}
	g.closure[d] = c
	return c
}

// FailedIn returns a derivation of d's to-build closure that is in failed
// (its own build failed), or "".
func (g *drvGraph) FailedIn(d string, failed map[string]string) string {
	var hit []string
	for x := range g.Closure(d) {
		if _, ok := failed[x]; ok && x != d {
			hit = append(hit, x)
		}
	}
	if len(hit) == 0 {
		return ""
	}
	sort.Strings(hit)
	return hit[0]
}

// stage is a set of batches that can run at the same time: no derivation
// that still has to be built is needed by two batches of one stage.
type stage [][]string

// planStages orders the requested derivations into stages of batches of at
// most batch derivations. Derivations needed by two or more requested ones
// (shared dependencies, or requested derivations that others need) go to
// an earlier stage, so concurrent nix processes never wait on each other's
// locks and nothing is built twice; without a graph everything goes into
// one stage.
func planStages(roots []string, g *drvGraph, batch, procs, depth int) []stage {
	if g == nil || len(roots) <= minBatch || depth >= maxPlanDepth {
		return []stage{chunk(roots, batch, procs)}
	}
	users := map[string]int{}
	for _, r := range roots {
		for d := range g.Closure(r) {
			users[d]++
		}
	}
	shared := map[string]bool{}
	for d, n := range users {
		if n > 1 {
			shared[d] = true
		}
	}
	if len(shared) == 0 {
		return []stage{chunk(roots, batch, procs)}
	}
	// The shared derivations no other shared derivation needs: building
	// them builds every shared one.
	inner := map[string]bool{}
	for d := range shared {
		for x := range g.Closure(d) {
			if x != d {
				inner[x] = true
			}
		}
	}
	var top, rest []string
	for d := range shared {
		if !inner[d] {
			top = append(top, d)
		}
	}
	sort.Strings(top)
	for _, r := range roots {
		if !shared[r] {
			rest = append(rest, r)
		}
	}
	stages := planStages(top, g, batch, procs, depth+1)
	if len(rest) > 0 {
		stages = append(stages, chunk(rest, batch, procs))
	}
	return stages
}

// chunk splits drvs into batches of at most size, as evenly as possible,
// and into at least procs batches when each still holds minBatch.
func chunk(drvs []string, size, procs int) stage {
	if len(drvs) == 0 {
		return nil
	}
	n := (len(drvs) + size - 1) / size
	if alt := min(procs, len(drvs)/minBatch); alt > n {
		n = alt
	}
	if n < 1 {
		n = 1
	}
	out := make(stage, 0, n)
	for i := 0; i < n; i++ {
		lo, hi := i*len(drvs)/n, (i+1)*len(drvs)/n
		if hi > lo {
			out = append(out, drvs[lo:hi])
		}
	}
	return out
}

// countsMerger adds up nix's build counters of concurrent nix processes.
type countsMerger struct {
	mu   sync.Mutex
	per  map[int]Counts
	emit func(Event)
}

func (c *countsMerger) forBatch(i int, emit func(Event)) func(Event) {
	return func(e Event) {
		if e.Kind != BuildCounts {
			emit(e)
			return
		}
		c.mu.Lock()
		c.per[i] = e.Counts
		var sum Counts
		for _, n := range c.per {
			sum.Done += n.Done
			sum.Expected += n.Expected
			sum.Running += n.Running
			sum.Failed += n.Failed
		}
		c.mu.Unlock()
		emit(Event{Kind: BuildCounts, Counts: sum})
	}
}

// runBatch runs one nix build of drvs and returns its parsed log.
func runBatch(ctx context.Context, opts Options, m *Machine, drvs []string, emit func(Event)) (*eventParser, engine.Result, error) {
	args := []string{"build", "--keep-going", "--no-link", "--log-format", "internal-json", "-v"}
	switch {
	case opts.Jobs > 0:
		args = append(args, "--max-jobs", fmt.Sprint(opts.Jobs))
	case !m.MaxJobsSet:
		// nix's own default is one job at a time; build in parallel unless
		// nix.conf chose a number.
		args = append(args, "--max-jobs", "auto")
	}
	args = append(args, opts.Remote.remoteArgs()...)
	for _, d := range drvs {
		args = append(args, m.Version.DrvInstallable(d))
	}
	parser := newEventParser(emit, func() bool { return ctx.Err() != nil }, drvs)
	lw := newLineWriter(parser.Line)
	res, err := opts.Engine.Run(ctx, engine.Cmd{Args: nixcli.Nix(args...), Env: opts.Remote.Env, Stdout: io.Discard, Stderr: lw})
	lw.Flush()
	parser.explainRemote()
	return parser, res, err
}
