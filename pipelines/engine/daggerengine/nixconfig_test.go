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

// TestDropGroup runs the script that removes the nixbld group on copies of
// a group file: a plain file, and a symlink whose target must stay as it
// was.
func TestDropGroup(t *testing.T) {
	const group = "root:x:0:\nnixbld:x:30000:nixbld1,nixbld2\nnogroup:x:65534:\n"
	tests := []struct {
		name    string
		symlink bool
	}{
		{"file", false},
		{"symlink into a store", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, "group")
			target := filepath.Join(dir, "store-group")
			if tt.symlink {
				require.NoError(t, os.WriteFile(target, []byte(group), 0o444))
				require.NoError(t, os.Symlink(target, f))
			} else {
				require.NoError(t, os.WriteFile(f, []byte(group), 0o644))
			}
			out, err := exec.Command("/bin/sh", "-c", dropGroup(f, "nixbld")).CombinedOutput()
			require.NoError(t, err, string(out))
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			assert.Equal(t, "root:x:0:\nnogroup:x:65534:\n", string(data))
			if tt.symlink {
				kept, err := os.ReadFile(target)
				require.NoError(t, err)
				assert.Equal(t, group, string(kept), "the store file is not written through the link")
				fi, err := os.Lstat(f)
				require.NoError(t, err)
				assert.True(t, fi.Mode().IsRegular())
			}
		})
	}
}
