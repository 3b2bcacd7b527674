package results

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-github/v89/github"

	"github.com/ipex-flake/ipex-flake/internal/githubhttp"
	"github.com/ipex-flake/ipex-flake/internal/shorthash"
)

// ContextPrefix prefixes the stage name in a commit status context: ci/unit.
const ContextPrefix = "ci/"

// SkippedPrefix starts the description of a skipped stage's status. The
// release commands (release/github.StatusStore) read the same encoding.
const SkippedPrefix = "skipped: "

// GitHubStore records stage results as GitHub commit statuses with context
// "ci/<stage>", and reads them back.
//
// The encoding is ToStatus and FromStatus: a skipped stage is an "error"
// status whose description starts with "skipped: ", and the binding ends
// the description.
type GitHubStore struct {
	Owner, Repo string
	Client      *github.Client
}

var _ Store = (*GitHubStore)(nil)

// NewGitHubStore returns a store for repo ("owner/name") authenticated with
// token. baseURL is the API root ("" for api.github.com; GITHUB_API_URL on
// GitHub Enterprise and in tests). hc nil is githubhttp's client: retries
// and timeouts, as every GitHub client of the project has.
func NewGitHubStore(repo, token, baseURL string, hc *http.Client) (*GitHubStore, error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("GITHUB_REPOSITORY %q is not owner/name", repo)
	}
	c, err := githubhttp.NewGitHub(githubhttp.Config{Token: token, APIURL: baseURL, HTTPClient: hc})
	if err != nil {
		return nil, err
	}
	return &GitHubStore{Owner: owner, Repo: name, Client: c}, nil
}

// Record implements Store with one CreateStatus call.
func (s *GitHubStore) Record(ctx context.Context, r Result) error {
	state, desc := ToStatus(r)
	st := github.RepoStatus{
		State:       github.Ptr(state),
		Context:     github.Ptr(ContextPrefix + r.Stage),
		Description: github.Ptr(desc),
	}
	if r.URL != "" {
		st.TargetURL = github.Ptr(r.URL)
	}
	if _, _, err := s.Client.Repositories.CreateStatus(ctx, s.Owner, s.Repo, r.Rev, st); err != nil {
		return fmt.Errorf("recording %s%s on %s: %w", ContextPrefix, r.Stage, shorthash.Long(r.Rev), err)
	}
	return nil
}

// Get implements Store: the latest status per ci/<stage> context.
func (s *GitHubStore) Get(ctx context.Context, rev string) (map[string]Result, error) {
	out := map[string]Result{}
	opts := &github.ListOptions{PerPage: 100}
	for {
		sts, resp, err := s.Client.Repositories.ListStatuses(ctx, s.Owner, s.Repo, rev, opts)
		if err != nil {
			return nil, fmt.Errorf("reading statuses of %s: %w", shorthash.Long(rev), err)
		}
		// Newest first: keep the first per context.
		for _, st := range sts {
			name, ok := strings.CutPrefix(st.GetContext(), ContextPrefix)
			if !ok {
				continue
			}
			if _, seen := out[name]; seen {
				continue
			}
			out[name] = fromGitHub(rev, name, st)
		}
		if resp == nil || resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

func fromGitHub(rev, stage string, st *github.RepoStatus) Result {
	r := FromStatus(rev, stage, st.GetState(), st.GetDescription(), st.GetTargetURL())
	if t := st.GetUpdatedAt(); !t.IsZero() {
		r.Time = t.Time
	} else if t := st.GetCreatedAt(); !t.IsZero() {
		r.Time = t.Time
	} else {
		r.Time = time.Time{}
	}
	return r
}
