package cmd

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
)

// TestBenchBuildUsage: bad flags exit 2 before anything is measured.
func TestBenchBuildUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"too few repetitions", []string{"--reps", "2"}, "at least 3 repetitions"},
		{"bad workload", []string{"--workloads", "100/x"}, "N/K"},
		{"bad jobs", []string{"--jobs", "-1"}, "--jobs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			io, out, errb := testIO(map[string]string{})
			code := Run(t.Context(), io, append([]string{"bench", "build"}, tt.args...))
			assert.Equal(t, clierr.ExitUsage, code, errb.String())
			assert.Contains(t, errb.String(), tt.want)
			assert.Empty(t, out.String(), "nothing measured")
		})
	}
}

func TestBenchBuildHelp(t *testing.T) {
	io, out, _ := testIO(nil)
	assert.Equal(t, 0, Run(t.Context(), io, []string{"bench", "build", "--help"}))
	for _, s := range []string{"--workloads", "--reps", "--jobs", "one nix build", "calls of 100", "spread", "load average", "Exit code 1"} {
		assert.Contains(t, out.String(), s)
	}
}
