package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/push/signing"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

func testIO(env map[string]string) (*IO, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &IO{In: &bytes.Buffer{}, Out: &out, Err: &errb, Getenv: func(k string) string { return env[k] }}, &out, &errb
}

func TestPushFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want PushOptions
	}{
		{"defaults", nil, PushOptions{Report: report.DefaultReportPath}},
		{"all", []string{"--cache", "s3://b?region=x", "--signing-key-file", "k", "--report", "r.json", "--force", "--cachix", "c"},
			PushOptions{Cache: "s3://b?region=x", SigningKeyFile: "k", Report: "r.json", Force: true, Cachix: "c"}},
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			io, _, errb := testIO(tt.env)
			code := Run(t.Context(), io, tt.args)
			assert.Equal(t, clierr.ExitUsage, code)
			assert.Contains(t, errb.String(), tt.want)
			assert.NotContains(t, errb.String(), "bm90LWEta2V5")
		})
	}
}

// TestPushEndToEnd runs `ci push` with no cache and no key: the embedded
// default file:// cache and a key generated on first use.
func TestPushEndToEnd(t *testing.T) {
	testlib.OfflineNix(t)
	home := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", filepath.Join(home, "cache"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "config"))
	dir := t.TempDir()
	require.NoError(t, fixture.Write(dir, fixture.Flake{Nonce: testlib.Nonce(),
		Drvs:     map[string]fixture.Drv{"a": {Script: "echo a > $out"}},
		Packages: map[string]string{"a": "a"}}))
	out, err := exec.CommandContext(t.Context(), "nix", "--extra-experimental-features", "nix-command flakes",
		"--option", "substituters", "", "build", "--no-link", "--json", dir+"#a").Output()
	require.NoError(t, err)
	var built []struct{ Outputs map[string]string }
	require.NoError(t, json.Unmarshal(out, &built))
	rep := filepath.Join(dir, "report.json")
	require.NoError(t, (&report.Report{Engine: "host", Rev: "0000000000000000000000000000000000000000", Outputs: []report.Output{
		{Attr: "packages.x86_64-linux.a", OutPaths: []string{built[0].Outputs["out"]}, Status: report.StatusBuilt}}}).Write(rep))

	// Unit has not passed for this rev: the gate stops the push.
	io, _, errb := testIO(map[string]string{})
	assert.Equal(t, clierr.ExitFailed, Run(t.Context(), io, []string{"push", "--report", rep}), errb.String())
	assert.Contains(t, errb.String(), "--force")
	assert.Contains(t, errb.String(), "generated signing key "+signing.DefaultKeyName)

	io, stdout, errb := testIO(map[string]string{})
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, []string{"push", "--report", rep, "--force"}), errb.String())
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
