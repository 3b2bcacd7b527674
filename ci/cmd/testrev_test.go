package cmd

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
)

func TestCommitUnderTest(t *testing.T) {
	dir := t.TempDir()
	event := filepath.Join(dir, "event.json")
	require.NoError(t, os.WriteFile(event, []byte(`{"pull_request":{"head":{"sha":"1111111111111111111111111111111111111111"}}}`), 0o644))
	broken := filepath.Join(dir, "broken.json")
	require.NoError(t, os.WriteFile(broken, []byte(`{`), 0o644))

	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"outside Actions", nil, ""},
		{"push", map[string]string{"GITHUB_EVENT_NAME": "push", "GITHUB_SHA": "abc", "GITHUB_EVENT_PATH": event}, "abc"},
		{"pull request: the head, not the merge commit", map[string]string{"GITHUB_EVENT_NAME": "pull_request", "GITHUB_SHA": "merge", "GITHUB_EVENT_PATH": event}, "1111111111111111111111111111111111111111"},
		{"pull_request_target", map[string]string{"GITHUB_EVENT_NAME": "pull_request_target", "GITHUB_SHA": "base", "GITHUB_EVENT_PATH": event}, "1111111111111111111111111111111111111111"},
		{"unreadable payload falls back", map[string]string{"GITHUB_EVENT_NAME": "pull_request", "GITHUB_SHA": "merge", "GITHUB_EVENT_PATH": broken}, "merge"},
		{"merge queue", map[string]string{"GITHUB_EVENT_NAME": "merge_group", "GITHUB_SHA": "queued", "GITHUB_EVENT_PATH": event}, "queued"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := commitUnderTest(func(k string) string { return tt.env[k] })
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestTestRecordsOnThePullRequestHead: on a pull_request event the result
// lands on the pull request's head commit (what the pull request shows), not
// on GitHub's merge commit; --rev overrides both.
func TestTestRecordsOnThePullRequestHead(t *testing.T) {
	dir, head := gitRepo(t, map[string]string{"README": "x\n"})
	event := filepath.Join(t.TempDir(), "event.json")
	require.NoError(t, os.WriteFile(event, []byte(`{"pull_request":{"head":{"sha":"`+head+`"}}}`), 0o644))
	store := &results.FileStore{Path: results.DefaultPath(filepath.Join(dir, ".git"))}
	const merge = "2222222222222222222222222222222222222222"
	const explicit = "3333333333333333333333333333333333333333"

	io, _, errb := testIO(map[string]string{"GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": event, "GITHUB_SHA": merge})
	code := Run(t.Context(), io, append([]string{"test", "--stage", "integration", "--flake", dir}, noGPU(t)...))
	require.Equal(t, clierr.ExitOK, code, errb.String())
	got, err := store.Get(t.Context(), head)
	require.NoError(t, err)
	assert.Equal(t, results.StateSkipped, got["integration"].State)
	got, err = store.Get(t.Context(), merge)
	require.NoError(t, err)
	assert.Empty(t, got, "nothing recorded on the merge commit")

	io, _, errb = testIO(map[string]string{"GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": event, "GITHUB_SHA": merge})
	code = Run(t.Context(), io, append([]string{"test", "--stage", "integration", "--flake", dir, "--rev", explicit}, noGPU(t)...))
	require.Equal(t, clierr.ExitOK, code, errb.String())
	got, err = store.Get(t.Context(), explicit)
	require.NoError(t, err)
	assert.Equal(t, results.StateSkipped, got["integration"].State)
}
