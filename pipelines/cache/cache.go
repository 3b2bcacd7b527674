// Package cache asks a Nix binary cache which store paths it already has,
// with concurrent narinfo lookups.
package cache

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/parallel"
)

// Lookup tells which store paths a binary cache holds.
type Lookup interface {
	// URI is the store URI of the cache.
	URI() string
	// Has returns, for each path, whether the cache has its narinfo.
	Has(ctx context.Context, paths []string) (map[string]bool, error)
}

// DefaultDir is the embedded default cache: a file:// cache under the user
// cache directory.
func DefaultDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = filepath.Join(os.TempDir(), "ipex-flake-cache")
	}
	return filepath.Join(dir, "ipex-flake", "binary-cache")
}

// DefaultURI returns the file:// URI of DefaultDir.
func DefaultURI() string { return "file://" + DefaultDir() }

// Schemes nix accepts as binary cache store URIs.
var knownSchemes = map[string]bool{
	"file": true, "http": true, "https": true, "s3": true, "ssh": true,
	"ssh-ng": true, "local": true, "daemon": true, "unix": true,
}

// Validate checks a store URI the way nix would, before any work starts.
func Validate(uri string) error {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme == "" {
		return clierr.Usagef("cache %q is not a Nix store URI: use file:///path, https://host, or s3://bucket?region=…", uri)
	}
	if !knownSchemes[u.Scheme] {
		return clierr.Usagef("cache %q: nix does not know the store type %q: use file://, http(s)://, s3:// or ssh://", uri, u.Scheme)
	}
	if u.Scheme == "file" && (u.Path == "" || u.Host != "") {
		return clierr.Usagef("cache %q: a file:// cache needs an absolute path after the two slashes, e.g. file:///var/cache/nix", uri)
	}
	if (u.Scheme == "http" || u.Scheme == "https" || u.Scheme == "s3") && u.Host == "" {
		return clierr.Usagef("cache %q has no host: write %s://HOST[/PATH]", uri, u.Scheme)
	}
	return nil
}

// FallbackFunc answers lookups for store types this package cannot read
// directly (s3://, ssh://): usually `nix path-info --store URI` on an engine.
type FallbackFunc func(ctx context.Context, uri string, paths []string) (map[string]bool, error)

// New returns a Lookup for uri. file:// and http(s):// caches are read
// directly; other store types go through fallback.
func New(uri string, fallback FallbackFunc) (Lookup, error) {
	if err := Validate(uri); err != nil {
		return nil, err
	}
	u, _ := url.Parse(uri)
	switch u.Scheme {
	case "file":
		return &File{Dir: u.Path}, nil
	case "http", "https":
		return &HTTP{Base: strings.TrimRight(stripQuery(uri), "/"), Client: &http.Client{Timeout: 30 * time.Second},
			Auth: netrcAuth(NetrcFile(nil), u.Hostname())}, nil
	default:
		if fallback == nil {
			return nil, clierr.Usagef("cache %q: lookups for %s:// need nix", uri, u.Scheme)
		}
		return &funcLookup{uri: uri, f: fallback}, nil
	}
}

func stripQuery(uri string) string {
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		return uri[:i]
	}
	return uri
}

// HashPart returns the 32-character hash of a store path
// (/nix/store/<hash>-name), which names its narinfo.
func HashPart(storePath string) string {
	base := filepath.Base(storePath)
	if i := strings.IndexByte(base, '-'); i > 0 {
		return base[:i]
	}
	return base
}

// File is a file:// binary cache.
type File struct{ Dir string }

// URI implements Lookup.
func (f *File) URI() string { return "file://" + f.Dir }

// Has implements Lookup.
func (f *File) Has(ctx context.Context, paths []string) (map[string]bool, error) {
	return parallel.Map(ctx, paths, 16, func(ctx context.Context, p string) (bool, error) {
		_, err := os.Stat(filepath.Join(f.Dir, HashPart(p)+".narinfo"))
		if err == nil {
			return true, nil
		}
		if os.IsNotExist(err) {
			return false, nil
		}
		return false, err
	})
}

// HTTP is an http(s):// binary cache.
type HTTP struct {
	Base   string
	Client *http.Client
	// Concurrency bounds the lookups in flight (default 32).
	Concurrency int
	// Auth adds credentials to each request (nil: none), as nix would from
	// its netrc file.
	Auth func(*http.Request)
}

// URI implements Lookup.
func (h *HTTP) URI() string { return h.Base }

// Has implements Lookup. Each lookup is a HEAD of <hash>.narinfo; 5xx
// answers and connection errors are retried with backoff.
func (h *HTTP) Has(ctx context.Context, paths []string) (map[string]bool, error) {
	n := h.Concurrency
	if n <= 0 {
		n = 32
	}
	return parallel.Map(ctx, paths, n, func(ctx context.Context, p string) (bool, error) {
		url := h.Base + "/" + HashPart(p) + ".narinfo"
		var lastErr error
		for attempt := 0; attempt < 4; attempt++ {
			if err := backoff(ctx, attempt); err != nil {
				return false, err
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
			if err != nil {
				return false, err
			}
			if h.Auth != nil {
				h.Auth(req)
			}
			resp, err := h.Client.Do(req)
			if err != nil {
				lastErr = err
				continue
			}
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusOK:
				return true, nil
			case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusForbidden:
				return false, nil
			case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
				lastErr = fmt.Errorf("%s: %s", url, resp.Status)
				continue
			default:
				return false, fmt.Errorf("%s: %s", url, resp.Status)
			}
		}
		return false, fmt.Errorf("cache %s unreachable: %w", h.Base, lastErr)
	})
}

// backoff waits before attempt number attempt of a request: not before
// the first, then 200 ms, 400 ms, 800 ms… It returns ctx's error when ctx
// ends first.
func backoff(ctx context.Context, attempt int) error {
	if attempt == 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
		return nil
	}
}

type funcLookup struct {
	uri string
	f   FallbackFunc
}

func (l *funcLookup) URI() string { return l.uri }
func (l *funcLookup) Has(ctx context.Context, paths []string) (map[string]bool, error) {
	return l.f(ctx, l.uri, paths)
}
