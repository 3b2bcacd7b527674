package performance

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/tests/fakes"
	"github.com/ipex-flake/ipex-flake/tests/integration/apiclient"
)

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	assert.Equal(t, 50*time.Millisecond, Percentile(ds, 50))
	assert.Equal(t, 95*time.Millisecond, Percentile(ds, 95))
	assert.Equal(t, 100*time.Millisecond, Percentile(ds, 100))
	assert.Equal(t, time.Duration(0), Percentile(nil, 50))
	assert.Equal(t, 7*time.Millisecond, Percentile([]time.Duration{7 * time.Millisecond}, 95))
}

// TestRunAgainstFakes drives the harness with 100 concurrent users against
// the loopback fakes (bounded: 200 requests, 8 images).
func TestRunAgainstFakes(t *testing.T) {
	o := fakes.NewOllama()
	defer o.Close()
	c := fakes.NewComfyUI()
	defer c.Close()
	r, err := Run(t.Context(), Config{
		Ollama: apiclient.NewOllama(o.URL), Users: 100, Requests: 200,
		ComfyUI: apiclient.NewComfyUI(c.URL), Workflow: fakes.Workflow(), Images: 8, ImageUsers: 4,
	})
	require.NoError(t, err)
	assert.Equal(t, "llama3.2:3b", r.Model, "the first model of /api/tags")
	assert.Equal(t, 0, r.Errors, r.FirstError)
	assert.EqualValues(t, 200, o.Requests.Load())
	assert.Positive(t, r.TTFT.Max)
	assert.LessOrEqual(t, r.TTFT.P50, r.TTFT.P95)
	assert.LessOrEqual(t, r.TTFT.P95, r.Total.Max)
	assert.Positive(t, r.TokensPerSec)
	assert.Equal(t, 8, r.Images)
	assert.EqualValues(t, 8, c.Prompts.Load())
	assert.Positive(t, r.ImagesPerMin)
	assert.Empty(t, r.CheckTargets(DefaultTargets))

	path := filepath.Join(t.TempDir(), "results.json")
	require.NoError(t, r.Write(path))
	back, err := Read(path)
	require.NoError(t, err)
	assert.Equal(t, r.TTFT, back.TTFT)
	assert.Empty(t, Compare(back, r, 0), "a run equals itself")
}

func TestRunCountsErrors(t *testing.T) {
	o := fakes.NewOllama()
	defer o.Close()
	r, err := Run(t.Context(), Config{Ollama: apiclient.NewOllama(o.URL), Model: "missing:1b", Users: 3, Requests: 6})
	require.NoError(t, err)
	assert.Equal(t, 6, r.Errors)
	assert.Contains(t, r.FirstError, "not found")
	assert.NotEmpty(t, r.CheckTargets(DefaultTargets))
}

func TestCompare(t *testing.T) {
	base := &Results{TTFT: Latency{P50: 100, P95: 200}, Total: Latency{P50: 1000, P95: 1500}, TokensPerSec: 50, ImagesPerMin: 6}
	tests := []struct {
		name string
		cur  Results
		want int
	}{
		{name: "same", cur: *base},
		{name: "within tolerance", cur: Results{TTFT: Latency{P50: 115, P95: 230}, Total: Latency{P50: 1100, P95: 1700}, TokensPerSec: 42, ImagesPerMin: 5}},
		{name: "slower first token", cur: Results{TTFT: Latency{P50: 100, P95: 300}, Total: base.Total, TokensPerSec: 50, ImagesPerMin: 6}, want: 1},
		{name: "lower throughput", cur: Results{TTFT: base.TTFT, Total: base.Total, TokensPerSec: 30, ImagesPerMin: 3}, want: 2},
		{name: "faster is fine", cur: Results{TTFT: Latency{P50: 10, P95: 20}, Total: Latency{P50: 10, P95: 20}, TokensPerSec: 500, ImagesPerMin: 60}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Compare(base, &tt.cur, 0.2)
			assert.Len(t, got, tt.want, got)
		})
	}
}

func TestCheckTargets(t *testing.T) {
	r := &Results{Users: 100, TTFT: Latency{P95: 1999}}
	assert.Empty(t, r.CheckTargets(DefaultTargets))
	r = &Results{Users: 10, TTFT: Latency{P95: 2500}}
	got := r.CheckTargets(DefaultTargets)
	require.Len(t, got, 2)
	assert.Contains(t, got[0], "target under 2s")
	assert.Contains(t, got[1], "target 100+")
}
