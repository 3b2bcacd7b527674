package workflows

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/ci/cmd"
	"github.com/ipex-flake/ipex-flake/internal/cmdline"
)

// TestWorkflowCommandsExist: every `go run ./ci …` a workflow runs names a
// real subcommand with real flags, so a renamed flag fails here and not in
// GitHub Actions.
func TestWorkflowCommandsExist(t *testing.T) {
	root := cmd.NewRootCmd(&cmd.IO{Getenv: func(string) string { return "" }})
	seen := 0
	for _, f := range workflowFiles(t) {
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, args := range cmdline.Find(string(src)) {
			seen++
			_, err := cmdline.Check(root, args)
			assert.NoError(t, err, "%s", filepath.Base(f))
		}
	}
	assert.Greater(t, seen, 20, "the workflows call the pipeline")
}
