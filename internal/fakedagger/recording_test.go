package fakedagger

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRecordingRoundTrip(t *testing.T) {
	dir := t.TempDir()
	rec := Recording{
		"build":   {Args: []string{"nix", "build", "--keep-going"}, ExecResult: ExecResult{ExitCode: 1, Stderr: "@nix {}\n"}},
		"version": {Args: []string{"nix", "--version"}, ExecResult: ExecResult{Stdout: "nix (Nix) 2.8.0\n"}},
	}
	require.NoError(t, rec.Save(dir))
	got, err := LoadRecording(dir)
	require.NoError(t, err)
	assert.Equal(t, rec, got)

	_, err = LoadRecording(t.TempDir())
	require.ErrorContains(t, err, "no recorded commands")
}

func TestNixCommandKey(t *testing.T) {
	nix := func(args ...string) []string {
		return append([]string{"nix", "--extra-experimental-features", "nix-command flakes"}, args...)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"nix", "--version"}, "version"},
		{nix("show-config", "--json"), "config"},
		{nix("config", "show", "--json"), "config"},
		{[]string{"cat", "/etc/nix/machines"}, "builders"},
		{nix("eval", "--json", "--impure", "--expr", "x"), "discover"},
		{nix("eval", "--impure", "--raw", "--expr", "x"), "eval-error"},
		{nix("build", "--keep-going", "/nix/store/a.drv"), "build"},
		{[]string{"nix-store", "--check-validity", "--print-invalid", "/nix/store/a"}, "check-validity"},
		{nix("show-derivation", "-r", "/nix/store/a.drv"), "derivation-graph"},
		{nix("derivation", "show", "-r", "/nix/store/a.drv"), "derivation-graph"},
		{nix("path-info", "--json", "--store", "s3://b"), "path-info"},
		{[]string{"sh", "-c", "true"}, "other"},
		{nil, "other"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, NixCommandKey(tt.args), "%q", tt.args)
	}
}
