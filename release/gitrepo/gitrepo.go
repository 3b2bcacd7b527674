// Package gitrepo runs the git CLI on a repository: commits, ancestry, tags
// and refs. Its Forge makes promotion effects in the local repository (tags
// and channels/* refs with git, releases as JSON files under the git
// directory) — the embedded default when there is no GitHub token.
package gitrepo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strings"

	"github.com/ipex-flake/ipex-flake/internal/childenv"
	"github.com/ipex-flake/ipex-flake/release/version"
)

// Repo is a git working tree.
type Repo struct {
	// Dir is the top-level directory.
	Dir string
	// Warn receives warnings (a stale ref lock removed); nil discards them.
	Warn io.Writer
}

// ErrNotRepo is returned by Open outside a git repository.
var ErrNotRepo = errors.New("not a git repository")

// Open finds the repository that contains dir.
func Open(ctx context.Context, dir string) (*Repo, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return nil, fmt.Errorf("git is not on PATH: install git")
	}
	r := &Repo{Dir: dir}
	top, err := r.git(ctx, "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, fmt.Errorf("%w: %s (run ci release inside the repository)", ErrNotRepo, dir)
	}
	r.Dir = top
	return r, nil
}

// git runs git and returns trimmed stdout.
func (r *Repo) git(ctx context.Context, args ...string) (string, error) {
	return r.gitIn(ctx, nil, args...)
}

func (r *Repo) gitIn(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = r.Dir
	cmd.Env = childenv.Environ("GIT_TERMINAL_PROMPT=0", "LC_ALL=C")
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", &Error{Args: args, Err: err, Stderr: strings.TrimSpace(errb.String())}
	}
	return strings.TrimSpace(out.String()), nil
}

// Error is a failed git command.
type Error struct {
	Args   []string
	Err    error
	Stderr string
}

func (e *Error) Error() string {
	return fmt.Sprintf("git %s: %v: %s", strings.Join(e.Args, " "), e.Err, e.Stderr)
}
func (e *Error) Unwrap() error { return e.Err }

// GitDir returns the absolute git directory.
func (r *Repo) GitDir(ctx context.Context) (string, error) {
	return r.git(ctx, "rev-parse", "--absolute-git-dir")
}

var revRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/@{}^~+-]*$`)

// ErrBadRev is returned for a revision that does not name a commit.
var ErrBadRev = errors.New("not a commit")

// ValidRev reports whether rev is syntactically a revision (a SHA, tag or
// branch name) — it rejects options and whitespace.
func ValidRev(rev string) bool { return revRe.MatchString(rev) && !strings.Contains(rev, "..") }

// Resolve returns the full SHA of the commit rev names.
func (r *Repo) Resolve(ctx context.Context, rev string) (string, error) {
	if !ValidRev(rev) {
		return "", fmt.Errorf("%w: %q is not a revision", ErrBadRev, rev)
	}
	sha, err := r.git(ctx, "rev-parse", "--verify", "--quiet", "--end-of-options", rev+"^{commit}")
	if err != nil || sha == "" {
		return "", fmt.Errorf("%w: %q names no commit in %s", ErrBadRev, rev, r.Dir)
	}
	return sha, nil
}

// IsAncestor reports whether a is an ancestor of b (a commit is its own ancestor).
func (r *Repo) IsAncestor(ctx context.Context, a, b string) (bool, error) {
	_, err := r.git(ctx, "merge-base", "--is-ancestor", a, b)
	if err == nil {
		return true, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return false, nil
	}
	return false, err
}

// Log returns the commits reachable from to and not from from (from ""
// means all), newest first.
func (r *Repo) Log(ctx context.Context, from, to string) ([]version.Commit, error) {
	rng := to
	if from != "" {
		rng = from + ".." + to
	}
	out, err := r.git(ctx, "log", "--format=%H%x1f%s%x1f%b%x1e", rng, "--")
	if err != nil {
		return nil, err
	}
	var cs []version.Commit
	for _, rec := range strings.Split(out, "\x1e") {
		rec = strings.TrimLeft(rec, "\n")
		if rec == "" {
			continue
		}
		f := strings.SplitN(rec, "\x1f", 3)
		if len(f) < 3 {
			continue
		}
		cs = append(cs, version.Commit{SHA: f[0], Subject: f[1], Body: strings.TrimSpace(f[2])})
	}
	return cs, nil
}

// Tag is a tag and its commit.
type Tag struct{ Name, SHA string }

// Tags lists all tags with the commits they point at (annotated tags peeled).
func (r *Repo) Tags(ctx context.Context) ([]Tag, error) {
	out, err := r.git(ctx, "for-each-ref", "--format=%(refname:strip=2)%1f%(objectname)%1f%(*objectname)", "refs/tags")
	if err != nil {
		return nil, err
	}
	var ts []Tag
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "\x1f")
		if len(f) != 3 {
			continue
		}
		sha := f[1]
		if f[2] != "" {
			sha = f[2]
		}
		ts = append(ts, Tag{Name: f[0], SHA: sha})
	}
	return ts, nil
}

// Ref returns the commit ref points at, "" when it does not exist.
func (r *Repo) Ref(ctx context.Context, ref string) (string, error) {
	out, err := r.git(ctx, "for-each-ref", "--format=%(objectname)", ref)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(out, "\n") {
		if line != "" {
			return line, nil
		}
	}
	return "", nil
}

// CreateRef creates ref at sha atomically; it fails if ref exists.
func (r *Repo) CreateRef(ctx context.Context, ref, sha string) error {
	return r.updateRefs(ctx, fmt.Sprintf("create %s %s\n", ref, sha))
}

// UpdateRef moves ref from old to sha atomically (compare and swap).
func (r *Repo) UpdateRef(ctx context.Context, ref, old, sha string) error {
	return r.updateRefs(ctx, fmt.Sprintf("update %s %s %s\n", ref, sha, old))
}
