package cmd

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/internal/testnginx"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/push"
	"github.com/ipex-flake/ipex-flake/pipelines/push/signing"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

// isolatedHome points the user cache and config directories (the default
// cache, the generated key) into the test's own directory.
func isolatedHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", filepath.Join(home, "cache"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "config"))
	return home
}

// keyFile writes a fresh secret key named name and returns its file and
// public key.
func keyFile(t *testing.T, name string) (string, string) {
	t.Helper()
	k, err := signing.Generate(name)
	require.NoError(t, err)
	f := filepath.Join(t.TempDir(), name+".sec")
	require.NoError(t, os.WriteFile(f, []byte(k.Secret()), 0o600))
	return f, k.Public()
}

// substituteAll copies paths from cacheURI into an empty chroot store
// trusting only pub, asking the cache itself; it returns nix's output.
func substituteAll(t *testing.T, cacheURI, pub string, paths []string) (string, error) {
	t.Helper()
	store := filepath.Join(t.TempDir(), "store")
	args := append([]string{"--extra-experimental-features", "nix-command flakes", "copy", "--from", cacheURI, "--to", store,
		"--option", "trusted-public-keys", pub}, push.NoNarinfoCache...)
	out, err := exec.CommandContext(t.Context(), "nix", append(args, paths...)...).CombinedOutput()
	return string(out), err
}

// outPaths returns the out paths of the report's outputs of status st.
func outPaths(t *testing.T, rep, st string) []string {
	t.Helper()
	r, err := report.Read(rep)
	require.NoError(t, err)
	var out []string
	for _, o := range r.Outputs {
		if o.Status == st {
			out = append(out, o.OutPaths...)
		}
	}
	return out
}

// generatedFlake writes a fixture flake of n generated packages and
// returns its directory and a path for its build report.
func generatedFlake(t *testing.T, n int) (dir, rep string) {
	t.Helper()
	dir = t.TempDir()
	require.NoError(t, fixture.Write(dir, fixture.Generated(n, testlib.Nonce())))
	return dir, filepath.Join(t.TempDir(), "r.json")
}

// TestPushDecidesAgainstTheTarget: `ci build` against the default local
// cache reports every output cached; `ci push --cache http://…` still
// uploads their closures, because what the target lacks is asked of the
// target.
func TestPushDecidesAgainstTheTarget(t *testing.T) {
	testlib.OfflineNix(t)
	isolatedHome(t)
	ng := testnginx.New(t)
	dir, rep := generatedFlake(t, 3)
	build := []string{"build", "--engine", "host", "--flake", dir, "--report", rep}
	io, _, errb := testIO(nil)
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, build), errb.String())
	io, _, errb = testIO(nil)
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, []string{"push", "--report", rep, "--force"}), errb.String())
	io, _, errb = testIO(nil)
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, build), errb.String())
	cached := outPaths(t, rep, report.StatusCached)
	require.Len(t, cached, 3, "the second build finds every output in the default cache")

	key, pub := keyFile(t, "cache.example.org-1")
	io, stdout, errb := testIO(map[string]string{signing.EnvKeyFile: key})
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, []string{"push", "--report", rep, "--force", "--cache", ng.URL()}), errb.String())
	assert.Contains(t, stdout.String(), "pushed 4 paths to "+ng.URL(), "3 outputs and their shared dependency")
	msg, err := substituteAll(t, ng.URL(), pub, cached)
	require.NoError(t, err, msg)

	// On a machine whose store lacks the outputs, they come from the cache
	// the build consulted (the default cache here), and nothing is built.
	// Its paths are signed by the local key: trusted only when named.
	t.Setenv("NIX_CONFIG", os.Getenv("NIX_CONFIG")+"\nstore = "+filepath.Join(t.TempDir(), "fresh"))
	other := "file://" + filepath.Join(t.TempDir(), "other")
	io, _, errb = testIO(map[string]string{signing.EnvKeyFile: key})
	require.Equal(t, clierr.ExitFailed, Run(t.Context(), io, []string{"push", "--report", rep, "--force", "--cache", other}), errb.String())
	assert.Contains(t, errb.String(), "(cache.example.org-1) in "+cache.DefaultURI()+" (its narinfo has signatures by "+signing.DefaultKeyName+" only)")
	assert.NoDirExists(t, strings.TrimPrefix(other, "file://"), "nothing was pushed")
	local, err := signing.LoadFile(signing.DefaultKeyPath(), "the local key")
	require.NoError(t, err)
	io, stdout, errb = testIO(map[string]string{signing.EnvKeyFile: key})
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, []string{"push", "--report", rep, "--force", "--cache", other, "--from-key", local.Public()}), errb.String())
	assert.Contains(t, errb.String(), "fetching 3 outputs this store lacks from "+cache.DefaultURI())
	assert.NotContains(t, errb.String(), "building '")
	assert.Contains(t, stdout.String(), "pushed 4 paths to "+other)
}

// TestUnwritableCaches: a cache that cannot be written fails ci push with
// exit 2 before anything is signed (no key is generated); ci build warns
// once about a file:// cache directory that does not exist.
func TestUnwritableCaches(t *testing.T) {
	testlib.OfflineNix(t)
	outPath := buildOne(t)
	rep := builtReport(t, report.Report{Engine: "host"}, outPath)
	forbidden := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			http.NotFound(w, r)
			return
		}
		assert.Equal(t, http.MethodPut, r.Method, "only the test PUT reaches the server")
		w.WriteHeader(http.StatusMethodNotAllowed)
	}))
	t.Cleanup(forbidden.Close)
	tests := []struct {
		name, cache, want string
	}{
		{"file under /proc", "file:///proc/x", "cache file:///proc/x cannot be written"},
		{"http 405", forbidden.URL, "a test PUT of nix-cache-info was answered 405"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := isolatedHome(t)
			io, stdout, errb := testIO(nil)
			code := Run(t.Context(), io, []string{"push", "--report", rep, "--force", "--cache", tt.cache})
			assert.Equal(t, clierr.ExitUsage, code, errb.String())
			assert.Contains(t, errb.String(), tt.want)
			assert.NotContains(t, errb.String(), "added ", "nothing was signed")
			assert.NotContains(t, stdout.String(), "pushed")
			assert.NoDirExists(t, filepath.Join(home, "config", "ipex-flake"), "no key generated")
		})
	}

	dir := t.TempDir()
	require.NoError(t, fixture.Write(dir, fixture.Generated(1, testlib.Nonce())))
	io, _, errb := testIO(nil)
	code := Run(t.Context(), io, []string{"build", "--engine", "host", "--flake", dir, "--cache", "file:///proc/x", "--report", filepath.Join(t.TempDir(), "r.json")})
	require.Equal(t, clierr.ExitOK, code, errb.String())
	assert.Equal(t, 1, strings.Count(errb.String(), "warning: cache directory /proc/x does not exist"), errb.String())

	io, _, errb = testIO(nil)
	code = Run(t.Context(), io, []string{"build", "--engine", "host", "--flake", dir, "--push-to", forbidden.URL, "--report", filepath.Join(t.TempDir(), "r.json")})
	assert.Equal(t, clierr.ExitUsage, code, errb.String())
	assert.Contains(t, errb.String(), "answered 405")
	assert.NotContains(t, errb.String(), "building", "nothing is built when the staging cache cannot be written")
}

// TestPushKeysThroughTheCommand: after a push with the locally generated
// key, a push with NIX_SIGNING_KEY_FILE to a shared cache leaves no
// signature of the local key there; after the shared key rotates, ci push
// names the old key and the fix, and --resign makes the cache verify with
// the new key.
func TestPushKeysThroughTheCommand(t *testing.T) {
	testlib.OfflineNix(t)
	isolatedHome(t)
	ng := testnginx.New(t)
	outPath := buildOne(t)
	rep := builtReport(t, report.Report{Engine: "host"}, outPath)
	push := func(env map[string]string, args ...string) (int, string, string) {
		io, stdout, errb := testIO(env)
		code := Run(t.Context(), io, append([]string{"push", "--report", rep, "--force"}, args...))
		return code, stdout.String(), errb.String()
	}

	code, _, errb := push(nil)
	require.Equal(t, clierr.ExitOK, code, errb)
	require.Contains(t, errb, "generated signing key "+signing.DefaultKeyName)

	oldKey, oldPub := keyFile(t, "cache.example.org-1")
	code, _, errb = push(map[string]string{signing.EnvKeyFile: oldKey}, "--cache", ng.URL())
	require.Equal(t, clierr.ExitOK, code, errb)
	narinfo, err := os.ReadFile(filepath.Join(ng.Root, strings.SplitN(filepath.Base(outPath), "-", 2)[0]+".narinfo"))
	require.NoError(t, err)
	assert.Contains(t, string(narinfo), "Sig: cache.example.org-1:")
	assert.NotContains(t, string(narinfo), signing.DefaultKeyName, "the local key's signature stays off the shared cache")

	newKey, newPub := keyFile(t, "cache.example.org-2")
	code, _, errb = push(map[string]string{signing.EnvKeyFile: newKey}, "--cache", ng.URL())
	assert.Equal(t, clierr.ExitFailed, code, errb)
	assert.Contains(t, errb, "not signed by the current key cache.example.org-2: they were signed by cache.example.org-1 (1)")
	assert.Contains(t, errb, "run `ci push --resign`")

	code, stdout, errb := push(map[string]string{signing.EnvKeyFile: newKey}, "--cache", ng.URL(), "--resign")
	require.Equal(t, clierr.ExitOK, code, errb)
	assert.Contains(t, stdout, "1 re-signed")
	for _, pub := range []string{newPub, oldPub} {
		msg, err := substituteAll(t, ng.URL(), pub, []string{outPath})
		require.NoError(t, err, msg)
	}
}
