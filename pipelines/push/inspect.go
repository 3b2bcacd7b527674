package push

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/ipex-flake/ipex-flake/internal/parallel"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
)

// entry is what the server holds for one store path.
type entry struct {
	Path string
	// Info is the narinfo; nil when the server has none.
	Info *cache.NarInfo
	// Raw is the narinfo as served.
	Raw []byte
	// Damage says why the path cannot be substituted although its narinfo
	// is there: the NAR is missing, or its size or hash differ from the
	// narinfo's ("" = complete).
	Damage string
	// BadNAR says the damage is the NAR file itself (which a repair
	// removes so that nix writes it again).
	BadNAR bool
}

// inspectConcurrency bounds the requests in flight while inspecting.
const inspectConcurrency = 16

// inspect reads, for every path, its narinfo from the server and checks
// that the NAR it names is there with the size the narinfo gives; deep
// also reads the NAR in full and checks its hash. Nothing is cached in
// between: these are the files a substituting client would get.
func inspect(ctx context.Context, files cache.Files, paths []string, deep bool) (map[string]*entry, error) {
	return parallel.Map(ctx, paths, inspectConcurrency, func(ctx context.Context, p string) (*entry, error) {
		return inspectOne(ctx, files, p, deep)
	})
}

func inspectOne(ctx context.Context, files cache.Files, p string, deep bool) (*entry, error) {
	e := &entry{Path: p}
	name := cache.NarInfoName(p)
	raw, err := files.Get(ctx, name)
	if errors.Is(err, fs.ErrNotExist) {
		return e, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	ni, err := cache.ParseNarInfo(raw)
	if err != nil || ni.StorePath != p {
		// Unreadable or for another path: as good as missing, uploaded again.
		// Its URL may name another path's NAR: only the narinfo goes.
		e.Raw = raw
		e.Damage = fmt.Sprintf("%s is not a valid narinfo for %s", name, p)
		e.Info = &cache.NarInfo{StorePath: p}
		return e, nil
	}
	e.Info, e.Raw = ni, raw
	if !deep {
		size, err := files.Size(ctx, ni.URL)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			e.Damage, e.BadNAR = fmt.Sprintf("its NAR %s is missing", ni.URL), true
			return e, nil
		case err != nil:
			return nil, fmt.Errorf("reading %s: %w", ni.URL, err)
		case size >= 0 && ni.FileSize > 0 && size != ni.FileSize:
			e.Damage, e.BadNAR = fmt.Sprintf("its NAR %s has %d bytes, the narinfo says %d", ni.URL, size, ni.FileSize), true
			return e, nil
		case size >= 0 || ni.FileSize == 0:
			return e, nil
		}
		// The server does not tell the size: read the NAR.
	}
	rc, err := files.Open(ctx, ni.URL)
	if errors.Is(err, fs.ErrNotExist) {
		e.Damage, e.BadNAR = fmt.Sprintf("its NAR %s is missing", ni.URL), true
		return e, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ni.URL, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ni.URL, err)
	}
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	switch {
	case ni.FileSize > 0 && n != ni.FileSize:
		e.Damage, e.BadNAR = fmt.Sprintf("its NAR %s has %d bytes, the narinfo says %d", ni.URL, n, ni.FileSize), true
	case ni.FileHash != "" && cache.SHA256Nix32(sum) != ni.FileHash:
		e.Damage, e.BadNAR = fmt.Sprintf("its NAR %s has hash %s, the narinfo says %s", ni.URL, cache.SHA256Nix32(sum), ni.FileHash), true
	}
	return e, nil
}
