package cmd

import (
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
	"github.com/ipex-flake/ipex-flake/internal/testsshd"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

// TestBuildRemoteEndToEnd: `ci build --builders @FILE --local-jobs 0` builds
// every output on the loopback builder; the report names it.
func TestBuildRemoteEndToEnd(t *testing.T) {
	srv := testsshd.Start(t)
	testlib.OfflineNix(t)
	t.Setenv("NIX_SSHOPTS", "") // only the ci's environment carries it
	dir := t.TempDir()
	require.NoError(t, fixture.Write(dir, fixture.Generated(3, testlib.Nonce())))
	machine, err := srv.Machine("x86_64-linux", 2, "")
	require.NoError(t, err)
	machines := filepath.Join(t.TempDir(), "machines")
	require.NoError(t, os.WriteFile(machines, []byte(machine+"\n"), 0o600))

	rep := filepath.Join(t.TempDir(), "r.json")
	io, _, errb := testIO(map[string]string{"NIX_SSHOPTS": srv.SSHOpts()})
	code := Run(t.Context(), io, []string{"build", "--engine", "host", "--flake", dir, "--cache", "file://" + t.TempDir(),
		"--report", rep, "--builders", "@" + machines, "--local-jobs", "0"})
	require.Equal(t, clierr.ExitOK, code, errb.String())
	assert.Contains(t, errb.String(), "ci build: remote builders: the machines file "+machines+"; builds on this machine: 0")
	assert.NotContains(t, errb.String(), strings.Fields(machine)[7], "the machine list is not printed")
	// The builder's private key is read by ssh alone: it is in no report
	// and no log line.
	key, err := os.ReadFile(filepath.Join(srv.Dir, "client_key"))
	require.NoError(t, err)
	body := strings.Split(strings.TrimSpace(string(key)), "\n")[2] // key material, not the format header
	data, err := os.ReadFile(rep)
	require.NoError(t, err)
	assert.NotContains(t, string(data), body)
	assert.NotContains(t, errb.String(), body)

	r, err := report.Read(rep)
	require.NoError(t, err)
	require.Len(t, r.Outputs, 3)
	for _, o := range r.Outputs {
		assert.Equal(t, report.StatusBuilt, o.Status, o.Attr)
		assert.Equal(t, srv.URI(), o.Builder, o.Attr)
		for _, p := range o.OutPaths {
			err := exec.Command("nix-store", "--store", "local?root="+srv.Store, "--check-validity", p).Run()
			assert.NoError(t, err, "%s is not in the builder's store", p)
		}
	}
}
