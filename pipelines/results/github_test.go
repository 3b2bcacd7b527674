package results

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeStatuses is an httptest GitHub that keeps the statuses posted to it,
// under a non-root base path like GitHub Enterprise's /api/v3/.
type fakeStatuses struct {
	mu   sync.Mutex
	list []map[string]any // newest first
	auth []string
}

func (f *fakeStatuses) handler(t *testing.T) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v3/repos/ipex-flake/ipex-flake/statuses/{sha}", func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, http.MethodPost, r.Method)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		var body map[string]any
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		body["sha"] = r.PathValue("sha")
		body["updated_at"] = "2025-01-02T03:04:05Z"
		f.list = append([]map[string]any{body}, f.list...)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(body)
	})
	mux.HandleFunc("/api/v3/repos/ipex-flake/ipex-flake/commits/{sha}/statuses", func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, http.MethodGet, r.Method)
		f.mu.Lock()
		defer f.mu.Unlock()
		var out []map[string]any
		for _, s := range f.list {
			if s["sha"] == r.PathValue("sha") {
				out = append(out, s)
			}
		}
		_ = json.NewEncoder(w).Encode(out)
	})
	return mux
}

func TestGitHubStoreRoundTrip(t *testing.T) {
	f := &fakeStatuses{}
	srv := httptest.NewServer(f.handler(t))
	defer srv.Close()
	s, err := NewGitHubStore("ipex-flake/ipex-flake", "ghp_test_token", srv.URL+"/api/v3", srv.Client())
	require.NoError(t, err)
	rev := strings.Repeat("ab", 20)
	ctx := t.Context()

	require.NoError(t, s.Record(ctx, Result{Stage: "unit", Rev: rev, State: StatePending, Description: "running"}))
	require.NoError(t, s.Record(ctx, Result{Stage: "unit", Rev: rev, State: StatePassed, Description: "passed (3 passed)", URL: "https://ci.example/1"}))
	require.NoError(t, s.Record(ctx, Result{Stage: "integration", Rev: rev, State: StateSkipped, Description: "no intel-gpu on this machine"}))
	require.NoError(t, s.Record(ctx, Result{Stage: "security", Rev: rev, State: StateFailed, Description: strings.Repeat("x", 200)}))

	f.mu.Lock()
	assert.Equal(t, "ci/integration", f.list[1]["context"])
	assert.Equal(t, "error", f.list[1]["state"], "skipped is never success")
	assert.Equal(t, "skipped: no intel-gpu on this machine", f.list[1]["description"])
	assert.Len(t, f.list[0]["description"], 140)
	assert.Equal(t, "Bearer ghp_test_token", f.auth[0])
	f.mu.Unlock()

	got, err := s.Get(ctx, rev)
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, StatePassed, got["unit"].State, "the newest status per context wins")
	assert.Equal(t, "https://ci.example/1", got["unit"].URL)
	assert.Equal(t, StateSkipped, got["integration"].State)
	assert.Equal(t, StateFailed, got["security"].State)
	assert.Equal(t, 2025, got["unit"].Time.Year())
}

func TestNewGitHubStoreBadRepo(t *testing.T) {
	for _, repo := range []string{"", "owner", "owner/", "a/b/c"} {
		_, err := NewGitHubStore(repo, "t", "", nil)
		assert.Error(t, err, repo)
	}
}
