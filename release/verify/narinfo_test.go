package verify

import (
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/pipelines/cache"
)

const storePath = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-a"

// signedNarInfo returns a narinfo signed by cache-1 and that key's public
// half, and the same public key under another name.
func signedNarInfo(t *testing.T) (text, pub, renamed string) {
	pubKey, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	ni := &cache.NarInfo{StorePath: storePath, NarHash: "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73", NarSize: 120,
		References: []string{"0123456789abcdfghijklmnpqrsvwxyz-a", "1123456789abcdfghijklmnpqrsvwxyz-dep"}}
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte(ni.Fingerprint())))
	text = "StorePath: " + storePath + "\nURL: nar/x.nar.xz\nCompression: xz\nNarHash: " + ni.NarHash +
		"\nNarSize: 120\nReferences: " + strings.Join(ni.References, " ") + "\nSig: cache-1:" + sig + "\n"
	b64 := base64.StdEncoding.EncodeToString(pubKey)
	return text, "cache-1:" + b64, "cache-2:" + b64
}

func TestNarInfoFileAndHTTP(t *testing.T) {
	text, pub, renamed := signedNarInfo(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "0123456789abcdfghijklmnpqrsvwxyz.narinfo"), []byte(text), 0o644))
	mux := http.NewServeMux()
	mux.HandleFunc("/cache/", func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, http.MethodGet, r.Method)
		assert.Equal(t, "no-cache", r.Header.Get("Cache-Control"))
		if r.URL.Path == "/cache/0123456789abcdfghijklmnpqrsvwxyz.narinfo" {
			_, _ = w.Write([]byte(text))
			return
		}
		http.NotFound(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	for _, uri := range []string{"file://" + dir, srv.URL + "/cache/?priority=40"} {
		t.Run(uri[:4], func(t *testing.T) {
			c := &Cache{URI: uri, Client: srv.Client()}
			ni, err := c.NarInfo(t.Context(), storePath)
			require.NoError(t, err)
			assert.Equal(t, storePath, ni.StorePath)
			assert.Equal(t, int64(120), ni.NarSize)
			assert.True(t, ni.SignedBy(pub))
			assert.False(t, ni.SignedBy(renamed), "the key name must match")
			ni.NarSize = 121
			assert.False(t, ni.SignedBy(pub), "the signature covers the NAR size")

			_, err = c.NarInfo(t.Context(), "/nix/store/2123456789abcdfghijklmnpqrsvwxyz-other")
			require.ErrorIs(t, err, ErrNoNarInfo)
		})
	}
	_, err := (&Cache{URI: "s3://bucket"}).NarInfo(t.Context(), storePath)
	require.ErrorContains(t, err, "copy the cache")
}
