// Package gittest makes throwaway git repositories for tests with the real
// git CLI. Tests skip when git is missing, and fail instead when CI=true.
package gittest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ipex-flake/ipex-flake/internal/testlib"
)

// Repo is a temporary git repository.
type Repo struct {
	t   testing.TB
	Dir string
	n   int
}

// RequireGit skips the test when git is missing (fails when CI=true).
func RequireGit(t testing.TB) {
	t.Helper()
	testlib.CheckPath(t, "git")
}

// New initialises a repository in a temporary directory.
func New(t testing.TB) *Repo {
	t.Helper()
	RequireGit(t)
	r := &Repo{t: t, Dir: t.TempDir()}
	r.Git("init", "-q", "-b", "main")
	r.Git("config", "user.name", "Test User")
	r.Git("config", "user.email", "test@example.com")
	r.Git("config", "commit.gpgsign", "false")
	r.Git("config", "tag.gpgsign", "false")
	return r
}

// Git runs git in the repository and returns trimmed stdout.
func (r *Repo) Git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.Dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_DATE=2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2024-01-01T00:00:00Z",
		"GIT_CONFIG_NOSYSTEM=1", "HOME="+r.Dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// Commit makes a commit with message msg (subject, blank line, body) and
// returns its SHA.
func (r *Repo) Commit(msg string) string {
	r.t.Helper()
	r.n++
	p := filepath.Join(r.Dir, "file.txt")
	if err := os.WriteFile(p, []byte(strconv.Itoa(r.n)+"\n"), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.Git("add", "file.txt")
	r.Git("commit", "-q", "-m", msg)
	return r.Git("rev-parse", "HEAD")
}

// Tag makes a lightweight tag at rev.
func (r *Repo) Tag(name, rev string) { r.t.Helper(); r.Git("tag", name, rev) }

// Ref returns the commit of ref, "" when absent.
func (r *Repo) Ref(ref string) string {
	r.t.Helper()
	return r.Git("for-each-ref", "--format=%(objectname)", ref)
}
