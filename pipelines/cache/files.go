package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/atomicfile"
	"github.com/ipex-flake/ipex-flake/internal/clierr"
)

// Files reads and writes the files of a binary cache (narinfos, NARs,
// nix-cache-info) on the server itself, with no cache in between: what it
// answers is what a client that substitutes would get.
type Files interface {
	// URI is the store URI of the cache.
	URI() string
	// Get returns the file's content, or an error wrapping fs.ErrNotExist.
	Get(ctx context.Context, name string) ([]byte, error)
	// Open streams the file's content; the caller closes it. A missing
	// file is an error wrapping fs.ErrNotExist.
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	// Size returns the file's size without reading it (-1 when the server
	// does not say), or an error wrapping fs.ErrNotExist.
	Size(ctx context.Context, name string) (int64, error)
	// Put writes the file (atomically for file://).
	Put(ctx context.Context, name string, data []byte) error
	// Delete removes the file; a missing file is not an error.
	Delete(ctx context.Context, name string) error
}

// NewFiles returns direct access to a file:// or http(s):// cache, or nil
// for store types only nix can read (s3://, ssh://).
func NewFiles(uri string) Files {
	u, err := url.Parse(uri)
	if err != nil {
		return nil
	}
	switch u.Scheme {
	case "file":
		if u.Path == "" {
			return nil
		}
		return &FileFiles{Dir: u.Path}
	case "http", "https":
		return &HTTPFiles{Base: strings.TrimRight(stripQuery(uri), "/"), Client: &http.Client{Timeout: 5 * time.Minute},
			Auth: netrcAuth(NetrcFile(nil), u.Hostname())}
	}
	return nil
}

// FileFiles is a file:// cache directory.
type FileFiles struct{ Dir string }

var _ Files = (*FileFiles)(nil)

// URI implements Files.
func (f *FileFiles) URI() string { return "file://" + f.Dir }

func (f *FileFiles) path(name string) string { return filepath.Join(f.Dir, filepath.FromSlash(name)) }

// Get implements Files.
func (f *FileFiles) Get(_ context.Context, name string) ([]byte, error) {
	return os.ReadFile(f.path(name))
}

// Open implements Files.
func (f *FileFiles) Open(_ context.Context, name string) (io.ReadCloser, error) {
	return os.Open(f.path(name))
}

// Size implements Files.
func (f *FileFiles) Size(_ context.Context, name string) (int64, error) {
	st, err := os.Stat(f.path(name))
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// Put implements Files: a temporary file renamed into place, so a reader
// never sees half a file.
func (f *FileFiles) Put(_ context.Context, name string, data []byte) error {
	return atomicfile.Write(f.path(name), data, 0o644)
}

// Delete implements Files.
func (f *FileFiles) Delete(_ context.Context, name string) error {
	err := os.Remove(f.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// HTTPFiles is an http(s):// cache that takes PUT and DELETE (WebDAV).
type HTTPFiles struct {
	Base   string
	Client *http.Client
	// Auth adds credentials to each request (nil: none); NewFiles takes
	// them from the netrc file nix uses (NetrcFile).
	Auth func(*http.Request)
}

var _ Files = (*HTTPFiles)(nil)

// URI implements Files.
func (h *HTTPFiles) URI() string { return h.Base }

// StatusError is an HTTP answer other than the one wanted.
type StatusError struct {
	Method, URL string
	Code        int
	Status      string
}

// Error implements error.
func (e *StatusError) Error() string { return e.Method + " " + e.URL + ": " + e.Status }

// Is makes a 404 match fs.ErrNotExist.
func (e *StatusError) Is(target error) bool {
	return target == fs.ErrNotExist && e.Code == http.StatusNotFound
}

// do sends one request, retrying connection errors, 5xx and 429 with
// backoff; a 2xx answer's body is returned open.
func (h *HTTPFiles) do(ctx context.Context, method, name string, body []byte) (*http.Response, error) {
	u := h.Base + "/" + name
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		if err := backoff(ctx, attempt); err != nil {
			return nil, err
		}
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, u, rd)
		if err != nil {
			return nil, err
		}
		if body != nil {
			req.ContentLength = int64(len(body))
		}
		if h.Auth != nil {
			h.Auth(req)
		}
		// The server's answer, never a proxy's stored copy.
		req.Header.Set("Cache-Control", "no-cache")
		resp, err := h.Client.Do(req)
		if err != nil {
			last = err
			continue
		}
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return resp, nil
		}
		resp.Body.Close()
		serr := &StatusError{Method: method, URL: u, Code: resp.StatusCode, Status: resp.Status}
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			last = serr
			continue
		}
		return nil, serr
	}
	return nil, fmt.Errorf("cache %s unreachable: %w", h.Base, last)
}

// Get implements Files.
func (h *HTTPFiles) Get(ctx context.Context, name string) ([]byte, error) {
	rc, err := h.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// Open implements Files.
func (h *HTTPFiles) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	resp, err := h.do(ctx, http.MethodGet, name, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Size implements Files with a HEAD request.
func (h *HTTPFiles) Size(ctx context.Context, name string) (int64, error) {
	resp, err := h.do(ctx, http.MethodHead, name, nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.ContentLength, nil
}

// Put implements Files.
func (h *HTTPFiles) Put(ctx context.Context, name string, data []byte) error {
	if data == nil {
		data = []byte{}
	}
	resp, err := h.do(ctx, http.MethodPut, name, data)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Delete implements Files.
func (h *HTTPFiles) Delete(ctx context.Context, name string) error {
	resp, err := h.do(ctx, http.MethodDelete, name, nil)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// cacheInfo is what nix writes into a new cache's nix-cache-info.
const cacheInfo = "StoreDir: /nix/store\n"

// CheckWritable proves that the cache at uri takes writes before anything
// is signed or uploaded, changing nothing: a scratch file is written to
// and removed from a file:// directory (or the ancestor nix would create
// it in); an
// http(s):// cache gets its own nix-cache-info written back unchanged (or,
// when it has none, the one nix writes first). Other store types are left
// to nix. Failures are usage errors (exit 2) that say why.
func CheckWritable(ctx context.Context, uri string) error {
	files := NewFiles(uri)
	switch f := files.(type) {
	case *FileFiles:
		// The directory, or the nearest ancestor nix would create it in,
		// must take a new file; nothing is left behind.
		dir := f.Dir
		for {
			st, err := os.Stat(dir)
			if err == nil && !st.IsDir() {
				return clierr.Usagef("cache %s cannot be written: %s is not a directory; pass a directory", uri, dir)
			}
			if err == nil {
				break
			}
			if !errors.Is(err, fs.ErrNotExist) || filepath.Dir(dir) == dir {
				return clierr.Usagef("cache %s cannot be written: %v; pass a directory you can create and write", uri, unwrapPath(err))
			}
			dir = filepath.Dir(dir)
		}
		tmp, err := os.CreateTemp(dir, ".ipex-write-check-")
		if err != nil {
			what := "write"
			if dir != f.Dir {
				what = "create"
			}
			return clierr.Usagef("cache %s cannot be written: %v; pass a directory you can %s", uri, unwrapPath(err), what)
		}
		tmp.Close()
		os.Remove(tmp.Name())
	case *HTTPFiles:
		var se *StatusError
		info, err := f.Get(ctx, "nix-cache-info")
		switch {
		case errors.Is(err, fs.ErrNotExist):
			info = []byte(cacheInfo)
		case errors.As(err, &se):
			return clierr.Usagef("cache %s cannot be read: GET nix-cache-info was answered %s; check the URL and the credentials (in the netrc file nix reads, %s)", uri, se.Status, NetrcFile(nil))
		case err != nil:
			// Unreachable: perhaps for a moment, so not a usage error.
			return clierr.Failedf("cannot read cache %s: %v; check the URI and that the cache is up", uri, err)
		}
		if err := f.Put(ctx, "nix-cache-info", info); err != nil {
			if errors.As(err, &se) {
				return clierr.Usagef("cache %s does not take uploads: a test PUT of nix-cache-info was answered %s; give the push credentials that may write (in the netrc file nix reads, %s) or allow PUT on the server", uri, se.Status, NetrcFile(nil))
			}
			return clierr.Failedf("cannot write cache %s: %v; check that the cache is up", uri, err)
		}
	}
	return nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// MissingDirWarning returns a warning when uri is a file:// cache whose
// directory does not exist ("" otherwise): nothing can be found there, so
// everything is built.
func MissingDirWarning(uri string) string {
	f, ok := NewFiles(uri).(*FileFiles)
	if !ok {
		return ""
	}
	if _, err := os.Stat(f.Dir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Sprintf("cache directory %s does not exist: nothing can be found in it, so every output is built; check --cache (ci push creates the directory on first push)", f.Dir)
	}
	return ""
}
