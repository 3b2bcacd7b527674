package main

import (
	"os/exec"
	"path"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/testlib"
)

const module = "github.com/ipex-flake/ipex-flake/"

// testOnly reports why a package of the binary's dependencies belongs to
// tests only, or "" when it may ship.
func testOnly(path string, imports []string) string {
	switch {
	case path == "testing" || strings.HasPrefix(path, "testing/") || path == "net/http/httptest":
		return "the standard library's test support"
	case strings.HasPrefix(path, "github.com/stretchr/testify"):
		return "testify"
	case !strings.HasPrefix(path, module):
		return ""
	}
	rel := strings.TrimPrefix(path, module)
	last := rel[strings.LastIndex(rel, "/")+1:]
	switch {
	case strings.HasPrefix(last, "test") || strings.HasSuffix(last, "test") || strings.HasPrefix(last, "fake"):
		return "named as a test helper"
	case rel == "tests/fakes" || strings.HasPrefix(rel, "tests/fakes/"):
		return "the recorded fakes"
	}
	for _, imp := range imports {
		if imp == "testing" {
			return "imports testing"
		}
	}
	return ""
}

// TestBinaryHasNoTestCode lists what `go run ./ci` links and fails on any
// package that is there for tests: fakes and test servers live in _test.go
// files or in packages only tests import.
func TestBinaryHasNoTestCode(t *testing.T) {
	testlib.CheckPath(t, "go")
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps",
		"-f", "{{.ImportPath}}\t{{join .Imports \" \"}}", ".").CombinedOutput()
	require.NoError(t, err, string(out))
	var bad []string
	n := 0
	for line := range strings.Lines(string(out)) {
		path, imports, _ := strings.Cut(strings.TrimSpace(line), "\t")
		n++
		if why := testOnly(path, strings.Fields(imports)); why != "" {
			bad = append(bad, path+" ("+why+")")
		}
	}
	require.Greater(t, n, 50, "go list listed the binary's dependencies")
	assert.Empty(t, bad, "test code linked into the ci binary")
}

func TestTestOnly(t *testing.T) {
	tests := []struct {
		path    string
		imports []string
		want    bool
	}{
		{"testing", nil, true},
		{"net/http/httptest", nil, true},
		{"github.com/stretchr/testify/require", nil, true},
		{module + "internal/testnginx", nil, true},
		{module + "release/github/githubtest", nil, true},
		{module + "internal/fakedagger", nil, true},
		{module + "tests/fakes", nil, true},
		{module + "pipelines/push", []string{"context", "testing"}, true},
		{module + "pipelines/push", []string{"context"}, false},
		{module + "tests/performance", []string{"context"}, false},
		{"net/http", nil, false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, testOnly(tt.path, tt.imports) != "", tt.path)
	}
}

// layers orders the module's top-level directories from the top: a package
// may import its own layer and the layers below it, never one above. The
// suites under tests/ sit below the pipelines that run them.
var layers = []string{"ci", "release", "pipelines", "tests", "internal"}

// layerOf is the index in layers of a package of the module, or -1.
func layerOf(rel string) int {
	top, _, _ := strings.Cut(rel, "/")
	for i, l := range layers {
		if top == l {
			return i
		}
	}
	return -1
}

// upwardImports lists the imports of pkgs ("path\timports" lines) that reach
// from a lower layer into a higher one.
func upwardImports(lines string) []string {
	var bad []string
	for line := range strings.Lines(lines) {
		path, imports, _ := strings.Cut(strings.TrimSpace(line), "\t")
		from := layerOf(strings.TrimPrefix(path, module))
		for _, imp := range strings.Fields(imports) {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			if to := layerOf(strings.TrimPrefix(imp, module)); from >= 0 && to >= 0 && to < from {
				bad = append(bad, path+" -> "+imp)
			}
		}
	}
	return bad
}

// TestDependenciesPointDown checks the arrows of the whole module (code
// outside _test.go files): ci → release → pipelines → tests' suites →
// internal, never back up.
func TestDependenciesPointDown(t *testing.T) {
	testlib.CheckPath(t, "go")
	root := testlib.RepoRoot(t)
	cmd := exec.CommandContext(t.Context(), "go", "list", "-f", "{{.ImportPath}}\t{{join .Imports \" \"}}", "./...")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), module+"release/promote\t", "go list listed the module")
	assert.Empty(t, upwardImports(string(out)), "imports against the layers %v", layers)
}

func TestUpwardImports(t *testing.T) {
	in := module + "pipelines/push\t" + module + "release/version fmt\n" +
		module + "release/promote\t" + module + "pipelines/report " + module + "internal/clierr\n" +
		module + "tests/performance\t" + module + "pipelines/report\n" +
		module + "pipelines/quality\t" + module + "tests/performance\n"
	assert.Equal(t, []string{
		module + "pipelines/push -> " + module + "release/version",
		module + "tests/performance -> " + module + "pipelines/report",
	}, upwardImports(in))
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	row := make([]int, len(b)+1)
	for j := range row {
		row[j] = j
	}
	for i := 1; i <= len(a); i++ {
		prev := row[0]
		row[0] = i
		for j := 1; j <= len(b); j++ {
			cur := row[j]
			row[j] = min(row[j]+1, row[j-1]+1, prev+boolInt(a[i-1] != b[j-1]))
			prev = cur
		}
	}
	return row[len(b)]
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// confusableNames lists the pairs of package paths whose last elements are
// the same or differ by a single edit (stage/stages, engine/engines).
func confusableNames(paths []string) []string {
	var bad []string
	for i, a := range paths {
		for _, b := range paths[i+1:] {
			if editDistance(path.Base(a), path.Base(b)) < 2 {
				bad = append(bad, a+" ~ "+b)
			}
		}
	}
	return bad
}

// TestPackageNamesDiffer: no two packages of the module have names that
// differ by one letter or not at all, so a name says which one is meant.
func TestPackageNamesDiffer(t *testing.T) {
	testlib.CheckPath(t, "go")
	cmd := exec.CommandContext(t.Context(), "go", "list", "./...")
	cmd.Dir = testlib.RepoRoot(t)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	paths := strings.Fields(string(out))
	require.Greater(t, len(paths), 40, "go list listed the module")
	assert.Empty(t, confusableNames(paths))
}

func TestConfusableNames(t *testing.T) {
	assert.Equal(t, []string{"pipelines/stage ~ pipelines/stages", "pipelines/engine ~ x/engine"},
		confusableNames([]string{"pipelines/stage", "pipelines/stages", "pipelines/engine", "x/engine", "pipelines/quality", "tests/fakes", "tests/flake"}))
	assert.Equal(t, 3, editDistance("kitten", "sitting"))
	assert.Equal(t, 0, editDistance("", ""))
}
