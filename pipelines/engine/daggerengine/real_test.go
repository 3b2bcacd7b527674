package daggerengine

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/fakedagger"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
)

const realFixtureFlake = `{
  outputs = _: {
    packages.x86_64-linux.hello = builtins.derivation {
      name = "ipex-flake-dagger-hello";
      system = "x86_64-linux";
      builder = "/bin/sh";
      args = [ "-c" "echo hello > $out" ];
    };
  };
}
`

// TestRealEngine runs commands, a nix build among them, on a real Dagger
// engine. The image is IPEX_FLAKE_DAGGER_IMAGE (a reference or an OCI
// tarball), else DefaultImage.
func TestRealEngine(t *testing.T) {
	fakedagger.SkipUnlessRealEngine(t)
	src := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(src, "flake.nix"), []byte(realFixtureFlake), 0o644))
	require.NoError(t, os.Symlink("/nonexistent", filepath.Join(src, "result")))

	var log bytes.Buffer
	e, err := New(t.Context(), engine.Options{Source: src, Image: os.Getenv("IPEX_FLAKE_DAGGER_IMAGE"), Log: &log})
	require.NoError(t, err, log.String())
	t.Cleanup(func() { assert.NoError(t, e.Close()) })

	run := func(cmd engine.Cmd) (engine.Result, string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		res, err := e.Run(t.Context(), cmd)
		require.NoError(t, err)
		return res, stdout.String(), stderr.String()
	}

	res, out, _ := run(engine.Cmd{Args: []string{"sh", "-c", "pwd; ls -a"}})
	require.Equal(t, 0, res.ExitCode)
	assert.True(t, strings.HasPrefix(out, "/src\n"), out)
	assert.Contains(t, out, "flake.nix")
	assert.NotContains(t, out, "result", "result* is excluded from the source")

	res, _, _ = run(engine.Cmd{Args: []string{"sh", "-c", "exit 3"}})
	assert.Equal(t, 3, res.ExitCode)

	res, out, _ = run(engine.Cmd{Args: []string{"sh", "-c", `test "$TOKEN" = s3cret && cat`}, Secrets: map[string]string{"TOKEN": "s3cret"}, Stdin: strings.NewReader("from stdin")})
	assert.Equal(t, 0, res.ExitCode)
	assert.Equal(t, "from stdin", out)

	// The build runs in an image without a nixbld group: the engine's nix
	// settings build as root without build users. The group is removed in
	// the same command (each command starts from the image again).
	res, out, errOut := run(engine.Cmd{Args: []string{"sh", "-c", dropGroup("/etc/group", "nixbld") + "nix build --no-link --json .#hello"}})
	require.Equal(t, 0, res.ExitCode, errOut)
	outPath := builtOut(t, out)

	// A new container sees the same /nix: the volume persists the build.
	res, out, _ = run(engine.Cmd{Args: []string{"sh", "-c", "read x < " + outPath + "; echo $x"}})
	assert.Equal(t, 0, res.ExitCode)
	assert.Equal(t, "hello\n", out)
}

// dropGroup is a shell script that removes group from file and fails
// unless it is gone. It reads and writes with shell builtins; a file that
// is a symlink (as in images built by nix's dockerTools, where it points
// into /nix/store, here the shared cache volume) is replaced, never written
// through.
func dropGroup(file, group string) string {
	return `g=""; while IFS= read -r l; do case "$l" in ` + group + `:*) ;; *) g="$g$l
"; esac; done < ` + file + `
if [ -L ` + file + ` ]; then rm -f ` + file + ` || exit 92; fi
printf %s "$g" > ` + file + ` || exit 90
while IFS= read -r l; do case "$l" in ` + group + `:*) exit 91;; esac; done < ` + file + `
`
}

// builtOut reads the output path of the one derivation `nix build --json`
// built. Its first store path is the derivation, not the output.
func builtOut(t *testing.T, stdout string) string {
	t.Helper()
	var built []struct {
		DrvPath string            `json:"drvPath"`
		Outputs map[string]string `json:"outputs"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &built), stdout)
	require.Len(t, built, 1, stdout)
	out := built[0].Outputs["out"]
	require.True(t, strings.HasPrefix(out, "/nix/store/"), stdout)
	require.False(t, strings.HasSuffix(out, ".drv"), "an output, not the derivation: %s", stdout)
	return out
}
