package github

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/githubhttp"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
	"github.com/ipex-flake/ipex-flake/release/forge"
)

const (
	baseURLPath = "/api-v3"
	token       = "ghp_secret_token_value"
)

// sleeps records the waits of the retrying transport instead of waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(_ context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return nil
}

// setup starts a GitHub API test server under a non-root base path, the way
// go-github's own tests do, and returns a client pointed at it.
func setup(t *testing.T) (*API, *http.ServeMux, *sleeps) {
	t.Helper()
	mux := http.NewServeMux()
	api := http.NewServeMux()
	api.Handle(baseURLPath+"/", http.StripPrefix(baseURLPath, mux))
	api.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("request outside the API base path: %s %s", r.Method, r.URL)
		http.Error(w, "outside base path", http.StatusBadRequest)
	})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	sl := &sleeps{}
	c, err := New(Config{
		Token: token, Owner: "o", Repo: "r",
		APIURL: srv.URL + baseURLPath + "/", UploadURL: srv.URL + baseURLPath + "/uploads/",
		Transport: &githubhttp.RetryTransport{Sleep: sl.sleep, AttemptTimeout: 2 * time.Second},
	})
	require.NoError(t, err)
	return c, mux, sl
}

func testMethod(t *testing.T, r *http.Request, want string) {
	t.Helper()
	assert.Equal(t, want, r.Method)
}

func serve(t *testing.T, w http.ResponseWriter, code int, file string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	require.NoError(t, err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(data)
}

// reply is one canned response: a status code and a file in testdata.
type reply struct {
	code int
	file string
}

// route answers requests to path: it asserts their method, runs check (when
// not nil) on each, and serves the replies in order, the last one again for
// every later request.
func route(t *testing.T, mux *http.ServeMux, method, path string, check func(*http.Request), replies ...reply) {
	t.Helper()
	require.NotEmpty(t, replies)
	var n int
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		testMethod(t, r, method)
		if check != nil {
			check(r)
		}
		rp := replies[min(n, len(replies)-1)]
		n++
		serve(t, w, rp.code, rp.file)
	})
}

func decode(t *testing.T, r *http.Request) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.NewDecoder(r.Body).Decode(&m))
	return m
}

func TestTags(t *testing.T) {
	c, mux, _ := setup(t)
	route(t, mux, http.MethodGet, "/repos/o/r/git/matching-refs/tags/", func(r *http.Request) {
		assert.Equal(t, "Bearer "+token, r.Header.Get("Authorization"))
	}, reply{200, "matching_refs.json"})
	route(t, mux, http.MethodGet, "/repos/o/r/git/tags/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", nil, reply{200, "tag.json"})
	tags, err := c.Tags(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []forge.Tag{
		{Name: "v0.1.0", SHA: "1111111111111111111111111111111111111111"},
		{Name: "phase2-complete", SHA: "2222222222222222222222222222222222222222"},
	}, tags, "annotated tags are peeled to their commit")
}

func TestCreateTag(t *testing.T) {
	c, mux, _ := setup(t)
	route(t, mux, http.MethodPost, "/repos/o/r/git/refs", func(r *http.Request) {
		body := decode(t, r)
		assert.Equal(t, "refs/tags/v0.2.0", body["ref"])
		assert.Equal(t, "3333333333333333333333333333333333333333", body["sha"])
	}, reply{201, "ref.json"}, reply{422, "ref_exists.json"})
	require.NoError(t, c.CreateTag(t.Context(), "v0.2.0", "3333333333333333333333333333333333333333"))
	err := c.CreateTag(t.Context(), "v0.2.0", "3333333333333333333333333333333333333333")
	assert.ErrorIs(t, err, forge.ErrExists)
}

func TestChannelRef(t *testing.T) {
	c, mux, _ := setup(t)
	route(t, mux, http.MethodGet, "/repos/o/r/git/ref/heads/channels/dev", nil, reply{200, "ref.json"})
	route(t, mux, http.MethodGet, "/repos/o/r/git/ref/heads/channels/beta", nil, reply{404, "not_found.json"})
	sha, err := c.ChannelRef(t.Context(), "dev")
	require.NoError(t, err)
	assert.Equal(t, "3333333333333333333333333333333333333333", sha)
	sha, err = c.ChannelRef(t.Context(), "beta")
	require.NoError(t, err)
	assert.Empty(t, sha)
}

func TestSetChannelRef(t *testing.T) {
	c, mux, _ := setup(t)
	route(t, mux, http.MethodPost, "/repos/o/r/git/refs", func(r *http.Request) {
		assert.Equal(t, "refs/heads/channels/beta", decode(t, r)["ref"])
	}, reply{422, "ref_exists.json"})
	route(t, mux, http.MethodPatch, "/repos/o/r/git/refs/heads/channels/dev", func(r *http.Request) {
		assert.Equal(t, false, decode(t, r)["force"], "channel refs are never forced")
	}, reply{200, "ref.json"}, reply{422, "not_fast_forward.json"})
	assert.ErrorIs(t, c.SetChannelRef(t.Context(), "beta", "", "3333"), forge.ErrExists)
	require.NoError(t, c.SetChannelRef(t.Context(), "dev", "1111", "3333"))
	assert.ErrorIs(t, c.SetChannelRef(t.Context(), "dev", "1111", "3333"), forge.ErrNotFastForward)
}

func TestReleases(t *testing.T) {
	c, mux, _ := setup(t)
	route(t, mux, http.MethodGet, "/repos/o/r/releases/tags/v0.2.0-beta.1", nil, reply{200, "release.json"})
	route(t, mux, http.MethodGet, "/repos/o/r/releases/tags/v9.9.9", nil, reply{404, "not_found.json"})
	route(t, mux, http.MethodPost, "/repos/o/r/releases", func(r *http.Request) {
		body := decode(t, r)
		assert.Equal(t, "v0.2.0-beta.1", body["tag_name"])
		assert.Equal(t, true, body["prerelease"])
		assert.Equal(t, "false", body["make_latest"])
		assert.Equal(t, "3333333333333333333333333333333333333333", body["target_commitish"])
	}, reply{201, "release.json"}, reply{422, "release_exists.json"})
	route(t, mux, http.MethodPost, "/uploads/repos/o/r/releases/42/assets", func(r *http.Request) {
		assert.Equal(t, "channel-manifest.json", r.URL.Query().Get("name"))
		assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
		data, _ := io.ReadAll(r.Body)
		assert.Equal(t, "{}", string(data))
	}, reply{201, "asset.json"})
	route(t, mux, http.MethodPatch, "/repos/o/r/releases/42", func(r *http.Request) {
		assert.Equal(t, "new body", decode(t, r)["body"])
	}, reply{200, "release.json"})

	rel, err := c.Release(t.Context(), "v9.9.9")
	require.NoError(t, err)
	assert.Nil(t, rel)
	rel, err = c.Release(t.Context(), "v0.2.0-beta.1")
	require.NoError(t, err)
	assert.Equal(t, &forge.Release{ID: 42, Tag: "v0.2.0-beta.1", Name: "v0.2.0-beta.1", Body: "## v0.2.0-beta.1 (beta)",
		Rev: "3333333333333333333333333333333333333333", Prerelease: true, URL: "https://github.com/o/r/releases/tag/v0.2.0-beta.1",
		Assets: []string{"channel-manifest.json"}}, rel)

	want := forge.Release{Tag: "v0.2.0-beta.1", Name: "v0.2.0-beta.1", Body: "notes", Rev: "3333333333333333333333333333333333333333", Prerelease: true}
	created, err := c.CreateRelease(t.Context(), want)
	require.NoError(t, err)
	assert.Equal(t, int64(42), created.ID)
	_, err = c.CreateRelease(t.Context(), want)
	assert.ErrorIs(t, err, forge.ErrExists)

	require.NoError(t, c.UploadAsset(t.Context(), created, "channel-manifest.json", []byte("{}")))
	require.NoError(t, c.EditBody(t.Context(), created, "new body"))
	assert.Equal(t, "new body", created.Body)
}

func TestStableReleaseIsLatest(t *testing.T) {
	c, mux, _ := setup(t)
	route(t, mux, http.MethodPost, "/repos/o/r/releases", func(r *http.Request) {
		body := decode(t, r)
		assert.Equal(t, false, body["prerelease"])
		assert.Equal(t, "true", body["make_latest"])
	}, reply{201, "release.json"})
	_, err := c.CreateRelease(t.Context(), forge.Release{Tag: "v0.2.0", Latest: true})
	require.NoError(t, err)
}

// TestRetries: a failed request is retried after the wait GitHub asks for
// (or exponential backoff), resending its body; a request that keeps
// failing ends in an error after five attempts, or at once when GitHub asks
// for a longer wait than the transport allows (GitHub's own message then
// reaches the caller).
func TestRetries(t *testing.T) {
	tests := []struct {
		name string
		fail func(t *testing.T, w http.ResponseWriter)
		// failures is how many requests fail (0: all of them).
		failures   int
		wantCalls  int
		wantSleeps []time.Duration
		wantErr    string
	}{
		{"502", func(t *testing.T, w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) }, 1, 2, []time.Duration{time.Second}, ""},
		{"secondary rate limit with Retry-After", func(t *testing.T, w http.ResponseWriter) {
			w.Header().Set("Retry-After", "7")
			serve(t, w, 403, "secondary_rate_limit.json")
		}, 1, 2, []time.Duration{7 * time.Second}, ""},
		{"secondary rate limit without Retry-After", func(t *testing.T, w http.ResponseWriter) {
			serve(t, w, 403, "secondary_rate_limit.json")
		}, 1, 2, []time.Duration{time.Minute}, ""},
		{"429 Retry-After", func(t *testing.T, w http.ResponseWriter) {
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
		}, 1, 2, []time.Duration{3 * time.Second}, ""},
		{"gives up after five attempts", func(t *testing.T, w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) },
			0, 5, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}, "503"},
		{"Retry-After beyond the longest wait returns the response", func(t *testing.T, w http.ResponseWriter) {
			w.Header().Set("Retry-After", "3600")
			serve(t, w, 403, "secondary_rate_limit.json")
		}, 0, 1, nil, "secondary rate limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, mux, sl := setup(t)
			var calls int
			mux.HandleFunc("/repos/o/r/git/refs", func(w http.ResponseWriter, r *http.Request) {
				testMethod(t, r, http.MethodPost)
				calls++
				assert.Equal(t, "refs/tags/v0.2.0", decode(t, r)["ref"], "the body is resent on every attempt")
				if tt.failures == 0 || calls <= tt.failures {
					tt.fail(t, w)
					return
				}
				serve(t, w, 201, "ref.json")
			})
			err := c.CreateTag(t.Context(), "v0.2.0", "3333")
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tt.wantCalls, calls)
			assert.Equal(t, tt.wantSleeps, sl.d)
		})
	}
}

func TestRetryAfterTimeout(t *testing.T) {
	mux := http.NewServeMux()
	var mu sync.Mutex
	calls := 0
	mux.HandleFunc("/api-v3/repos/o/r/git/ref/heads/channels/dev", func(w http.ResponseWriter, r *http.Request) {
		testMethod(t, r, http.MethodGet)
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			<-r.Context().Done() // hang until the attempt times out
			return
		}
		serve(t, w, 200, "ref.json")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	sl := &sleeps{}
	c, err := New(Config{Token: token, Owner: "o", Repo: "r", APIURL: srv.URL + "/api-v3/",
		Transport: &githubhttp.RetryTransport{Sleep: sl.sleep, AttemptTimeout: 100 * time.Millisecond}})
	require.NoError(t, err)
	sha, err := c.ChannelRef(t.Context(), "dev")
	require.NoError(t, err)
	assert.Equal(t, "3333333333333333333333333333333333333333", sha)
	assert.Len(t, sl.d, 1)
}

func TestTokenNeverInErrors(t *testing.T) {
	c, mux, _ := setup(t)
	route(t, mux, http.MethodGet, "/repos/o/r/git/matching-refs/tags/", nil, reply{401, "bad_credentials.json"})
	_, err := c.Tags(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Bad credentials")
	assert.NotContains(t, err.Error(), token)
}

func TestStatuses(t *testing.T) {
	c, mux, _ := setup(t)
	sha := "3333333333333333333333333333333333333333"
	route(t, mux, http.MethodGet, "/repos/o/r/commits/"+sha+"/status", nil, reply{200, "combined_status.json"})
	mux.HandleFunc("/repos/o/r/statuses/"+sha, func(w http.ResponseWriter, r *http.Request) {
		testMethod(t, r, http.MethodPost)
		body := decode(t, r)
		assert.Equal(t, "ci/security", body["context"])
		assert.Equal(t, "error", body["state"])
		assert.Equal(t, "skipped: no intel-gpu", body["description"])
		w.WriteHeader(201)
		_, _ = w.Write([]byte(`{}`))
	})
	store := &StatusStore{Client: c}
	got, err := store.Get(t.Context(), sha)
	require.NoError(t, err)
	assert.Equal(t, map[string]results.Result{
		"unit":        {Stage: "unit", Rev: sha, State: results.StatePassed, Description: "42 tests passed", URL: "https://ci.example/unit"},
		"integration": {Stage: "integration", Rev: sha, State: results.StateFailed, Description: "2 failed"},
		"performance": {Stage: "performance", Rev: sha, State: results.StatePending},
		"security":    {Stage: "security", Rev: sha, State: results.StateSkipped, Description: "no intel-gpu on this runner"},
	}, got)
	require.NoError(t, store.Record(t.Context(), results.Result{Stage: "security", Rev: sha, State: results.StateSkipped, Description: "no intel-gpu"}))
}

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		flag    string
		ok      bool
		wantErr string
		owner   string
	}{
		{"no token: local mode", map[string]string{"GITHUB_REPOSITORY": "o/r"}, "", false, "", ""},
		{"token and repository", map[string]string{"GITHUB_TOKEN": "x", "GITHUB_REPOSITORY": "ipex/flake"}, "", true, "", "ipex"},
		{"flag wins", map[string]string{"GITHUB_TOKEN": "x", "GITHUB_REPOSITORY": "ipex/flake"}, "me/fork", true, "", "me"},
		{"token without repository", map[string]string{"GITHUB_TOKEN": "x"}, "", false, "GITHUB_REPOSITORY", ""},
		{"malformed repository", map[string]string{"GITHUB_TOKEN": "x"}, "just-a-name", false, "owner/name", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, ok, err := ConfigFromEnv(func(k string) string { return tt.env[k] }, tt.flag)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.owner, cfg.Owner)
		})
	}
}

