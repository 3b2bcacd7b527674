package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// processWide are the calls that change state every goroutine of the
// process shares, by import path and name.
var processWide = map[string][]string{
	"os":        {"Setenv", "Unsetenv", "Clearenv", "Chdir"},
	"os/signal": {"Notify", "NotifyContext", "Ignore", "Reset"},
	"syscall":   {"Setenv", "Unsetenv", "Clearenv", "Chdir", "Umask"},
	"log":       {"SetOutput", "SetFlags", "SetPrefix"},
}

// uses lists where one Go source names the functions of table (import
// path → names), as "file:line path.Name", following the file's import
// names.
func uses(fset *token.FileSet, name string, src []byte, table map[string][]string) ([]string, error) {
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	local := map[string]string{} // import name -> path
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		n := path.Base(p)
		if imp.Name != nil {
			n = imp.Name.Name
		}
		local[n] = p
	}
	var found []string
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		id, ok := sel.X.(*ast.Ident)
		if !ok {
			return true
		}
		for _, fn := range table[local[id.Name]] {
			if sel.Sel.Name == fn {
				found = append(found, fmt.Sprintf("%s:%d %s.%s", name, fset.Position(sel.Pos()).Line, local[id.Name], fn))
			}
		}
		return true
	})
	return found, nil
}

// entryPoints may set up the process: they are the process.
var entryPoints = map[string]bool{
	"ci/cmd/root.go":                      true, // signal.NotifyContext for Ctrl-C
	"tests/fakes/cmd/fakeollama/main.go":  true,
	"tests/fakes/cmd/fakecomfyui/main.go": true,
}

// TestNoProcessWideState: outside the programs' entry points no code sets
// environment variables, changes directory, installs signal handlers or
// reconfigures the standard logger; libraries take what they need as
// arguments.
func TestNoProcessWideState(t *testing.T) {
	fset := token.NewFileSet()
	var bad []string
	eachGoSource(t, func(rel string, src []byte) error {
		found, err := uses(fset, rel, src, processWide)
		if !entryPoints[rel] {
			bad = append(bad, found...)
		}
		return err
	})
	assert.Empty(t, bad, "library code changing process-wide state: pass the value in instead")
}

func TestUses(t *testing.T) {
	src := `package p
import (
	"os"
	sig "os/signal"
	"log"
)
func f() {
	os.Setenv("A", "b")
	_ = os.Getenv("A")
	sig.Notify(nil)
	log.SetOutput(nil)
}`
	got, err := uses(token.NewFileSet(), "p.go", []byte(src), processWide)
	require.NoError(t, err)
	assert.Equal(t, []string{"p.go:8 os.Setenv", "p.go:10 os/signal.Notify", "p.go:11 log.SetOutput"}, got)
}

// githubConstructors are go-github's client constructors.
var githubConstructors = map[string][]string{"github.com/google/go-github/v89/github": {"NewClient", "NewClientWithEnvProxy", "NewTokenClient"}}

// TestOneGitHubClientConstructor: go-github clients are made in one place,
// githubhttp.NewGitHub, so each runs on the retrying transport with its
// time limits.
func TestOneGitHubClientConstructor(t *testing.T) {
	fset := token.NewFileSet()
	var bad, home []string
	eachGoSource(t, func(rel string, src []byte) error {
		found, err := uses(fset, rel, src, githubConstructors)
		if filepath.Dir(rel) == filepath.Join("internal", "githubhttp") {
			home = append(home, found...)
		} else {
			bad = append(bad, found...)
		}
		return err
	})
	assert.NotEmpty(t, home, "githubhttp.NewGitHub makes the clients")
	assert.Empty(t, bad, "make GitHub clients with githubhttp.NewGitHub")
}
