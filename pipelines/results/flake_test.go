package results

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
)

// metadataNarHash is what `nix flake metadata` says about ref.
func metadataNarHash(t *testing.T, ref string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "nix", "--extra-experimental-features", "nix-command flakes",
		"flake", "metadata", "--json", ref).Output()
	require.NoError(t, err)
	var m struct {
		Locked struct {
			NarHash string `json:"narHash"`
		} `json:"locked"`
	}
	require.NoError(t, json.Unmarshal(out, &m))
	return m.Locked.NarHash
}

// TestResolveFlake: the narHash is the one `nix flake metadata` prints,
// for the root flake, a flake in a subdirectory and one outside git; the
// flake is named by its directory in the repository.
func TestResolveFlake(t *testing.T) {
	testlib.OfflineNix(t)
	testlib.CheckPath(t, "git")
	repo := t.TempDir()
	nonce := testlib.Nonce()
	require.NoError(t, fixture.Write(repo, fixture.Flake{Nonce: nonce, Drvs: map[string]fixture.Drv{"a": {Script: "echo > $out"}}, Packages: map[string]string{"a": "a"}}))
	sub := filepath.Join(repo, "examples", "offline")
	require.NoError(t, fixture.Write(sub, fixture.Flake{Nonce: nonce + "b", Drvs: map[string]fixture.Drv{"b": {Script: "echo > $out"}}, Packages: map[string]string{"b": "b"}}))
	git := func(args ...string) {
		cmd := exec.CommandContext(t.Context(), "git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.org"}, args...)...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
	}
	git("init", "-q")
	git("add", ".")
	git("commit", "-qm", "init")
	outside := t.TempDir()
	require.NoError(t, fixture.Write(outside, fixture.Flake{Nonce: nonce + "c", Drvs: map[string]fixture.Drv{"c": {Script: "echo > $out"}}, Packages: map[string]string{"c": "c"}}))

	root, err := ResolveFlake(t.Context(), repo)
	require.NoError(t, err)
	assert.Equal(t, Binding{Flake: ".", NarHash: metadataNarHash(t, repo)}, root)

	offline, err := ResolveFlake(t.Context(), sub)
	require.NoError(t, err)
	assert.Equal(t, Binding{Flake: "examples/offline", NarHash: metadataNarHash(t, sub)}, offline)
	assert.Equal(t, root.NarHash, offline.NarHash, "one source")
	assert.False(t, offline.Matches(Binding{Flake: root.Flake, NarHash: root.NarHash, Report: "sha256:x"}))

	out, err := ResolveFlake(t.Context(), outside)
	require.NoError(t, err)
	assert.Equal(t, Binding{Flake: ".", NarHash: metadataNarHash(t, "path:"+outside)}, out)

	// An uncommitted change is a different source.
	require.NoError(t, os.WriteFile(filepath.Join(repo, "flake.nix"), []byte("{ outputs = { self }: { }; }\n"), 0o644))
	dirty, err := ResolveFlake(t.Context(), repo)
	require.NoError(t, err)
	assert.NotEqual(t, root.NarHash, dirty.NarHash)
	assert.Equal(t, metadataNarHash(t, repo), dirty.NarHash)
}
