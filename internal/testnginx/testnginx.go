// Package testnginx starts internal/nginx's WebDAV binary cache for a
// test, and stops it when the test ends.
package testnginx

import (
	"testing"

	"github.com/ipex-flake/ipex-flake/internal/nginx"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
)

// Server is one nginx serving a directory over HTTP.
type Server = nginx.Server

// New starts nginx for a test in t.TempDir and stops it on cleanup. It skips
// when nginx is missing, and fails when CI=true.
func New(t testing.TB) *Server {
	t.Helper()
	testlib.CheckPath(t, "nginx")
	s, err := nginx.Start(t.TempDir(), "")
	if err != nil {
		t.Fatalf("starting nginx: %v", err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}
