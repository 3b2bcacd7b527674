package stages

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// needNix skips when nix is missing, and fails under CI=true.
func needNix(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nix"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("nix is required under CI=true: %v", err)
		}
		t.Skip("nix is not on PATH")
	}
	// Nothing to fetch: never wait on a substituter.
	t.Setenv("NIX_CONFIG", "substituters =")
}

// fixtureFlake writes a flake with no inputs whose checks use /bin/sh as
// builder. checks maps a check name to its builder script; a name ending
// in "-vm" gets requiredSystemFeatures kvm and nixos-test.
func fixtureFlake(t *testing.T, nonce string, checks map[string]string, extra string) string {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString(`{
  outputs = { self }:
    let
      mk = name: script: features: builtins.derivation ({
        inherit name;
        system = "x86_64-linux";
        builder = "/bin/sh";
        args = [ "-c" script ];
        nonce = "` + nonce + `";
      } // (if features == [ ] then { } else { requiredSystemFeatures = features; }));
    in {
      checks.x86_64-linux = {
`)
	for name, script := range checks {
		features := "[ ]"
		if strings.HasSuffix(name, "-vm") {
			features = `[ "kvm" "nixos-test" ]`
		}
		b.WriteString("        \"" + name + "\" = mk \"" + name + "\" ''" + script + "'' " + features + ";\n")
	}
	b.WriteString("      };\n" + extra + "    };\n}\n")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "flake.nix"), []byte(b.String()), 0o644))
	return dir
}
