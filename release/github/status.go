package github

import (
	"context"
	"errors"
	"strings"

	"github.com/ipex-flake/ipex-flake/pipelines/results"
)

// ContextPrefix starts the status context of every stage: ci/<stage>.
const ContextPrefix = "ci/"

// StatusStore keeps stage results as GitHub commit statuses.
type StatusStore struct{ Client Client }

var _ results.Store = (*StatusStore)(nil)

// Record implements results.Store.
func (s *StatusStore) Record(ctx context.Context, r results.Result) error {
	if r.Stage == "" || r.Rev == "" {
		return errors.New("results: stage and rev are required")
	}
	switch r.State {
	case results.StatePassed, results.StateFailed, results.StatePending, results.StateSkipped:
	default:
		return errors.New("results: unknown state " + r.State)
	}
	// One encoding for both sides (pipelines/results): the binding ends
	// the description, within GitHub's 140 characters.
	state, desc := results.ToStatus(r)
	return s.Client.CreateStatus(ctx, r.Rev, Status{Context: ContextPrefix + r.Stage, State: state, Description: desc, TargetURL: r.URL})
}

// Get implements results.Store.
func (s *StatusStore) Get(ctx context.Context, rev string) (map[string]results.Result, error) {
	sts, err := s.Client.Statuses(ctx, rev)
	if err != nil {
		return nil, err
	}
	out := map[string]results.Result{}
	for _, st := range sts {
		stage, ok := strings.CutPrefix(st.Context, ContextPrefix)
		if !ok {
			continue
		}
		if _, seen := out[stage]; seen {
			continue // the first is the latest
		}
		out[stage] = results.FromStatus(rev, stage, st.State, st.Description, st.TargetURL)
	}
	return out, nil
}
