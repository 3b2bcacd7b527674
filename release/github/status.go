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

// skippedPrefix marks a skipped stage: GitHub has no "skipped" status
// state, and a skipped stage must never read back as passed.
const skippedPrefix = "skipped: "

// Record implements results.Store.
func (s *StatusStore) Record(ctx context.Context, r results.Result) error {
	if r.Stage == "" || r.Rev == "" {
		return errors.New("results: stage and rev are required")
	}
	st := Status{Context: ContextPrefix + r.Stage, Description: r.Description, TargetURL: r.URL}
	switch r.State {
	case results.StatePassed:
		st.State = "success"
	case results.StateFailed:
		st.State = "failure"
	case results.StatePending:
		st.State = "pending"
	case results.StateSkipped:
		st.State, st.Description = "error", skippedPrefix+r.Description
	default:
		return errors.New("results: unknown state " + r.State)
	}
	if len(st.Description) > 140 { // GitHub's limit
		st.Description = st.Description[:137] + "..."
	}
	return s.Client.CreateStatus(ctx, r.Rev, st)
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
		r := results.Result{Stage: stage, Rev: rev, Description: st.Description, URL: st.TargetURL}
		switch st.State {
		case "success":
			r.State = results.StatePassed
		case "pending":
			r.State = results.StatePending
		case "error":
			// pipelines/results writes "skipped: <why>", or keeps a
			// description that already starts with "skipped".
			if strings.HasPrefix(st.Description, "skipped") {
				r.State = results.StateSkipped
				r.Description = strings.TrimPrefix(st.Description, skippedPrefix)
			} else {
				r.State = results.StateFailed
			}
		default:
			r.State = results.StateFailed
		}
		out[stage] = r
	}
	return out, nil
}
