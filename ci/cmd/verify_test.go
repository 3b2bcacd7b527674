package cmd

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/internal/testsshd"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
	"github.com/ipex-flake/ipex-flake/release/gitrepo/gittest"
)

func TestVerifyReproducibleFlags(t *testing.T) {
	io, _, _ := testIO(nil)
	var got *VerifyReproducibleOptions
	c := newVerifyCmdWith(io, func(_ context.Context, o *VerifyReproducibleOptions) error { got = o; return nil },
		func(context.Context, *VerifyReleaseOptions) error { return nil })
	c.SetArgs([]string{"reproducible", "--attr", "packages.*", "--report", "r.json", "--allow-differs", "--out", "o.json", "--rev", "abc"})
	require.NoError(t, c.Execute())
	assert.Equal(t, "packages.*", got.Attr)
	assert.Equal(t, "r.json", got.Report)
	assert.True(t, got.AllowDiffers)
	assert.Equal(t, "o.json", got.Out)
	assert.Equal(t, "abc", got.Rev)
}

func TestVerifyReproducibleUsageErrors(t *testing.T) {
	dir := t.TempDir()
	rep := filepath.Join(dir, "r.json")
	require.NoError(t, os.WriteFile(rep, []byte(`{"flake":".","engine":"host","outputs":[{"attr":"packages.x86_64-linux.a","drvPath":"/nix/store/x-a.drv","status":"built"}]}`), 0o644))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no report", []string{"verify", "reproducible", "--report", filepath.Join(dir, "missing.json")}, "run ci build --report"},
		{"nothing selected", []string{"verify", "reproducible", "--report", rep, "--attr", "checks.*"}, "no built or cached output"},
		{"bad glob", []string{"verify", "reproducible", "--report", rep, "--attr", "["}, "not a glob"},
		{"bad builder", []string{"verify", "reproducible", "--report", rep, "--builder", "builder.example"}, "--builder: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			io, _, errb := testIO(nil)
			assert.Equal(t, clierr.ExitUsage, Run(t.Context(), io, tt.args))
			assert.Contains(t, errb.String(), tt.want)
		})
	}
}

// TestVerifyReproducibleComposed builds a fixture flake with ci build, checks
// it with ci verify reproducible, and reads the recorded result back through
// ci release status.
func TestVerifyReproducibleComposed(t *testing.T) {
	testlib.OfflineNix(t)
	g := gittest.New(t)
	require.NoError(t, fixture.Write(g.Dir, fixture.Flake{
		Nonce: testlib.Nonce(),
		Drvs: map[string]fixture.Drv{
			"det": {Script: "echo hello > $out"},
			"rnd": {Script: "read -r x < /proc/sys/kernel/random/uuid; echo $x > $out"},
		},
		Packages: map[string]string{"det": "det", "rnd": "rnd"},
	}))
	g.Git("add", "flake.nix")
	sha := g.Commit("feat: fixture")
	out := t.TempDir()
	rep := filepath.Join(out, "r.json")
	io, _, errb := testIO(nil)
	require.Equal(t, 0, Run(t.Context(), io, []string{"build", "--engine", "host", "--flake", g.Dir,
		"--cache", "file://" + filepath.Join(out, "cache"), "--report", rep}), errb.String())

	// Only the deterministic output: exit 0, recorded as passed.
	io, stdout, errb := testIO(nil)
	require.Equal(t, 0, Run(t.Context(), io, []string{"verify", "reproducible", "--report", rep, "--attr", "*.*.det", "--rev", sha}), errb.String())
	assert.Contains(t, stdout.String(), "reproducible  packages.x86_64-linux.det")
	assert.Contains(t, stdout.String(), "1 reproducible, 0 differs, 0 failed")
	store := &results.FileStore{Path: filepath.Join(g.Dir, ".git", "ipex-ci", "results.json")}
	got, err := store.Get(t.Context(), sha)
	require.NoError(t, err)
	assert.Equal(t, results.StatePassed, got[ReproducibleStage].State)
	assert.Equal(t, bindingOf(t, g.Dir, rep), got[ReproducibleStage].Binding, "bound to the flake and report like a stage's result")

	// Everything: the random output differs, names its file, exits 1.
	io, stdout, errb = testIO(nil)
	js := filepath.Join(out, "repro.json")
	assert.Equal(t, clierr.ExitFailed, Run(t.Context(), io, []string{"verify", "reproducible", "--report", rep, "--out", js, "--rev", sha}), errb.String())
	assert.Contains(t, stdout.String(), "differs       packages.x86_64-linux.rnd")
	assert.Regexp(t, `differs: /nix/store/[a-z0-9]{32}-rnd\n`, stdout.String())
	assert.Contains(t, stdout.String(), "1 reproducible, 1 differs, 0 failed")
	assert.Contains(t, errb.String(), "--allow-differs")
	var written ReproducibleReport
	data, err := os.ReadFile(js)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &written))
	require.Len(t, written.Results, 2)
	got, err = store.Get(t.Context(), sha)
	require.NoError(t, err)
	assert.Equal(t, results.StateFailed, got[ReproducibleStage].State)
	assert.Contains(t, got[ReproducibleStage].Description, "packages.x86_64-linux.rnd")

	// --allow-differs: exit 0, still recorded as failed.
	io, _, errb = testIO(nil)
	assert.Equal(t, 0, Run(t.Context(), io, []string{"verify", "reproducible", "--report", rep, "--allow-differs", "--rev", sha}), errb.String())

	// ci release status shows it for the dev candidate (HEAD).
	t.Chdir(g.Dir)
	io, stdout, errb = relIO(nil)
	require.Equal(t, 0, Run(t.Context(), io, []string{"release", "status"}), errb.String())
	assert.Contains(t, stdout.String(), "evidence for "+sha[:7]+": reproducible failed (1 reproducible, 1 differs, 0 failed: packages.x86_64-linux.rnd)")
}

// TestVerifyReproducibleOnBuilder rebuilds on a second machine (a loopback
// sshd with its own store) through the command.
func TestVerifyReproducibleOnBuilder(t *testing.T) {
	testlib.OfflineNix(t)
	srv := testsshd.Start(t)
	hostKey, err := os.ReadFile(filepath.Join(srv.Dir, "host_key.pub"))
	require.NoError(t, err)
	uri := srv.URI() + "&ssh-key=" + filepath.Join(srv.Dir, "client_key") + "&base64-ssh-public-host-key=" + base64.StdEncoding.EncodeToString(hostKey)
	dir := t.TempDir()
	require.NoError(t, fixture.Write(dir, fixture.Flake{Nonce: testlib.Nonce(),
		Drvs:     map[string]fixture.Drv{"rnd": {Script: "echo built by $$ > $out"}},
		Packages: map[string]string{"rnd": "rnd"}}))
	out := t.TempDir()
	rep := filepath.Join(out, "r.json")
	io, _, errb := testIO(nil)
	require.Equal(t, 0, Run(t.Context(), io, []string{"build", "--engine", "host", "--flake", dir, "--cache", "file://" + filepath.Join(out, "cache"), "--report", rep}), errb.String())
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where the builder's differing output is kept
	io, stdout, errb := testIO(map[string]string{"NIX_SSHOPTS": srv.SSHOpts()})
	assert.Equal(t, clierr.ExitFailed, Run(t.Context(), io, []string{"verify", "reproducible", "--report", rep, "--builder", uri, "--no-record"}), errb.String())
	assert.Contains(t, stdout.String(), "differs       packages.x86_64-linux.rnd")
	assert.Regexp(t, `second build kept as `+regexp.QuoteMeta(tmp)+`/ipex-reproducible-\d+/[a-z0-9]{32}-rnd\.check\n`, stdout.String())
}
