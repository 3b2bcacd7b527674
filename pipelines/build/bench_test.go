package build

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
)

// TestRunBench runs the benchmark on small flakes: every column is measured
// and printed, a target that holds passes, and a missed target fails.
func TestRunBench(t *testing.T) {
	testlib.OfflineNix(t)
	// Every ratio is bounded by bound: 1000 holds, 0.001 is missed.
	for name, bound := range map[string]float64{"targets met": 1000, "missed target fails": 0.001} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			rs, err := RunBench(t.Context(), &out, BenchOptions{
				Workloads: []Workload{{Outputs: 4}, {Outputs: 4, Shared: 2}}, Reps: 2, Jobs: 2, Dir: t.TempDir(),
				Targets: Targets{Small: bound, SmallMax: 100, OneCall: bound, Batched: bound, LargeMin: 4},
			})
			if bound < 1 {
				require.ErrorIs(t, err, ErrTargetMissed, out.String())
				assert.Contains(t, out.String(), "MISSED: 4 outputs: ci ÷ one nix build")
				assert.Contains(t, out.String(), "MISSED: 4/2 outputs: ci ÷ nix in calls of 100")
			} else {
				require.NoError(t, err, out.String())
			}
			require.Len(t, rs, 2)
			for _, r := range rs {
				assert.Equal(t, 1, r.EvalProcesses)
				for _, s := range []Sample{r.OneCall, r.Batched, r.CI, r.CICached, r.NixDryRun} {
					require.Len(t, s, 2)
					assert.Positive(t, s.Median())
				}
				assert.NotEmpty(t, r.LoadBefore)
			}
			for _, col := range []string{"one nix build", "nix, calls of 100", "ci build", "ci÷one", "ci÷batched", "nix --dry-run", "load before→after", "reps"} {
				assert.Contains(t, out.String(), col)
			}
		})
	}
}

func TestSample(t *testing.T) {
	s := Sample{3 * time.Second, 1 * time.Second, 2 * time.Second}
	assert.Equal(t, 2*time.Second, s.Median())
	assert.InDelta(t, 1.0, s.Spread(), 1e-9)
	assert.Equal(t, 1500*time.Millisecond, Sample{time.Second, 2 * time.Second}.Median())
}

func TestParseWorkload(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Workload
		wantErr bool
	}{
		{"1000", Workload{Outputs: 1000}, false},
		{"1000/10", Workload{Outputs: 1000, Shared: 10}, false},
		{"0", Workload{}, true},
		{"10/x", Workload{}, true},
	} {
		got, err := ParseWorkload(tc.in)
		if tc.wantErr {
			assert.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, tc.want, got)
	}
}

// cmdRecorder records the commands it is asked to run.
type cmdRecorder struct {
	engine.Engine
	cmds []engine.Cmd
}

func (e *cmdRecorder) Run(_ context.Context, c engine.Cmd) (engine.Result, error) {
	e.cmds = append(e.cmds, c)
	return engine.Result{}, nil
}

// TestOfflineEngine: the benchmark's commands get substituters switched
// off through the command's environment, the command's own NIX_CONFIG
// last, and the process environment is not touched.
func TestOfflineEngine(t *testing.T) {
	t.Setenv("NIX_CONFIG", "max-jobs = 1")
	rec := &cmdRecorder{}
	eng := offline{rec}
	_, err := eng.Run(t.Context(), engine.Cmd{Args: []string{"nix", "build"}, Env: map[string]string{"NIX_CONFIG": "cores = 2", "X": "y"}})
	require.NoError(t, err)
	_, err = eng.Run(t.Context(), engine.Cmd{Args: []string{"nix", "eval"}})
	require.NoError(t, err)
	require.Len(t, rec.cmds, 2)
	assert.Equal(t, offlineConf+"\ncores = 2", rec.cmds[0].Env["NIX_CONFIG"])
	assert.Equal(t, "y", rec.cmds[0].Env["X"])
	assert.Equal(t, offlineConf, rec.cmds[1].Env["NIX_CONFIG"])
	assert.Equal(t, "max-jobs = 1", os.Getenv("NIX_CONFIG"), "the process environment is unchanged")
}
