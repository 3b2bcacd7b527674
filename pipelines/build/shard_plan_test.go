package build

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPlanFromGraphEdges: edge cases of the plan, on a hand-written graph.
func TestPlanFromGraphEdges(t *testing.T) {
	drv := func(n string) string { return "/nix/store/" + n + ".drv" }
	graph := map[string]drvNode{
		drv("base"): {Outputs: []string{"/nix/store/base"}},
		drv("a"):    {Inputs: []string{drv("base")}, Outputs: []string{"/nix/store/a"}},
		drv("b"):    {Inputs: []string{drv("base")}, Outputs: []string{"/nix/store/b"}},
		drv("all"):  {Inputs: []string{drv("a"), drv("b")}, Outputs: []string{"/nix/store/all"}},
		drv("src"):  {Inputs: []string{drv("base")}, Outputs: []string{"/nix/store/src"}, Fixed: true},
		drv("c"):    {Inputs: []string{drv("src"), drv("base")}, Outputs: []string{"/nix/store/c"}},
	}
	out := func(attr, d string) Output { return Output{Attr: attr, OK: true, DrvPath: drv(d)} }
	tests := []struct {
		name      string
		outs      []Output
		n         int
		wantCosts []int
		wantTotal int
	}{
		{"more shards than outputs", []Output{out("a", "a"), out("b", "b")}, 4, []int{2, 2, 0, 0}, 3},
		{"one output needs everything", []Output{out("a", "a"), out("b", "b"), out("all", "all")}, 2, []int{4, 0}, 4},
		{"same derivation twice", []Output{out("x", "a"), out("y", "a"), out("b", "b")}, 2, []int{2, 2}, 3},
		{"evaluation failures count once", []Output{out("a", "a"), {Attr: "broken1"}, {Attr: "broken2"}, {Attr: "broken3"}}, 2, []int{2, 0}, 2},
		{"downloads are not builds", []Output{out("a", "a"), out("c", "c")}, 2, []int{2, 2}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := planFromGraph(tt.outs, graph, tt.n)
			assert.Equal(t, tt.wantTotal, plan.Derivations)
			require.Len(t, plan.Shards, tt.n)
			var costs []int
			var union []string
			for i, s := range plan.Shards {
				assert.Equal(t, Shard{i + 1, tt.n}, s.Shard)
				costs = append(costs, s.Cost)
				union = append(union, s.Attrs...)
			}
			slices.Sort(costs)
			slices.Reverse(costs)
			assert.Equal(t, tt.wantCosts, costs)
			var want []string
			for _, o := range tt.outs {
				want = append(want, o.Attr)
			}
			slices.Sort(want)
			slices.Sort(union)
			assert.Equal(t, want, union, "every output exactly once")
			if tt.name == "same derivation twice" {
				for _, s := range plan.Shards {
					assert.Equal(t, slices.Contains(s.Attrs, "x"), slices.Contains(s.Attrs, "y"), "x and y are one derivation")
				}
			}
			if tt.name == "evaluation failures count once" {
				for _, s := range plan.Shards {
					assert.LessOrEqual(t, len(s.Attrs), 2, fmt.Sprint(s.Attrs))
				}
			}
		})
	}
}

// TestParseDrvNodes reads the derivation graph as Nix 2.8 and Nix 2.20+
// print it: full or base-name paths, fixed and floating outputs.
func TestParseDrvNodes(t *testing.T) {
	tests := []struct {
		name string
		json string
		want map[string]drvNode
	}{
		{"nix 2.8", `{
		  "/nix/store/aaaa-app.drv": {"outputs": {"out": {"path": "/nix/store/bbbb-app"}}, "inputDrvs": {"/nix/store/cccc-src.drv": ["out"]}},
		  "/nix/store/cccc-src.drv": {"outputs": {"out": {"path": "/nix/store/dddd-src.tar.gz", "hashAlgo": "sha256", "hash": "0a1b"}}, "inputDrvs": {}}
		}`, map[string]drvNode{
			"/nix/store/aaaa-app.drv": {Inputs: []string{"/nix/store/cccc-src.drv"}, Names: []string{"out"}, Outputs: []string{"/nix/store/bbbb-app"}},
			"/nix/store/cccc-src.drv": {Names: []string{"out"}, Outputs: []string{"/nix/store/dddd-src.tar.gz"}, Fixed: true},
		}},
		{"nix 2.20 base names, floating content-addressed", `{
		  "aaaa-app.drv": {"outputs": {"out": {"hashAlgo": "sha256", "method": "nar"}}, "inputDrvs": {"cccc-src.drv": {"outputs": ["out"], "dynamicOutputs": {}}}},
		  "cccc-src.drv": {"outputs": {"out": {"path": "dddd-src.tar.gz", "hashAlgo": "sha256", "method": "flat", "hash": "0a1b"}}, "inputDrvs": {}}
		}`, map[string]drvNode{
			"/nix/store/aaaa-app.drv": {Inputs: []string{"/nix/store/cccc-src.drv"}, Names: []string{"out"}},
			"/nix/store/cccc-src.drv": {Names: []string{"out"}, Outputs: []string{"/nix/store/dddd-src.tar.gz"}, Fixed: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDrvNodes([]byte(tt.json))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
