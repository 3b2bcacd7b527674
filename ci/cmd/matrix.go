package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/gpuclass"
	"github.com/ipex-flake/ipex-flake/pipelines/quality"
	"github.com/ipex-flake/ipex-flake/pipelines/stage"
)

func init() { register(newMatrixCmd) }

// MatrixOptions are the flags of `ci matrix`.
type MatrixOptions struct {
	IO      *IO
	Systems []string
	Stages  []string
	// shardFlags select the build-shard matrix (matrix_shards.go).
	shardFlags
	// GPUClasses is the GPU classes file; GPUClassesSet is true when the
	// flag was given (then the file must exist).
	GPUClasses    string
	GPUClassesSet bool
}

// MatrixEntry is one job of the GitHub Actions matrix.
type MatrixEntry struct {
	Stage          string   `json:"stage"`
	System         string   `json:"system"`
	RunsOn         []string `json:"runs-on"`
	TimeoutMinutes int      `json:"timeout-minutes"`
	// GPUClass is the GPU class of a per-class job (ci test --gpu-class).
	GPUClass string `json:"gpu-class,omitempty"`
}

// Matrix is the GitHub Actions `strategy.matrix` object.
type Matrix struct {
	Include []MatrixEntry `json:"include"`
}

func newMatrixCmd(io *IO) *cobra.Command { return newMatrixCmdWith(io, runMatrix) }

func newMatrixCmdWith(io *IO, runF func(context.Context, *MatrixOptions) error) *cobra.Command {
	o := &MatrixOptions{IO: io}
	c := &cobra.Command{
		Use:   "matrix",
		Short: "Print the GitHub Actions matrix of stages × systems",
		Long: `Print the GitHub Actions matrix (JSON) of test stages × systems. runs-on
comes from each stage's requirements, so workflows never repeat the routing:
stages that need an Intel GPU go to ["self-hosted","linux",<arch>,"intel-gpu"],
the rest to GitHub-hosted runners. timeout-minutes is the stage's time limit.

  strategy:
    matrix: ${{ fromJSON(needs.plan.outputs.matrix) }}
  runs-on: ${{ matrix.runs-on }}

With --shards N it prints the matrix of build jobs instead: the flake's
outputs split into N shards (see ci build --shard), one entry per shard
that has outputs:

  {"include":[{"shard":"1/3","index":1,"outputs":12,"cost":40,"plan":"3f2a…"},…]}

  run: go run ./ci build --shard ${{ matrix.shard }}`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.shardsGiven = c.Flags().Changed("shards")
			o.GPUClassesSet = c.Flags().Changed("gpu-classes")
			return runF(c.Context(), o)
		},
	}
	c.Flags().StringVar(&o.GPUClasses, "gpu-classes", gpuclass.DefaultPath, "GPU classes file: one integration and one performance job per class (ignored when the default file is absent)")
	c.Flags().StringSliceVar(&o.Systems, "systems", []string{"x86_64-linux"}, "systems to test")
	c.Flags().StringSliceVar(&o.Stages, "stage", nil, "stages to include (default: all)")
	addShardMatrixFlags(c.Flags(), &o.shardFlags)
	return c
}

// runnerArch maps a Nix system to the GitHub runner architecture label.
var runnerArch = map[string]string{"x86_64-linux": "x64", "aarch64-linux": "ARM64"}

// hostedRunner maps a Nix system to a GitHub-hosted runner image.
var hostedRunner = map[string]string{"x86_64-linux": "ubuntu-latest", "aarch64-linux": "ubuntu-24.04-arm"}

// RunsOn derives the runner labels of a stage on a system from its
// requirements: a stage that needs intel-gpu runs on a self-hosted Intel
// runner, every other stage on a GitHub-hosted one.
func RunsOn(spec stage.Spec, system string) ([]string, error) {
	arch, ok := runnerArch[system]
	if !ok {
		return nil, fmt.Errorf("no runner for system %q: use %s", system, strings.Join(slices.Sorted(maps.Keys(runnerArch)), " or "))
	}
	for _, f := range spec.Requires {
		if f == stage.IntelGPU {
			return []string{"self-hosted", "linux", arch, string(stage.IntelGPU)}, nil
		}
	}
	return []string{hostedRunner[system]}, nil
}

// BuildMatrix returns the matrix of the named stages (table order) × systems.
func BuildMatrix(names, systems []string) (*Matrix, error) {
	want := map[string]bool{}
	for _, n := range names {
		if _, ok := stage.Lookup(n); !ok {
			return nil, clierr.Usagef("unknown stage %q: use %s", n, strings.Join(stage.Names(), ", "))
		}
		want[n] = true
	}
	if len(systems) == 0 {
		systems = []string{quality.CurrentSystem()}
	}
	m := &Matrix{Include: []MatrixEntry{}}
	for _, spec := range stage.Table {
		if len(want) > 0 && !want[spec.Name] {
			continue
		}
		for _, sys := range systems {
			labels, err := RunsOn(spec, sys)
			if err != nil {
				return nil, clierr.Usagef("--systems: %v", err)
			}
			m.Include = append(m.Include, MatrixEntry{Stage: spec.Name, System: sys, RunsOn: labels,
				TimeoutMinutes: int(spec.Timeout.Minutes())})
		}
	}
	return m, nil
}

func runMatrix(ctx context.Context, o *MatrixOptions) error {
	if o.shardsGiven {
		return runShardMatrix(ctx, o)
	}
	m, err := BuildMatrix(o.Stages, o.Systems)
	if err != nil {
		return err
	}
	if m, err = expandGPUClasses(m, o.GPUClasses, !o.GPUClassesSet); err != nil {
		return err
	}
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(o.IO.Out, string(data))
	return err
}
