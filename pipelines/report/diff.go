package report

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Diff lists how two reports of the same flake disagree, output by output:
// an output only one of them has, or a different status, drvPath or set of
// outPaths. Reasons, logs and durations are not compared (they name the
// engine's paths and times). Two reports agree when Diff is empty.
func Diff(a, b *Report) []string {
	index := func(r *Report) map[string]Output {
		m := make(map[string]Output, len(r.Outputs))
		for _, o := range r.Outputs {
			m[o.Attr] = o
		}
		return m
	}
	am, bm := index(a), index(b)
	attrs := make([]string, 0, len(am)+len(bm))
	for k := range am {
		attrs = append(attrs, k)
	}
	for k := range bm {
		if _, ok := am[k]; !ok {
			attrs = append(attrs, k)
		}
	}
	sort.Strings(attrs)
	var diffs []string
	for _, attr := range attrs {
		x, inA := am[attr]
		y, inB := bm[attr]
		switch {
		case !inA:
			diffs = append(diffs, fmt.Sprintf("%s: only in the second report (%s)", attr, y.Status))
			continue
		case !inB:
			diffs = append(diffs, fmt.Sprintf("%s: only in the first report (%s)", attr, x.Status))
			continue
		}
		if x.Status != y.Status {
			diffs = append(diffs, fmt.Sprintf("%s: status %s ≠ %s", attr, x.Status, y.Status))
		}
		if x.DrvPath != y.DrvPath {
			diffs = append(diffs, fmt.Sprintf("%s: drvPath %s ≠ %s", attr, orNone(x.DrvPath), orNone(y.DrvPath)))
		}
		xo, yo := slices.Sorted(slices.Values(x.OutPaths)), slices.Sorted(slices.Values(y.OutPaths))
		if !slices.Equal(xo, yo) {
			diffs = append(diffs, fmt.Sprintf("%s: outPaths %s ≠ %s", attr, orNone(strings.Join(xo, " ")), orNone(strings.Join(yo, " "))))
		}
	}
	return diffs
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
