package verify

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"

	"github.com/ipex-flake/ipex-flake/pipelines/cache"
)

// ErrNoNarInfo is returned when the cache has no narinfo for a path.
var ErrNoNarInfo = errors.New("not in the cache")

// Cache reads narinfos straight from a binary cache: the files of a file://
// cache, or GET requests to an http(s):// one (never nix's narinfo disk
// cache), through the same reader ci push checks the server with.
type Cache struct {
	URI string
	// Client is the HTTP client for http(s):// caches (nil: the default).
	Client *http.Client
}

// NarInfo fetches and parses the narinfo of storePath.
func (c *Cache) NarInfo(ctx context.Context, storePath string) (*cache.NarInfo, error) {
	files := cache.NewFiles(c.URI)
	if files == nil {
		return nil, fmt.Errorf("cache %q: verification reads file:// and http(s):// caches; for other stores copy the cache to one of those", c.URI)
	}
	if hf, ok := files.(*cache.HTTPFiles); ok && c.Client != nil {
		hf.Client = c.Client
	}
	data, err := files.Get(ctx, cache.NarInfoName(storePath))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoNarInfo
	}
	if err != nil {
		return nil, err
	}
	return cache.ParseNarInfo(data)
}
