package testlib

import (
	"os"
	"path/filepath"
	"testing"
)

// Gate returns the path of a file that does not exist yet, named name, in a
// directory nix's build users can reach (t.TempDir's parent is private to
// this user): a fixture's builder waits until the file appears, and the
// test creates it to let the build finish. The directory is removed when
// the test ends.
func Gate(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ipex-flake-gate-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}
