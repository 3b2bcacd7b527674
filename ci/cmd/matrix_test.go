package cmd

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/stage"
)

func TestMatrix(t *testing.T) {
	io, out, errb := testIO(nil)
	code := Run(t.Context(), io, []string{"matrix"})
	require.Equal(t, clierr.ExitOK, code, errb.String())
	assert.JSONEq(t, `{"include":[
	  {"stage":"unit","system":"x86_64-linux","runs-on":["ubuntu-latest"],"timeout-minutes":30},
	  {"stage":"integration","system":"x86_64-linux","runs-on":["self-hosted","linux","x64","intel-gpu"],"timeout-minutes":60},
	  {"stage":"performance","system":"x86_64-linux","runs-on":["self-hosted","linux","x64","intel-gpu"],"timeout-minutes":120},
	  {"stage":"security","system":"x86_64-linux","runs-on":["ubuntu-latest"],"timeout-minutes":45}
	]}`, out.String())
}

func TestMatrixSystemsAndStages(t *testing.T) {
	io, out, errb := testIO(nil)
	code := Run(t.Context(), io, []string{"matrix", "--systems", "x86_64-linux,aarch64-linux", "--stage", "unit,integration"})
	require.Equal(t, clierr.ExitOK, code, errb.String())
	var m Matrix
	require.NoError(t, json.Unmarshal(out.Bytes(), &m))
	require.Len(t, m.Include, 4)
	assert.Equal(t, []string{"ubuntu-24.04-arm"}, m.Include[1].RunsOn)
	assert.Equal(t, []string{"self-hosted", "linux", "ARM64", "intel-gpu"}, m.Include[3].RunsOn)
}

func TestMatrixFollowsTheTable(t *testing.T) {
	// One source of truth: labels come from the same requirements the stages use.
	for _, spec := range stage.Table {
		labels, err := RunsOn(spec, "x86_64-linux")
		require.NoError(t, err)
		needsGPU := false
		for _, f := range spec.Requires {
			needsGPU = needsGPU || f == stage.IntelGPU
		}
		assert.Equal(t, needsGPU, labels[0] == "self-hosted", spec.Name)
	}
}

func TestMatrixUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"matrix", "--systems", "x86_64-darwin"}, {"matrix", "--stage", "smoke"}} {
		io, _, errb := testIO(nil)
		assert.Equal(t, clierr.ExitUsage, Run(t.Context(), io, args), errb.String())
	}
}
