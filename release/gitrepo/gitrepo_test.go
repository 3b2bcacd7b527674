package gitrepo

import (
	"errors"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/release/forge"
	"github.com/ipex-flake/ipex-flake/release/gitrepo/gittest"
)

func TestRepo(t *testing.T) {
	g := gittest.New(t)
	c1 := g.Commit("feat: one")
	c2 := g.Commit("fix: two\n\nBREAKING CHANGE: renamed")
	g.Git("tag", "-a", "-m", "annotated", "v0.1.0", c1)
	g.Tag("phase1-complete", c2)

	ctx := t.Context()
	r, err := Open(ctx, g.Dir)
	require.NoError(t, err)

	sha, err := r.Resolve(ctx, "HEAD")
	require.NoError(t, err)
	assert.Equal(t, c2, sha)
	sha, err = r.Resolve(ctx, c1[:8])
	require.NoError(t, err)
	assert.Equal(t, c1, sha)
	for _, bad := range []string{"nope", "--all", "a b", "HEAD..x", ""} {
		_, err = r.Resolve(ctx, bad)
		assert.ErrorIs(t, err, ErrBadRev, bad)
	}

	ok, err := r.IsAncestor(ctx, c1, c2)
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = r.IsAncestor(ctx, c2, c1)
	require.NoError(t, err)
	assert.False(t, ok)

	log, err := r.Log(ctx, c1, c2)
	require.NoError(t, err)
	require.Len(t, log, 1)
	assert.Equal(t, "fix: two", log[0].Subject)
	assert.Equal(t, "BREAKING CHANGE: renamed", log[0].Body)
	all, err := r.Log(ctx, "", c2)
	require.NoError(t, err)
	assert.Len(t, all, 2)

	tags, err := r.Tags(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, []Tag{{"phase1-complete", c2}, {"v0.1.0", c1}}, tags, "annotated tags are peeled")

	_, err = Open(ctx, t.TempDir())
	assert.ErrorIs(t, err, ErrNotRepo)
}

func TestForge(t *testing.T) {
	g := gittest.New(t)
	c1 := g.Commit("feat: one")
	c2 := g.Commit("fix: two")
	ctx := t.Context()
	r, err := Open(ctx, g.Dir)
	require.NoError(t, err)
	f, err := NewForge(ctx, r)
	require.NoError(t, err)

	require.NoError(t, f.CreateTag(ctx, "v0.1.0", c1))
	assert.ErrorIs(t, f.CreateTag(ctx, "v0.1.0", c2), forge.ErrExists, "a tag is never moved")
	assert.Equal(t, c1, g.Ref("refs/tags/v0.1.0"))

	cur, err := f.ChannelRef(ctx, "dev")
	require.NoError(t, err)
	assert.Empty(t, cur)
	require.NoError(t, f.SetChannelRef(ctx, "dev", "", c1))
	assert.ErrorIs(t, f.SetChannelRef(ctx, "dev", "", c2), forge.ErrExists)
	require.NoError(t, f.SetChannelRef(ctx, "dev", c1, c2))
	assert.Equal(t, c2, g.Ref("refs/heads/channels/dev"))
	assert.ErrorIs(t, f.SetChannelRef(ctx, "dev", c2, c1), forge.ErrNotFastForward, "never backwards")
	assert.ErrorIs(t, f.SetChannelRef(ctx, "dev", c1, c2), forge.ErrNotFastForward, "stale old value")
	assert.Equal(t, c2, g.Ref("refs/heads/channels/dev"))

	rel, err := f.Release(ctx, "v0.1.0")
	require.NoError(t, err)
	assert.Nil(t, rel)
	rel, err = f.CreateRelease(ctx, forge.Release{Tag: "v0.1.0", Name: "v0.1.0", Body: "notes", Rev: c1, Latest: true})
	require.NoError(t, err)
	_, err = f.CreateRelease(ctx, forge.Release{Tag: "v0.1.0"})
	assert.True(t, errors.Is(err, forge.ErrExists))
	require.NoError(t, f.UploadAsset(ctx, rel, forge.ManifestAsset, []byte("{}")))
	assert.ErrorIs(t, f.UploadAsset(ctx, rel, forge.ManifestAsset, []byte("{}")), forge.ErrExists)
	require.NoError(t, f.EditBody(ctx, rel, "notes\n"+forge.NotifiedMarker))

	got, err := f.Release(ctx, "v0.1.0")
	require.NoError(t, err)
	assert.Equal(t, []string{forge.ManifestAsset}, got.Assets)
	assert.Contains(t, got.Body, forge.NotifiedMarker)
	assert.True(t, got.Latest)
	data, err := os.ReadFile(f.AssetPath("v0.1.0", forge.ManifestAsset))
	require.NoError(t, err)
	assert.Equal(t, "{}", string(data))
}
