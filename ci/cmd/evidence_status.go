package cmd

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ipex-flake/ipex-flake/internal/shorthash"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
	"github.com/ipex-flake/ipex-flake/release/promote"
)

// evidenceStages reports whether a recorded result is evidence shown beside
// the gates: the reproducibility check and the per-GPU-class stages.
func evidenceStage(name string) bool {
	return name == ReproducibleStage || strings.Contains(name, "@")
}

// printEvidence writes, per channel candidate, the reproducibility and
// per-GPU-class results recorded for it.
func printEvidence(ctx context.Context, w io.Writer, store results.Store, rep *promote.StatusReport) {
	if store == nil || rep == nil {
		return
	}
	seen := map[string]bool{}
	for _, cs := range rep.Channels {
		if cs.Candidate == "" || cs.Candidate == "HEAD" || seen[cs.Candidate] {
			continue
		}
		seen[cs.Candidate] = true
		recorded, err := store.Get(ctx, cs.Candidate)
		if err != nil {
			fmt.Fprintf(w, "evidence for %s: cannot be read: %v\n", shorthash.Commit(cs.Candidate), err)
			continue
		}
		var names []string
		for n := range recorded {
			if evidenceStage(n) {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		if _, ok := recorded[ReproducibleStage]; !ok {
			fmt.Fprintf(w, "evidence for %s: reproducible not checked (run: ci verify reproducible)\n", shorthash.Commit(cs.Candidate))
		}
		for _, n := range names {
			r := recorded[n]
			line := fmt.Sprintf("evidence for %s: %s %s", shorthash.Commit(cs.Candidate), n, r.State)
			if r.Description != "" {
				line += " (" + r.Description + ")"
			}
			fmt.Fprintln(w, line)
		}
	}
}
