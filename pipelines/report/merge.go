package report

import (
	"fmt"
	"slices"
)

// Merge joins the reports of the shards of one build (`ci build --shard I/N`)
// into the report of the whole build. The shards must come from the same
// flake and commit. A shard reports only its own outputs and the
// outputs of systems not selected (as skipped, in every shard); an output
// that several shards report takes the entry that says what happened to it; two shards that disagree on its derivation or out paths
// are an error, because then they did not evaluate the same flake.
func Merge(reports ...*Report) (*Report, error) {
	if len(reports) == 0 {
		return nil, fmt.Errorf("no reports to merge")
	}
	out := &Report{Flake: reports[0].Flake, Engine: reports[0].Engine, Rev: reports[0].Rev, Cache: reports[0].Cache}
	index := map[string]int{}
	for i, r := range reports {
		if r.Flake != out.Flake || r.Rev != out.Rev {
			return nil, fmt.Errorf("report %d is of %s@%.12s, report 1 of %s@%.12s: merge the shards of one build only",
				i+1, r.Flake, r.Rev, out.Flake, out.Rev)
		}
		if r.Engine != out.Engine {
			out.Engine = "mixed"
		}
		for _, o := range r.Outputs {
			j, seen := index[o.Attr]
			if !seen {
				index[o.Attr] = len(out.Outputs)
				out.Outputs = append(out.Outputs, o)
				continue
			}
			prev := out.Outputs[j]
			if prev.DrvPath != "" && o.DrvPath != "" && (prev.DrvPath != o.DrvPath || !slices.Equal(prev.OutPaths, o.OutPaths)) {
				return nil, fmt.Errorf("%s: the reports disagree (%s and %s): the shards evaluated different flakes", o.Attr, prev.DrvPath, o.DrvPath)
			}
			if rank(o.Status) > rank(prev.Status) {
				out.Outputs[j] = o
			}
		}
	}
	out.Sort()
	return out, nil
}

// rank orders statuses by how much they say about an output: a skipped
// entry says least.
func rank(status string) int {
	switch status {
	case StatusSkipped:
		return 0
	case StatusCached, StatusWouldBuild:
		return 1
	case StatusBuilt, StatusPresent:
		return 2
	case StatusFailed:
		return 3
	}
	return 1
}
