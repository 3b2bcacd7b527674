package build

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

func names(prefix string, n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprintf("%s%03d", prefix, i))
	}
	return out
}

func TestChunk(t *testing.T) {
	tests := []struct {
		name        string
		n, size, p  int
		wantBatches []int
	}{
		{"one batch below the minimum", 20, 100, 2, []int{20}},
		{"split for the processes", 100, 100, 2, []int{50, 50}},
		{"even batches", 250, 100, 2, []int{83, 83, 84}},
		{"at most size", 1000, 100, 2, []int{100, 100, 100, 100, 100, 100, 100, 100, 100, 100}},
		{"empty", 0, 100, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int
			seen := map[string]bool{}
			for _, b := range chunk(names("d", tt.n), tt.size, tt.p) {
				got = append(got, len(b))
				for _, d := range b {
					assert.False(t, seen[d], "%s in two batches", d)
					seen[d] = true
				}
			}
			assert.Equal(t, tt.wantBatches, got)
			assert.Len(t, seen, tt.n)
		})
	}
}

// graphOf builds a drvGraph from drv -> inputs (all of them to build).
func graphOf(edges map[string][]string) *drvGraph {
	g := &drvGraph{inputs: map[string][]string{}, closure: map[string]map[string]bool{}}
	for d, ins := range edges {
		g.inputs[d] = ins
		for _, in := range ins {
			if _, ok := edges[in]; !ok {
				g.inputs[in] = nil
			}
		}
	}
	return g
}

func TestPlanStages(t *testing.T) {
	// 60 roots over 3 shared dependencies, which share a base; root r000
	// is also needed by r001.
	edges := map[string][]string{"s0": {"base"}, "s1": {"base"}, "s2": {"base"}}
	roots := names("r", 60)
	for i, r := range roots {
		edges[r] = []string{fmt.Sprintf("s%d", i%3)}
	}
	edges["r001"] = append(edges["r001"], "r000")
	g := graphOf(edges)
	stages := planStages(roots, g, 25, 2, 0)
	// No to-build derivation is needed by two batches of one stage, except
	// what an earlier stage built; shared derivations come first.
	stageOf := map[string]int{}
	done := map[string]bool{}
	for si, sg := range stages {
		owner := map[string]int{}
		for bi, b := range sg {
			assert.LessOrEqual(t, len(b), 25)
			for _, d := range b {
				stageOf[d] = si
				for x := range g.Closure(d) {
					if prev, ok := owner[x]; ok && prev != bi && !done[x] {
						t.Errorf("stage %d: %s is needed by batches %d and %d", si, x, prev, bi)
					}
					owner[x] = bi
				}
			}
		}
		for x := range owner {
			done[x] = true
		}
	}
	// Every shared derivation is built by a stage before the roots that
	// need it: the last stage's batches share nothing.
	last := stages[len(stages)-1]
	doneBefore := map[string]bool{}
	for _, sg := range stages[:len(stages)-1] {
		for _, b := range sg {
			for _, d := range b {
				for x := range g.Closure(d) {
					doneBefore[x] = true
				}
			}
		}
	}
	for _, x := range []string{"base", "s0", "s1", "s2", "r000"} {
		assert.True(t, doneBefore[x], "shared %s is built before the last stage", x)
	}
	planned := 0
	for _, b := range last {
		planned += len(b)
	}
	assert.Equal(t, 59, planned, "every root but the shared r000 is in the last stage")
	assert.GreaterOrEqual(t, len(stages), 2)

	// Without a graph: one stage.
	assert.Len(t, planStages(roots, nil, 25, 2, 0), 1)
}
