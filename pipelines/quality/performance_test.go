package quality

import (
	"os"
	"path/filepath"
	"testing"
	"time"

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
	env := &Env{Flake: dir, Getenv: getenv, Services: external}
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
	fast.ThroughputTokensPerSec *= 1000
	fast.DecodeTokensPerSec.P50 *= 1000
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

// TestPerformanceStageConcurrency: the stage reads the server's
// concurrency from OLLAMA_NUM_PARALLEL and fails with that reason, before
// loading the server, when the users exceed it; without the setting it
// names the concurrency it observed.
func TestPerformanceStageConcurrency(t *testing.T) {
	host := stage.Host{Assume: []stage.Feature{stage.IntelGPU, stage.BigMemory}}
	tests := []struct {
		name      string
		parallel  int // the fake server's slots
		env       map[string]string
		targets   performance.Targets
		state     string
		check     string
		reason    string
		noRequest bool
	}{
		{name: "load beyond OLLAMA_NUM_PARALLEL", parallel: 1, env: map[string]string{"OLLAMA_NUM_PARALLEL": "1"},
			state: stage.Failed, check: stage.Failed, reason: "8 concurrent users exceed the server's concurrency OLLAMA_NUM_PARALLEL=1", noRequest: true},
		{name: "load within OLLAMA_NUM_PARALLEL", parallel: 8, env: map[string]string{"OLLAMA_NUM_PARALLEL": "8", "OLLAMA_MAX_QUEUE": "512"},
			targets: performance.Targets{TTFTP95: time.Hour, MinUsers: 8}, state: stage.Passed, check: stage.Passed, reason: "OLLAMA_NUM_PARALLEL=8"},
		{name: "observed below the load", parallel: 1, targets: performance.Targets{TTFTP95: time.Nanosecond, MinUsers: 8},
			state: stage.Failed, check: stage.Failed, reason: "the server streamed at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := fakes.NewOllamaWith(fakes.OllamaOptions{Parallel: tt.parallel, TokenDelay: time.Millisecond})
			defer o.Close()
			c := fakes.NewComfyUI()
			defer c.Close()
			vars := map[string]string{"OLLAMA_HOST": o.URL, "COMFYUI_URL": c.URL}
			for k, v := range tt.env {
				vars[k] = v
			}
			env := &Env{Flake: t.TempDir(), Getenv: func(k string) string { return vars[k] }, Services: external}
			s := &Performance{Env: env, Users: 8, Requests: 8, Images: 1, Targets: tt.targets}
			out := stage.Run(t.Context(), s, stage.Options{Host: host})
			assert.Equal(t, tt.state, out.State, out.Reason)
			require.Equal(t, tt.check, checkStates(out.Checks)["concurrency"])
			var reason string
			for _, c := range out.Checks {
				if c.Name == "concurrency" {
					reason = c.Detail
				}
			}
			assert.Contains(t, reason, tt.reason)
			if tt.noRequest {
				assert.Zero(t, o.Requests.Load(), "the server was not loaded")
			}
		})
	}

	env := &Env{Flake: t.TempDir(), Getenv: func(k string) string { return map[string]string{"OLLAMA_NUM_PARALLEL": "many"}[k] }, Services: external}
	out := stage.Run(t.Context(), &Performance{Env: env}, stage.Options{Host: host})
	assert.Equal(t, stage.Failed, out.State)
	assert.Contains(t, out.Reason, `OLLAMA_NUM_PARALLEL="many" is not a number`)
}
