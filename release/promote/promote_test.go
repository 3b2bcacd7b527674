package promote

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/shorthash"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
	"github.com/ipex-flake/ipex-flake/release/forge"
	"github.com/ipex-flake/ipex-flake/release/gitrepo"
	"github.com/ipex-flake/ipex-flake/release/gitrepo/gittest"
	"github.com/ipex-flake/ipex-flake/release/slack"
	"github.com/ipex-flake/ipex-flake/release/version"
)

// notifier records messages; fail makes Notify fail after recording.
type notifier struct {
	mu   sync.Mutex
	msgs []slack.Message
	fail bool
}

func (n *notifier) Notify(_ context.Context, m slack.Message) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fail {
		return errors.New("slack is down")
	}
	n.msgs = append(n.msgs, m)
	return nil
}
func (n *notifier) Target() string { return "test" }
func (n *notifier) count() int     { n.mu.Lock(); defer n.mu.Unlock(); return len(n.msgs) }

type env struct {
	t     *testing.T
	g     *gittest.Repo
	repo  *gitrepo.Repo
	forge *gitrepo.Forge
	store *results.FileStore
	note  *notifier
}

func newEnv(t *testing.T) *env {
	g := gittest.New(t)
	return &env{t: t, g: g, note: &notifier{}}
}

// open must run after the first commit.
func (e *env) open() {
	ctx := e.t.Context()
	var err error
	e.repo, err = gitrepo.Open(ctx, e.g.Dir)
	require.NoError(e.t, err)
	e.forge, err = gitrepo.NewForge(ctx, e.repo)
	require.NoError(e.t, err)
	gd, err := e.repo.GitDir(ctx)
	require.NoError(e.t, err)
	e.store = &results.FileStore{Path: results.DefaultPath(gd)}
}

func (e *env) promoter(f forge.Forge) *Promoter {
	if f == nil {
		f = e.forge
	}
	return &Promoter{Repo: e.repo, Forge: f, Results: e.store, Notifier: e.note}
}

func (e *env) pass(rev string, stages ...string) {
	for _, s := range stages {
		require.NoError(e.t, e.store.Record(e.t.Context(), results.Result{Stage: s, Rev: rev, State: results.StatePassed, Binding: testWant}))
	}
}

var all = []string{"unit", "integration", "performance", "security"}

// testWant is the flake and build report the tests release.
var testWant = results.Binding{Flake: ".", NarHash: "sha256-GhwDr/8C2RAUNikyBmZuKey4kc5JgyKma0fbQPhnUio=",
	Report: "sha256:4f0c2a9d1e7b8c3f5a6d9e0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d"}

// snapshot is every ref and release file: what "nothing changed" compares.
func (e *env) snapshot() string {
	refs := e.g.Git("for-each-ref", "--format=%(refname) %(objectname)")
	var files []string
	_ = filepath.Walk(e.forge.Dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			data, _ := os.ReadFile(p)
			files = append(files, p+"\n"+string(data))
		}
		return nil
	})
	sort.Strings(files)
	return refs + "\n" + strings.Join(files, "\n")
}

func (e *env) run(o Options) (*Outcome, error) { return e.promoter(nil).Run(e.t.Context(), o) }

// promote promotes to each of channels in turn with the options o (bound
// to testWant), requires every promotion to succeed and returns the
// outcomes.
func (e *env) promote(o Options, channels ...version.Channel) []*Outcome {
	e.t.Helper()
	outs := make([]*Outcome, 0, len(channels))
	for _, c := range channels {
		o.Want, o.Channel = testWant, c
		out, err := e.run(o)
		require.NoError(e.t, err, c)
		outs = append(outs, out)
	}
	return outs
}

// issueExample: v0.1.0, then one feat: commit.
func issueExample(t *testing.T) (*env, string, string) {
	e := newEnv(t)
	c1 := e.g.Commit("feat: first")
	e.g.Tag("v0.1.0", c1)
	c2 := e.g.Commit("feat: ollama with SYCL")
	e.open()
	return e, c1, c2
}

// devThenFix is issueExample with its second commit released on dev and a
// later commit (message msg) whose unit stage passed.
func devThenFix(t *testing.T, msg string) (e *env, c2, c3 string) {
	e, _, c2 = issueExample(t)
	e.pass(c2, "unit")
	e.promote(Options{Rev: c2}, version.Dev)
	c3 = e.g.Commit(msg)
	e.pass(c3, "unit")
	return e, c2, c3
}

func TestIssueExampleThroughAllChannels(t *testing.T) {
	e, _, c2 := issueExample(t)
	e.pass(c2, all...)

	outs := e.promote(Options{Rev: c2, ApprovedBy: "alice"}, version.Channels...)
	for i, want := range []string{"v0.2.0-dev.1", "v0.2.0-beta.1", "v0.2.0"} {
		ch, out := version.Channels[i], outs[i]
		assert.Equal(t, want, out.Plan.Tag)
		assert.True(t, out.Changed())
		assert.Equal(t, c2, e.g.Ref("refs/tags/"+want))
		assert.Equal(t, c2, e.g.Ref("refs/heads/channels/"+string(ch)))
		rel, err := e.forge.Release(t.Context(), want)
		require.NoError(t, err)
		require.NotNil(t, rel)
		assert.Equal(t, ch != version.Stable, rel.Prerelease)
		assert.Equal(t, ch == version.Stable, rel.Latest)
		assert.Contains(t, rel.Body, "feat: ollama with SYCL")
		assert.Contains(t, rel.Body, forge.NotifiedMarker)
		assert.Equal(t, []string{forge.ManifestAsset, "notify-1.json"}, rel.Assets, "the manifest, and the notification's claim")
	}
	rel, err := e.forge.Release(t.Context(), "v0.2.0")
	require.NoError(t, err)
	assert.Contains(t, rel.Body, "Approved by: alice", "the approval is recorded in the release")
	assert.Equal(t, 3, e.note.count())
	assert.Contains(t, e.note.msgs[2].Text, "v0.2.0* released on *stable*")

	// A rerun of a finished promotion changes nothing.
	before := e.snapshot()
	out, err := e.run(Options{Want: testWant, Channel: version.Stable, Rev: c2, ApprovedBy: "alice"})
	require.NoError(t, err)
	assert.False(t, out.Changed())
	assert.Equal(t, before, e.snapshot())
	assert.Equal(t, 3, e.note.count())
}

func TestDevCountsUpAndNotesSincePrevious(t *testing.T) {
	e, _, c3 := devThenFix(t, "fix: health check")
	out, err := e.run(Options{Want: testWant, Channel: version.Dev}) // default HEAD
	require.NoError(t, err)
	assert.Equal(t, "v0.2.0-dev.2", out.Plan.Tag)
	assert.Equal(t, "v0.2.0-dev.1", out.Plan.Previous)
	assert.Contains(t, out.Plan.Notes, "fix: health check")
	assert.NotContains(t, out.Plan.Notes, "ollama", "notes hold only commits since the channel's previous release")
	assert.Equal(t, c3, e.g.Ref("refs/heads/channels/dev"))
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		name  string
		setup func(e *env, c1, c2 string) Options
		gate  string
	}{
		{"skip dev", func(e *env, _, c2 string) Options {
			e.pass(c2, all...)
			return Options{Want: testWant, Channel: version.Beta, Rev: c2}
		}, "channel gate: "},
		{"skip beta", func(e *env, _, c2 string) Options {
			e.pass(c2, all...)
			e.promote(Options{Rev: c2}, version.Dev)
			return Options{Want: testWant, Channel: version.Stable, Rev: c2, ApprovedBy: "alice"}
		}, "channel gate: "},
		{"missing stage", func(e *env, _, c2 string) Options {
			return Options{Want: testWant, Channel: version.Dev, Rev: c2}
		}, "stage gate: unit has no result"},
		{"failed stage", func(e *env, _, c2 string) Options {
			e.pass(c2, "unit")
			e.promote(Options{Rev: c2}, version.Dev)
			require.NoError(e.t, e.store.Record(e.t.Context(), results.Result{Stage: "integration", Rev: c2, State: results.StateFailed, Description: "2 tests failed", Binding: testWant}))
			return Options{Want: testWant, Channel: version.Beta, Rev: c2}
		}, "stage gate: integration is failed for"},
		{"skipped stage is not passed", func(e *env, _, c2 string) Options {
			e.pass(c2, "unit", "integration", "performance")
			require.NoError(e.t, e.store.Record(e.t.Context(), results.Result{Stage: "security", Rev: c2, State: results.StateSkipped, Description: "no intel-gpu", Binding: testWant}))
			e.promote(Options{Rev: c2}, version.Dev, version.Beta)
			return Options{Want: testWant, Channel: version.Stable, Rev: c2, ApprovedBy: "alice"}
		}, "stage gate: security is skipped"},
		{"no approval", func(e *env, _, c2 string) Options {
			e.pass(c2, all...)
			e.promote(Options{Rev: c2}, version.Dev, version.Beta)
			return Options{Want: testWant, Channel: version.Stable, Rev: c2}
		}, "approval gate: "},
		{"older commit", func(e *env, c1, c2 string) Options {
			e.pass(c2, "unit")
			e.pass(c1, "unit")
			e.promote(Options{Rev: c2}, version.Dev)
			return Options{Want: testWant, Channel: version.Dev, Rev: c1}
		}, "order gate: "},
		{"diverged commit", func(e *env, c1, c2 string) Options {
			e.pass(c2, "unit")
			e.promote(Options{Rev: c2}, version.Dev)
			e.g.Git("checkout", "-q", "-b", "side", c1)
			c3 := e.g.Commit("fix: on a side branch")
			e.pass(c3, "unit")
			return Options{Want: testWant, Channel: version.Dev, Rev: c3}
		}, "is not a descendant"},
		{"malformed rev", func(e *env, _, _ string) Options {
			return Options{Want: testWant, Channel: version.Dev, Rev: "--upload-pack=x"}
		}, "pass a commit SHA, tag or branch"},
		{"unknown rev", func(e *env, _, _ string) Options {
			return Options{Want: testWant, Channel: version.Dev, Rev: "0123456789abcdef0123456789abcdef01234567"}
		}, "does not name a commit"},
		{"no build report", func(e *env, _, c2 string) Options {
			e.pass(c2, "unit")
			return Options{Channel: version.Dev, Rev: c2}
		}, "stage gate: no build report: pass --report FILE"},
		{"results of another flake", func(e *env, _, c2 string) Options {
			e.pass(c2, "unit")
			o := Options{Want: testWant, Channel: version.Dev, Rev: c2}
			o.Want.Flake = "examples/offline"
			return o
		}, "stage gate: unit was passed for flake . (narHash " + testWant.NarHash + "), build report " + testWant.Report +
			", but this release is flake examples/offline"},
		{"results of another build", func(e *env, _, c2 string) Options {
			e.pass(c2, "unit")
			o := Options{Want: testWant, Channel: version.Dev, Rev: c2}
			o.Want.Report = "sha256:" + strings.Repeat("0", 64)
			return o
		}, "but this release is flake . (narHash " + testWant.NarHash + "), build report sha256:" + strings.Repeat("0", 64)},
		{"beta on an external service", func(e *env, _, c2 string) Options {
			e.pass(c2, "unit")
			e.promote(Options{Rev: c2}, version.Dev)
			require.NoError(e.t, e.store.Record(e.t.Context(), results.Result{Stage: "integration", Rev: c2, State: results.StatePassed, Binding: testWant, External: true}))
			return Options{Want: testWant, Channel: version.Beta, Rev: c2}
		}, "stage gate: integration tested an external service, not the services of this build; beta accepts that only with --allow-external-services"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, c1, c2 := issueExample(t)
			o := tt.setup(e, c1, c2)
			before, msgs := e.snapshot(), e.note.count()
			_, err := e.run(o)
			require.Error(t, err)
			assert.Equal(t, clierr.ExitUsage, clierr.Code(err))
			assert.Contains(t, err.Error(), tt.gate)
			assert.Equal(t, before, e.snapshot(), "nothing changed")
			assert.Equal(t, msgs, e.note.count())
		})
	}
}

// TestExternalServicesAllowed: --allow-external-services lets beta accept
// an external-service result, and the notes say what it tested.
func TestExternalServicesAllowed(t *testing.T) {
	e, _, c2 := issueExample(t)
	e.pass(c2, "unit")
	e.promote(Options{Rev: c2}, version.Dev)
	require.NoError(t, e.store.Record(t.Context(), results.Result{Stage: "integration", Rev: c2, State: results.StatePassed, Binding: testWant, External: true}))
	out, err := e.run(Options{Want: testWant, Channel: version.Beta, Rev: c2, AllowExternalServices: true})
	require.NoError(t, err)
	assert.Equal(t, "v0.2.0-beta.1", out.Plan.Tag)
	assert.Contains(t, out.Plan.Notes, "external service")
}

func TestDryRunChangesNothing(t *testing.T) {
	e, _, c2 := issueExample(t)
	e.pass(c2, "unit")
	before := e.snapshot()
	out, err := e.run(Options{Want: testWant, Channel: version.Dev, Rev: c2, DryRun: true})
	require.NoError(t, err)
	assert.Equal(t, "v0.2.0-dev.1", out.Plan.Tag)
	assert.Empty(t, out.Steps)
	assert.Equal(t, before, e.snapshot())
	assert.Zero(t, e.note.count())
}

func TestPhaseTagToBeta(t *testing.T) {
	e, _, _ := issueExample(t)
	c3 := e.g.Commit("phase3: production")
	e.g.Tag("phase3-complete", c3)
	e.pass(c3, all...)
	out, err := e.run(Options{Want: testWant, Channel: version.Dev, Rev: "phase3-complete"})
	require.NoError(t, err)
	assert.Equal(t, "v0.3.0-dev.1", out.Plan.Tag)
	out, err = e.run(Options{Want: testWant, Channel: version.Beta, Rev: "phase3-complete"})
	require.NoError(t, err)
	assert.Equal(t, "v0.3.0-beta.1", out.Plan.Tag)
	var b strings.Builder
	Print(&b, out.Plan, false)
	assert.Contains(t, b.String(), "as v0.3.0-beta.1 (phase3-complete stands for v0.3.0)")
	_, err = e.run(Options{Want: testWant, Channel: version.Stable, Rev: "phase3-complete"})
	assert.ErrorContains(t, err, "approval gate", "stable waits for an approval")
}

func TestManifestFromReport(t *testing.T) {
	e, _, c2 := issueExample(t)
	e.pass(c2, "unit")
	rep := &report.Report{Rev: c2, Cache: "file:///cache", Outputs: []report.Output{
		{Attr: "packages.x86_64-linux.ollama", Status: report.StatusBuilt, OutPaths: []string{"/nix/store/aaa-ollama"}},
		{Attr: "packages.x86_64-linux.comfyui", Status: report.StatusCached, OutPaths: []string{"/nix/store/bbb-comfyui"}},
		{Attr: "packages.x86_64-linux.python", Status: report.StatusPresent, OutPaths: []string{"/nix/store/ccc-python"}},
		{Attr: "packages.x86_64-linux.broken", Status: report.StatusFailed},
		{Attr: "packages.x86_64-linux.planned", Status: report.StatusWouldBuild, OutPaths: []string{"/nix/store/ddd-planned"}},
	}}
	_, err := e.run(Options{Want: testWant, Channel: version.Dev, Rev: c2, Report: rep, PublicKey: "cache-1:abc="})
	require.NoError(t, err)
	data, err := os.ReadFile(e.forge.AssetPath("v0.2.0-dev.1", forge.ManifestAsset))
	require.NoError(t, err)
	var m Manifest
	require.NoError(t, json.Unmarshal(data, &m))
	assert.Equal(t, Manifest{Version: "v0.2.0-dev.1", Channel: "dev", Rev: c2, Cache: "file:///cache", PublicKey: "cache-1:abc=",
		Outputs: map[string]string{"packages.x86_64-linux.ollama": "/nix/store/aaa-ollama", "packages.x86_64-linux.comfyui": "/nix/store/bbb-comfyui", "packages.x86_64-linux.python": "/nix/store/ccc-python"}}, m)

	rep.Rev = strings.Repeat("f", 40)
	c3 := e.g.Commit("fix: x")
	e.pass(c3, "unit")
	_, err = e.run(Options{Want: testWant, Channel: version.Dev, Rev: c3, Report: rep})
	assert.Equal(t, clierr.ExitUsage, clierr.Code(err))
	assert.ErrorContains(t, err, "--report is the build of")
}

func TestSlackFailureNeverFailsTheRelease(t *testing.T) {
	e, _, c2 := issueExample(t)
	e.pass(c2, "unit")
	e.note.fail = true
	out, err := e.run(Options{Want: testWant, Channel: version.Dev, Rev: c2})
	require.NoError(t, err)
	require.Len(t, out.NotifyErrors, 1)
	assert.Equal(t, c2, e.g.Ref("refs/tags/v0.2.0-dev.1"))
	// The rerun sends the message that failed.
	e.note.fail = false
	out, err = e.run(Options{Want: testWant, Channel: version.Dev, Rev: c2})
	require.NoError(t, err)
	assert.Empty(t, out.NotifyErrors)
	assert.Equal(t, 1, e.note.count())
}

// crashForge performs the real effect and then fails, as a process killed
// right after that effect would.
type crashForge struct {
	forge.Forge
	after string
}

var errCrash = errors.New("crash")

func (c *crashForge) crash(name string, err error) error {
	if err == nil && name == c.after {
		return errCrash
	}
	return err
}
func (c *crashForge) CreateTag(ctx context.Context, name, sha string) error {
	return c.crash("tag", c.Forge.CreateTag(ctx, name, sha))
}
func (c *crashForge) SetChannelRef(ctx context.Context, ch, old, sha string) error {
	return c.crash("ref", c.Forge.SetChannelRef(ctx, ch, old, sha))
}
func (c *crashForge) CreateRelease(ctx context.Context, r forge.Release) (*forge.Release, error) {
	rel, err := c.Forge.CreateRelease(ctx, r)
	return rel, c.crash("release", err)
}
func (c *crashForge) UploadAsset(ctx context.Context, r *forge.Release, name string, data []byte) error {
	return c.crash("manifest", c.Forge.UploadAsset(ctx, r, name, data))
}

// EditBody crashes before the marker is written: right after the message went out.
func (c *crashForge) EditBody(ctx context.Context, r *forge.Release, body string) error {
	if c.after == "notify" {
		return errCrash
	}
	return c.Forge.EditBody(ctx, r, body)
}

func TestCrashAfterEachEffectThenRerun(t *testing.T) {
	// Reference: an uninterrupted promotion.
	ref, _, c2 := issueExample(t)
	ref.pass(c2, "unit")
	_, err := ref.run(Options{Want: testWant, Channel: version.Dev, Rev: c2})
	require.NoError(t, err)
	wantRel, err := ref.forge.Release(t.Context(), "v0.2.0-dev.1")
	require.NoError(t, err)

	for _, point := range []struct {
		after string
		msgs  int // messages after crash + rerun: at most once
	}{{"tag", 1}, {"ref", 1}, {"release", 1}, {"manifest", 1}, {"notify", 1}} {
		t.Run(point.after, func(t *testing.T) {
			e, _, c2 := issueExample(t)
			e.pass(c2, "unit")
			_, err := e.promoter(&crashForge{Forge: e.forge, after: point.after}).Run(t.Context(), Options{Want: testWant, Channel: version.Dev, Rev: c2})
			require.ErrorIs(t, err, errCrash)

			out, err := e.run(Options{Want: testWant, Channel: version.Dev, Rev: c2})
			require.NoError(t, err)
			assert.True(t, out.Plan.Resume)
			assert.Equal(t, c2, e.g.Ref("refs/tags/v0.2.0-dev.1"))
			assert.Equal(t, c2, e.g.Ref("refs/heads/channels/dev"))
			assert.Empty(t, e.g.Ref("refs/tags/v0.2.0-dev.2"), "no second tag")
			rel, err := e.forge.Release(t.Context(), "v0.2.0-dev.1")
			require.NoError(t, err)
			assert.Equal(t, wantRel.Assets, rel.Assets)
			if point.after == "notify" {
				// Sent, then killed before the marker: the claim stands,
				// so the rerun does not send it again.
				assert.NotContains(t, rel.Body, forge.NotifiedMarker)
			} else {
				assert.Contains(t, rel.Body, forge.NotifiedMarker)
			}
			assert.Equal(t, point.msgs, e.note.count())

			// And a further rerun changes nothing.
			before := e.snapshot()
			out, err = e.run(Options{Want: testWant, Channel: version.Dev, Rev: c2})
			require.NoError(t, err)
			assert.False(t, out.Changed())
			assert.Equal(t, before, e.snapshot())
		})
	}
}

func TestRacingPromotions(t *testing.T) {
	t.Run("same commit", func(t *testing.T) {
		e, _, c2 := issueExample(t)
		e.pass(c2, "unit")
		errs := race(e, Options{Want: testWant, Channel: version.Dev, Rev: c2}, Options{Want: testWant, Channel: version.Dev, Rev: c2})
		for _, err := range errs {
			require.NoError(t, err)
		}
		assert.Equal(t, c2, e.g.Ref("refs/tags/v0.2.0-dev.1"))
		assert.Empty(t, e.g.Ref("refs/tags/v0.2.0-dev.2"), "one tag for one commit")
		assert.Equal(t, c2, e.g.Ref("refs/heads/channels/dev"))
		assert.GreaterOrEqual(t, e.note.count(), 1)
	})
	t.Run("parent and child", func(t *testing.T) {
		e, _, c2 := issueExample(t)
		c3 := e.g.Commit("fix: child")
		e.pass(c2, "unit")
		e.pass(c3, "unit")
		errs := race(e, Options{Want: testWant, Channel: version.Dev, Rev: c2}, Options{Want: testWant, Channel: version.Dev, Rev: c3})
		require.NoError(t, errs[1], "the child always lands")
		if errs[0] != nil {
			// The parent lost: refused or superseded, never half-done silently.
			assert.Contains(t, errs[0].Error(), shorthash.Commit(c2))
		}
		assert.Equal(t, c3, e.g.Ref("refs/heads/channels/dev"), "the channel ends at the newest commit")
		tags := e.g.Git("tag", "--list", "v0.2.0-dev.*", "--points-at", c3)
		assert.NotEmpty(t, tags)
		assert.NotEqual(t, e.g.Ref("refs/tags/v0.2.0-dev.1"), e.g.Ref("refs/tags/v0.2.0-dev.2"), "tags are never reused")
	})
}

func race(e *env, a, b Options) [2]error {
	var errs [2]error
	var wg sync.WaitGroup
	for i, o := range []Options{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.run(o)
		}()
	}
	wg.Wait()
	return errs
}

func TestStatusAndNextVersion(t *testing.T) {
	e, _, c2 := issueExample(t)
	e.pass(c2, "unit")
	p := e.promoter(nil)
	for c, want := range map[version.Channel]string{version.Dev: "v0.2.0-dev.1", version.Beta: "v0.2.0-beta.1", version.Stable: "v0.2.0"} {
		got, err := p.NextVersion(t.Context(), Options{Want: testWant, Channel: c})
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	e.promote(Options{Rev: c2}, version.Dev)
	rep, err := p.Status(t.Context(), version.DefaultConfig(), "", testWant)
	require.NoError(t, err)
	sts := rep.Channels
	require.Len(t, sts, 3)
	assert.Equal(t, c2, sts[0].Head)
	assert.Equal(t, "v0.2.0-dev.1", sts[0].Latest)
	assert.True(t, sts[0].UpToDate, "dev already has its release at HEAD")
	assert.Empty(t, sts[0].Blocked)
	assert.Equal(t, "v0.2.0-beta.1", sts[1].Next)
	assert.Contains(t, sts[1].Blocked, "integration has no result")
	assert.Contains(t, sts[2].Blocked, "nothing to promote")

	// A blocked promotion lists its gates, not a refusal of something not asked for.
	var b strings.Builder
	PrintStatus(&b, rep)
	assert.Contains(t, b.String(), "next: "+shorthash.Commit(c2)+" as v0.2.0-beta.1, blocked by its gates:\n          - stage gate: integration has no result")
	assert.Contains(t, b.String(), "up to date: "+shorthash.Commit(c2)+" is already v0.2.0-dev.1")
	assert.NotContains(t, b.String(), "refused")
}

// planTags lists the tags of the outcomes' plans.
func planTags(outs []*Outcome) []string {
	tags := make([]string, len(outs))
	for i, out := range outs {
		tags[i] = out.Plan.Tag
	}
	return tags
}
