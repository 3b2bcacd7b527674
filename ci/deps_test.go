package main

import (
	"os/exec"
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
