package push

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
)

// Verifier checks, after a push, that the cache serves every path signed by
// a trusted key and complete.
type Verifier interface {
	Verify(ctx context.Context, paths []string, publicKey string) error
}

// NixVerifier runs `nix store verify --store URI` with only publicKey
// trusted, then checks that the NAR each narinfo names exists.
//
// Contents are not re-downloaded (--no-contents): nix checks the NAR hash
// as it uploads, and NARs are checked to exist by NARCheck.
type NixVerifier struct {
	Engine engine.Engine
	URI    string
	Log    io.Writer
	// NARs checks NAR presence; nil skips it (store types it cannot read).
	NARs *NARCheck
}

var _ Verifier = (*NixVerifier)(nil)

// VerifyArgs is the nix command line that checks paths in uri against publicKey.
func VerifyArgs(uri, publicKey string, paths []string) []string {
	args := nixcli.Nix("store", "verify", "--store", uri, "--no-contents", "--sigs-needed", "1",
		"--option", "trusted-public-keys", publicKey)
	return append(args, paths...)
}

// Verify implements Verifier.
func (v *NixVerifier) Verify(ctx context.Context, paths []string, publicKey string) error {
	for _, c := range chunks(paths) {
		if err := run(ctx, v.Engine, v.Log, engine.Cmd{Args: VerifyArgs(v.URI, publicKey, c)},
			"nix store verify --store "+v.URI); err != nil {
			return clierr.Failedf("verification of the pushed paths in %s against %s failed: %v", v.URI, publicKey, err)
		}
	}
	if v.NARs != nil {
		missing, err := v.NARs.Missing(ctx, paths)
		if err != nil {
			return clierr.Failedf("checking the NARs in %s: %v", v.URI, err)
		}
		if len(missing) > 0 {
			return clierr.Failedf("%d narinfos in %s name a NAR that is missing, e.g. %s", len(missing), v.URI, missing[0])
		}
	}
	return nil
}

// NARCheck finds narinfos whose NAR file is missing in a file:// or
// http(s):// cache.
type NARCheck struct {
	// Dir is the directory of a file:// cache; Base the URL of an http one.
	Dir, Base string
	Client    *http.Client
}

// NewNARCheck returns a check for uri, or nil for store types it cannot read.
func NewNARCheck(uri string) *NARCheck {
	u, err := url.Parse(uri)
	if err != nil {
		return nil
	}
	switch u.Scheme {
	case "file":
		return &NARCheck{Dir: u.Path}
	case "http", "https":
		u.RawQuery = ""
		return &NARCheck{Base: strings.TrimRight(u.String(), "/"), Client: &http.Client{Timeout: 30 * time.Second}}
	}
	return nil
}

// NARURL returns the URL field of a narinfo.
func NARURL(narinfo io.Reader) (string, error) {
	sc := bufio.NewScanner(narinfo)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "URL: "); ok {
			return strings.TrimSpace(v), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("narinfo has no URL field")
}

// Missing returns the narinfos (of paths that have one) whose NAR is absent.
func (c *NARCheck) Missing(ctx context.Context, paths []string) ([]string, error) {
	var (
		mu      sync.Mutex
		missing []string
		first   error
		wg      sync.WaitGroup
		sem     = make(chan struct{}, 16)
	)
	for _, p := range paths {
		wg.Add(1)
		sem <- struct{}{}
		go func(p string) {
			defer func() { <-sem; wg.Done() }()
			name := cache.HashPart(p) + ".narinfo"
			ok, err := c.one(ctx, name)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			if err == nil && !ok {
				missing = append(missing, name)
			}
		}(p)
	}
	wg.Wait()
	return missing, first
}

// one reports whether narinfo name (when present) has its NAR.
func (c *NARCheck) one(ctx context.Context, name string) (bool, error) {
	if c.Dir != "" {
		f, err := os.Open(filepath.Join(c.Dir, name))
		if os.IsNotExist(err) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		defer f.Close()
		nar, err := NARURL(f)
		if err != nil {
			return false, fmt.Errorf("%s: %w", name, err)
		}
		_, err = os.Stat(filepath.Join(c.Dir, filepath.FromSlash(nar)))
		if os.IsNotExist(err) {
			return false, nil
		}
		return err == nil, err
	}
	var nar string
	status, err := c.do(ctx, http.MethodGet, c.Base+"/"+name, func(body io.Reader) error {
		var err error
		nar, err = NARURL(body)
		return err
	})
	if err != nil {
		return false, err
	}
	if status == http.StatusNotFound {
		return true, nil
	}
	status, err = c.do(ctx, http.MethodHead, c.Base+"/"+nar, nil)
	if err != nil {
		return false, err
	}
	return status == http.StatusOK, nil
}

// do sends a request, retrying connection errors and 5xx answers with
// backoff; it returns 200 or 404 (or another 4xx as an error).
func (c *NARCheck) do(ctx context.Context, method, u string, read func(io.Reader) error) (int, error) {
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
			}
		}
		req, err := http.NewRequestWithContext(ctx, method, u, nil)
		if err != nil {
			return 0, err
		}
		resp, err := c.Client.Do(req)
		if err != nil {
			last = err
			continue
		}
		func() {
			defer resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusOK:
				if read != nil {
					err = read(resp.Body)
				}
			case resp.StatusCode == http.StatusNotFound:
			case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
				err = fmt.Errorf("%s %s: %s", method, u, resp.Status)
				last = err
			default:
				err = fmt.Errorf("%s %s: %s", method, u, resp.Status)
			}
		}()
		if err != nil && last == err {
			continue
		}
		if err != nil {
			return 0, err
		}
		return resp.StatusCode, nil
	}
	return 0, fmt.Errorf("cache %s unreachable: %w", c.Base, last)
}

// FakeVerifier records verifications, for tests.
type FakeVerifier struct {
	Verified [][]string
	Keys     []string
	Err      error
}

var _ Verifier = (*FakeVerifier)(nil)

// Verify implements Verifier.
func (f *FakeVerifier) Verify(_ context.Context, paths []string, publicKey string) error {
	f.Verified = append(f.Verified, append([]string(nil), paths...))
	f.Keys = append(f.Keys, publicKey)
	return f.Err
}
