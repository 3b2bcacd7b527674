package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/shorthash"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
)

// Shard selects part Index (1-based) of Count parts of the outputs.
type Shard struct {
	Index, Count int
}

// String is the shard as `ci build --shard` takes it: "I/N".
func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// ParseShard reads "I/N" with 1 ≤ I ≤ N.
func ParseShard(s string) (Shard, error) {
	i, n, ok := strings.Cut(strings.TrimSpace(s), "/")
	a, err1 := strconv.Atoi(i)
	b, err2 := strconv.Atoi(n)
	if !ok || err1 != nil || err2 != nil || b < 1 || a < 1 || a > b {
		return Shard{}, clierr.Usagef("--shard %q: give I/N with 1 ≤ I ≤ N, e.g. --shard 2/4 (ci matrix --shards N prints them)", s)
	}
	return Shard{Index: a, Count: b}, nil
}

// ShardPlan splits the outputs into shards. Outputs that share most of
// their closure are kept together, so shared dependencies are built in one
// shard; shards are balanced by cost, the number of derivations each has
// to build from scratch. The plan depends only on the evaluation — no store
// and no cache is asked — so every job that computes it for the same flake,
// systems and --attr gets the same plan, whatever its runner holds and
// whatever the caches gained while other shards ran.
type ShardPlan struct {
	Shards []ShardPart `json:"shards"`
	// Digest identifies the assignment; jobs that agree print the same.
	Digest string `json:"digest"`
	// Derivations is the number of distinct derivations all shards build.
	Derivations int `json:"derivations"`
}

// ShardPart is one shard of a plan.
type ShardPart struct {
	Shard Shard `json:"-"`
	// Attrs are the attribute paths of the shard's outputs, sorted.
	Attrs []string `json:"attrs"`
	// Cost is the number of derivations the shard builds (those its
	// outputs need that the cache lacks, shared ones counted once).
	Cost int `json:"cost"`
}

// Of returns the part for shard i (1-based).
func (p *ShardPlan) Of(i int) ShardPart { return p.Shards[i-1] }

// PlanShards plans n shards of the discovered outputs from their
// derivation graph (`nix derivation show -r`). Only the outputs the build
// selects (Output.Selected) are planned: those of systems not selected are
// not built, so they belong to no shard and weigh nothing.
func PlanShards(ctx context.Context, eng engine.Engine, v nixcli.Version, outs []Output, n int) (*ShardPlan, error) {
	if n < 1 {
		return nil, clierr.Usagef("--shards %d: give 1 or more shards", n)
	}
	outs = selectedOutputs(outs)
	var drvs []string
	seen := map[string]bool{}
	for _, o := range outs {
		if o.OK && o.DrvPath != "" && !seen[o.DrvPath] {
			seen[o.DrvPath] = true
			drvs = append(drvs, o.DrvPath)
		}
	}
	sort.Strings(drvs)
	graph := map[string]drvNode{}
	if len(drvs) > 0 {
		var err error
		if graph, err = showDerivations(ctx, eng, v, drvs); err != nil {
			return nil, fmt.Errorf("planning shards: %w", err)
		}
	}
	return planFromGraph(outs, graph, n), nil
}

// bitset is a set of derivation indices.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }
func (b bitset) add(i int)   { b[i/64] |= 1 << (i % 64) }
func (b bitset) count() int {
	c := 0
	for _, w := range b {
		c += bits.OnesCount64(w)
	}
	return c
}
func (b bitset) union(o bitset) bitset {
	r := make(bitset, len(b))
	for i := range b {
		r[i] = b[i] | o[i]
	}
	return r
}
func (b bitset) andCount(o bitset) int {
	c := 0
	for i := range b {
		c += bits.OnesCount64(b[i] & o[i])
	}
	return c
}
func (b bitset) intersect(o bitset) bitset {
	r := make(bitset, len(b))
	for i := range b {
		r[i] = b[i] & o[i]
	}
	return r
}
func (b bitset) minus(o bitset) bitset {
	r := make(bitset, len(b))
	for i := range b {
		r[i] = b[i] &^ o[i]
	}
	return r
}
func (b bitset) orCount(o bitset) int {
	c := 0
	for i := range b {
		c += bits.OnesCount64(b[i] | o[i])
	}
	return c
}

// group is a set of outputs that go to one shard, and what they build.
type group struct {
	key   string // the smallest attribute, for stable ordering
	attrs []string
	set   bitset // what it builds, less what every output needs
	full  bitset // what it builds
	cost  int
}

// planFromGraph is the deterministic part of the plan: every decision is
// ordered by cost, then by attribute path. Derivations every output needs
// (the toolchain's bootstrap, say) are built by every shard anyway: they
// say nothing about which outputs belong together and are left out of the
// grouping and balancing, and counted in each shard's cost.
func planFromGraph(outs []Output, graph map[string]drvNode, n int) *ShardPlan {
	groups, all, common, width := unitsOf(outs, graph)
	total := all.minus(common).count()
	// A merged group stays within a shard's fair share (or the largest
	// unit, which no plan can split).
	limit := (total + n - 1) / n
	for _, g := range groups {
		limit = max(limit, g.cost)
	}
	groups = mergeGroups(groups, limit)
	shards, member := pack(groups, n, width)
	improve(shards, member, len(groups), width)
	return planOf(shards, member, n, width, all)
}

// unitsOf makes one unit per derivation (outputs with the same derivation
// build once), and one per output that has none (it failed to evaluate),
// with what each builds less what every output needs (common), sorted.
func unitsOf(outs []Output, graph map[string]drvNode) (groups []*group, all, common bitset, width int) {
	done := map[string]bool{}
	for d, node := range graph {
		done[d] = node.Fixed
	}
	index := map[string]int{}
	for i, d := range slices.Sorted(maps.Keys(graph)) {
		index[d] = i
	}
	width = len(index)

	units := map[string]*group{}
	for _, o := range outs {
		key := o.Attr
		if o.OK && o.DrvPath != "" {
			key = o.DrvPath
		}
		u := units[key]
		if u == nil {
			u = &group{key: o.Attr, set: newBitset(width)}
			units[key] = u
			if o.OK && o.DrvPath != "" {
				closure(o.DrvPath, graph, done, index, u.set)
			}
		}
		u.attrs = append(u.attrs, o.Attr)
		if o.Attr < u.key {
			u.key = o.Attr
		}
	}
	groups = make([]*group, 0, len(units))
	all = newBitset(width)
	working := 0
	for _, key := range slices.Sorted(maps.Keys(units)) {
		u := units[key]
		sort.Strings(u.attrs)
		u.full = u.set
		all = all.union(u.set)
		if u.set.count() > 0 {
			working++
			if common == nil {
				common = u.set
			} else {
				common = common.intersect(u.set)
			}
		}
		groups = append(groups, u)
	}
	if working < 2 {
		common = newBitset(width)
	}
	for _, u := range groups {
		u.set = u.set.minus(common)
		u.cost = u.set.count()
	}
	sortGroups(groups)
	return groups, all, common, width
}

// mergeGroups merges groups that share most of their closure while the
// merged group costs at most limit.
func mergeGroups(groups []*group, limit int) []*group {
	for {
		bi, bj, best := -1, -1, 0.0
		for i := 0; i < len(groups); i++ {
			for j := i + 1; j < len(groups); j++ {
				a, b := groups[i], groups[j]
				small := min(a.cost, b.cost)
				if small == 0 {
					continue
				}
				shared := float64(a.set.andCount(b.set)) / float64(small)
				if shared < 0.5 || shared <= best || a.set.orCount(b.set) > limit {
					continue
				}
				bi, bj, best = i, j, shared
			}
		}
		if bi < 0 {
			break
		}
		a, b := groups[bi], groups[bj]
		a.attrs = append(a.attrs, b.attrs...)
		sort.Strings(a.attrs)
		a.set = a.set.union(b.set)
		a.full = a.full.union(b.full)
		a.cost = a.set.count()
		a.key = min(a.key, b.key)
		groups = append(groups[:bj], groups[bj+1:]...)
		sortGroups(groups)
	}
	return groups
}

// pack puts the largest group first into the shard that grows least.
func pack(groups []*group, n, width int) (shards []*group, member [][]*group) {
	shards = make([]*group, n)
	for i := range shards {
		shards[i] = &group{set: newBitset(width)}
	}
	member = make([][]*group, n)
	for _, g := range groups {
		bestIdx, bestCost, bestShared := 0, -1, -1
		for i, s := range shards {
			c := s.set.orCount(g.set)
			shared := s.set.andCount(g.set)
			if g.cost == 0 {
				c = len(s.attrs) // nothing to build: spread by count
			}
			if bestCost < 0 || c < bestCost || c == bestCost && shared > bestShared {
				bestIdx, bestCost, bestShared = i, c, shared
			}
		}
		s := shards[bestIdx]
		s.set = s.set.union(g.set)
		s.cost = s.set.count()
		s.attrs = append(s.attrs, g.attrs...)
		member[bestIdx] = append(member[bestIdx], g)
	}
	return shards, member
}

// improve moves a group off the most expensive shard while that lowers the
// most expensive shard's cost, at most rounds times.
func improve(shards []*group, member [][]*group, rounds, width int) {
	for range rounds {
		hi := 0
		for i, s := range shards {
			if s.cost > shards[hi].cost {
				hi = i
			}
		}
		type move struct{ g, to, peak int }
		var best *move
		for gi, g := range member[hi] {
			if g.cost == 0 {
				continue
			}
			rest := newBitset(width)
			for k, o := range member[hi] {
				if k != gi {
					rest = rest.union(o.set)
				}
			}
			for to, s := range shards {
				if to == hi {
					continue
				}
				peak := max(rest.count(), s.set.orCount(g.set))
				if peak < shards[hi].cost && (best == nil || peak < best.peak) {
					best = &move{gi, to, peak}
				}
			}
		}
		if best == nil {
			break
		}
		g := member[hi][best.g]
		member[hi] = append(member[hi][:best.g], member[hi][best.g+1:]...)
		member[best.to] = append(member[best.to], g)
		for _, i := range []int{hi, best.to} {
			s := &group{set: newBitset(width)}
			for _, m := range member[i] {
				s.set = s.set.union(m.set)
				s.attrs = append(s.attrs, m.attrs...)
			}
			s.cost = s.set.count()
			shards[i] = s
		}
	}
}

// planOf is the plan of the packed shards: their attributes, costs and the
// digest that names the plan.
func planOf(shards []*group, member [][]*group, n, width int, all bitset) *ShardPlan {
	plan := &ShardPlan{Derivations: all.count()}
	h := sha256.New()
	for i, s := range shards {
		sort.Strings(s.attrs)
		if s.attrs == nil {
			s.attrs = []string{}
		}
		full := newBitset(width)
		for _, g := range member[i] {
			full = full.union(g.full)
		}
		plan.Shards = append(plan.Shards, ShardPart{Shard: Shard{Index: i + 1, Count: n}, Attrs: s.attrs, Cost: full.count()})
		fmt.Fprintf(h, "%d:%s\n", i+1, strings.Join(s.attrs, ","))
	}
	plan.Digest = shorthash.Long(hex.EncodeToString(h.Sum(nil)))
	return plan
}

func sortGroups(gs []*group) {
	sort.SliceStable(gs, func(i, j int) bool {
		if gs[i].cost != gs[j].cost {
			return gs[i].cost > gs[j].cost
		}
		return gs[i].key < gs[j].key
	})
}

// closure adds drv and the input derivations it needs built to set; a
// fixed-output derivation (a download) and what it needs are left out.
func closure(drv string, graph map[string]drvNode, done map[string]bool, index map[string]int, set bitset) {
	seen := map[string]bool{}
	stack := []string{drv}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[d] || done[d] {
			continue
		}
		seen[d] = true
		if i, ok := index[d]; ok {
			set.add(i)
		}
		stack = append(stack, graph[d].Inputs...)
	}
}

// selectShard keeps the outputs of opts.Shard, as planned over all
// selected outputs, and those of systems not selected: every shard reports
// them skipped, and merging the shards' reports keeps one of each.
func selectShard(ctx context.Context, opts Options, m *Machine, prog Progress, outs []Output) ([]Output, error) {
	plan, err := PlanShards(ctx, opts.Engine, m.Version, outs, opts.Shard.Count)
	if err != nil {
		return nil, err
	}
	if opts.ShardPlan != "" && opts.ShardPlan != plan.Digest {
		return nil, clierr.Usagef("--shard-plan %s: this job's plan is %s: it evaluated other outputs (another commit, --systems or --attr) than the plan job, so the shards could miss or repeat outputs: give every job the same flake and flags, and rerun ci matrix --shards and every shard job", opts.ShardPlan, plan.Digest)
	}
	part := plan.Of(opts.Shard.Index)
	prog.Phase(fmt.Sprintf("shard %s of plan %s: %d of %d outputs, %d of %d derivations to build", opts.Shard, plan.Digest, len(part.Attrs), len(selectedOutputs(outs)), part.Cost, plan.Derivations))
	keep := map[string]bool{}
	for _, a := range part.Attrs {
		keep[a] = true
	}
	var sel []Output
	for _, o := range outs {
		if keep[o.Attr] || !o.Selected() {
			sel = append(sel, o)
		}
	}
	return sel, nil
}

// PlanBuild evaluates the flake as Run does and plans n shards of its
// outputs (for `ci matrix --shards`).
func PlanBuild(ctx context.Context, opts Options, n int) (*ShardPlan, error) {
	m, err := ProbeMachine(ctx, opts.Engine)
	if err != nil {
		return nil, fmt.Errorf("asking nix for its configuration: %w", err)
	}
	eng := opts.Engine
	if len(opts.Secrets) > 0 {
		eng = secretEngine{Engine: eng, secrets: opts.Secrets}
	}
	disc, err := Discover(ctx, eng, opts.Flake, opts.Systems, opts.Attrs, positiveOr(opts.Jobs, 4))
	if err != nil {
		return nil, err
	}
	return PlanShards(ctx, eng, m.Version, disc.Outputs, n)
}
