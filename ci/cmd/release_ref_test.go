package cmd

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
)

// TestReleaseCheckRef: a release starts only from main or from a phase tag
// on a commit of main, checked against a real clone.
func TestReleaseCheckRef(t *testing.T) {
	origin, first := gitRepo(t, map[string]string{"README": "x\n"})
	g := func(dir string, args ...string) string {
		out, err := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false"}, args...)...).CombinedOutput()
		require.NoError(t, err, string(out))
		return strings.TrimSpace(string(out))
	}
	g(origin, "branch", "-M", "main")
	g(origin, "commit", "-q", "--allow-empty", "-m", "second")
	second := g(origin, "rev-parse", "HEAD")
	g(origin, "checkout", "-q", "-b", "side", first)
	g(origin, "commit", "-q", "--allow-empty", "-m", "side work")
	side := g(origin, "rev-parse", "HEAD")
	g(origin, "checkout", "-q", "main")

	clone := t.TempDir()
	g(clone, "clone", "-q", origin, ".")

	tests := []struct {
		name     string
		ref, rev string
		want     int
		wantMsg  string
	}{
		{"main", "refs/heads/main", second, clierr.ExitOK, "release allowed"},
		{"phase tag on main", "refs/tags/phase3-complete", first, clierr.ExitOK, "release allowed"},
		{"phase tag on a side branch", "refs/tags/phase3-complete", side, clierr.ExitUsage, "the commit is not on origin/main"},
		{"another branch", "refs/heads/side", side, clierr.ExitUsage, "releases start only from refs/heads/main"},
		{"another tag", "refs/tags/v1.0.0", first, clierr.ExitUsage, "phaseN-complete tag"},
		{"pull request ref", "refs/pull/7/merge", first, clierr.ExitUsage, "refusing to release from refs/pull/7/merge"},
		{"unknown commit", "refs/heads/main", "4444444444444444444444444444444444444444", clierr.ExitUsage, "is not a commit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			io, out, errb := testIO(map[string]string{"GITHUB_REF": tt.ref, "GITHUB_SHA": tt.rev})
			code := Run(t.Context(), io, []string{"release", "check-ref", "--dir", clone})
			assert.Equal(t, tt.want, code, out.String()+errb.String())
			assert.Contains(t, out.String()+errb.String(), tt.wantMsg)
		})
	}

	// A shallow checkout without the release branch: the fix is named.
	shallow := t.TempDir()
	g(shallow, "clone", "-q", "--depth", "1", "--single-branch", "--branch", "side", "file://"+origin, ".")
	io, out, errb := testIO(map[string]string{"GITHUB_REF": "refs/tags/phase3-complete", "GITHUB_SHA": side})
	code := Run(t.Context(), io, []string{"release", "check-ref", "--dir", shallow})
	assert.Equal(t, clierr.ExitUsage, code, out.String())
	assert.Contains(t, errb.String(), "fetch-depth: 0")
}
