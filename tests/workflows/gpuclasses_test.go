package workflows

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v4"

	"github.com/ipex-flake/ipex-flake/pipelines/gpuclass"
)

// TestGPUClassLabelsAreKnownToActionlint: every GPU class `ci matrix`
// routes to is a self-hosted label actionlint accepts, so a class added to
// ci/gpu-classes.json without its label fails here, not on GitHub.
func TestGPUClassLabelsAreKnownToActionlint(t *testing.T) {
	cfg, err := gpuclass.Load(filepath.Join(repoRoot, "ci", "gpu-classes.json"), false)
	require.NoError(t, err)
	require.NotEmpty(t, cfg.Classes)
	src, err := os.ReadFile(filepath.Join(repoRoot, ".github", "actionlint.yaml"))
	require.NoError(t, err)
	var conf struct {
		SelfHosted struct {
			Labels []string `yaml:"labels"`
		} `yaml:"self-hosted-runner"`
	}
	require.NoError(t, yaml.Unmarshal(src, &conf))
	for _, c := range cfg.Classes {
		assert.Contains(t, conf.SelfHosted.Labels, c.Name, "add the label of GPU class %s to .github/actionlint.yaml", c.Name)
	}
}
