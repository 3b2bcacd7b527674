package daggerengine

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSDKNeverDownloads: the SDK downloads its CLI only from
// engineconn.Get when it is given no connection. Every dagger.Connect in
// this package hands it one (dagger.WithConn), and nothing else of the
// SDK's connection code is called, so no code path can download.
func TestSDKNeverDownloads(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	connects := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(token.NewFileSet(), f, nil, 0)
		require.NoError(t, err)
		ast.Inspect(file, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, _ := sel.X.(*ast.Ident)
			if pkg == nil {
				return true
			}
			allowed := map[string]bool{"EngineConn": true, "ConnectParams": true, "CLIVersion": true}
			if pkg.Name == "engineconn" && !allowed[sel.Sel.Name] {
				t.Errorf("%s uses engineconn.%s: only the types and the version may be used", f, sel.Sel.Name)
			}
			return true
		})
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || !isSel(call.Fun, "dagger", "Connect") {
				return true
			}
			connects++
			withConn := false
			for _, a := range call.Args {
				if c, ok := a.(*ast.CallExpr); ok && isSel(c.Fun, "dagger", "WithConn") {
					withConn = true
				}
			}
			assert.True(t, withConn, "%s: dagger.Connect without dagger.WithConn lets the SDK download its CLI", f)
			return true
		})
	}
	assert.Equal(t, 1, connects, "one place connects")
}

func isSel(e ast.Expr, pkg, name string) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != name {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg
}
