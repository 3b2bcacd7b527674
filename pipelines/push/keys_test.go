package push

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/push/signing"
)

// namedKey returns a fresh signing key called name.
func namedKey(t *testing.T, name string) *signing.Key {
	t.Helper()
	k, err := signing.Generate(name)
	require.NoError(t, err)
	return k
}

// narFiles maps every NAR file of a cache directory to its content.
func narFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "nar", "*"))
	require.NoError(t, err)
	out := map[string]string{}
	for _, f := range m {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		out[filepath.Base(f)] = string(data)
	}
	return out
}

// TestPushKeyRotation pushes with one key, rotates to another: the push
// names the old key and the fix; --resign adds the new key's signature to
// the narinfos (the NARs stay as they were), and an empty store that
// trusts only the new key substitutes everything.
func TestPushKeyRotation(t *testing.T) {
	b := buildFixture(t, 2, 100)
	for _, c := range realCaches {
		t.Run(c.name, func(t *testing.T) {
			uri, dir := c.cache(t)
			oldKey, newKey := namedKey(t, "ipex-old-1"), namedKey(t, "ipex-new-2")
			_, log, _, err := pushTo(t, b, uri, oldKey)
			require.NoError(t, err, log)
			nars := narFiles(t, dir)
			require.Len(t, nars, 3)

			_, log, _, err = pushTo(t, b, uri, newKey)
			require.Error(t, err, log)
			assert.Equal(t, clierr.ExitFailed, clierr.Code(err))
			assert.ErrorContains(t, err, "3 paths in "+uri+" are not signed by the current key ipex-new-2: they were signed by ipex-old-1 (3)")
			assert.ErrorContains(t, err, "run `ci push --resign`")
			_, err = substitute(t, uri, newKey.Public(), b.Paths)
			require.Error(t, err, "nothing in the cache is signed by the new key yet")

			out, log, sums, err := pushWith(t, b, uri, newKey, func(o *Options) { o.Resign = true })
			require.NoError(t, err, log)
			assert.Equal(t, 3, sums[0].Resigned)
			assert.Equal(t, 0, sums[0].Pushed)
			assert.Contains(t, out, "3 re-signed")
			assert.Equal(t, nars, narFiles(t, dir), "re-signing uploads narinfos only")
			for _, p := range narinfos(t, dir) {
				data, err := os.ReadFile(p)
				require.NoError(t, err)
				assert.Contains(t, string(data), "Sig: ipex-new-2:")
				assert.Contains(t, string(data), "Sig: ipex-old-1:", "the old signature stays for clients that still trust it")
			}
			msg, err := substitute(t, uri, newKey.Public(), b.Paths)
			require.NoError(t, err, msg)
			msg, err = substitute(t, uri, oldKey.Public(), b.Paths)
			require.NoError(t, err, msg)

			out, log, _, err = pushTo(t, b, uri, newKey)
			require.NoError(t, err, log)
			assert.Contains(t, out, "nothing to push")
		})
	}
}

// TestPushOnlyTargetKeySignature: the local store's paths carry a
// signature of the locally generated key; a push with the cache's key puts
// only that key's signature onto the cache.
func TestPushOnlyTargetKeySignature(t *testing.T) {
	b := buildFixture(t, 2, 100)
	local := namedKey(t, signing.DefaultKeyName)
	require.NoError(t, (&NixSigner{Engine: b.Engine, Key: local}).Sign(t.Context(), func() []string {
		c, err := Closure(t.Context(), b.Engine, b.Paths)
		require.NoError(t, err)
		return c
	}()))
	for _, c := range realCaches {
		t.Run(c.name, func(t *testing.T) {
			uri, dir := c.cache(t)
			key := namedKey(t, "cache.example.org-1")
			_, log, sums, err := pushTo(t, b, uri, key)
			require.NoError(t, err, log)
			assert.Equal(t, 3, sums[0].Pushed)
			for _, p := range narinfos(t, dir) {
				data, err := os.ReadFile(p)
				require.NoError(t, err)
				assert.Contains(t, string(data), "Sig: cache.example.org-1:")
				assert.NotContains(t, string(data), signing.DefaultKeyName, "no signature of the local key in %s", filepath.Base(p))
			}
			msg, err := substitute(t, uri, key.Public(), b.Paths)
			require.NoError(t, err, msg)
			_, err = substitute(t, uri, local.Public(), b.Paths)
			require.Error(t, err, "the local key's signature is not in the cache")
		})
	}
}
