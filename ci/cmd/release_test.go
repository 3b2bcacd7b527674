package cmd

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slack-go/slack/slacktest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
	"github.com/ipex-flake/ipex-flake/release/github"
	"github.com/ipex-flake/ipex-flake/release/github/githubtest"
	"github.com/ipex-flake/ipex-flake/release/gitrepo/gittest"
)

func relIO(env map[string]string) (*IO, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &IO{In: strings.NewReader(""), Out: &out, Err: &errb, Getenv: envWithPATH(env)}, &out, &errb
}

func TestReleaseFlags(t *testing.T) {
	var got *ReleasePromoteOptions
	var gotV *ReleaseVersionOptions
	io, _, _ := relIO(nil)
	run := func(args ...string) error {
		c := newReleaseCmdWith(io,
			func(_ context.Context, o *ReleasePromoteOptions) error { got = o; return nil },
			func(context.Context, *ReleaseStatusOptions) error { return nil },
			func(_ context.Context, o *ReleaseVersionOptions) error { gotV = o; return nil })
		c.SetArgs(args)
		c.SetOut(io.Out)
		c.SetErr(io.Err)
		return c.Execute()
	}
	require.NoError(t, run("promote", "--to", "stable", "--rev", "abc123", "--dry-run", "--approved-by", "alice",
		"--report", "r.json", "--cache", "file:///c", "--public-key", "k:1", "--repo", "o/r", "--phase-version", "v1.{N}.0"))
	assert.Equal(t, "stable", got.To)
	assert.Equal(t, "abc123", got.Rev)
	assert.True(t, got.DryRun)
	assert.Equal(t, "alice", got.ApprovedBy)
	assert.Equal(t, "r.json", got.ReportPath)
	assert.Equal(t, "file:///c", got.Cache)
	assert.Equal(t, "k:1", got.PublicKey)
	assert.Equal(t, "o/r", got.Common.Repo)
	assert.Equal(t, "v1.{N}.0", got.Common.PhaseVersion)

	require.NoError(t, run("promote", "--to", "dev"))
	assert.Equal(t, "HEAD", got.Rev)
	assert.False(t, got.DryRun)

	require.NoError(t, run("version"))
	assert.Equal(t, "stable", gotV.Channel, "version defaults to stable")
}

func TestReleaseUsageErrors(t *testing.T) {
	g := gittest.New(t)
	g.Commit("feat: one")
	t.Chdir(g.Dir)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown channel", []string{"release", "promote", "--to", "nightly"}, "is not a channel: pass"},
		{"missing channel", []string{"release", "promote"}, "--to is required"},
		{"unknown version channel", []string{"release", "version", "--channel", "prod"}, "is not a channel: pass"},
		{"malformed rev", []string{"release", "promote", "--to", "dev", "--rev", "--oops"}, "pass a commit SHA, tag or branch"},
		{"malformed rev spaces", []string{"release", "promote", "--to", "dev", "--rev", "a b"}, "pass a commit SHA, tag or branch"},
		{"unknown rev", []string{"release", "promote", "--to", "dev", "--rev", "deadbeef"}, "does not name a commit"},
		{"bad phase mapping", []string{"release", "version", "--phase-version", "v0.1.0"}, "--phase-version"},
		{"missing report", []string{"release", "promote", "--to", "dev", "--report", "nope.json"}, "--report"},
		{"missing status report", []string{"release", "status", "--report", "nope.json"}, "--report"},
		{"gate", []string{"release", "promote", "--to", "dev"}, "stage gate: no build report: pass --report FILE"},
		{"token without repository", []string{"release", "status"}, "GITHUB_REPOSITORY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			if tt.name == "token without repository" {
				env["GITHUB_TOKEN"] = "ghp_x_secret"
			}
			io, _, errb := relIO(env)
			code := Run(t.Context(), io, tt.args)
			assert.Equal(t, clierr.ExitUsage, code, errb.String())
			assert.Contains(t, errb.String(), tt.want)
			assert.NotContains(t, errb.String(), "ghp_x_secret")
		})
	}
	assert.Empty(t, g.Git("tag"), "nothing was changed")
}

func TestReleaseOutsideRepository(t *testing.T) {
	gittest.RequireGit(t)
	t.Chdir(t.TempDir())
	io, _, errb := relIO(nil)
	assert.Equal(t, clierr.ExitUsage, Run(t.Context(), io, []string{"release", "status"}))
	assert.Contains(t, errb.String(), "run ci release inside the repository")
}

// recordLocal records passed results bound to the flake in g and the
// build report at rep, as ci test records them.
func recordLocal(t *testing.T, g *gittest.Repo, rev, rep string, stages ...string) {
	t.Helper()
	gd := g.Git("rev-parse", "--absolute-git-dir")
	store := &results.FileStore{Path: results.DefaultPath(gd)}
	r, err := report.Read(rep)
	require.NoError(t, err)
	b, err := results.ResolveFlake(t.Context(), g.Dir)
	require.NoError(t, err)
	b.Report = r.Digest()
	for _, s := range stages {
		require.NoError(t, store.Record(t.Context(), results.Result{Stage: s, Rev: rev, State: results.StatePassed, Binding: b}))
	}
}

func TestReleaseLocalMode(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // the provenance key generated on first use
	g := gittest.New(t)
	c1 := g.Commit("feat: first")
	g.Tag("v0.1.0", c1)
	c2 := g.Commit("feat: ollama with SYCL")
	t.Chdir(g.Dir)

	for ch, want := range map[string]string{"": "v0.2.0", "stable": "v0.2.0", "beta": "v0.2.0-beta.1", "dev": "v0.2.0-dev.1"} {
		io, out, errb := relIO(nil)
		args := []string{"release", "version"}
		if ch != "" {
			args = append(args, "--channel", ch)
		}
		require.Equal(t, 0, Run(t.Context(), io, args), errb.String())
		assert.Equal(t, want+"\n", out.String())
	}

	testlib.OfflineNix(t)
	// The report sits where ci build writes it, so the promotions below
	// without --report find it.
	rep := filepath.Join(g.Dir, ".ci-out", "build-report.json")
	require.NoError(t, os.MkdirAll(filepath.Dir(rep), 0o755))
	require.NoError(t, os.WriteFile(rep, []byte(`{"flake":".","engine":"host","rev":"`+c2+`","cache":"file:///tmp/cache","outputs":[
	  {"attr":"packages.x86_64-linux.ollama","system":"x86_64-linux","outPaths":["/nix/store/abc-ollama"],"status":"built","durationMs":1}]}`), 0o644))
	recordLocal(t, g, c2, rep, "unit", "integration", "performance", "security")

	// Dry run: everything printed, nothing changed.
	io, out, errb := relIO(nil)
	require.Equal(t, 0, Run(t.Context(), io, []string{"release", "promote", "--to", "dev", "--dry-run", "--report", rep}), errb.String())
	assert.Contains(t, out.String(), "would promote "+c2[:7]+" to dev as v0.2.0-dev.1")
	assert.Contains(t, out.String(), "nothing was changed")
	assert.Contains(t, out.String(), `"packages.x86_64-linux.ollama": "/nix/store/abc-ollama"`)
	assert.Contains(t, out.String(), "--- slack message ---")
	assert.Equal(t, "v0.1.0", g.Git("tag"))

	// The real promotion: local tag and ref, the release printed, Slack printed.
	io, out, errb = relIO(nil)
	require.Equal(t, 0, Run(t.Context(), io, []string{"release", "promote", "--to", "dev", "--report", rep}), errb.String())
	assert.Equal(t, c2, g.Ref("refs/tags/v0.2.0-dev.1"))
	assert.Equal(t, c2, g.Ref("refs/heads/channels/dev"))
	assert.Contains(t, out.String(), "local mode (no GITHUB_TOKEN)")
	assert.Contains(t, out.String(), "## v0.2.0-dev.1 (dev)")
	assert.Contains(t, out.String(), "slack message (no SLACK_BOT_TOKEN or SLACK_WEBHOOK_URL set)")
	assert.Less(t, strings.Index(out.String(), "+ tag"), strings.Index(out.String(), "slack message (no"), "the printed message follows the steps")

	// Rerun: nothing changes.
	io, out, errb = relIO(nil)
	require.Equal(t, 0, Run(t.Context(), io, []string{"release", "promote", "--to", "dev"}), errb.String())
	assert.Contains(t, out.String(), "already complete: nothing changed")
	io, out, errb = relIO(nil)
	require.Equal(t, 0, Run(t.Context(), io, []string{"release", "promote", "--to", "dev", "--dry-run"}), errb.String())
	assert.Contains(t, out.String(), "a run would finish whatever an earlier run of this promotion left undone")
	assert.NotContains(t, out.String(), "would create tag")

	// Stable is refused without approval; a GitHub environment approval counts.
	io, _, errb = relIO(nil)
	require.Equal(t, 0, Run(t.Context(), io, []string{"release", "promote", "--to", "beta"}), errb.String())
	io, _, errb = relIO(nil)
	assert.Equal(t, clierr.ExitUsage, Run(t.Context(), io, []string{"release", "promote", "--to", "stable"}))
	assert.Contains(t, errb.String(), "approval gate")
	io, out, errb = relIO(map[string]string{"GITHUB_ACTIONS": "true", "CI_APPROVED_BY": "bob"})
	require.Equal(t, 0, Run(t.Context(), io, []string{"release", "promote", "--to", "stable"}), errb.String())
	assert.Equal(t, c2, g.Ref("refs/tags/v0.2.0"))
	assert.Contains(t, out.String(), "Approved by: bob (GitHub environment approval)")

	io, out, errb = relIO(nil)
	require.Equal(t, 0, Run(t.Context(), io, []string{"release", "status"}), errb.String())
	assert.Contains(t, out.String(), "dev     channels/dev at "+c2[:7]+", latest v0.2.0-dev.1")
	assert.Contains(t, out.String(), "stable  channels/stable at "+c2[:7]+", latest v0.2.0")
	assert.Contains(t, out.String(), "up to date: "+c2[:7]+" is already v0.2.0\n")
}

func TestReleaseGitHubModeNeverPrintsSecrets(t *testing.T) {
	g := gittest.New(t)
	c1 := g.Commit("feat: first")
	c2 := g.Commit("fix: second")
	t.Chdir(g.Dir)
	srv := githubtest.New(t, "o", "r", nil)
	require.NoError(t, srv.Fake.CreateTag(t.Context(), "v0.1.0", c1))
	testlib.OfflineNix(t)
	rep := filepath.Join(g.Dir, ".ci-out", "build-report.json")
	require.NoError(t, os.MkdirAll(filepath.Dir(rep), 0o755))
	require.NoError(t, (&report.Report{Flake: ".", Rev: c2, Outputs: []report.Output{
		{Attr: "packages.x86_64-linux.a", OutPaths: []string{"/nix/store/abc-a"}, Status: report.StatusBuilt}}}).Write(rep))
	b, err := results.ResolveFlake(t.Context(), g.Dir)
	require.NoError(t, err)
	b.Report = (&report.Report{Outputs: []report.Output{{Attr: "packages.x86_64-linux.a", OutPaths: []string{"/nix/store/abc-a"}}}}).Digest()
	state, desc := results.ToStatus(results.Result{Stage: "unit", State: results.StatePassed, Binding: b})
	require.NoError(t, srv.Fake.CreateStatus(t.Context(), c2, github.Status{Context: "ci/unit", State: state, Description: desc}))

	// Slack rejects the token: reported, never fatal, never printed.
	sl := slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
			assert.Equal(t, http.MethodPost, r.Method)
			_, _ = io.Copy(io.Discard, r.Body)
			_, _ = w.Write([]byte(`{"ok":false,"error":"invalid_auth"}`))
		})
	})
	sl.Start()
	t.Cleanup(sl.Stop)

	env := map[string]string{
		"GITHUB_TOKEN": "ghp_topsecret_value", "GITHUB_REPOSITORY": "o/r",
		"GITHUB_API_URL": srv.APIURL(), "GITHUB_UPLOAD_URL": srv.UploadURL(),
		"SLACK_BOT_TOKEN": "xoxb-topsecret-value", "SLACK_API_URL": sl.GetAPIURL(),
	}
	cio, out, errb := relIO(env)
	code := Run(t.Context(), cio, []string{"release", "promote", "--to", "dev"})
	require.Equal(t, 0, code, errb.String())
	assert.Equal(t, c2, srv.Fake.TagRefs["v0.1.1-dev.1"])
	assert.Equal(t, c2, srv.Fake.Channels["dev"])
	assert.Contains(t, errb.String(), "notification failed (the release stands;")
	assert.Contains(t, errb.String(), "invalid_auth")
	for _, a := range srv.Auth {
		assert.Equal(t, "Bearer ghp_topsecret_value", a, "the token reaches GitHub")
	}

	// A failing GitHub call: the error is shown, the token is not.
	srv.Fail("GET", "/git/matching-refs/tags/", githubtest.Failure{Code: 401, Body: `{"message":"Bad credentials ghp_topsecret_value"}`})
	cio2, out2, errb2 := relIO(env)
	assert.Equal(t, clierr.ExitFailed, Run(t.Context(), cio2, []string{"release", "status"}))
	assert.Contains(t, errb2.String(), "Bad credentials")

	for _, s := range []string{out.String(), errb.String(), out2.String(), errb2.String()} {
		assert.NotContains(t, s, "ghp_topsecret_value")
		assert.NotContains(t, s, "xoxb-topsecret-value")
	}
}
