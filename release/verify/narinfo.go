package verify

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// NarInfo is the part of a narinfo the verification reads.
type NarInfo struct {
	StorePath  string
	NarHash    string
	NarSize    int64
	References []string
	Sigs       []string
}

// ErrNoNarInfo is returned when the cache has no narinfo for a path.
var ErrNoNarInfo = errors.New("not in the cache")

// Cache reads narinfos straight from a binary cache: the files of a file://
// cache, or GET requests to an http(s):// one (never nix's narinfo disk
// cache).
type Cache struct {
	URI    string
	Client *http.Client
}

// NarInfo fetches and parses the narinfo of storePath.
func (c *Cache) NarInfo(ctx context.Context, storePath string) (*NarInfo, error) {
	u, err := url.Parse(c.URI)
	if err != nil {
		return nil, fmt.Errorf("cache %q: %v", c.URI, err)
	}
	name := hashPart(storePath) + ".narinfo"
	var body io.ReadCloser
	switch u.Scheme {
	case "file":
		f, err := os.Open(filepath.Join(u.Path, name))
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrNoNarInfo
		}
		if err != nil {
			return nil, err
		}
		body = f
	case "http", "https":
		u.RawQuery = ""
		u.Path = strings.TrimRight(u.Path, "/") + "/" + name
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Cache-Control", "no-cache")
		hc := c.Client
		if hc == nil {
			hc = &http.Client{Timeout: 30 * time.Second}
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusForbidden {
			resp.Body.Close()
			return nil, ErrNoNarInfo
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: %s", u.Redacted(), resp.Status)
		}
		body = resp.Body
	default:
		return nil, fmt.Errorf("cache %q: verification reads file:// and http(s):// caches; for %s:// copy the cache to one of those", c.URI, u.Scheme)
	}
	defer body.Close()
	return ParseNarInfo(io.LimitReader(body, 1<<20))
}

// ParseNarInfo parses narinfo text.
func ParseNarInfo(r io.Reader) (*NarInfo, error) {
	ni := &NarInfo{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		switch k {
		case "StorePath":
			ni.StorePath = v
		case "NarHash":
			ni.NarHash = v
		case "NarSize":
			ni.NarSize, _ = strconv.ParseInt(v, 10, 64)
		case "References":
			ni.References = strings.Fields(v)
		case "Sig":
			ni.Sigs = append(ni.Sigs, v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if ni.StorePath == "" || ni.NarHash == "" {
		return nil, errors.New("narinfo has no StorePath or NarHash")
	}
	return ni, nil
}

// Fingerprint is what nix signs for a store path.
func (ni *NarInfo) Fingerprint() string {
	dir := path.Dir(ni.StorePath)
	refs := make([]string, len(ni.References))
	for i, r := range ni.References {
		refs[i] = dir + "/" + r
	}
	return "1;" + ni.StorePath + ";" + ni.NarHash + ";" + strconv.FormatInt(ni.NarSize, 10) + ";" + strings.Join(refs, ",")
}

// SignedBy reports whether a Sig line of the narinfo verifies with the
// public key (named name).
func (ni *NarInfo) SignedBy(name string, pub ed25519.PublicKey) bool {
	for _, s := range ni.Sigs {
		n, b64, ok := strings.Cut(s, ":")
		if !ok || n != name {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && ed25519.Verify(pub, []byte(ni.Fingerprint()), sig) {
			return true
		}
	}
	return false
}

func hashPart(storePath string) string {
	base := path.Base(storePath)
	if i := strings.IndexByte(base, '-'); i > 0 {
		return base[:i]
	}
	return base
}
