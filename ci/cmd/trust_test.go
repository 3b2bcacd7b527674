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
	"github.com/ipex-flake/ipex-flake/pipelines/report"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
)

// trustRepo is a git repository whose root is a fixture flake with a
// package and a check, with a second fixture flake in examples/offline
// (the layout of this project). It returns the directory and commit.
func trustRepo(t *testing.T, extra ...map[string]string) (string, string) {
	t.Helper()
	testlib.OfflineNix(t)
	nonce := testlib.Nonce()
	root := fixture.Nix(fixture.Flake{Nonce: nonce,
		Drvs:     map[string]fixture.Drv{"app": {Script: "echo app > $out"}, "check": {Script: "echo ok > $out"}},
		Packages: map[string]string{"app": "app"}, Checks: map[string]string{"check": "check"}})
	offline := fixture.Nix(fixture.Flake{Nonce: nonce + "-offline",
		Drvs:     map[string]fixture.Drv{"hello": {Script: "echo hello > $out"}},
		Packages: map[string]string{"hello": "hello"}})
	files := map[string]string{"flake.nix": root, "examples/offline/flake.nix": offline, ".gitignore": ".ci-out/\n"}
	for _, m := range extra {
		for k, v := range m {
			files[k] = v
		}
	}
	return gitRepo(t, files)
}

// TestGateComposedPath runs what CI runs, on one flake and its out paths:
// ci build → ci test --stage unit → ci push → ci release promote --to dev.
// Results for ./examples/offline do not open the gate for ., and a
// rebuilt report with one changed out path does not reuse them.
func TestGateComposedPath(t *testing.T) {
	dir, rev := trustRepo(t)
	t.Chdir(dir)
	home := isolatedHome(t)
	t.Setenv("NIX_CONFIG", "substituters =")
	rep := filepath.Join(".ci-out", "build-report.json")
	cacheURI := "file://" + filepath.Join(home, "bincache")
	noRoots := noGPU(t)

	run := func(want int, args ...string) (string, string) {
		t.Helper()
		io, out, errb := testIO(map[string]string{})
		code := Run(t.Context(), io, args)
		require.Equal(t, want, code, "ci %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), out, errb)
		return out.String(), errb.String()
	}

	run(clierr.ExitOK, "build", "--engine", "host", "--flake", ".", "--report", rep)
	r, err := report.Read(rep)
	require.NoError(t, err)

	// The unit stage of another flake of the same commit: recorded, but it
	// opens neither the push nor the promotion of '.'.
	run(clierr.ExitOK, append([]string{"test", "--stage", "unit", "--engine", "host", "--flake", "./examples/offline", "--report", rep}, noRoots...)...)
	store := &results.FileStore{Path: results.DefaultPath(filepath.Join(dir, ".git"))}
	got, err := store.Get(t.Context(), rev)
	require.NoError(t, err)
	require.Equal(t, results.StatePassed, got["unit"].State)
	assert.Equal(t, "examples/offline", got["unit"].Flake)
	assert.Equal(t, r.Digest(), got["unit"].Report)
	assert.True(t, strings.HasPrefix(got["unit"].NarHash, "sha256-"), got["unit"].NarHash)

	_, errb := run(clierr.ExitUsage, "push", "--report", rep, "--cache", cacheURI)
	assert.Contains(t, errb, "unit was passed for flake examples/offline")
	assert.Contains(t, errb, "but this is flake . (narHash "+got["unit"].NarHash+"), build report "+r.Digest())
	_, errb = run(clierr.ExitUsage, "release", "promote", "--to", "dev", "--report", rep)
	assert.Contains(t, errb, "stage gate: unit was passed for flake examples/offline")
	_, err = os.Stat(filepath.Join(home, "bincache"))
	assert.True(t, os.IsNotExist(err), "a refused push uploads nothing")

	// The unit stage of '.' with this report: push and promotion go ahead.
	run(clierr.ExitOK, append([]string{"test", "--stage", "unit", "--engine", "host", "--flake", ".", "--report", rep}, noRoots...)...)
	out, _ := run(clierr.ExitOK, "push", "--report", rep, "--cache", cacheURI)
	assert.Contains(t, out, "pushed")
	out, _ = run(clierr.ExitOK, "release", "promote", "--to", "dev", "--report", rep)
	assert.Contains(t, out, "+ tag      created v0.0.1-dev.1")
	for _, o := range r.Outputs {
		assert.Contains(t, out, `"`+o.Attr+`": "`+o.OutPaths[0]+`"`, "the manifest lists the report's out paths")
	}
	out, _ = run(clierr.ExitOK, "release", "promote", "--to", "dev") // the report at the default path
	assert.Contains(t, out, "already complete")

	// A rebuild whose one out path differs is another build: the results
	// of the first do not count for it.
	changed := *r
	changed.Outputs = append([]report.Output(nil), r.Outputs...)
	for i, o := range changed.Outputs {
		if len(o.OutPaths) > 0 {
			changed.Outputs[i].OutPaths = []string{strings.Replace(o.OutPaths[0], "/nix/store/", "/nix/store/0", 1)[:len(o.OutPaths[0])]}
			break
		}
	}
	require.NotEqual(t, r.Digest(), changed.Digest())
	rebuilt := filepath.Join(t.TempDir(), "rebuilt.json")
	require.NoError(t, changed.Write(rebuilt))
	_, errb = run(clierr.ExitUsage, "push", "--report", rebuilt, "--cache", cacheURI)
	assert.Contains(t, errb, "build report "+r.Digest()+", but this is flake . ")
	assert.Contains(t, errb, changed.Digest())
	_, errb = run(clierr.ExitUsage, "release", "promote", "--to", "dev", "--report", rebuilt, "--dry-run")
	assert.Contains(t, errb, "stage gate: unit was passed for flake . ")
	assert.Contains(t, errb, changed.Digest())
}
