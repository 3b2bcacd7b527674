package push

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/testlib"
)

func TestRunPushBench(t *testing.T) {
	testlib.OfflineNix(t)
	testlib.CheckPath(t, "nginx")
	var out bytes.Buffer
	res, err := runPushBench(t.Context(), &out, BenchOptions{Paths: 3, Lines: 500, Lookups: 200, Dir: t.TempDir()})
	require.NoError(t, err, out.String())
	assert.Equal(t, 4, res.ClosurePaths)
	assert.Equal(t, 200, res.Lookups)
	assert.Positive(t, res.Ratio)
	assert.Positive(t, res.LookupsPerSecond)
	assert.Contains(t, out.String(), "push ÷ copy:")
	assert.Contains(t, out.String(), "/s against nginx")
}
