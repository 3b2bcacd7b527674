package promote

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/pipelines/gpuclass"
	"github.com/ipex-flake/ipex-flake/release/version"
)

func TestGateStages(t *testing.T) {
	cfg, err := gpuclass.Parse([]byte(`{"classes":[{"name":"arc"},{"name":"xe2"}],"required":{"beta":["arc"],"stable":["arc","xe2"]}}`), "t")
	require.NoError(t, err)
	onlyStable, err := gpuclass.Parse([]byte(`{"classes":[{"name":"arc"}],"required":{"stable":["arc"]}}`), "t")
	require.NoError(t, err)
	tests := []struct {
		name string
		gpu  *gpuclass.Config
		c    version.Channel
		want []string
	}{
		{"no classes", nil, version.Beta, []string{"unit", "integration"}},
		{"dev", cfg, version.Dev, []string{"unit"}},
		{"beta", cfg, version.Beta, []string{"unit", "integration@arc"}},
		{"stable", cfg, version.Stable, []string{"unit", "security", "integration@arc", "performance@arc", "integration@xe2", "performance@xe2"}},
		{"beta without required classes", onlyStable, version.Beta, []string{"unit", "integration"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Promoter{GPU: tt.gpu}
			assert.Equal(t, tt.want, p.gateStages(tt.c))
		})
	}
	assert.Equal(t, "ci test --stage integration --gpu-class arc on a runner of that class", testCommand("integration@arc"))
	assert.Equal(t, "ci test --stage unit", testCommand("unit"))
}
