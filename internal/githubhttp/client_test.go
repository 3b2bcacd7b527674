package githubhttp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUploadURLFor(t *testing.T) {
	tests := map[string]string{
		"https://api.github.com/":        "https://uploads.github.com/",
		"https://ghe.example.com/api/v3": "https://ghe.example.com/api/uploads/",
		"http://127.0.0.1:1/x":           "http://127.0.0.1:1/x/",
	}
	for api, want := range tests {
		assert.Equal(t, want, UploadURLFor(api), api)
	}
}

// TestNewGitHub: the client runs on the retrying transport (a 502 is
// retried) under the request time limit, sends the token, and speaks to the configured API.
func TestNewGitHub(t *testing.T) {
	var auth, agent string
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth, agent = r.Header.Get("Authorization"), r.Header.Get("User-Agent")
		if calls++; calls == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"login":"octocat"}`))
	}))
	defer srv.Close()

	var waits []time.Duration
	tr := &RetryTransport{Sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }}
	c, err := NewGitHub(Config{Token: "ghp_x", APIURL: srv.URL + "/api/v3", Transport: tr})
	require.NoError(t, err)
	assert.Equal(t, RequestTimeout, c.Client().Timeout)
	assert.Equal(t, srv.URL+"/api/v3/", c.BaseURL())
	assert.Equal(t, srv.URL+"/api/uploads/", c.UploadURL())

	u, _, err := c.Users.Get(t.Context(), "")
	require.NoError(t, err)
	assert.Equal(t, "octocat", u.GetLogin())
	assert.Equal(t, 2, calls, "the 502 was retried: the client runs on the retrying transport")
	assert.Equal(t, []time.Duration{time.Second}, waits)
	assert.Equal(t, "Bearer ghp_x", auth)
	assert.Equal(t, "ipex-flake-ci", agent)

	used := 0
	own := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used++
		return http.DefaultTransport.RoundTrip(r)
	})}
	c, err = NewGitHub(Config{Token: "t", APIURL: srv.URL, HTTPClient: own})
	require.NoError(t, err)
	_, _, err = c.Users.Get(t.Context(), "")
	require.NoError(t, err)
	assert.Equal(t, 1, used, "a given HTTP client carries the requests")

	c, err = NewGitHub(Config{Token: "t"})
	require.NoError(t, err)
	assert.Equal(t, "https://api.github.com/", c.BaseURL())
}

// roundTripFunc is an http.RoundTripper from a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
