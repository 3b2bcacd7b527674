// Package testlib holds helpers shared by tests that use real tools.
package testlib

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// CheckPath skips the test when tool is not on PATH, or fails it when the
// environment says CI=true: CI must run every real-tool test.
func CheckPath(t testing.TB, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI (CI=true) but not on PATH: install it in .ci/run", tool)
		}
		t.Skipf("%s not on PATH: install it to run this test", tool)
	}
}

// Python returns a python3 that imports every module of imports (Debian's
// /usr/bin/python3 with its python3-* packages when the python3 on PATH
// lacks them). Without one the test skips, or fails when CI=true.
func Python(t testing.TB, imports ...string) string {
	t.Helper()
	CheckPath(t, "python3")
	check := "import " + strings.Join(append([]string{"sys"}, imports...), ", ")
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", check).Run() == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("no python3 imports %s: install the python3-* packages in .ci/run", strings.Join(imports, ", "))
	}
	t.Skipf("no python3 imports %s: install them (apt-get install python3-prometheus-client)", strings.Join(imports, ", "))
	return ""
}

// OfflineNix makes nix in this test use no substituters and enables flakes,
// so builds never wait on the network.
func OfflineNix(t testing.TB) {
	t.Helper()
	CheckPath(t, "nix")
	t.Setenv("NIX_CONFIG", "substituters =\nexperimental-features = nix-command flakes\nwarn-dirty = false")
}

// Nonce returns a random string that makes fixture store paths fresh.
func Nonce() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// PidsWith lists the processes whose command line or environment holds s
// (nix passes derivation attributes to builders as environment variables),
// polling for up to ten seconds while exiting processes are reaped.
func PidsWith(s string) []string {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var pids []string
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			if e.Name()[0] < '0' || e.Name()[0] > '9' {
				continue
			}
			env, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
			cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if strings.Contains(string(env), s) || strings.Contains(string(cmd), s) {
				pids = append(pids, e.Name())
			}
		}
		if len(pids) == 0 || time.Now().After(deadline) {
			return pids
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RepoRoot walks up from the test's working directory to the directory
// holding go.mod: the repository root.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}
