package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/build"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/daggerengine"
)

// ShardEntry is one build job of the matrix `ci matrix --shards N` prints.
type ShardEntry struct {
	// Shard is the value for `ci build --shard`; Index is its I, for
	// names of artifacts.
	Shard string `json:"shard"`
	Index int    `json:"index"`
	// Outputs and Cost (derivations to build) size the job.
	Outputs int `json:"outputs"`
	Cost    int `json:"cost"`
	// Plan is the plan's digest; `ci build --shard` prints the digest of the
	// plan it computed, and jobs that agree print the same.
	Plan string `json:"plan"`
}

// ShardMatrix is the GitHub Actions matrix of build shards.
type ShardMatrix struct {
	Include []ShardEntry `json:"include"`
}

// shardFlags are the flags `ci matrix --shards` shares with `ci build`:
// the plan must be computed from the same flake, outputs and cache.
type shardFlags struct {
	Shards      int
	shardsGiven bool
	Flake       string
	Engine      string
	Attrs       []string
	Image       string
}

func addShardMatrixFlags(f *pflag.FlagSet, o *shardFlags) {
	f.IntVar(&o.Shards, "shards", 0, "print the build matrix of `N` shards instead (one entry per shard with outputs: shard, index, outputs, cost, plan); give the same --flake, --systems and --attr as ci build --shard")
	f.StringVar(&o.Flake, "flake", ".", "with --shards: the flake to plan, as for ci build")
	f.StringVar(&o.Engine, "engine", engine.KindAuto, "with --shards: where nix runs, auto|dagger|host")
	f.StringArrayVar(&o.Attrs, "attr", nil, "with --shards: select outputs whose attribute path matches `GLOB`, repeatable")
	f.StringVar(&o.Image, "image", daggerengine.DefaultImage, "with --shards: Dagger base image, as for ci build")
}

// runShardMatrix plans the shards exactly as `ci build --shard` does and
// prints one matrix entry per shard that has outputs.
func runShardMatrix(ctx context.Context, o *MatrixOptions) error {
	io := o.IO
	bo := &BuildOptions{Flake: o.Flake, Engine: o.Engine, Systems: o.Systems, Attrs: o.Attrs, Image: o.Image}
	if o.Shards < 1 {
		return clierr.Usagef("--shards %d: give 1 or more shards", o.Shards)
	}
	if err := bo.validate(); err != nil {
		return err
	}
	dir, remote, err := flakeSource(bo.Flake)
	if err != nil {
		return err
	}
	eng, flakeRef, err := bo.openEngine(ctx, io, dir, remote)
	if err != nil {
		return err
	}
	defer eng.Close()
	fmt.Fprintf(io.Err, "ci matrix: planning %d shards of %s for %s\n", o.Shards, bo.Flake, strings.Join(bo.Systems, ","))
	plan, err := build.PlanBuild(ctx, build.Options{Engine: eng, Flake: flakeRef, Systems: bo.Systems, Attrs: bo.Attrs,
		Secrets: nixSecrets(io.Getenv)}, o.Shards)
	var evalErr *build.EvalError
	if errors.As(err, &evalErr) {
		return clierr.Usagef("%v\n%s", err, evalErr.Hint())
	}
	if err != nil {
		return err
	}
	m := ShardMatrix{Include: []ShardEntry{}}
	for _, s := range plan.Shards {
		fmt.Fprintf(io.Err, "shard %s: %s, %s to build\n", s.Shard, plural(len(s.Attrs), "output"), plural(s.Cost, "derivation"))
		// A shard with no outputs needs no job; a matrix needs one entry.
		if len(s.Attrs) == 0 && (len(m.Include) > 0 || s.Shard.Index < len(plan.Shards)) {
			continue
		}
		m.Include = append(m.Include, ShardEntry{Shard: s.Shard.String(), Index: s.Shard.Index, Outputs: len(s.Attrs), Cost: s.Cost, Plan: plan.Digest})
	}
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(io.Out, string(data))
	return err
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
