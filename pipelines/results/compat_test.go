package results_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/pipelines/results"
	relgithub "github.com/ipex-flake/ipex-flake/release/github"
)

// TestReleaseReadsStageStatuses records every state with the stage side
// (results.GitHubStore, used by `ci test`) and reads it back with the
// release side (release/github.StatusStore, used by `ci release`): both
// must agree on the encoding, above all that skipped never reads as passed.
func TestReleaseReadsStageStatuses(t *testing.T) {
	var mu sync.Mutex
	var list []map[string]any // newest first
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v3/repos/o/r/statuses/{sha}", func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, http.MethodPost, r.Method)
		var body map[string]any
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		mu.Lock()
		list = append([]map[string]any{body}, list...)
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(body)
	})
	mux.HandleFunc("/api/v3/repos/o/r/commits/{sha}/statuses", func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, http.MethodGet, r.Method)
		mu.Lock()
		defer mu.Unlock()
		_ = json.NewEncoder(w).Encode(list)
	})
	mux.HandleFunc("/api/v3/repos/o/r/commits/{sha}/status", func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, http.MethodGet, r.Method)
		mu.Lock()
		defer mu.Unlock()
		seen := map[any]bool{}
		var latest []map[string]any
		for _, s := range list {
			if !seen[s["context"]] {
				seen[s["context"]] = true
				latest = append(latest, s)
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"state": "pending", "statuses": latest})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	stageSide, err := results.NewGitHubStore("o/r", "tok", srv.URL+"/api/v3", srv.Client())
	require.NoError(t, err)
	api, err := relgithub.New(relgithub.Config{Token: "tok", Owner: "o", Repo: "r", APIURL: srv.URL + "/api/v3"})
	require.NoError(t, err)
	releaseSide := &relgithub.StatusStore{Client: api}

	rev := strings.Repeat("cd", 20)
	bound := results.Binding{Flake: "examples/offline", NarHash: "sha256-GhwDr/8C2RAUNikyBmZuKey4kc5JgyKma0fbQPhnUio=",
		Report: "sha256:" + strings.Repeat("ef", 32)}
	recorded := []results.Result{
		{Stage: "unit", State: results.StatePassed, Description: "passed (3 passed)", Binding: bound},
		{Stage: "benchmark", State: results.StatePassed, Description: "ok", Binding: bound, External: true},
		{Stage: "integration", State: results.StateSkipped, Description: "no intel-gpu on this machine"},
		{Stage: "performance", State: results.StateSkipped, Description: "skipped: no big-memory on this machine"},
		{Stage: "security", State: results.StateFailed, Description: "failed: 1 of 7 checks failed: secrets (tree)"},
		{Stage: "lint", State: results.StatePending, Description: "running"},
	}
	for _, r := range recorded {
		r.Rev = rev
		require.NoError(t, stageSide.Record(t.Context(), r))
	}
	for name, store := range map[string]results.Store{"stage side": stageSide, "release side": releaseSide} {
		got, err := store.Get(t.Context(), rev)
		require.NoError(t, err, name)
		want := map[string]string{"unit": results.StatePassed, "integration": results.StateSkipped,
			"performance": results.StateSkipped, "security": results.StateFailed, "lint": results.StatePending}
		for stage, state := range want {
			assert.Equal(t, state, got[stage].State, "%s reads ci/%s", name, stage)
		}
		assert.Equal(t, "no intel-gpu on this machine", got["integration"].Description, name)
		assert.Equal(t, "no big-memory on this machine", got["performance"].Description, "%s: the prefix is written once", name)
		assert.Equal(t, "passed (3 passed)", got["unit"].Description, name)
		assert.True(t, got["unit"].Binding.Matches(bound), "%s reads the binding back: %+v", name, got["unit"].Binding)
		root := bound
		root.Flake = "."
		assert.False(t, got["unit"].Binding.Matches(root), "%s: another flake directory does not match", name)
		assert.False(t, got["unit"].External, name)
		assert.True(t, got["benchmark"].External, "%s reads the external-service mark", name)
		assert.False(t, got["security"].Binding.Matches(bound), "%s: an unbound result matches nothing", name)
	}
}
