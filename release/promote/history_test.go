package promote

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/shorthash"
	"github.com/ipex-flake/ipex-flake/release/gitrepo"
	"github.com/ipex-flake/ipex-flake/release/gitrepo/gittest"
	"github.com/ipex-flake/ipex-flake/release/version"
)

// phaseOrigin is a repository whose answer is v0.3.0: v0.2.0, a feature,
// then phase3-complete.
func phaseOrigin(t *testing.T) (*gittest.Repo, string) {
	o := gittest.New(t)
	c1 := o.Commit("feat: first")
	o.Tag("v0.2.0", c1)
	o.Commit("feat: second")
	c3 := o.Commit("phase3: done")
	o.Tag("phase3-complete", c3)
	return o, c3
}

// cloneEnv is an env on a clone of origin made with extra git clone args.
func cloneEnv(t *testing.T, origin *gittest.Repo, args ...string) *env {
	e := newEnv(t)
	require.NoError(t, os.RemoveAll(filepath.Join(e.g.Dir, ".git")))
	e.g.Git(append(append([]string{"clone", "-q"}, args...), "file://"+origin.Dir, ".")...)
	e.g.Git("config", "user.name", "Test User")
	e.g.Git("config", "user.email", "test@example.com")
	e.open()
	return e
}

// TestShallowClone: a --depth 1 clone with a remote fetches the history
// and computes v0.3.0; without a remote it is refused with the fix, and
// never gets a wrong version.
func TestShallowClone(t *testing.T) {
	origin, c3 := phaseOrigin(t)

	e := cloneEnv(t, origin, "--depth", "1")
	e.pass(c3, "unit")
	var log bytes.Buffer
	p := e.promoter(nil)
	p.Log = &log
	out, err := p.Run(t.Context(), Options{Want: testWant, Channel: version.Dev, Rev: c3})
	require.NoError(t, err)
	assert.Equal(t, "v0.3.0-dev.1", out.Plan.Tag)
	assert.Contains(t, log.String(), "shallow clone: fetching the whole history and the tags from origin")
	assert.Equal(t, "false", e.g.Git("rev-parse", "--is-shallow-repository"))

	e = cloneEnv(t, origin, "--depth", "1")
	e.g.Git("remote", "remove", "origin")
	e.pass(c3, "unit")
	before := e.snapshot()
	_, err = e.run(Options{Want: testWant, Channel: version.Dev, Rev: c3})
	require.Error(t, err)
	assert.Equal(t, clierr.ExitUsage, clierr.Code(err))
	assert.Contains(t, err.Error(), "shallow clone")
	assert.Contains(t, err.Error(), "without --depth")
	assert.Equal(t, before, e.snapshot(), "nothing changed")
}

// TestTaglessClone: a clone made without tags fetches them from its remote.
func TestTaglessClone(t *testing.T) {
	origin, c3 := phaseOrigin(t)
	e := cloneEnv(t, origin, "--no-tags")
	require.Empty(t, e.g.Git("tag"))
	e.pass(c3, "unit")
	out, err := e.run(Options{Want: testWant, Channel: version.Dev, Rev: c3})
	require.NoError(t, err)
	assert.Equal(t, "v0.3.0-dev.1", out.Plan.Tag)
}

// TestUnreachableTagsAreIgnored: a v0.9.0 on an unmerged branch does not
// make main's next version v0.9.1; status lists it as ignored.
func TestUnreachableTagsAreIgnored(t *testing.T) {
	e, c1, c2 := issueExample(t)
	e.g.Git("checkout", "-q", "-b", "side", c1)
	side := e.g.Commit("feat: experiment")
	e.g.Tag("v0.9.0", side)
	e.g.Tag("v0.9.1-dev.1", side)
	e.g.Git("checkout", "-q", "main")
	e.pass(c2, all...)

	outs := e.promote(Options{Rev: c2, ApprovedBy: "alice"}, version.Channels...)
	assert.Equal(t, []string{"v0.2.0-dev.1", "v0.2.0-beta.1", "v0.2.0"}, planTags(outs))
	for _, out := range outs {
		assert.Equal(t, "v0.1.0", out.Plan.LastStable)
	}
	rep, err := e.promoter(nil).Status(t.Context(), version.DefaultConfig(), "", testWant)
	require.NoError(t, err)
	assert.Equal(t, []string{"v0.9.0", "v0.9.1-dev.1"}, rep.Ignored)
	var b strings.Builder
	PrintStatus(&b, rep)
	assert.Contains(t, b.String(), "ignored release tags (not reachable from HEAD; versions do not count them): v0.9.0, v0.9.1-dev.1")
}

// TestMovedReleaseTag: a release tag moved by hand is reported (exit 1,
// both commits named), never shown as a complete release.
func TestMovedReleaseTag(t *testing.T) {
	e, c2, c3 := devThenFix(t, "fix: later")
	e.g.Git("tag", "-f", "v0.2.0-dev.1", c3)

	_, err := e.run(Options{Want: testWant, Channel: version.Dev, Rev: c3})
	require.Error(t, err)
	assert.Equal(t, clierr.ExitFailed, clierr.Code(err))
	assert.Contains(t, err.Error(), "release v0.2.0-dev.1 names commit "+shorthash.Commit(c2)+" but the tag v0.2.0-dev.1 is (or would be) at "+shorthash.Commit(c3))

	rep, err := e.promoter(nil).Status(t.Context(), version.DefaultConfig(), "", testWant)
	require.NoError(t, err)
	require.True(t, rep.Problems())
	assert.Contains(t, rep.Channels[0].Problem, "the tag v0.2.0-dev.1 points at "+shorthash.Commit(c3)+" but its release and manifest name "+shorthash.Commit(c2))

	// Deleted: the release stays, the tag is gone; promoting another
	// commit would make the tag again there. Refused before anything is made.
	e.g.Git("tag", "-d", "v0.2.0-dev.1")
	before := e.snapshot()
	_, err = e.run(Options{Want: testWant, Channel: version.Dev, Rev: c3})
	require.Error(t, err)
	assert.Equal(t, clierr.ExitFailed, clierr.Code(err))
	assert.Contains(t, err.Error(), "release v0.2.0-dev.1 names commit "+shorthash.Commit(c2))
	assert.Equal(t, before, e.snapshot(), "no tag made, no ref moved")
}

// TestStaleLockAtEachStep: a promotion killed with its whole process group
// while git held a ref lock leaves the lock behind; the rerun removes the
// stale lock with a warning and finishes.
func TestStaleLockAtEachStep(t *testing.T) {
	for _, ref := range []string{"refs/tags/v0.2.0-dev.1", "refs/heads/channels/dev"} {
		t.Run(ref, func(t *testing.T) {
			e, _, c2 := issueExample(t)
			e.pass(c2, "unit")
			lock := filepath.Join(e.g.Dir, ".git", ref+".lock")
			require.NoError(t, os.MkdirAll(filepath.Dir(lock), 0o755))
			require.NoError(t, os.WriteFile(lock, nil, 0o644))
			old := time.Now().Add(-time.Minute)
			require.NoError(t, os.Chtimes(lock, old, old))
			var warn bytes.Buffer
			e.repo.Warn = &warn

			out, err := e.run(Options{Want: testWant, Channel: version.Dev, Rev: c2})
			require.NoError(t, err)
			assert.Equal(t, "v0.2.0-dev.1", out.Plan.Tag)
			assert.Equal(t, c2, e.g.Ref("refs/heads/channels/dev"))
			assert.Contains(t, warn.String(), "removing the stale ref lock "+lock)
			assert.NoFileExists(t, lock)
		})
	}
}

// TestPhaseTagAfterDev: phase3-complete tagged after the commit reached dev
// gives the commit a v0.3.0 dev release too, so dev, beta and stable agree.
func TestPhaseTagAfterDev(t *testing.T) {
	e, _, c2 := issueExample(t)
	e.pass(c2, all...)
	assert.Equal(t, []string{"v0.2.0-dev.1"}, planTags(e.promote(Options{Rev: c2}, version.Dev)))

	e.g.Tag("phase3-complete", c2)
	var b bytes.Buffer
	outs := e.promote(Options{Rev: c2, ApprovedBy: "alice"}, version.Channels...)
	want := []string{"v0.3.0-dev.1", "v0.3.0-beta.1", "v0.3.0"}
	require.Equal(t, want, planTags(outs))
	for i, out := range outs {
		b.Reset()
		Print(&b, out.Plan, false)
		assert.Contains(t, b.String(), "as "+want[i]+" (phase3-complete stands for v0.3.0)")
	}
	assert.Equal(t, c2, e.g.Ref("refs/tags/v0.2.0-dev.1"), "the earlier tag stays")

	// A rerun of the finished stable promotion says so, and no bump.
	out := e.promote(Options{Rev: c2, ApprovedBy: "alice"}, version.Stable)[0]
	assert.False(t, out.Changed())
	b.Reset()
	Print(&b, out.Plan, false)
	assert.Contains(t, b.String(), "as v0.3.0 (released by an earlier run)")
	assert.NotContains(t, b.String(), "bump")

	// A released commit gets no new dev or beta prerelease.
	before := e.snapshot()
	for _, out := range e.promote(Options{Rev: c2}, version.Dev, version.Beta) {
		assert.Equal(t, "v0.3.0", out.Plan.AlreadyStable)
		b.Reset()
		Print(&b, out.Plan, false)
		assert.Contains(t, b.String(), "already released as stable v0.3.0")
	}
	assert.Equal(t, before, e.snapshot(), "nothing changed")
}

// TestRacingPromotionsNotifyOnce: twenty promotions of one commit at once
// send one message.
func TestRacingPromotionsNotifyOnce(t *testing.T) {
	e, _, c2 := issueExample(t)
	e.pass(c2, "unit")
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			repo, err := gitrepo.Open(context.Background(), e.g.Dir)
			if err != nil {
				errs[i] = err
				return
			}
			p := e.promoter(nil)
			p.Repo = repo
			_, errs[i] = p.Run(t.Context(), Options{Want: testWant, Channel: version.Dev, Rev: c2})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		}
	}
	assert.Positive(t, ok)
	assert.Equal(t, 1, e.note.count(), "one message for one release")
	assert.Equal(t, c2, e.g.Ref("refs/tags/v0.2.0-dev.1"))
	assert.Empty(t, e.g.Ref("refs/tags/v0.2.0-dev.2"))
}

// TestGitHubAPICallsWithManyTags: with 50 annotated tags a promotion makes
// at most 10 API calls, and its rerun makes no write.
func TestGitHubAPICallsWithManyTags(t *testing.T) {
	g, _, c2 := newGitHubEnv(t)
	for i := range 50 {
		name := fmt.Sprintf("archive/2025-%02d", i)
		g.g.Git("tag", "-a", "-m", "archived", name, c2)
		g.srv.Fake.TagRefs[name] = c2
		g.srv.Fake.Annotated[name] = g.g.Git("rev-parse", "refs/tags/"+name)
	}
	g.api.LocalPeel = g.repo.Peel
	g.pass(c2, "unit")

	n := len(g.srv.Requests)
	out, err := g.promoter().Run(t.Context(), Options{Want: testWant, Channel: version.Dev, Rev: c2})
	require.NoError(t, err)
	assert.Equal(t, "v0.2.0-dev.1", out.Plan.Tag)
	calls := g.srv.Requests[n:]
	assert.LessOrEqual(t, len(calls), 10, "API calls: %v", calls)

	n = len(g.srv.Requests)
	out, err = g.promoter().Run(t.Context(), Options{Want: testWant, Channel: version.Dev, Rev: c2})
	require.NoError(t, err)
	assert.False(t, out.Changed())
	calls = g.srv.Requests[n:]
	assert.LessOrEqual(t, len(calls), 10, "API calls: %v", calls)
	for _, r := range calls {
		assert.True(t, strings.HasPrefix(r, "GET "), "rerun made a write: %s", r)
	}
	assert.Len(t, *g.posted, 1)

	// Without the local clone's help each annotated tag costs a call.
	g.api.LocalPeel = nil
	n = len(g.srv.Requests)
	_, err = g.promoter().Run(t.Context(), Options{Want: testWant, Channel: version.Dev, Rev: c2})
	require.NoError(t, err)
	assert.Greater(t, len(g.srv.Requests[n:]), 50)
}

// TestGitHubRacingPromotionsNotifyOnce: the same against the GitHub API.
func TestGitHubRacingPromotionsNotifyOnce(t *testing.T) {
	g, _, c2 := newGitHubEnv(t)
	g.pass(c2, "unit")
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = g.promoter().Run(t.Context(), Options{Want: testWant, Channel: version.Dev, Rev: c2})
		}()
	}
	wg.Wait()
	assert.Len(t, *g.posted, 1)
}

// TestCorruptResults: a corrupt results file is exit 2 naming the file;
// status still reports every channel and marks the gates it cannot read.
func TestCorruptResults(t *testing.T) {
	e, _, c2 := issueExample(t)
	e.pass(c2, "unit")
	require.NoError(t, os.WriteFile(e.store.Path, []byte("{not json"), 0o644))
	_, err := e.run(Options{Want: testWant, Channel: version.Dev, Rev: c2})
	require.Error(t, err)
	assert.Equal(t, clierr.ExitUsage, clierr.Code(err))
	assert.Contains(t, err.Error(), e.store.Path)
	assert.Contains(t, err.Error(), "move it away")

	rep, err := e.promoter(nil).Status(t.Context(), version.DefaultConfig(), "", testWant)
	require.NoError(t, err)
	require.Len(t, rep.Channels, 3)
	assert.Contains(t, rep.Channels[0].Blocked, "is corrupt")
}
