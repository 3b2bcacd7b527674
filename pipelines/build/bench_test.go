package build

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/testlib"
)

// TestRunBench runs the benchmark on a small flake: it must measure every
// column and print the ratios (the numbers themselves are not asserted).
func TestRunBench(t *testing.T) {
	testlib.OfflineNix(t)
	var out bytes.Buffer
	rs, err := RunBench(t.Context(), &out, BenchOptions{Sizes: []int{3}, Dir: t.TempDir()})
	require.NoError(t, err, out.String())
	require.Len(t, rs, 1)
	r := rs[0]
	assert.Equal(t, 1, r.EvalProcesses)
	for _, d := range []any{r.NixBuild, r.CIBuild, r.CachedRerun, r.NixSubstitute} {
		assert.Positive(t, d)
	}
	assert.Contains(t, out.String(), "ci÷nix (≤1.10)")
	assert.Contains(t, out.String(), "rerun÷nix (≤1.00)")
}
