package cmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/internal/testnginx"
	"github.com/ipex-flake/ipex-flake/pipelines/push/signing"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

// TestStagingCacheBetweenJobs is the staging cache across two machines:
// `ci build --push-to` uploads what it built to nginx; then `ci push`, in
// a fresh empty store (a chroot store in another directory), copies it
// from the staging cache to the release cache and signs it, and nix builds
// nothing there: the store holds no derivation and no build log, and
// nix's output names no build. An empty store then substitutes every
// output from the release cache with the signature checked.
func TestStagingCacheBetweenJobs(t *testing.T) {
	testlib.OfflineNix(t)
	isolatedHome(t)
	staging := testnginx.New(t)
	dir := t.TempDir()
	require.NoError(t, fixture.Write(dir, fixture.Generated(3, testlib.Nonce())))
	rep := filepath.Join(t.TempDir(), "r.json")

	// The build job.
	io, _, errb := testIO(nil)
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, []string{"build", "--engine", "host", "--flake", dir, "--report", rep, "--push-to", staging.URL()}), errb.String())
	assert.Contains(t, errb.String(), "staging: uploaded 4 paths to "+staging.URL())
	r, err := report.Read(rep)
	require.NoError(t, err)
	assert.Equal(t, staging.URL(), r.Staging)
	assert.Equal(t, staging.URL(), r.Cache, "without --cache the staging cache is also the one asked")
	built := outPaths(t, rep, report.StatusBuilt)
	require.Len(t, built, 3)
	ni, err := filepath.Glob(filepath.Join(staging.Root, "*.narinfo"))
	require.NoError(t, err)
	assert.Len(t, ni, 4)

	// A second build finds everything in the staging cache.
	io, _, errb = testIO(nil)
	rep2 := filepath.Join(t.TempDir(), "r2.json")
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, []string{"build", "--engine", "host", "--flake", dir, "--report", rep2, "--push-to", staging.URL()}), errb.String())
	assert.Len(t, outPaths(t, rep2, report.StatusCached), 3)

	// The push job, on a machine whose store is empty.
	root := filepath.Join(t.TempDir(), "fresh")
	t.Setenv("NIX_CONFIG", os.Getenv("NIX_CONFIG")+"\nstore = "+root)
	release := "file://" + filepath.Join(t.TempDir(), "release")
	key, pub := keyFile(t, "release.example.org-1")
	io, stdout, errb := testIO(map[string]string{signing.EnvKeyFile: key})
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, []string{"push", "--report", rep, "--force", "--cache", release}), errb.String())
	log := errb.String()
	assert.Contains(t, log, "fetching 3 outputs this store lacks from "+staging.URL())
	assert.Contains(t, log, "from '"+staging.URL()+"'", "nix substituted from the staging cache")
	assert.NotContains(t, log, "building '", "nix built nothing")
	assert.Contains(t, stdout.String(), "pushed 4 paths to "+release)
	for _, p := range built {
		assert.DirExists(t, filepath.Dir(filepath.Join(root, p)))
		assert.FileExists(t, filepath.Join(root, p), "the output is in the fresh store")
	}
	drvs, err := filepath.Glob(filepath.Join(root, "nix", "store", "*.drv"))
	require.NoError(t, err)
	assert.Empty(t, drvs, "no derivation reached the fresh store")
	logs, _ := filepath.Glob(filepath.Join(root, "nix", "var", "log", "nix", "drvs", "*", "*"))
	assert.Empty(t, logs, "nix wrote no build log in the fresh store")

	t.Setenv("NIX_CONFIG", strings.TrimSuffix(os.Getenv("NIX_CONFIG"), "\nstore = "+root))
	msg, err := substituteAll(t, release, pub, built)
	require.NoError(t, err, msg)
}
