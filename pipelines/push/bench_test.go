package push

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
)

func TestRunPushBench(t *testing.T) {
	testlib.OfflineNix(t)
	testlib.CheckPath(t, "nginx")
	tests := []struct {
		name        string
		target      float64
		wantCode    int
		wantVerdict string
	}{
		{"within target", 1000, clierr.ExitOK, "within target"},
		{"missed target", 0.001, clierr.ExitFailed, "OVER target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			res, err := runPushBench(t.Context(), &out, BenchOptions{Paths: 3, Lines: 500, Lookups: 200, Reps: 3, Target: tt.target, Dir: t.TempDir()})
			assert.Equal(t, tt.wantCode, clierr.Code(err), "err: %v\n%s", err, out.String())
			require.NotNil(t, res, out.String())
			assert.Equal(t, 4, res.ClosurePaths)
			assert.Len(t, res.Ratios, 3, "three repetitions of each side")
			assert.Len(t, res.CPURatios, 3)
			assert.Positive(t, res.CPURatio)
			assert.Len(t, res.Copies, 3)
			assert.Len(t, res.Pushes, 3)
			assert.Positive(t, res.Ratio)
			assert.GreaterOrEqual(t, res.Spread, 0.0)
			assert.Equal(t, 200, res.Lookups)
			s := out.String()
			assert.Contains(t, s, "(copy first;")
			assert.Contains(t, s, "(push first;", "the order alternates")
			assert.Contains(t, s, "push ÷ copy:          median ")
			assert.Contains(t, s, tt.wantVerdict)
			assert.Equal(t, 3, strings.Count(s, " first; CPU "))
			assert.Equal(t, 3, strings.Count(s, "      ci push: "), "each repetition shows where the push spent its time")
			assert.Contains(t, s, "server check ")
			assert.Contains(t, s, "push ÷ copy, CPU:     median ")
		})
	}
}

func TestMedianSpread(t *testing.T) {
	tests := []struct {
		in             []float64
		median, spread float64
	}{
		{[]float64{3, 1, 2}, 2, 2},
		{[]float64{1, 4, 2, 3}, 2.5, 3},
		{[]float64{1.5}, 1.5, 0},
	}
	for _, tt := range tests {
		m, s := medianSpread(tt.in)
		assert.InDelta(t, tt.median, m, 1e-9)
		assert.InDelta(t, tt.spread, s, 1e-9)
	}
}
