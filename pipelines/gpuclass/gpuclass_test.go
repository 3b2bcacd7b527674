package gpuclass

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
)

const twoClasses = `{"classes":[{"name":"intel-gpu-arc-a","labels":["arc"]},{"name":"intel-gpu-xe2"}],
  "required":{"beta":["intel-gpu-arc-a"],"stable":["intel-gpu-arc-a","intel-gpu-xe2"]}}`

func TestParse(t *testing.T) {
	c, err := Parse([]byte(twoClasses), "f.json")
	require.NoError(t, err)
	assert.Equal(t, []string{"intel-gpu-arc-a", "intel-gpu-xe2"}, c.Names())
	assert.Equal(t, []string{"integration@intel-gpu-arc-a"}, c.RequiredStages("beta"))
	assert.Equal(t, []string{"integration@intel-gpu-arc-a", "performance@intel-gpu-arc-a", "integration@intel-gpu-xe2", "performance@intel-gpu-xe2"},
		c.RequiredStages("stable"))
	assert.Empty(t, c.RequiredStages("dev"))
	arc, _ := c.Lookup("intel-gpu-arc-a")
	assert.Equal(t, []string{"self-hosted", "linux", "x64", "intel-gpu", "intel-gpu-arc-a", "arc"}, arc.RunsOn("x64"))
	require.NoError(t, c.Validate("intel-gpu-xe2"))
	require.ErrorContains(t, c.Validate("intel-gpu-igpu"), "use one of intel-gpu-arc-a, intel-gpu-xe2")
	var none *Config
	assert.Empty(t, none.RequiredStages("stable"))
	require.ErrorContains(t, none.Validate("x"), "no GPU classes are registered")

	tests := []struct{ name, in, want string }{
		{"not json", `{`, "write {"},
		{"unknown field", `{"clases":[]}`, "unknown field"},
		{"bad name", `{"classes":[{"name":"Intel GPU"}]}`, "must be a runner label"},
		{"twice", `{"classes":[{"name":"a"},{"name":"a"}]}`, "registered twice"},
		{"bad label", `{"classes":[{"name":"a","labels":["x y"]}]}`, "one runner label"},
		{"unknown channel", `{"classes":[{"name":"a"}],"required":{"dev":["a"]}}`, "only the beta and stable"},
		{"unknown class", `{"classes":[{"name":"a"}],"required":{"beta":["b"]}}`, `names "b", which is not a registered class (a)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in), "f.json")
			require.ErrorContains(t, err, tt.want)
			assert.Equal(t, clierr.ExitUsage, clierr.Code(err))
		})
	}
}

func TestLoad(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.json")
	c, err := Load(missing, true)
	require.NoError(t, err)
	assert.Nil(t, c)
	_, err = Load(missing, false)
	require.ErrorContains(t, err, "pass the file")
	p := filepath.Join(t.TempDir(), "g.json")
	require.NoError(t, os.WriteFile(p, []byte(twoClasses), 0o644))
	c, err = Load(p, false)
	require.NoError(t, err)
	assert.Len(t, c.Classes, 2)
}

// TestRepositoryFile checks the file this repository ships.
func TestRepositoryFile(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", DefaultPath), false)
	require.NoError(t, err)
	assert.Contains(t, c.Names(), "intel-gpu-arc-a")
	assert.NotEmpty(t, c.RequiredStages("beta"))
	assert.NotEmpty(t, c.RequiredStages("stable"))
}

func TestStageName(t *testing.T) {
	assert.Equal(t, "integration@intel-gpu-xe2", StageName("integration", "intel-gpu-xe2"))
	assert.Equal(t, "unit", StageName("unit", ""))
	s, c := SplitStageName("performance@intel-gpu-igpu")
	assert.Equal(t, []string{"performance", "intel-gpu-igpu"}, []string{s, c})
}
