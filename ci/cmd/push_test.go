package cmd

import (
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/ipex-flake/ipex-flake/pipelines/push/signing"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
)

// envWithPATH is a process environment of env and the real PATH (where the
// host engine finds nix and git).
func envWithPATH(env map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := env[k]; ok || k != "PATH" {
			return v
		}
		return os.Getenv("PATH")
	}
}

func testIO(env map[string]string) (*IO, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &IO{In: &bytes.Buffer{}, Out: &out, Err: &errb, Getenv: envWithPATH(env)}, &out, &errb
}

func TestPushFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want PushOptions
	}{
		{"defaults", nil, PushOptions{Report: report.DefaultReportPath}},
		{"all", []string{"--cache", "s3://b?region=x", "--signing-key-file", "k", "--report", "r.json", "--force", "--cachix", "c",
			"--resign", "--from", "http://staging", "--from", "file:///srv/c", "--check-contents"},
			PushOptions{Cache: "s3://b?region=x", SigningKeyFile: "k", Report: "r.json", Force: true, Cachix: "c",
				Resign: true, From: []string{"http://staging", "file:///srv/c"}, CheckContents: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			io, _, _ := testIO(nil)
			var got *PushOptions
			c := newPushCmdWith(io, func(_ context.Context, _ *IO, o *PushOptions) error { got = o; return nil })
			c.SetArgs(tt.args)
			require.NoError(t, c.Execute())
			assert.Equal(t, tt.want, *got)
		})
	}
}

func TestPushUsageErrors(t *testing.T) {
	home := isolatedHome(t)
	dir := t.TempDir()
	rep := filepath.Join(dir, "r.json")
	require.NoError(t, (&report.Report{}).Write(rep))
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no report", []string{"push", "--report", filepath.Join(dir, "none.json")}, nil, "run `ci build` first"},
		{"bad cache", []string{"push", "--report", rep, "--cache", "ftp://x"}, nil, "store type"},
		{"bad key", []string{"push", "--report", rep, "--cache", "file:///tmp/x"}, map[string]string{signing.EnvKey: "name:bm90LWEta2V5"}, "not a Nix secret key"},
		{"unreadable key file", []string{"push", "--report", rep, "--signing-key-file", filepath.Join(dir, "none.sec")}, nil, "nix key generate-secret"},
		{"key file is not a key", []string{"push", "--report", rep, "--signing-key-file", rep}, nil, "must start with a key name"},
		{"public key as secret", []string{"push", "--report", rep}, map[string]string{signing.EnvKey: "n-1:4A1CsGvdUB0PNL4oKxO2ZX6FCN8k9GY3DUWU0Xg5ob8="}, "this is a public key"},
		{"not a report", []string{"push", "--report", filepath.Join(dir)}, nil, dir},
		{"cachix without token", []string{"push", "--report", rep, "--cachix", "c"}, nil, "CACHIX_AUTH_TOKEN"},
		{"trusted source", []string{"push", "--report", rep, "--from", "s3://staging?region=eu-west-1&trusted=1", "--from-key", "staging-1:4A1CsGvdUB0PNL4oKxO2ZX6FCN8k9GY3DUWU0Xg5ob8="}, nil, "remove trusted= from the store URI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			io, _, errb := testIO(tt.env)
			code := Run(t.Context(), io, tt.args)
			assert.Equal(t, clierr.ExitUsage, code)
			assert.Contains(t, errb.String(), tt.want)
			assert.NotContains(t, errb.String(), "bm90LWEta2V5")
			_, err := os.Stat(home + "/config")
			assert.True(t, os.IsNotExist(err), "a usage error changes nothing: no key generated")
			_, err = os.Stat(home + "/cache/ipex-flake")
			assert.True(t, os.IsNotExist(err), "a usage error changes nothing: no cache created")
		})
	}
}

// TestPushGateReadsResults pushes only once unit has passed for the
// report's commit, as recorded in the results file of the flake's git
// repository; a closed gate generates no key and creates no cache.
func TestPushGateReadsResults(t *testing.T) {
	testlib.OfflineNix(t)
	testlib.CheckPath(t, "git")
	home := isolatedHome(t)
	repo := t.TempDir()
	git := func(args ...string) string {
		out, err := exec.CommandContext(t.Context(), "git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.org"}, args...)...).CombinedOutput()
		require.NoError(t, err, string(out))
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	require.NoError(t, os.WriteFile(filepath.Join(repo, "README"), []byte("x\n"), 0o644))
	git("add", "README")
	git("commit", "-qm", "init")
	rev := git("rev-parse", "HEAD")
	rep := builtReport(t, report.Report{Flake: repo, Engine: "host", Rev: rev}, buildOne(t))
	store := &results.FileStore{Path: results.DefaultPath(filepath.Join(repo, ".git"))}

	io, stdout, errb := testIO(map[string]string{})
	assert.Equal(t, clierr.ExitFailed, Run(t.Context(), io, []string{"push", "--report", rep}), errb.String())
	assert.Contains(t, errb.String(), "unit (no result); run `ci test --stage unit` first, or pass --force")
	assert.Empty(t, stdout.String())
	_, err := os.Stat(filepath.Join(home, "config"))
	assert.True(t, os.IsNotExist(err), "no key is generated when the gate is closed")
	_, err = os.Stat(filepath.Join(home, "cache", "ipex-flake"))
	assert.True(t, os.IsNotExist(err), "no cache is created when the gate is closed")

	want, err := results.ResolveFlake(t.Context(), repo)
	require.NoError(t, err)
	r, err := report.Read(rep)
	require.NoError(t, err)
	want.Report = r.Digest()

	require.NoError(t, store.Record(t.Context(), results.Result{Stage: "unit", Rev: rev, State: results.StateFailed, Binding: want}))
	io, _, errb = testIO(map[string]string{})
	assert.Equal(t, clierr.ExitFailed, Run(t.Context(), io, []string{"push", "--report", rep}), errb.String())
	assert.Contains(t, errb.String(), "unit (failed)")

	// A pass recorded without a binding, or for another build report,
	// opens nothing: exit 2, naming both.
	other := want
	other.Report = "sha256:" + strings.Repeat("0", 64)
	for _, b := range []results.Binding{{}, other} {
		require.NoError(t, store.Record(t.Context(), results.Result{Stage: "unit", Rev: rev, State: results.StatePassed, Binding: b}))
		io, _, errb = testIO(map[string]string{})
		assert.Equal(t, clierr.ExitUsage, Run(t.Context(), io, []string{"push", "--report", rep}), errb.String())
		assert.Contains(t, errb.String(), "unit was passed for "+b.String()+", but this is "+want.String())
	}

	require.NoError(t, store.Record(t.Context(), results.Result{Stage: "unit", Rev: rev, State: results.StatePassed, Binding: want}))
	io, stdout, errb = testIO(map[string]string{})
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, []string{"push", "--report", rep}), errb.String())
	assert.Contains(t, errb.String(), "checking stage results for "+rev[:12]+" in "+filepath.Join(repo, ".git", "ipex-ci", "results.json"))
	assert.NotContains(t, errb.String(), "--force")
	assert.Contains(t, stdout.String(), "pushed 1 paths to file://")
}

// buildOne builds a one-package fixture flake and returns its out path.
func buildOne(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, fixture.Write(dir, fixture.Flake{Nonce: testlib.Nonce(),
		Drvs:     map[string]fixture.Drv{"a": {Script: "echo a > $out"}},
		Packages: map[string]string{"a": "a"}}))
	out, err := exec.CommandContext(t.Context(), "nix", "--extra-experimental-features", "nix-command flakes",
		"--option", "substituters", "", "build", "--no-link", "--json", dir+"#a").Output()
	require.NoError(t, err)
	var built []struct{ Outputs map[string]string }
	require.NoError(t, json.Unmarshal(out, &built))
	require.Len(t, built, 1)
	return built[0].Outputs["out"]
}

// builtReport writes r with outPath as its one output, built, to a new
// file and returns the file.
func builtReport(t *testing.T, r report.Report, outPath string) string {
	t.Helper()
	r.Outputs = []report.Output{{Attr: "packages.x86_64-linux.a", OutPaths: []string{outPath}, Status: report.StatusBuilt}}
	rep := filepath.Join(t.TempDir(), "report.json")
	require.NoError(t, r.Write(rep))
	return rep
}

// TestPushEndToEnd runs `ci push` with no cache and no key: the embedded
// default file:// cache and a key generated on first use.
func TestPushEndToEnd(t *testing.T) {
	testlib.OfflineNix(t)
	home := isolatedHome(t)
	rep := builtReport(t, report.Report{Engine: "host", Rev: "0000000000000000000000000000000000000000"}, buildOne(t))

	// Unit has not passed for this rev: the gate stops the push.
	io, _, errb := testIO(map[string]string{})
	assert.Equal(t, clierr.ExitFailed, Run(t.Context(), io, []string{"push", "--report", rep}), errb.String())
	assert.Contains(t, errb.String(), "--force")
	assert.NotContains(t, errb.String(), "generated signing key", "no key is generated for a push that does not happen")

	io, stdout, errb := testIO(map[string]string{})
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, []string{"push", "--report", rep, "--force"}), errb.String())
	assert.Contains(t, errb.String(), "generated signing key "+signing.DefaultKeyName)
	assert.Contains(t, errb.String(), "--force: pushing")
	assert.Contains(t, stdout.String(), "pushed 1 paths to file://"+filepath.Join(home, "cache"))
	assert.Contains(t, stdout.String(), "extra-substituters = file://")
	assert.Contains(t, stdout.String(), "extra-trusted-public-keys = "+signing.DefaultKeyName+":")
	keyFile := filepath.Join(home, "config", "ipex-flake", "signing-key.sec")
	st, err := os.Stat(keyFile)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	io, stdout, errb = testIO(map[string]string{})
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, []string{"push", "--report", rep, "--force"}), errb.String())
	assert.Contains(t, stdout.String(), "nothing to push: 1 paths already in")
	assert.NotContains(t, errb.String(), "generated signing key")
}
