// Package flake tests the flake's Nix code with the real nix, offline: the
// inputs (nixpkgs, github:MordragT/nixos, Home Manager) cannot be fetched
// here, so each test puts stand-ins where they would be:
//
//   - flake.nix's inputs are locked against local stand-in flakes with the
//     input names of github:MordragT/nixos, and the lock must hold exactly
//     one nixpkgs node;
//   - overlays/default.nix and the evaluation gates of nix/checks.nix are
//     evaluated and built against a stand-in of upstream's outputs
//     (testdata/harness.nix);
//   - the security scan's lock audit (lock-nixpkgs.jq) answers as the Go
//     audit does;
//   - docs/flake.md lists every attribute read from upstream.
package flake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/quality/secscan"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// run runs a command and returns its stdout, stderr and error.
func run(t *testing.T, dir string, name string, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// writeFlake writes dir/flake.nix.
func writeFlake(t *testing.T, dir, text string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "flake.nix"), []byte(text), 0o644))
}

// gitFlake writes a flake into a git repository at dir (a git+file URL
// ending in /nixpkgs is how the audit recognises a nixpkgs copy).
func gitFlake(t *testing.T, dir, text string) string {
	t.Helper()
	writeFlake(t, dir, text)
	for _, args := range [][]string{
		{"init", "-q"},
		{"add", "-A"},
		{"-c", "user.email=test@example.invalid", "-c", "user.name=test", "commit", "-qm", "stand-in"},
	} {
		_, stderr, err := run(t, dir, "git", args...)
		require.NoError(t, err, stderr)
	}
	return "git+file://" + dir
}

// The URLs of flake.nix's inputs and the stand-ins that replace them.
var inputURLs = []string{
	"github:NixOS/nixpkgs/nixos-unstable",
	"github:MordragT/nixos",
	"github:milieuim/vaultix",
	"github:nix-community/nixos-anywhere",
	"github:MordragT/nix-templates",
	"github:nix-community/home-manager",
}

// standIns writes stand-in flakes for flake.nix's inputs, with the input
// names and follows of github:MordragT/nixos at the commit
// overlays/upstream.nix names (its flake.nix: nixpkgs, disko and
// home-manager follow its nixpkgs; vaultix brings its own nixpkgs;
// nixos-anywhere follows nixpkgs and disko but brings nixos-stable;
// nix-templates takes nixpkgs as an outputs argument). It returns the
// URL replacements and a flake registry file that resolves the implicit
// `nixpkgs` to one more copy.
func standIns(t *testing.T, root string) (map[string]string, string) {
	t.Helper()
	lib := `{ outputs = _: { lib = { }; }; }`
	unstable := gitFlake(t, filepath.Join(root, "unstable", "nixpkgs"), lib)
	stable := gitFlake(t, filepath.Join(root, "stable", "nixpkgs"), lib)
	vaultixNixpkgs := gitFlake(t, filepath.Join(root, "vaultix-own", "nixpkgs"), lib)
	registryNixpkgs := gitFlake(t, filepath.Join(root, "registry", "nixpkgs"), lib)
	unstableSmall := gitFlake(t, filepath.Join(root, "unstable-small", "nixpkgs"), lib)

	p := func(name string) string { return "path:" + filepath.Join(root, name) }
	writeFlake(t, filepath.Join(root, "disko"), fmt.Sprintf(`{ inputs.nixpkgs.url = %q; outputs = _: { }; }`, unstable))
	writeFlake(t, filepath.Join(root, "vaultix"), fmt.Sprintf(`{
  inputs.nixpkgs.url = %q;
  outputs = _: { };
}`, vaultixNixpkgs))
	writeFlake(t, filepath.Join(root, "nixos-images"), `{
  inputs.nixos-stable.url = "git+file:///nonexistent/stable";
  inputs.nixos-unstable.url = "git+file:///nonexistent/unstable";
  outputs = _: { };
}`)
	writeFlake(t, filepath.Join(root, "nixos-anywhere"), fmt.Sprintf(`{
  inputs = {
    nixpkgs.url = %q;
    disko = { url = %q; inputs.nixpkgs.follows = "nixpkgs"; };
    nixos-stable.url = %q;
    nixos-images = { url = %q; inputs.nixos-unstable.follows = "nixpkgs"; inputs.nixos-stable.follows = "nixos-stable"; };
  };
  outputs = _: { };
}`, unstableSmall, p("disko"), stable, p("nixos-images")))
	writeFlake(t, filepath.Join(root, "templates"), `{ outputs = { self, nixpkgs }: { }; }`)
	writeFlake(t, filepath.Join(root, "upstream-home-manager"), fmt.Sprintf(`{ inputs.nixpkgs.url = %q; outputs = _: { }; }`, unstable))
	writeFlake(t, filepath.Join(root, "mordrag"), fmt.Sprintf(`{
  inputs = {
    nixpkgs.url = %q;
    disko = { url = %q; inputs.nixpkgs.follows = "nixpkgs"; };
    home-manager = { url = %q; inputs.nixpkgs.follows = "nixpkgs"; };
    nixos-anywhere = { url = %q; inputs = { disko.follows = "disko"; nixpkgs.follows = "nixpkgs"; }; };
    templates.url = %q;
    vaultix.url = %q;
  };
  outputs = _: { };
}`, unstable, p("disko"), p("upstream-home-manager"), p("nixos-anywhere"), p("templates"), p("vaultix")))
	writeFlake(t, filepath.Join(root, "home-manager"), fmt.Sprintf(`{ inputs.nixpkgs.url = %q; outputs = _: { }; }`, stable))

	registry := filepath.Join(root, "registry.json")
	reg, err := json.Marshal(map[string]any{"version": 2, "flakes": []any{map[string]any{
		"from": map[string]any{"type": "indirect", "id": "nixpkgs"},
		"to":   map[string]any{"type": "git", "url": strings.TrimPrefix(registryNixpkgs, "git+")},
	}}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(registry, reg, 0o644))

	return map[string]string{
		"github:NixOS/nixpkgs/nixos-unstable": unstable,
		"github:MordragT/nixos":               p("mordrag"),
		"github:milieuim/vaultix":             p("vaultix"),
		"github:nix-community/nixos-anywhere": p("nixos-anywhere"),
		"github:MordragT/nix-templates":       p("templates"),
		"github:nix-community/home-manager":   p("home-manager"),
	}, registry
}

var urlRe = regexp.MustCompile(`url = "([^"]+)"`)

// lockWith locks flakeText (flake.nix with its URLs replaced by the
// stand-ins) and returns flake.lock.
func lockWith(t *testing.T, root, flakeText string, urls map[string]string, registry string) []byte {
	t.Helper()
	for _, m := range urlRe.FindAllStringSubmatch(flakeText, -1) {
		require.Contains(t, urls, m[1], "flake.nix has an input this test has no stand-in for")
	}
	text := urlRe.ReplaceAllStringFunc(flakeText, func(s string) string {
		return fmt.Sprintf("url = %q", urls[urlRe.FindStringSubmatch(s)[1]])
	})
	dir, err := os.MkdirTemp(root, "root")
	require.NoError(t, err)
	writeFlake(t, dir, text)
	_, stderr, err := run(t, dir, "nix", "flake", "lock", "--option", "flake-registry", registry, "path:"+dir)
	require.NoError(t, err, stderr)
	data, err := os.ReadFile(filepath.Join(dir, "flake.lock"))
	require.NoError(t, err)
	return data
}

// flake.nix, locked with the real nix against stand-ins shaped like
// upstream, has one nixpkgs node; without its follows for upstream's
// vaultix, nixos-anywhere and nix-templates it has four, and the audit
// names each with the input path that reaches it.
func TestFlakeLockHasOneNixpkgs(t *testing.T) {
	testlib.OfflineNix(t)
	testlib.CheckPath(t, "git")
	repo := testlib.RepoRoot(t)
	flakeNix, err := os.ReadFile(filepath.Join(repo, "flake.nix"))
	require.NoError(t, err)
	root := t.TempDir()
	urls, registry := standIns(t, root)
	for _, u := range inputURLs {
		require.Contains(t, string(flakeNix), fmt.Sprintf("url = %q", u))
	}

	lock := lockWith(t, root, string(flakeNix), urls, registry)
	got, err := secscan.LockNixpkgs(lock)
	require.NoError(t, err)
	require.Len(t, got, 1, "nixpkgs nodes: %v", got)
	assert.Equal(t, []string{"nixpkgs"}, got[0].Path)

	// The same flake.nix without the three follows of upstream's inputs.
	var kept []string
	for _, l := range strings.Split(string(flakeNix), "\n") {
		if !regexp.MustCompile(`^\s*(vaultix|nixos-anywhere|templates)\.follows = "mordrag-`).MatchString(l) {
			kept = append(kept, l)
		}
	}
	require.Len(t, kept, len(strings.Split(string(flakeNix), "\n"))-3, "flake.nix has the three follows lines")
	lock = lockWith(t, root, strings.Join(kept, "\n"), urls, registry)
	got, err = secscan.LockNixpkgs(lock)
	require.NoError(t, err)
	var paths []string
	for _, n := range got {
		paths = append(paths, strings.Join(n.Path, "/"))
	}
	assert.Equal(t, []string{
		"nixpkgs",
		"mordrag-nixos/nixos-anywhere/nixos-stable",
		"mordrag-nixos/templates/nixpkgs",
		"mordrag-nixos/vaultix/nixpkgs",
	}, paths)
}

// lock-nixpkgs.jq, which the security-scan package runs, answers as the
// Go audit does on the upstream-shaped locks.
func TestLockNixpkgsJqMatchesGo(t *testing.T) {
	testlib.CheckPath(t, "jq")
	repo := testlib.RepoRoot(t)
	program := filepath.Join(repo, "pkgs", "ipex-security-scan", "lock-nixpkgs.jq")
	locks, err := filepath.Glob(filepath.Join(repo, "pipelines", "quality", "secscan", "testdata", "*.lock"))
	require.NoError(t, err)
	require.Len(t, locks, 3)
	for _, lock := range locks {
		t.Run(filepath.Base(lock), func(t *testing.T) {
			data, err := os.ReadFile(lock)
			require.NoError(t, err)
			want, err := secscan.LockNixpkgs(data)
			require.NoError(t, err)
			stdout, stderr, err := run(t, repo, "jq", "-r", "-f", program, lock)
			require.NoError(t, err, stderr)
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			require.Len(t, lines, len(want))
			for i, n := range want {
				f := strings.Split(lines[i], "\t")
				kind := "extra"
				if i == 0 {
					kind = "own"
				}
				assert.Equal(t, []string{kind, n.Node, strings.Join(n.Path, "/")}, f[:3])
			}
		})
	}
}

// The security scan script, run for real with the jq program substituted
// as the package does: the nixpkgs finding lists the follows lines for an
// upstream-shaped lock without them, and is absent with them.
func TestSecurityScanLockAudit(t *testing.T) {
	testlib.CheckPath(t, "jq")
	testlib.CheckPath(t, "bash")
	testlib.OfflineNix(t)
	repo := testlib.RepoRoot(t)
	script, err := os.ReadFile(filepath.Join(repo, "pkgs", "ipex-security-scan", "ipex-security-scan.sh"))
	require.NoError(t, err)
	require.Contains(t, string(script), "@lockNixpkgsJq@")
	dir := t.TempDir()
	path := filepath.Join(dir, "scan.sh")
	text := "set -euo pipefail\n" + strings.ReplaceAll(string(script), "@lockNixpkgsJq@",
		filepath.Join(repo, "pkgs", "ipex-security-scan", "lock-nixpkgs.jq"))
	require.NoError(t, os.WriteFile(path, []byte(text), 0o755))

	// writeShellApplication runs shellcheck on the text when it builds.
	testlib.CheckPath(t, "shellcheck")
	checked := filepath.Join(dir, "checked.sh")
	require.NoError(t, os.WriteFile(checked, []byte("#!/usr/bin/env bash\nset -o errexit -o nounset -o pipefail\n"+string(script)), 0o644))
	stdout, _, err := run(t, dir, "shellcheck", checked)
	require.NoError(t, err, stdout)

	tests := []struct {
		lock string
		want []string
	}{
		{"upstream-without-follows.lock", []string{
			`inputs.mordrag-nixos.inputs.nixos-anywhere.inputs.nixos-stable.follows = "nixpkgs"`,
			`inputs.mordrag-nixos.inputs.templates.inputs.nixpkgs.follows = "nixpkgs"`,
			`inputs.mordrag-nixos.inputs.vaultix.inputs.nixpkgs.follows = "nixpkgs"`,
		}},
		{"upstream-with-follows.lock", nil},
	}
	for _, tt := range tests {
		t.Run(tt.lock, func(t *testing.T) {
			flake := t.TempDir()
			data, err := os.ReadFile(filepath.Join(repo, "pipelines", "quality", "secscan", "testdata", tt.lock))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(flake, "flake.lock"), data, 0o644))
			stdout, _, err := run(t, dir, "bash", path, "--flake", flake, "--attr", "none")
			// The fixture has no flake.nix: the closure scan of "none" is a
			// finding in both cases, so the script exits 1.
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit)
			assert.Equal(t, 1, exit.ExitCode())
			assert.Contains(t, stdout, "FINDING: cannot evaluate none")
			if tt.want == nil {
				assert.NotContains(t, stdout, "nixpkgs nodes in use")
				return
			}
			assert.Contains(t, stdout, "FINDING: 4 nixpkgs nodes in use in flake.lock")
			for _, w := range tt.want {
				assert.Contains(t, stdout, w)
			}
		})
	}
}

// harness evaluates testdata/harness.nix with the given arguments.
func harness(args string) string {
	return fmt.Sprintf("import ./tests/flake/testdata/harness.nix { repo = ./.; nonce = %q; %s }", testlib.Nonce(), args)
}

const dropClang = `drop = [ [ "legacyPackages" "x86_64-linux" "intel-dpcpp" "clang" ] ];`

// The overlay resolves every intel-xpu member against a stand-in with
// upstream's names (intel-dpcpp's `clang` as DPC++), and a missing one
// fails naming the upstream attribute, its file and the commit read.
func TestOverlayAgainstUpstreamShape(t *testing.T) {
	testlib.OfflineNix(t)
	repo := testlib.RepoRoot(t)
	stdout, stderr, err := run(t, repo, "nix-instantiate", "--eval", "--strict", "--json", "--expr", "("+harness("")+").xpu")
	require.NoError(t, err, stderr)
	var xpu map[string]string
	require.NoError(t, json.Unmarshal([]byte(stdout), &xpu))
	assert.Equal(t, map[string]string{
		"python": "python3-intel", "python-env": "python3-intel-env", "ipex": "ipex", "torch": "torch", "torchvision": "torchvision",
		"mkl": "intel-mkl", "tbb": "intel-tbb", "dnnl": "intel-dnnl", "ccl": "intel-ccl", "mpi": "intel-mpi",
		"dpcpp": "clang", "level-zero": "level-zero", "compute-runtime": "intel-compute-runtime",
		"ollama": "ollama-sycl", "llama-cpp": "llama-cpp-sycl", "stable-diffusion-cpp": "stable-diffusion-cpp-sycl", "invokeai": "invokeai",
	}, xpu)

	_, stderr, err = run(t, repo, "nix-instantiate", "--eval", "--strict", "--json", "--expr", "("+harness(dropClang)+").dpcpp")
	require.Error(t, err)
	assert.Contains(t, stderr, "github:MordragT/nixos has no legacyPackages.x86_64-linux.intel-dpcpp.clang")
	assert.Contains(t, stderr, "pkgs/by-scope/intel-dpcpp/default.nix")
}

// The evaluation gates of nix/checks.nix build (nothing but a text file)
// when everything evaluates, and otherwise fail with a log that names
// every missing upstream attribute and every output that does not
// evaluate: what `ci test --stage unit` shows.
func TestEvaluationGates(t *testing.T) {
	testlib.OfflineNix(t)
	repo := testlib.RepoRoot(t)
	build := func(expr string) (string, string, error) {
		return run(t, repo, "nix-build", "--no-out-link", "--expr", expr)
	}

	stdout, stderr, err := build("(" + harness("") + ").upstream-attrs")
	require.NoError(t, err, stderr)
	data, err := os.ReadFile(strings.TrimSpace(stdout))
	require.NoError(t, err)
	var reads map[string]string
	require.NoError(t, json.Unmarshal(data, &reads))
	assert.Equal(t, "legacyPackages.x86_64-linux.intel-dpcpp.clang", reads["dpcpp"])
	assert.Equal(t, "legacyPackages.x86_64-linux.intel-python.pkgs.ipex", reads["ipex"])

	_, stderr, err = build("(" + harness(`drop = [ [ "legacyPackages" "x86_64-linux" "intel-dpcpp" "clang" ] [ "packages" "x86_64-linux" "ollama-sycl" ] ];`) + ").upstream-attrs")
	require.Error(t, err)
	assert.Contains(t, stderr, "upstream-attrs: 2 failed")
	assert.Contains(t, stderr, "github:MordragT/nixos has no legacyPackages.x86_64-linux.intel-dpcpp.clang (was in pkgs/by-scope/intel-dpcpp/default.nix")
	assert.Contains(t, stderr, "github:MordragT/nixos has no packages.x86_64-linux.ollama-sycl (was in pkgs/by-name/default.nix")

	stdout, stderr, err = build("(" + harness("") + ").eval-outputs")
	require.NoError(t, err, stderr)
	data, err = os.ReadFile(strings.TrimSpace(stdout))
	require.NoError(t, err)
	var drvs map[string]string
	require.NoError(t, json.Unmarshal(data, &drvs))
	assert.Contains(t, drvs, "devShells.x86_64-linux.default")
	assert.Contains(t, drvs, "nixosConfigurations.workstation.config.system.build.toplevel")
	assert.NotContains(t, drvs, "nixosConfigurations.other.config.system.build.toplevel", "another system's example")
	require.Contains(t, drvs, "packages.x86_64-linux.intel-dpcpp")
	assert.True(t, strings.HasSuffix(drvs["packages.x86_64-linux.intel-dpcpp"], "-clang.drv"))
	// Reading drvPaths builds nothing: the clang stand-in has no output.
	out, stderr, err := run(t, repo, "nix-store", "--query", "--outputs", drvs["packages.x86_64-linux.intel-dpcpp"])
	require.NoError(t, err, stderr)
	_, statErr := os.Stat(strings.TrimSpace(out))
	assert.True(t, os.IsNotExist(statErr), "the gate built what it evaluated")

	_, stderr, err = build("(" + harness(dropClang+` broken = [ "bad" ]; brokenSystems = [ "server" ];`) + ").eval-outputs")
	require.Error(t, err)
	assert.Contains(t, stderr, "eval-outputs: 3 failed")
	assert.Contains(t, stderr, "nixosConfigurations.server.config.system.build.toplevel does not evaluate")
	assert.Contains(t, stderr, "packages.x86_64-linux.bad does not evaluate")
	assert.Contains(t, stderr, "packages.x86_64-linux.intel-dpcpp does not evaluate")
}

// docs/flake.md lists every attribute read from upstream (its flake
// attribute and upstream file) and the upstream commit read.
func TestDocsListUpstreamReads(t *testing.T) {
	testlib.OfflineNix(t)
	repo := testlib.RepoRoot(t)
	stdout, stderr, err := run(t, repo, "nix-instantiate", "--eval", "--strict", "--json", "overlays/upstream.nix")
	require.NoError(t, err, stderr)
	var table struct {
		Commit string `json:"commit"`
		Reads  map[string]struct {
			Output string   `json:"output"`
			Path   []string `json:"path"`
			File   string   `json:"file"`
		} `json:"reads"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &table))
	require.Len(t, table.Commit, 40)
	doc, err := os.ReadFile(filepath.Join(repo, "docs", "flake.md"))
	require.NoError(t, err)
	assert.Contains(t, string(doc), table.Commit)
	names := make([]string, 0, len(table.Reads))
	for name := range table.Reads {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		r := table.Reads[name]
		attr := "`" + r.Output + ".<system>." + strings.Join(r.Path, ".") + "`"
		var row string
		for _, l := range strings.Split(string(doc), "\n") {
			if strings.Contains(l, attr) {
				row = l
			}
		}
		if assert.NotEmpty(t, row, "docs/flake.md does not list %s", attr) {
			assert.Contains(t, row, "`"+r.File+"`", "docs/flake.md's row for %s names another file", attr)
		}
	}
}
