package githubhttp

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-github/v89/github"
)

// Config says which GitHub API a client speaks to and how.
type Config struct {
	// Token authenticates every request.
	Token string
	// APIURL is the API root ("" for api.github.com; GITHUB_API_URL on
	// GitHub Enterprise and in tests). UploadURL is the root release assets
	// are uploaded to; "" derives it from APIURL.
	APIURL, UploadURL string
	// Transport is the retrying transport (nil: the defaults). HTTPClient,
	// when set, replaces NewClient(Transport) (a test server's client).
	Transport  *RetryTransport
	HTTPClient *http.Client
}

// NewGitHub returns the go-github client of cfg, written in the v89
// options idiom: the one place the project makes a GitHub client, so
// every one of them runs on NewClient's retries and time limit.
func NewGitHub(cfg Config) (*github.Client, error) {
	hc := cfg.HTTPClient
	if hc == nil {
		hc = NewClient(cfg.Transport)
	}
	opts := []github.ClientOptionsFunc{
		github.WithHTTPClient(hc),
		github.WithAuthToken(cfg.Token),
		github.WithUserAgent("ipex-flake-ci"),
	}
	if cfg.APIURL != "" {
		base := slash(cfg.APIURL)
		up := cfg.UploadURL
		if up == "" {
			up = UploadURLFor(base)
		}
		up = slash(up)
		opts = append(opts, github.WithURLs(&base, &up))
	}
	c, err := github.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("GitHub client: %w (check GITHUB_API_URL and GITHUB_UPLOAD_URL)", err)
	}
	return c, nil
}

// slash is u ending in "/", as go-github wants its base URLs.
func slash(u string) string {
	if !strings.HasSuffix(u, "/") {
		return u + "/"
	}
	return u
}

// UploadURLFor derives the upload root from the API root: uploads.github.com
// for api.github.com, /api/uploads/ for a GitHub Enterprise /api/v3/, else
// the API root itself.
func UploadURLFor(api string) string {
	u, err := url.Parse(api)
	if err != nil {
		return api
	}
	switch {
	case u.Host == "api.github.com":
		return "https://uploads.github.com/"
	case strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), "/api/v3"):
		u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/api/v3") + "/api/uploads/"
		return u.String()
	}
	return slash(api)
}
