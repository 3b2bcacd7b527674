package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// IsShallow reports whether the clone has only part of the history
// (git clone --depth).
func (r *Repo) IsShallow(ctx context.Context) (bool, error) {
	out, err := r.git(ctx, "rev-parse", "--is-shallow-repository")
	if err != nil {
		return false, err
	}
	return out == "true", nil
}

// Remote returns the remote to fetch from: origin, else the only remote,
// else "".
func (r *Repo) Remote(ctx context.Context) string {
	out, err := r.git(ctx, "remote")
	if err != nil {
		return ""
	}
	remotes := strings.Fields(out)
	for _, rm := range remotes {
		if rm == "origin" {
			return rm
		}
	}
	if len(remotes) == 1 {
		return remotes[0]
	}
	return ""
}

// FetchHistory fetches the whole history (when the clone is shallow) and
// every tag from remote.
func (r *Repo) FetchHistory(ctx context.Context, remote string, unshallow bool) error {
	args := []string{"fetch", "--quiet", "--tags"}
	if unshallow {
		args = append(args, "--unshallow")
	}
	_, err := r.git(ctx, append(args, "--", remote)...)
	return err
}

// Reachable returns the set of commits reachable from rev (rev included).
func (r *Repo) Reachable(ctx context.Context, rev string) (map[string]bool, error) {
	out, err := r.git(ctx, "rev-list", rev, "--")
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if l != "" {
			set[l] = true
		}
	}
	return set, nil
}

// Commits returns, of shas, those whose commit object this clone has.
func (r *Repo) Commits(ctx context.Context, shas []string) (map[string]bool, error) {
	peeled, err := r.Peel(ctx, shas)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for s, c := range peeled {
		have[s] = c == s
	}
	return have, nil
}

// Peel returns, for each object name in objs this clone has, the commit it
// points at (an annotated tag object is followed to its commit). Objects the
// clone lacks are absent from the result. One git process for all.
func (r *Repo) Peel(ctx context.Context, objs []string) (map[string]string, error) {
	if len(objs) == 0 {
		return map[string]string{}, nil
	}
	var in strings.Builder
	for _, o := range objs {
		fmt.Fprintf(&in, "%s^{commit}\n", o)
	}
	out, err := r.gitIn(ctx, []byte(in.String()), "cat-file", "--batch-check=%(objectname) %(objecttype)")
	if err != nil {
		return nil, err
	}
	res := map[string]string{}
	lines := strings.Split(out, "\n")
	for i, o := range objs {
		if i >= len(lines) {
			break
		}
		f := strings.Fields(lines[i])
		if len(f) == 2 && f[1] == "commit" {
			res[o] = f[0]
		}
	}
	return res, nil
}

// processStart is when this process started: a ref lock older than that was
// not made by it.
var processStart = time.Now()

var lockExists = regexp.MustCompile(`Unable to create '([^']+\.lock)': File exists`)

// staleLock inspects a failed ref update. When git refused because a lock
// file exists, it returns the lock's path and whether the lock is stale: it
// predates this process and no running git process works in this
// repository (a promotion killed while git held it).
func (r *Repo) staleLock(err error) (path string, stale bool, holder int) {
	var ge *Error
	if !errors.As(err, &ge) {
		return "", false, 0
	}
	m := lockExists.FindStringSubmatch(ge.Stderr)
	if m == nil {
		return "", false, 0
	}
	path = m[1]
	fi, serr := os.Stat(path)
	if serr != nil {
		return path, false, 0 // gone already: a retry will tell
	}
	if !fi.ModTime().Before(processStart) {
		return path, false, 0
	}
	if pid := gitProcessIn(r.Dir); pid != 0 {
		return path, false, pid
	}
	return path, true, 0
}

// gitProcessIn returns the pid of a running git process whose working
// directory is dir or below it, 0 when there is none (or /proc is absent).
func gitProcessIn(dir string) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	dir = filepath.Clean(dir)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "git" {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil {
			continue
		}
		if cwd == dir || strings.HasPrefix(cwd, dir+string(filepath.Separator)) {
			return pid
		}
	}
	return 0
}

// updateRefs runs `git update-ref --stdin` with cmds. A lock left by a
// killed git is recognised, removed with a warning on r.Warn, and the update
// tried once more; a lock held by a live git is reported with the fix.
func (r *Repo) updateRefs(ctx context.Context, cmds string) error {
	_, err := r.gitIn(ctx, []byte(cmds), "update-ref", "--stdin")
	if err == nil {
		return nil
	}
	path, stale, holder := r.staleLock(err)
	switch {
	case path == "":
		return err
	case holder != 0:
		return fmt.Errorf("%s is held by a running git process (pid %d): wait for it to finish, then run the promotion again: %w", path, holder, err)
	case !stale:
		return fmt.Errorf("%s exists: if no git process is running in %s, remove it (rm %s) and run the promotion again: %w", path, r.Dir, path, err)
	}
	warn := r.Warn
	if warn == nil {
		warn = io.Discard
	}
	fmt.Fprintf(warn, "warning: removing the stale ref lock %s (left by a git process that was killed; no git runs in %s)\n", path, r.Dir)
	if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		return fmt.Errorf("remove the stale lock %s: %w", path, rerr)
	}
	_, err = r.gitIn(ctx, []byte(cmds), "update-ref", "--stdin")
	return err
}
