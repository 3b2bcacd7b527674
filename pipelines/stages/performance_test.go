package stages

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/pipelines/stage"
	"github.com/ipex-flake/ipex-flake/tests/fakes"
	"github.com/ipex-flake/ipex-flake/tests/performance"
)

func TestPerformanceStage(t *testing.T) {
	o := fakes.NewOllama()
	defer o.Close()
	c := fakes.NewComfyUI()
	defer c.Close()
	envVars := map[string]string{"OLLAMA_HOST": o.URL, "COMFYUI_URL": c.URL}
	getenv := func(k string) string { return envVars[k] }
	host := stage.Host{Assume: []stage.Feature{stage.IntelGPU, stage.BigMemory}}

	dir := t.TempDir()
	env := &Env{Flake: dir, Getenv: getenv}
	first := &Performance{Env: env, Baseline: "baseline.json", Users: 100, Requests: 100, Images: 4, Tolerance: 0.2}
	out := stage.Run(t.Context(), first, stage.Options{Host: host})
	require.Equal(t, stage.Passed, out.State, out.Reason)
	assert.Equal(t, stage.Skipped, checkStates(out.Checks)["baseline"], "no baseline yet")
	_, err := os.Stat(filepath.Join(dir, "performance-results.json"))
	require.NoError(t, err)

	// A baseline far faster than anything measurable: this run regresses.
	fast := *first.Results
	fast.TTFT = performance.Latency{P50: 0.0001, P95: 0.0001, Max: 0.0001}
	fast.Total = fast.TTFT
	fast.TokensPerSec *= 1000
	require.NoError(t, fast.Write(filepath.Join(dir, "baseline.json")))
	second := &Performance{Env: env, Baseline: "baseline.json", Users: 100, Requests: 100, Images: 4, Tolerance: 0.2}
	out = stage.Run(t.Context(), second, stage.Options{Host: host})
	assert.Equal(t, stage.Failed, out.State)
	assert.Equal(t, stage.Failed, checkStates(out.Checks)["baseline"])
	assert.Equal(t, stage.Passed, checkStates(out.Checks)["targets"])
}

func TestPerformanceStageNeedsGPUAndMemory(t *testing.T) {
	env := &Env{Flake: t.TempDir()}
	empty := t.TempDir()
	out := stage.Run(t.Context(), &Performance{Env: env}, stage.Options{Host: stage.Host{DevRoot: empty, SysRoot: empty, ProcRoot: empty}})
	assert.Equal(t, stage.Skipped, out.State)
	assert.Contains(t, out.Reason, "no intel-gpu on this machine")
	assert.Contains(t, out.Reason, "no big-memory on this machine")
}
