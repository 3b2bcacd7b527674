package push

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/testnginx"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
)

// realCaches are the caches the real-tool tests push to: a file:// cache
// and nginx WebDAV. Each returns the URI and the directory its files are in.
var realCaches = []struct {
	name  string
	cache func(t *testing.T) (uri, dir string)
}{
	{"file", func(t *testing.T) (string, string) {
		d := filepath.Join(t.TempDir(), "cache")
		return "file://" + d, d
	}},
	{"nginx-webdav", func(t *testing.T) (string, string) {
		s := testnginx.New(t)
		return s.URL(), s.Root
	}},
}

// narinfoOf reads the narinfo of store path p from a cache directory.
func narinfoOf(t *testing.T, dir, p string) *cache.NarInfo {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, cache.NarInfoName(p)))
	require.NoError(t, err)
	ni, err := cache.ParseNarInfo(data)
	require.NoError(t, err)
	return ni
}

// TestPushRepairsTheServer damages a pushed cache on the server (a narinfo
// deleted, a NAR deleted, a NAR truncated) and pushes again: the push
// repairs it, exits 0, and an empty store substitutes every path with
// signatures checked (a NAR damaged without a change of size is found with
// CheckContents, which reads every NAR). The first push fills nix's narinfo disk cache, which
// would answer "present" for the deleted narinfo if nix were asked through it.
func TestPushRepairsTheServer(t *testing.T) {
	b := buildFixture(t, 2, 100)
	closure, err := Closure(t.Context(), b.Engine, b.Paths)
	require.NoError(t, err)
	require.Len(t, closure, 3)
	victim := closure[0]
	damages := []struct {
		name         string
		damage       func(t *testing.T, dir string)
		wantRepaired int
		wantLog      string
		deep         bool
	}{
		{"narinfo deleted", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, cache.NarInfoName(victim))))
		}, 0, "", false},
		{"NAR deleted", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, narinfoOf(t, dir, victim).URL)))
		}, 1, "is missing", false},
		{"NAR truncated", func(t *testing.T, dir string) {
			nar := filepath.Join(dir, narinfoOf(t, dir, victim).URL)
			st, err := os.Stat(nar)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(nar, st.Size()/2))
		}, 1, "the narinfo says", false},
		{"narinfo altered", func(t *testing.T, dir string) {
			name := filepath.Join(dir, cache.NarInfoName(victim))
			data, err := os.ReadFile(name)
			require.NoError(t, err)
			ni, err := cache.ParseNarInfo(data)
			require.NoError(t, err)
			altered := strings.Replace(string(data), fmt.Sprintf("NarSize: %d", ni.NarSize), fmt.Sprintf("NarSize: %d", ni.NarSize+8), 1)
			require.NotEqual(t, string(data), altered)
			require.NoError(t, os.WriteFile(name, []byte(altered), 0o644))
		}, 1, "its narinfo differs from the local store's path", false},
		{"narinfo of another path", func(t *testing.T, dir string) {
			// The other path's NAR must survive the repair.
			data, err := os.ReadFile(filepath.Join(dir, cache.NarInfoName(closure[1])))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, cache.NarInfoName(victim)), data, 0o644))
		}, 1, "is not a valid narinfo for " + victim, false},
		{"NAR corrupted, same size", func(t *testing.T, dir string) {
			nar := filepath.Join(dir, narinfoOf(t, dir, victim).URL)
			data, err := os.ReadFile(nar)
			require.NoError(t, err)
			data[len(data)/2] ^= 0xff
			require.NoError(t, os.WriteFile(nar, data, 0o644))
		}, 1, "has hash sha256:", true},
	}
	for _, c := range realCaches {
		for _, d := range damages {
			t.Run(c.name+"/"+d.name, func(t *testing.T) {
				uri, dir := c.cache(t)
				key := testKey(t)
				_, log, _, err := pushTo(t, b, uri, key)
				require.NoError(t, err, log)
				d.damage(t, dir)
				// The damage is real: an empty store cannot substitute.
				_, err = substitute(t, uri, key.Public(), b.Paths)
				require.Error(t, err, "the damaged cache must not substitute")

				out, log, sums, err := pushWith(t, b, uri, key, func(o *Options) { o.CheckContents = d.deep })
				require.NoError(t, err, log)
				require.Len(t, sums, 1)
				assert.Equal(t, 1, sums[0].Pushed, "only the damaged path is uploaded")
				assert.Equal(t, d.wantRepaired, sums[0].Repaired)
				assert.Contains(t, out, "pushed 1 paths to "+uri)
				assert.Contains(t, log, d.wantLog)
				requireNARsPresent(t, dir)
				msg, err := substitute(t, uri, key.Public(), b.Paths)
				require.NoError(t, err, msg)

				// And the next push finds nothing to do.
				out, log, _, err = pushTo(t, b, uri, key)
				require.NoError(t, err, log)
				assert.Contains(t, out, "nothing to push: 3 paths already in "+uri)
			})
		}
	}
}

// TestPushRepairNeedsDelete: a server that refuses DELETE cannot be
// repaired by the push; the error says so and names the files to remove.
func TestPushRepairNeedsDelete(t *testing.T) {
	b := buildFixture(t, 1, 100)
	ng := testnginx.New(t)
	u, err := url.Parse(ng.URL())
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(u)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			http.Error(w, "no", http.StatusMethodNotAllowed)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	key := testKey(t)
	_, log, _, err := pushTo(t, b, proxy.URL, key)
	require.NoError(t, err, log)
	ni := narinfoOf(t, ng.Root, b.Paths[0])
	require.NoError(t, os.Remove(filepath.Join(ng.Root, ni.URL)))

	_, log, _, err = pushTo(t, b, proxy.URL, key)
	require.Error(t, err, log)
	assert.Equal(t, clierr.ExitFailed, clierr.Code(err))
	assert.ErrorContains(t, err, "allow DELETE for the push credentials, or delete "+cache.NarInfoName(b.Paths[0])+" and "+ni.URL+" on the server")
}
