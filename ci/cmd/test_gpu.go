package cmd

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ipex-flake/ipex-flake/pipelines/gpuclass"
	"github.com/ipex-flake/ipex-flake/pipelines/quality"
	"github.com/ipex-flake/ipex-flake/pipelines/stage"
)

// checkGPUClass checks --gpu-class against the classes file of the flake
// directory (or the working directory).
func (o *TestOptions) checkGPUClass() error {
	if o.GPUClass == "" {
		return nil
	}
	cfg, err := gpuclass.Load(gpuclass.DefaultPath, true)
	if err != nil {
		return err
	}
	return cfg.Validate(o.GPUClass)
}

// recordedName is the name a stage's result is recorded under: STAGE@CLASS
// for the per-class stages on a --gpu-class runner.
func (o *TestOptions) recordedName(name string) string {
	if o.GPUClass == "" || !slices.Contains(gpuclass.Stages, name) {
		return name
	}
	return gpuclass.StageName(name, o.GPUClass)
}

// classDescription puts the performance figures of a per-class run in its
// recorded description, for the release notes' compatibility table.
func (o *TestOptions) classDescription(st stage.Stage, desc string) string {
	p, ok := st.(*quality.Performance)
	if o.GPUClass == "" || !ok || p.Results == nil {
		return desc
	}
	r := p.Results
	figures := fmt.Sprintf("ttft p95 %.0f ms, %.1f tokens/s, %d/%d users", r.TTFT.P95, r.ThroughputTokensPerSec, r.UsersServed, r.Users)
	var d string
	switch {
	case desc == "passed" || desc == "":
		return figures
	case strings.HasPrefix(desc, "passed "):
		d = figures + " " + strings.TrimPrefix(desc, "passed ") // "(3 passed, 1 skipped)"
	default:
		d = figures + "; " + desc
	}
	if len(d) > 140 {
		d = d[:137] + "..."
	}
	return d
}
