package gitrepo

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/release/gitrepo/gittest"
)

// TestStaleRefLock: a lock left by a killed git (older than this process,
// no git running in the repository) is removed with a warning and the ref
// is made; a fresh lock, or one a running git holds, is reported with the
// fix and nothing is removed.
func TestStaleRefLock(t *testing.T) {
	g := gittest.New(t)
	c1 := g.Commit("feat: one")
	ctx := t.Context()
	var warn bytes.Buffer
	r, err := Open(ctx, g.Dir)
	require.NoError(t, err)
	r.Warn = &warn
	lock := filepath.Join(g.Dir, ".git", "refs", "heads", "channels", "stable.lock")
	require.NoError(t, os.MkdirAll(filepath.Dir(lock), 0o755))
	old := time.Now().Add(-time.Hour)

	t.Run("fresh lock: reported, kept", func(t *testing.T) {
		require.NoError(t, os.WriteFile(lock, nil, 0o644))
		future := time.Now().Add(time.Hour)
		require.NoError(t, os.Chtimes(lock, future, future))
		err := r.CreateRef(ctx, "refs/heads/channels/stable", c1)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "rm "+lock)
		assert.FileExists(t, lock)
	})

	t.Run("lock held by a running git: reported, kept", func(t *testing.T) {
		require.NoError(t, os.Chtimes(lock, old, old))
		// A git process working in the repository, waiting on its stdin.
		cmd := exec.Command("git", "hash-object", "--stdin")
		cmd.Dir = g.Dir
		stdin, err := cmd.StdinPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		defer func() { stdin.Close(); _ = cmd.Wait() }()
		require.Eventually(t, func() bool { return gitProcessIn(g.Dir) != 0 }, 5*time.Second, 10*time.Millisecond)

		err = r.CreateRef(ctx, "refs/heads/channels/stable", c1)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "held by a running git process")
		assert.FileExists(t, lock)
	})

	t.Run("stale lock: removed with a warning, ref made", func(t *testing.T) {
		require.NoError(t, os.Chtimes(lock, old, old))
		require.NoError(t, r.CreateRef(ctx, "refs/heads/channels/stable", c1))
		assert.Equal(t, c1, g.Ref("refs/heads/channels/stable"))
		assert.NoFileExists(t, lock)
		assert.Contains(t, warn.String(), "removing the stale ref lock "+lock)
	})
}

func TestHistory(t *testing.T) {
	origin := gittest.New(t)
	c1 := origin.Commit("feat: one")
	origin.Git("tag", "-a", "-m", "annotated", "v0.1.0", c1)
	c2 := origin.Commit("fix: two")
	side := origin.Git("commit-tree", "-p", c1, "-m", "side", origin.Git("rev-parse", c1+"^{tree}"))
	origin.Tag("v0.9.0", side)

	ctx := t.Context()
	clone := gittest.New(t)
	clone.Git("remote", "add", "origin", "file://"+origin.Dir)
	clone.Git("fetch", "-q", "--no-tags", "--depth", "1", "origin", "main")
	clone.Git("checkout", "-q", "-B", "main", "FETCH_HEAD")
	r, err := Open(ctx, clone.Dir)
	require.NoError(t, err)

	shallow, err := r.IsShallow(ctx)
	require.NoError(t, err)
	assert.True(t, shallow)
	assert.Equal(t, "origin", r.Remote(ctx))
	have, err := r.Commits(ctx, []string{c1, c2})
	require.NoError(t, err)
	assert.Equal(t, map[string]bool{c2: true}, have, "a shallow clone lacks c1")

	require.NoError(t, r.FetchHistory(ctx, "origin", true))
	shallow, err = r.IsShallow(ctx)
	require.NoError(t, err)
	assert.False(t, shallow)

	reach, err := r.Reachable(ctx, c2)
	require.NoError(t, err)
	assert.True(t, reach[c1])
	assert.True(t, reach[c2])
	assert.False(t, reach[side], "a tag on a side branch is not reachable")

	tagObj := clone.Git("rev-parse", "refs/tags/v0.1.0")
	require.NotEqual(t, c1, tagObj)
	peeled, err := r.Peel(ctx, []string{tagObj, c2, "0123456789012345678901234567890123456789"})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{tagObj: c1, c2: c2}, peeled)
}
