package daggerengine

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
)

// settings parses nix.conf lines ("name = value").
func settings(conf string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(conf, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// TestNixConfigRunsWithoutBuildUsers: the container settings, as the host's
// nix reads them, build as root without a build users group, without the
// sandbox and with flakes.
func TestNixConfigRunsWithoutBuildUsers(t *testing.T) {
	s := settings(NixConfig)
	v, ok := s["build-users-group"]
	require.True(t, ok, "NixConfig sets build-users-group")
	assert.Empty(t, v)

	testlib.CheckPath(t, "nix")
	cmd := exec.Command("nix", "--extra-experimental-features", "nix-command", "show-config", "--json")
	cmd.Env = append(os.Environ(), "NIX_CONFIG="+NixConfig)
	out, err := cmd.Output()
	require.NoError(t, err)
	var conf map[string]struct {
		Value any `json:"value"`
	}
	require.NoError(t, json.Unmarshal(out, &conf))
	assert.Equal(t, "", conf["build-users-group"].Value, "nix reads an empty build users group")
	assert.Equal(t, false, conf["sandbox"].Value)
	assert.Equal(t, false, conf["filter-syscalls"].Value)
}

// TestBuiltOut reads the output path from what the host's nix prints for
// `nix build --json`, not the derivation path that comes first.
func TestBuiltOut(t *testing.T) {
	testlib.OfflineNix(t)
	dir := t.TempDir()
	require.NoError(t, fixture.Write(dir, fixture.Flake{
		Nonce:    testlib.Nonce(),
		Drvs:     map[string]fixture.Drv{"hello": {Script: "echo hello > $out"}},
		Packages: map[string]string{"hello": "hello"},
	}))
	out, err := exec.Command("nix", "build", "--no-link", "--json", dir+"#hello").Output()
	require.NoError(t, err)
	p := builtOut(t, string(out))
	assert.True(t, strings.HasPrefix(p, "/nix/store/"))
	data, err := os.ReadFile(p)
	require.NoError(t, err, "the output exists and is a file, not the .drv")
	assert.Equal(t, "hello\n", string(data))
}

// TestDropGroup runs the script that removes the nixbld group on a copy of
// a group file.
func TestDropGroup(t *testing.T) {
	f := filepath.Join(t.TempDir(), "group")
	require.NoError(t, os.WriteFile(f, []byte("root:x:0:\nnixbld:x:30000:nixbld1,nixbld2\nnogroup:x:65534:\n"), 0o644))
	require.NoError(t, exec.Command("/bin/sh", "-c", dropGroup(f, "nixbld")).Run())
	data, err := os.ReadFile(f)
	require.NoError(t, err)
	assert.Equal(t, "root:x:0:\nnogroup:x:65534:\n", string(data))
}
