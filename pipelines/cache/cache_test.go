package cache

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
)

const (
	pathA = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a"
	pathB = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		uri     string
		wantErr string
	}{
		{"file:///var/cache/nix", ""},
		{"https://cache.example.org", ""},
		{"http://127.0.0.1:8080/cache", ""},
		{"s3://bucket?region=eu-west-1&endpoint=minio.local", ""},
		{"ssh://builder", ""},
		{"/var/cache/nix", "not a Nix store URI"},
		{"ftp://host/x", "does not know the store type"},
		{"file://", "absolute path"},
		{"file://relative/dir", "absolute path"},
		{"https:///path", "has no host"},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			err := Validate(tt.uri)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			assert.Equal(t, clierr.ExitUsage, clierr.Code(err))
		})
	}
}

func TestHashPart(t *testing.T) {
	assert.Equal(t, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", HashPart(pathA))
	assert.Equal(t, "nohyphen", HashPart("/nix/store/nohyphen"))
}

func TestFile(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, HashPart(pathA)+".narinfo"), []byte("StorePath: "+pathA), 0o644))
	l, err := New("file://"+dir, nil)
	require.NoError(t, err)
	assert.Equal(t, "file://"+dir, l.URI())
	got, err := l.Has(t.Context(), []string{pathA, pathB, pathA})
	require.NoError(t, err)
	assert.Equal(t, map[string]bool{pathA: true, pathB: false}, got)

	// A cache directory that does not exist yet has nothing.
	l, err = New("file://"+filepath.Join(dir, "missing"), nil)
	require.NoError(t, err)
	got, err = l.Has(t.Context(), []string{pathA})
	require.NoError(t, err)
	assert.Equal(t, map[string]bool{pathA: false}, got)
}

// setup starts a binary cache under a non-root base path.
func setup(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/cache/", http.StripPrefix("/cache", h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/cache"
}

func TestHTTP(t *testing.T) {
	var requests atomic.Int32
	base := setup(t, func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		assert.Equal(t, http.MethodHead, r.Method)
		if r.URL.Path == "/"+HashPart(pathA)+".narinfo" {
			return
		}
		http.NotFound(w, r)
	})
	l, err := New(base+"/?priority=30", nil)
	require.NoError(t, err)
	got, err := l.Has(t.Context(), []string{pathA, pathB})
	require.NoError(t, err)
	assert.Equal(t, map[string]bool{pathA: true, pathB: false}, got)
	assert.EqualValues(t, 2, requests.Load())
}

func TestHTTPRetriesServerErrors(t *testing.T) {
	var n atomic.Int32
	base := setup(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 2 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
	})
	l, err := New(base, nil)
	require.NoError(t, err)
	got, err := l.Has(t.Context(), []string{pathA})
	require.NoError(t, err)
	assert.True(t, got[pathA])
	assert.EqualValues(t, 3, n.Load())
}

func TestHTTPUnreachable(t *testing.T) {
	base := setup(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	l, err := New(base, nil)
	require.NoError(t, err)
	_, err = l.Has(t.Context(), []string{pathA})
	require.ErrorContains(t, err, "unreachable")
	assert.True(t, strings.Contains(err.Error(), "503"))

	_, err = New("s3://bucket", nil)
	require.ErrorContains(t, err, "need nix")
}

func TestHTTPConcurrencyBound(t *testing.T) {
	var inFlight, peak atomic.Int32
	base := setup(t, func(w http.ResponseWriter, r *http.Request) {
		cur := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if cur <= p || peak.CompareAndSwap(p, cur) {
				break
			}
		}
		http.NotFound(w, r)
	})
	l, err := New(base, nil)
	require.NoError(t, err)
	l.(*HTTP).Concurrency = 4
	var paths []string
	for i := 0; i < 100; i++ {
		paths = append(paths, "/nix/store/"+strings.Repeat(string(rune('a'+i%26)), 31)+string(rune('a'+i/26))+"-p")
	}
	got, err := l.Has(t.Context(), paths)
	require.NoError(t, err)
	assert.Len(t, got, 100)
	assert.LessOrEqual(t, peak.Load(), int32(4))
}
