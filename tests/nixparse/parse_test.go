// Package nixparse checks that every .nix file in the repository parses with
// `nix-instantiate --parse`. The flake's inputs cannot be fetched everywhere,
// so parsing is the check that runs on every machine; evaluation runs in the
// flake's own checks.
package nixparse

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/testlib"
)

// requireTool returns the path of name, skipping the test when it is missing
// locally and failing it when CI=true.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	testlib.CheckPath(t, name)
	path, _ := exec.LookPath(name)
	return path
}

// nixFiles lists every .nix file under root, skipping .git and other VCS or
// build directories that never hold project sources.
func nixFiles(root string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "result":
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(d.Name(), ".nix") {
			files = append(files, path)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

// parse runs nix-instantiate --parse on one file and returns its stderr on failure.
func parse(t *testing.T, tool, file string) error {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), tool, "--parse", file)
	cmd.Stdout = nil
	cmd.Stderr = &stderr
	// A private state dir keeps the parse from touching the user's Nix state.
	cmd.Env = append(os.Environ(), "NIX_STATE_DIR="+t.TempDir(), "NIX_REMOTE=")
	if err := cmd.Run(); err != nil {
		return &parseError{err: err, stderr: stderr.String()}
	}
	return nil
}

type parseError struct {
	err    error
	stderr string
}

func (e *parseError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.stderr) }

func TestNixFilesFinder(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"a.nix", "sub/b.nix", ".git/c.nix", "sub/readme.md", "result/d.nix"} {
		full := filepath.Join(root, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte("{ }\n"), 0o644))
	}
	got, err := nixFiles(root)
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Join(root, "a.nix"), filepath.Join(root, "sub/b.nix")}, got)
}

func TestParseDetectsErrors(t *testing.T) {
	tool := requireTool(t, "nix-instantiate")
	dir := t.TempDir()
	tests := []struct {
		name    string
		src     string
		wantErr bool
	}{
		{name: "attrset", src: "{ a = 1; b = [ \"x\" ]; }\n"},
		{name: "function", src: "{ lib, ... }: { x = lib.mkIf true { }; }\n"},
		{name: "missing semicolon", src: "{ a = 1 }\n", wantErr: true},
		{name: "unclosed string", src: "{ a = \"x; }\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".nix")
			require.NoError(t, os.WriteFile(file, []byte(tc.src), 0o644))
			err := parse(t, tool, file)
			if tc.wantErr {
				assert.Error(t, err)
				return
			}
			assert.NoError(t, err)
		})
	}
}

func TestEveryNixFileParses(t *testing.T) {
	tool := requireTool(t, "nix-instantiate")
	root := testlib.RepoRoot(t)
	files, err := nixFiles(root)
	require.NoError(t, err)
	require.NotEmpty(t, files, "no .nix files found under %s", root)
	assert.Contains(t, files, filepath.Join(root, "flake.nix"), "the repository must have a flake.nix")
	for _, file := range files {
		rel, err := filepath.Rel(root, file)
		require.NoError(t, err)
		t.Run(rel, func(t *testing.T) {
			t.Parallel()
			assert.NoError(t, parse(t, tool, file))
		})
	}
}
