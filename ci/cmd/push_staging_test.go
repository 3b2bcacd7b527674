package cmd

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

// TestStagingCacheBetweenJobs is the staging cache across two machines:
// `ci build --push-to` uploads what it built to nginx; then `ci push`, in
// a fresh empty store (a chroot store in another directory), copies it
// from the staging cache to the release cache and signs it, and nix builds
// nothing there: the store holds no derivation and no build log, and
// nix's output names no build. An empty store then substitutes every
// output from the release cache with the signature checked. That push
// trusts the staging key (NIX_STAGING_PUBLIC_KEY); without it, or with
// another key, it changes nothing (pushTrustRefusals).
func TestStagingCacheBetweenJobs(t *testing.T) {
	testlib.OfflineNix(t)
	isolatedHome(t)
	staging := testnginx.New(t)
	dir, rep := generatedFlake(t, 3)

	// A staging key that is not a key: exit 2, nothing built.
	io, _, errb := testIO(map[string]string{EnvStagingKey: "staging-1:bm90LWEta2V5"})
	require.Equal(t, clierr.ExitUsage, Run(t.Context(), io, []string{"build", "--engine", "host", "--flake", dir, "--report", rep, "--push-to", staging.URL()}), errb.String())
	assert.Contains(t, errb.String(), EnvStagingKey+" is not a Nix secret key")
	assert.NotContains(t, errb.String(), "bm90LWEta2V5")
	assert.NoFileExists(t, rep)

	// The build job, signing with the staging cache's own key.
	stagingKey, err := signing.Generate("staging.example.org-1")
	require.NoError(t, err)
	io, _, errb = testIO(map[string]string{EnvStagingKey: stagingKey.Secret()})
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, []string{"build", "--engine", "host", "--flake", dir, "--report", rep, "--push-to", staging.URL()}), errb.String())
	assert.NotContains(t, errb.String(), stagingKey.Secret()[len("staging.example.org-1:"):])
	assert.Contains(t, errb.String(), "staging: uploaded ")
	assert.Regexp(t, `staging: (4 paths already in|uploaded \d+ paths to) `+regexp.QuoteMeta(staging.URL()), errb.String(), "the upload after the build checks everything")
	r, err := report.Read(rep)
	require.NoError(t, err)
	assert.Equal(t, staging.URL(), r.Staging)
	assert.Equal(t, staging.URL(), r.Cache, "without --cache the staging cache is also the one asked")
	built := outPaths(t, rep, report.StatusBuilt)
	require.Len(t, built, 3)
	ni, err := filepath.Glob(filepath.Join(staging.Root, "*.narinfo"))
	require.NoError(t, err)
	assert.Len(t, ni, 4)

	// Stage jobs substitute from it trusting the staging key.
	msg, err := substituteAll(t, staging.URL(), stagingKey.Public(), built)
	require.NoError(t, err, msg)

	// A second build finds everything in the staging cache.
	io, _, errb = testIO(nil)
	rep2 := filepath.Join(t.TempDir(), "r2.json")
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, []string{"build", "--engine", "host", "--flake", dir, "--report", rep2, "--push-to", staging.URL()}), errb.String())
	assert.Len(t, outPaths(t, rep2, report.StatusCached), 3)

	// A push on the build machine, whose store holds every output: nothing
	// is fetched, so no staging key is needed.
	key, pub := keyFile(t, "release.example.org-1")
	io, _, errb = testIO(map[string]string{signing.EnvKeyFile: key})
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, []string{"push", "--report", rep, "--force", "--cache", "file://" + filepath.Join(t.TempDir(), "local")}), errb.String())
	assert.NotContains(t, errb.String(), "fetching")

	// The push job, on a machine whose store is empty.
	root := filepath.Join(t.TempDir(), "fresh")
	t.Setenv("NIX_CONFIG", os.Getenv("NIX_CONFIG")+"\nstore = "+root)
	release := "file://" + filepath.Join(t.TempDir(), "release")
	pushTrustRefusals(t, rep, staging.URL(), release, key)
	io, stdout, errb := testIO(map[string]string{signing.EnvKeyFile: key, push.EnvStagingPublicKey: stagingKey.Public()})
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

	releaseInfos, err := filepath.Glob(filepath.Join(strings.TrimPrefix(release, "file://"), "*.narinfo"))
	require.NoError(t, err)
	require.Len(t, releaseInfos, 4)
	for _, f := range releaseInfos {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		assert.Contains(t, string(data), "Sig: release.example.org-1:")
		assert.NotContains(t, string(data), "staging.example.org-1", "the staging key's signature stays off the release cache")
	}

	t.Setenv("NIX_CONFIG", strings.TrimSuffix(os.Getenv("NIX_CONFIG"), "\nstore = "+root))
	msg, err = substituteAll(t, release, pub, built)
	require.NoError(t, err, msg)
	pushUnsignedAllowed(t, rep, staging.URL(), key)
}

// pushUnsignedAllowed is the push job, in another empty store, with
// --allow-unsigned-from and no key: the old behaviour, with one warning.
func pushUnsignedAllowed(t *testing.T, rep, stagingURL, keyFile string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "fresh")
	t.Setenv("NIX_CONFIG", os.Getenv("NIX_CONFIG")+"\nstore = "+root)
	release := "file://" + filepath.Join(t.TempDir(), "release")
	io, stdout, errb := testIO(map[string]string{signing.EnvKeyFile: keyFile})
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, []string{"push", "--report", rep, "--force", "--cache", release, "--allow-unsigned-from"}), errb.String())
	assert.Equal(t, 1, strings.Count(errb.String(), "warning: --allow-unsigned-from: fetching 3 outputs from "+stagingURL+" without checking their signatures"), errb.String())
	assert.Contains(t, stdout.String(), "pushed 4 paths to "+release)
}

// pushTrustRefusals runs the push job, on a store that lacks the outputs,
// without a key the staging cache's paths verify against: no key (exit 2,
// naming the flags), a key that is not one (exit 2), a wrong key (exit 1,
// naming the path, the staging cache and the key). Each leaves the release
// cache and the store as they were.
func pushTrustRefusals(t *testing.T, rep, stagingURL, release, keyFile string) {
	t.Helper()
	wrong, err := signing.Generate("wrong.example.org-1")
	require.NoError(t, err)
	releaseDir := strings.TrimPrefix(release, "file://")
	cases := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want []string
	}{
		{"no key", nil, nil, clierr.ExitUsage,
			[]string{"would be fetched from the build report's staging cache " + stagingURL, "--from-key NAME:BASE64", push.EnvStagingPublicKey, "--allow-unsigned-from"}},
		{"--from without a key", nil, []string{"--from", stagingURL}, clierr.ExitUsage,
			[]string{"--from " + stagingURL + ": ci push signs what it fetches with the release key", "--from-key", "--allow-unsigned-from"}},
		{"not a key", nil, []string{"--from-key", "staging-1:bm90LWEta2V5"}, clierr.ExitUsage,
			[]string{`--from-key: key "staging-1" is not a Nix public key`, "nix key convert-secret-to-public"}},
		{"both", map[string]string{push.EnvStagingPublicKey: wrong.Public()}, []string{"--allow-unsigned-from"}, clierr.ExitUsage,
			[]string{"pass one or the other"}},
		{"wrong key", map[string]string{push.EnvStagingPublicKey: wrong.Public()}, nil, clierr.ExitFailed,
			[]string{"is not signed by any key trusted for the sources (wrong.example.org-1, release.example.org-1) in " + stagingURL, "signatures by staging.example.org-1 only"}},
	}
	for _, tt := range cases {
		env := map[string]string{signing.EnvKeyFile: keyFile}
		for k, v := range tt.env {
			env[k] = v
		}
		io, _, errb := testIO(env)
		args := append([]string{"push", "--report", rep, "--force", "--cache", release}, tt.args...)
		require.Equal(t, tt.code, Run(t.Context(), io, args), "%s: %s", tt.name, errb)
		for _, w := range tt.want {
			assert.Contains(t, errb.String(), w, tt.name)
		}
		assert.NotContains(t, errb.String(), "copying path", tt.name+": nothing was fetched or uploaded")
		_, err := os.Stat(releaseDir)
		assert.True(t, os.IsNotExist(err), "%s: the release cache is untouched", tt.name)
	}
}

// TestStagingUploadsAsOutputsFinish: output "waiter" builds only once
// output "first" is in the staging cache (its builder polls the nginx root,
// bounded), so the build can only finish if "first" is uploaded while the
// build is still running.
func TestStagingUploadsAsOutputsFinish(t *testing.T) {
	testlib.OfflineNix(t)
	isolatedHome(t)
	staging := testnginx.New(t)
	dir := t.TempDir()
	f := fixture.Flake{Nonce: testlib.Nonce(), Drvs: map[string]fixture.Drv{
		"first":  {Script: "echo first > $out"},
		"waiter": {Script: "echo placeholder > $out"},
	}, Packages: map[string]string{"first": "first", "waiter": "waiter"}}
	require.NoError(t, fixture.Write(dir, f))
	out, err := exec.CommandContext(t.Context(), "nix", "--extra-experimental-features", "nix-command flakes",
		"eval", "--raw", dir+"#packages.x86_64-linux.first.outPath").Output()
	require.NoError(t, err)
	first := strings.TrimSpace(string(out))
	marker := filepath.Join(staging.Root, cache.NarInfoName(first))
	// Builders run as nixbld users: let them look into the test's directories.
	for d := staging.Root; d != filepath.Dir(d) && strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
		require.NoError(t, os.Chmod(d, 0o755))
	}
	// Up to ten million shell-builtin iterations: far longer than the
	// upload takes, and bounded.
	f.Drvs["waiter"] = fixture.Drv{Script: `i=0; while [ ! -e ` + marker + ` ]; do i=$((i+1)); if [ $i -gt 10000000 ]; then echo "first never reached the staging cache"; exit 1; fi; done; echo waited $i > $out`}
	require.NoError(t, fixture.Write(dir, f))

	rep := filepath.Join(t.TempDir(), "r.json")
	io, _, errb := testIO(nil)
	code := Run(t.Context(), io, []string{"build", "--engine", "host", "--flake", dir, "--report", rep, "--jobs", "2", "--push-to", staging.URL()})
	require.Equal(t, clierr.ExitOK, code, errb.String())
	assert.Contains(t, errb.String(), "staging: uploaded "+first+" to "+staging.URL())
	assert.Len(t, outPaths(t, rep, report.StatusBuilt), 2)
}
