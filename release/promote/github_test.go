package promote

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	slackapi "github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/githubhttp"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
	"github.com/ipex-flake/ipex-flake/release/forge"
	"github.com/ipex-flake/ipex-flake/release/github"
	"github.com/ipex-flake/ipex-flake/release/github/githubtest"
	"github.com/ipex-flake/ipex-flake/release/slack"
	"github.com/ipex-flake/ipex-flake/release/version"
)

const ghToken = "ghp_never_printed"

type ghEnv struct {
	*env
	srv    *githubtest.Server
	api    *github.API
	sleeps *[]time.Duration
	posted *[]url.Values
	bot    slack.Notifier
}

// newGitHubEnv: a local clone (history), a GitHub API server holding the
// tags, refs, releases and statuses, and a slacktest server.
func newGitHubEnv(t *testing.T) (*ghEnv, string, string) {
	e, c1, c2 := issueExample(t)
	srv := githubtest.New(t, "ipex-flake", "ipex-flake", func(a, b string) bool {
		ok, err := e.repo.IsAncestor(context.Background(), a, b)
		return err == nil && ok
	})
	require.NoError(t, srv.Fake.CreateTag(t.Context(), "v0.1.0", c1))
	var mu sync.Mutex
	var sleeps []time.Duration
	api, err := github.New(github.Config{Token: ghToken, Owner: "ipex-flake", Repo: "ipex-flake",
		APIURL: srv.APIURL(), UploadURL: srv.UploadURL(),
		Transport: &githubhttp.RetryTransport{Sleep: func(_ context.Context, d time.Duration) error {
			mu.Lock()
			defer mu.Unlock()
			sleeps = append(sleeps, d)
			return nil
		}}})
	require.NoError(t, err)

	var posted []url.Values
	sl := slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
			assert.Equal(t, http.MethodPost, r.Method)
			body, _ := io.ReadAll(r.Body)
			form, _ := url.ParseQuery(string(body))
			mu.Lock()
			posted = append(posted, form)
			mu.Unlock()
			_, _ = w.Write([]byte(`{"ok":true,"channel":"C1","ts":"1.0"}`))
		})
	})
	sl.Start()
	t.Cleanup(sl.Stop)
	bot := &slack.Bot{Client: slackapi.New("xoxb-never-printed", slackapi.OptionAPIURL(sl.GetAPIURL())), Channel: slack.DefaultChannel}

	g := &ghEnv{env: e, srv: srv, api: api, sleeps: &sleeps, posted: &posted, bot: bot}
	return g, c1, c2
}

func (g *ghEnv) promoter() *Promoter {
	return &Promoter{Repo: g.repo, Forge: g.api, Results: &github.StatusStore{Client: g.api}, Notifier: g.bot}
}

func (g *ghEnv) pass(rev string, stages ...string) {
	store := &github.StatusStore{Client: g.api}
	for _, s := range stages {
		require.NoError(g.t, store.Record(g.t.Context(), results.Result{Stage: s, Rev: rev, State: results.StatePassed, URL: "https://ci.example/" + s, Binding: testWant}))
	}
}

func TestGitHubPromotionThroughAllChannels(t *testing.T) {
	g, _, c2 := newGitHubEnv(t)
	g.pass(c2, all...)
	for _, tt := range []struct {
		c    version.Channel
		want string
	}{{version.Dev, "v0.2.0-dev.1"}, {version.Beta, "v0.2.0-beta.1"}, {version.Stable, "v0.2.0"}} {
		out, err := g.promoter().Run(t.Context(), Options{Want: testWant, Channel: tt.c, Rev: c2, ApprovedBy: "alice", Cache: "https://cache.example", PublicKey: "cache-1:k="})
		require.NoError(t, err, tt.c)
		assert.Equal(t, tt.want, out.Plan.Tag)
		assert.Equal(t, c2, g.srv.Fake.TagRefs[tt.want])
		assert.Equal(t, c2, g.srv.Fake.Channels[string(tt.c)])
		rel := g.srv.Fake.Releases[tt.want]
		require.NotNil(t, rel)
		assert.Equal(t, tt.c != version.Stable, rel.Prerelease)
		assert.Equal(t, tt.c == version.Stable, rel.Latest, "make_latest for stable only")
		assert.Contains(t, rel.Body, "https://github.com/ipex-flake/ipex-flake/commit/"+c2)
		assert.Contains(t, rel.Body, forge.NotifiedMarker)
		var m Manifest
		require.NoError(t, json.Unmarshal(g.srv.Fake.Assets[tt.want][forge.ManifestAsset], &m))
		assert.Equal(t, tt.want, m.Version)
		assert.Equal(t, "cache-1:k=", m.PublicKey)
	}
	assert.Contains(t, g.srv.Fake.Releases["v0.2.0"].Body, "Approved by: alice")
	require.Len(t, *g.posted, 3)
	assert.Equal(t, "#ai-infrastructure", (*g.posted)[2].Get("channel"))
	assert.Contains(t, (*g.posted)[2].Get("text"), "released on *stable*")
	for _, a := range g.srv.Auth {
		assert.Equal(t, "Bearer "+ghToken, a)
	}

	// A rerun changes nothing: no write request at all.
	n := len(g.srv.Requests)
	out, err := g.promoter().Run(t.Context(), Options{Want: testWant, Channel: version.Stable, Rev: c2, ApprovedBy: "alice"})
	require.NoError(t, err)
	assert.False(t, out.Changed())
	for _, r := range g.srv.Requests[n:] {
		assert.True(t, strings.HasPrefix(r, "GET "), "rerun made a write: %s", r)
	}
	assert.Len(t, *g.posted, 3)
}

func TestGitHubRetriesOn502AndSecondaryRateLimit(t *testing.T) {
	g, _, c2 := newGitHubEnv(t)
	g.pass(c2, "unit")
	g.srv.Fail("POST", "/git/refs", githubtest.BadGateway())
	g.srv.Fail("POST", "/releases", githubtest.SecondaryRateLimit("11"))
	g.srv.Fail("GET", "/commits/{sha}/status", githubtest.SecondaryRateLimit(""))
	out, err := g.promoter().Run(t.Context(), Options{Want: testWant, Channel: version.Dev, Rev: c2})
	require.NoError(t, err)
	assert.Equal(t, "v0.2.0-dev.1", out.Plan.Tag)
	assert.Equal(t, []time.Duration{time.Minute, time.Second, 11 * time.Second}, *g.sleeps)
	assert.Len(t, g.srv.Fake.Releases, 1)
}

func TestGitHubOutageAfterRefThenRerun(t *testing.T) {
	g, _, c2 := newGitHubEnv(t)
	g.pass(c2, "unit")
	for range 5 { // more than the transport's attempts
		g.srv.Fail("POST", "/releases", githubtest.BadGateway())
	}
	_, err := g.promoter().Run(t.Context(), Options{Want: testWant, Channel: version.Dev, Rev: c2})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), ghToken)
	assert.Equal(t, c2, g.srv.Fake.TagRefs["v0.2.0-dev.1"])
	assert.Equal(t, c2, g.srv.Fake.Channels["dev"])
	assert.Empty(t, g.srv.Fake.Releases)

	out, err := g.promoter().Run(t.Context(), Options{Want: testWant, Channel: version.Dev, Rev: c2})
	require.NoError(t, err)
	assert.True(t, out.Plan.Resume)
	assert.Len(t, g.srv.Fake.TagRefs, 2, "v0.1.0 and one dev tag")
	assert.Len(t, g.srv.Fake.Releases, 1)
	assert.Len(t, *g.posted, 1)
}

func TestGitHubRacingPromotions(t *testing.T) {
	g, _, c2 := newGitHubEnv(t)
	c3 := g.g.Commit("fix: child")
	g.pass(c2, "unit")
	g.pass(c3, "unit")
	var errs [2]error
	var wg sync.WaitGroup
	for i, rev := range []string{c2, c3} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = g.promoter().Run(t.Context(), Options{Want: testWant, Channel: version.Dev, Rev: rev})
		}()
	}
	wg.Wait()
	require.NoError(t, errs[1])
	assert.Equal(t, c3, g.srv.Fake.Channels["dev"])
	seen := map[string]string{}
	for tag, sha := range g.srv.Fake.TagRefs {
		if r, ok := version.ParseTag(tag); ok && r.Channel == version.Dev {
			assert.Empty(t, seen[sha], "one dev tag per commit")
			seen[sha] = tag
		}
	}
	assert.NotEmpty(t, seen[c3])
}
