package cache

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
)

func TestNetrcFile(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	confDir, empty := t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(confDir, "nix.conf"), []byte("substituters =\nnetrc-file = /srv/from-conf\n"), 0o644))
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"default", map[string]string{"NIX_CONF_DIR": empty}, empty + "/netrc"},
		{"NIX_CONFIG", map[string]string{"NIX_CONFIG": "max-jobs = 2\nnetrc-file = /srv/netrc"}, "/srv/netrc"},
		{"nix.conf", map[string]string{"NIX_CONF_DIR": confDir}, "/srv/from-conf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, NetrcFile(env(tt.env)))
		})
	}
}

// TestFilesUseNetrc: a cache that wants credentials gets those of nix's
// netrc file for its host; without them the write check fails with exit 2
// naming the file, and never shows the password.
func TestFilesUseNetrc(t *testing.T) {
	const user, pass = "pusher", "s3cr3t-pa55"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.Method {
		case http.MethodGet:
			http.NotFound(w, r)
		case http.MethodPut:
			w.WriteHeader(http.StatusCreated)
		}
	}))
	t.Cleanup(srv.Close)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())

	netrc := filepath.Join(t.TempDir(), "netrc")
	t.Setenv("NIX_CONFIG", "netrc-file = "+netrc)
	err := CheckWritable(t.Context(), srv.URL)
	assert.Equal(t, clierr.ExitUsage, clierr.Code(err), "err: %v", err)
	assert.ErrorContains(t, err, "401 Unauthorized")
	assert.ErrorContains(t, err, netrc)

	require.NoError(t, os.WriteFile(netrc, []byte("machine other.example.org login x password y\nmachine 127.0.0.1\n  login "+user+"\n  password "+pass+"\n"), 0o600))
	require.NoError(t, CheckWritable(t.Context(), srv.URL))

	require.NoError(t, os.WriteFile(netrc, []byte("machine 127.0.0.1 login "+user+" password wrong\n"), 0o600))
	err = CheckWritable(t.Context(), srv.URL)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "wrong")
	assert.NotContains(t, err.Error(), pass)
}
