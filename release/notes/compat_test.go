package notes

import (
	"testing"

	"github.com/ipex-flake/ipex-flake/internal/golden"
	"github.com/ipex-flake/ipex-flake/release/version"
)

func TestRenderCompat(t *testing.T) {
	n := Notes{Tag: "v0.5.0", Channel: version.Stable, Rev: "abcdef0123456789", Previous: "v0.4.0",
		Stages: []Stage{{Name: "unit", State: "passed"}, {Name: "integration@intel-gpu-arc-a", State: "passed"}},
		Compat: &Compat{
			Classes:  []string{"intel-gpu-arc-a", "intel-gpu-xe2", "intel-gpu-igpu"},
			Stages:   []string{"integration", "performance"},
			Required: map[string]bool{"intel-gpu-arc-a": true, "intel-gpu-xe2": true},
			Cells: map[string]map[string]Cell{
				"intel-gpu-arc-a": {
					"integration": {State: "passed", Description: "passed (12 passed)", URL: "https://ci.example/runs/1"},
					"performance": {State: "passed", Description: "ttft p95 812 ms, 41.5 tokens/s, 100/100 users (3 passed, 1 skipped)"},
				},
				"intel-gpu-xe2": {
					"integration": {State: "passed", Description: "passed"},
					"performance": {State: "failed", Description: "ttft p95 2400 ms, 12.0 tokens/s, 61/100 users; failed: 1 of 4 checks failed: targets | latency"},
				},
				"intel-gpu-igpu": {
					"integration": {State: "skipped", Description: "no intel-gpu on this machine"},
				},
			},
		}}
	golden.Assert(t, "stable_compat.md", []byte(Render(n)))
}
