package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/testlib"
)

// maxFuncLines is the longest a function or function literal outside tests
// may be, counted from its `func` keyword to its closing brace. Longer ones
// are split into named steps: CONTRIBUTING.md says so.
const maxFuncLines = 80

// longFuncs lists the functions and function literals of one Go source that
// are longer than limit lines, as "file:line name (N lines)".
func longFuncs(fset *token.FileSet, name string, src []byte, limit int) ([]string, error) {
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var long []string
	ast.Inspect(f, func(n ast.Node) bool {
		var body *ast.BlockStmt
		what := "func literal"
		switch fn := n.(type) {
		case *ast.FuncDecl:
			body, what = fn.Body, fn.Name.Name
		case *ast.FuncLit:
			body = fn.Body
		}
		if body == nil {
			return true
		}
		start := fset.Position(n.Pos())
		lines := fset.Position(body.End()).Line - start.Line + 1
		if lines > limit {
			long = append(long, fmt.Sprintf("%s:%d %s (%d lines)", name, start.Line, what, lines))
		}
		return true
	})
	return long, nil
}

// eachGoSource calls fn with every Go file of the module that is not a
// test (its path from the module root and its contents) and returns how
// many it read.
func eachGoSource(t *testing.T, fn func(rel string, src []byte) error) int {
	t.Helper()
	root := testlib.RepoRoot(t)
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		files++
		return fn(rel, src)
	})
	require.NoError(t, err)
	require.Greater(t, files, 100, "the walk read the module's Go files")
	return files
}

// TestFunctionsStaySmall reads every Go file of the module that is not a
// test and fails naming each function longer than maxFuncLines.
func TestFunctionsStaySmall(t *testing.T) {
	fset := token.NewFileSet()
	var long []string
	eachGoSource(t, func(rel string, src []byte) error {
		found, err := longFuncs(fset, rel, src, maxFuncLines)
		long = append(long, found...)
		return err
	})
	assert.Empty(t, long, "functions longer than %d lines: split them into named steps", maxFuncLines)
}

func TestLongFuncs(t *testing.T) {
	body := func(n int) string { return strings.Repeat("\tx++\n", n) }
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"at the limit", "package p\nfunc f() {\n" + body(8) + "}\n", nil},
		{"one over", "package p\nfunc f() {\n" + body(9) + "}\n", []string{"p.go:2 f (11 lines)"}},
		{"method", "package p\ntype T int\nfunc (T) m() {\n" + body(9) + "}\n", []string{"p.go:3 m (11 lines)"}},
		{"literal inside a short function", "package p\nvar v = func() {\n" + body(9) + "}\n", []string{"p.go:2 func literal (11 lines)"}},
		{"declaration without body", "package p\nfunc f()\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := longFuncs(token.NewFileSet(), "p.go", []byte(tt.src), 10)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	_, err := longFuncs(token.NewFileSet(), "bad.go", []byte("package p\nfunc {"), 10)
	assert.Error(t, err, "a file that does not parse is reported")
}
