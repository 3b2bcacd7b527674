package daggerengine

import (
	"bytes"
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
	if !fakedagger.RealEngineConfigured() {
		// No Dagger engine can run on machines without internet (its image and
		// CLI are downloaded), so this skip holds under CI=true as well.
		t.Skip("no Dagger engine: set _EXPERIMENTAL_DAGGER_RUNNER_HOST or DAGGER_SESSION_PORT to run against a real engine")
	}
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

	res, out, errOut := run(engine.Cmd{Args: []string{"nix", "build", "--no-link", "--json", ".#hello"}})
	require.Equal(t, 0, res.ExitCode, errOut)
	require.Contains(t, out, "/nix/store/")
	outPath := out[strings.Index(out, "/nix/store/"):]
	outPath = outPath[:strings.IndexByte(outPath, '"')]

	// A new container sees the same /nix: the volume persists the build.
	res, out, _ = run(engine.Cmd{Args: []string{"sh", "-c", "read x < " + outPath + "; echo $x"}})
	assert.Equal(t, 0, res.ExitCode)
	assert.Equal(t, "hello\n", out)
}
