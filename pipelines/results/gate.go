package results

import (
	"context"
	"fmt"
)

// Gate is what a push or promotion gate requires of the recorded results.
type Gate struct {
	// Stages must each have passed.
	Stages []string
	// Want is the flake and build report being pushed or promoted.
	Want Binding
	// RefuseExternal refuses results that tested an external service
	// instead of the services started from the build (beta and stable).
	RefuseExternal bool
}

// Verdict is a gate's reading of the recorded results.
type Verdict struct {
	// Passed holds the accepted results, in Stages order.
	Passed []Result
	// Mismatched names the results recorded for another flake or build
	// report, naming both (a usage error: exit 2).
	Mismatched []string
	// External names the results that tested an external service.
	External []string
	// NotPassed names the stages without an accepted passed result:
	// "unit (no result)", "unit (failed)".
	NotPassed []string
}

// OK reports whether the gate is open.
func (v Verdict) OK() bool {
	return len(v.Mismatched) == 0 && len(v.External) == 0 && len(v.NotPassed) == 0
}

// Check reads got (the latest result per stage of one commit) for g.
func (g Gate) Check(got map[string]Result) Verdict {
	var v Verdict
	for _, s := range g.Stages {
		r, ok := got[s]
		switch {
		case !ok:
			v.NotPassed = append(v.NotPassed, s+" (no result)")
		case !r.Binding.Matches(g.Want):
			v.Mismatched = append(v.Mismatched, fmt.Sprintf("%s was %s for %s, but this is %s", s, r.State, r.Binding, g.Want))
		case r.State != StatePassed:
			v.NotPassed = append(v.NotPassed, s+" ("+r.State+")")
		case r.External && g.RefuseExternal:
			v.External = append(v.External, s)
		default:
			v.Passed = append(v.Passed, r)
		}
	}
	return v
}

// Filtered is a Store whose reads return only results bound to Want, so
// that code reading it can never accept a result for another flake or
// build report.
type Filtered struct {
	Store
	Want Binding
}

// Get implements Store.
func (f Filtered) Get(ctx context.Context, rev string) (map[string]Result, error) {
	got, err := f.Store.Get(ctx, rev)
	if err != nil {
		return nil, err
	}
	for k, r := range got {
		if !r.Binding.Matches(f.Want) {
			delete(got, k)
		}
	}
	return got, nil
}
