package github_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/githubhttp"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
	"github.com/ipex-flake/ipex-flake/release/forge"
	"github.com/ipex-flake/ipex-flake/release/github"
	"github.com/ipex-flake/ipex-flake/release/github/githubtest"
)

// The gates read what `ci test` writes: results.GitHubStore records the
// statuses, StatusStore reads them back through the same HTTP API.
func TestStatusStoreReadsWhatResultsGitHubStoreWrites(t *testing.T) {
	srv := githubtest.New(t, "o", "r", nil)
	writer, err := results.NewGitHubStore("o/r", "ghp_writer", srv.APIURL(), nil)
	require.NoError(t, err)
	api, err := github.New(github.Config{Token: "ghp_reader", Owner: "o", Repo: "r", APIURL: srv.APIURL(), UploadURL: srv.UploadURL(),
		Transport: &githubhttp.RetryTransport{AttemptTimeout: 5 * time.Second}})
	require.NoError(t, err)
	reader := &github.StatusStore{Client: api}

	long := strings.Repeat("x", 200)
	tests := []struct {
		name      string
		in        results.Result
		wantState string
		wantDesc  string
	}{
		{"passed", results.Result{State: results.StatePassed, Description: "42 tests passed", URL: "https://ci.example/1"}, results.StatePassed, "42 tests passed"},
		{"failed", results.Result{State: results.StateFailed, Description: "2 tests failed"}, results.StateFailed, "2 tests failed"},
		{"pending", results.Result{State: results.StatePending}, results.StatePending, ""},
		{"skipped", results.Result{State: results.StateSkipped, Description: "no intel GPU"}, results.StateSkipped, "no intel GPU"},
		{"skipped without reason", results.Result{State: results.StateSkipped}, results.StateSkipped, ""},
		{"skipped already prefixed", results.Result{State: results.StateSkipped, Description: "skipped (no GPU)"}, results.StateSkipped, "skipped (no GPU)"},
		{"skipped, long reason", results.Result{State: results.StateSkipped, Description: long}, results.StateSkipped, ("skipped: " + long)[len("skipped: "):137] + "..."},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rev := strings.Repeat(string(rune('a'+i)), 40)
			tt.in.Stage, tt.in.Rev = "security", rev
			require.NoError(t, writer.Record(t.Context(), tt.in))
			got, err := reader.Get(t.Context(), rev)
			require.NoError(t, err)
			require.Contains(t, got, "security")
			assert.Equal(t, tt.wantState, got["security"].State)
			assert.Equal(t, tt.wantDesc, got["security"].Description)
			assert.Equal(t, tt.in.URL, got["security"].URL)
		})
	}

	// A later result of the same stage replaces the earlier one.
	rev := strings.Repeat("f", 40)
	require.NoError(t, writer.Record(t.Context(), results.Result{Stage: "unit", Rev: rev, State: results.StateFailed}))
	require.NoError(t, writer.Record(t.Context(), results.Result{Stage: "unit", Rev: rev, State: results.StatePassed}))
	got, err := reader.Get(t.Context(), rev)
	require.NoError(t, err)
	assert.Equal(t, results.StatePassed, got["unit"].State)
}

func TestStatusStoreRoundTripOnFake(t *testing.T) {
	f := githubtest.NewFake("o", "r")
	store := &github.StatusStore{Client: f}
	ctx := t.Context()
	for _, st := range []string{results.StatePassed, results.StateFailed, results.StatePending, results.StateSkipped} {
		require.NoError(t, store.Record(ctx, results.Result{Stage: "unit", Rev: "abc", State: st, Description: "d"}))
		got, err := store.Get(ctx, "abc")
		require.NoError(t, err)
		assert.Equal(t, st, got["unit"].State, "the latest status wins")
		assert.Equal(t, "d", got["unit"].Description)
	}
	assert.Error(t, store.Record(ctx, results.Result{Stage: "unit", Rev: "abc", State: "bogus"}))
}

func TestFakeIsAForge(t *testing.T) {
	f := githubtest.NewFake("o", "r")
	ctx := t.Context()
	require.NoError(t, f.CreateTag(ctx, "v0.1.0", "a"))
	assert.ErrorIs(t, f.CreateTag(ctx, "v0.1.0", "b"), forge.ErrExists)
	f.Ancestor = func(a, b string) bool { return a == "a" && b == "b" }
	require.NoError(t, f.SetChannelRef(ctx, "dev", "", "a"))
	require.NoError(t, f.SetChannelRef(ctx, "dev", "a", "b"))
	assert.ErrorIs(t, f.SetChannelRef(ctx, "dev", "b", "a"), forge.ErrNotFastForward)
	rel, err := f.CreateRelease(ctx, forge.Release{Tag: "v0.1.0"})
	require.NoError(t, err)
	require.NoError(t, f.UploadAsset(ctx, rel, forge.ManifestAsset, []byte("{}")))
	got, err := f.Release(ctx, "v0.1.0")
	require.NoError(t, err)
	assert.Equal(t, []string{forge.ManifestAsset}, got.Assets)
}
