package gitrepo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/ipex-flake/ipex-flake/internal/atomicfile"
	"github.com/ipex-flake/ipex-flake/release/forge"
)

// Forge makes promotion effects in the local repository: tags and
// refs/heads/channels/* with git, releases as JSON files in Dir.
type Forge struct {
	Repo *Repo
	// Dir holds one <tag>.json per release and <tag>/<asset> files
	// (default <git dir>/ipex-ci/releases).
	Dir string
}

var _ forge.Forge = (*Forge)(nil)

// NewForge returns the local forge of repo with releases in the git directory.
func NewForge(ctx context.Context, repo *Repo) (*Forge, error) {
	gd, err := repo.GitDir(ctx)
	if err != nil {
		return nil, err
	}
	return &Forge{Repo: repo, Dir: filepath.Join(gd, "ipex-ci", "releases")}, nil
}

// Kind implements forge.Forge.
func (f *Forge) Kind() string { return "local" }

// RepoURL implements forge.Forge: a local repository has no web URL.
func (f *Forge) RepoURL() string { return "" }

// Tags implements forge.Forge.
func (f *Forge) Tags(ctx context.Context) ([]forge.Tag, error) {
	ts, err := f.Repo.Tags(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]forge.Tag, len(ts))
	for i, t := range ts {
		out[i] = forge.Tag{Name: t.Name, SHA: t.SHA}
	}
	return out, nil
}

// CreateTag implements forge.Forge.
func (f *Forge) CreateTag(ctx context.Context, name, sha string) error {
	ref := "refs/tags/" + name
	if err := f.Repo.CreateRef(ctx, ref, sha); err != nil {
		if cur, rerr := f.Repo.Ref(ctx, ref); rerr == nil && cur != "" {
			return fmt.Errorf("tag %s: %w", name, forge.ErrExists)
		}
		return err
	}
	return nil
}

// ChannelRef implements forge.Forge.
func (f *Forge) ChannelRef(ctx context.Context, channel string) (string, error) {
	return f.Repo.Ref(ctx, forge.ChannelRefName(channel))
}

// SetChannelRef implements forge.Forge: fast-forward only, compare and swap.
func (f *Forge) SetChannelRef(ctx context.Context, channel, old, sha string) error {
	ref := forge.ChannelRefName(channel)
	if old == "" {
		if err := f.Repo.CreateRef(ctx, ref, sha); err != nil {
			if cur, rerr := f.Repo.Ref(ctx, ref); rerr == nil && cur != "" {
				return fmt.Errorf("%s: %w", ref, forge.ErrExists)
			}
			return err
		}
		return nil
	}
	ok, err := f.Repo.IsAncestor(ctx, old, sha)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s %s → %s: %w", ref, old, sha, forge.ErrNotFastForward)
	}
	if err := f.Repo.UpdateRef(ctx, ref, old, sha); err != nil {
		if cur, rerr := f.Repo.Ref(ctx, ref); rerr == nil && cur != old {
			return fmt.Errorf("%s moved to %s: %w", ref, cur, forge.ErrNotFastForward)
		}
		return err
	}
	return nil
}

func (f *Forge) releasePath(tag string) string { return filepath.Join(f.Dir, tag+".json") }

// Release implements forge.Forge.
func (f *Forge) Release(_ context.Context, tag string) (*forge.Release, error) {
	data, err := os.ReadFile(f.releasePath(tag))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r forge.Release
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("release file %s: %w", f.releasePath(tag), err)
	}
	entries, _ := os.ReadDir(filepath.Join(f.Dir, tag))
	r.Assets = nil
	for _, e := range entries {
		r.Assets = append(r.Assets, e.Name())
	}
	sort.Strings(r.Assets)
	r.URL = "file://" + f.releasePath(tag)
	return &r, nil
}

// CreateRelease implements forge.Forge. The file appears atomically and is
// never overwritten.
func (f *Forge) CreateRelease(ctx context.Context, r forge.Release) (*forge.Release, error) {
	r.Assets, r.URL = nil, ""
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := f.createOnce(f.Dir, ".release-*", f.releasePath(r.Tag), "release "+r.Tag, append(data, '\n')); err != nil {
		return nil, err
	}
	return f.Release(ctx, r.Tag)
}

// UploadAsset implements forge.Forge. The asset appears atomically and only
// once: of two concurrent uploads of one name, one gets ErrExists.
func (f *Forge) UploadAsset(_ context.Context, r *forge.Release, name string, data []byte) error {
	dir := filepath.Join(f.Dir, r.Tag)
	if err := f.createOnce(dir, ".asset-*", filepath.Join(dir, name), "asset "+name, data); err != nil {
		return err
	}
	r.Assets = append(r.Assets, name)
	return nil
}

// AssetPath returns where the local forge keeps an asset of tag.
func (f *Forge) AssetPath(tag, name string) string { return filepath.Join(f.Dir, tag, name) }

// EditBody implements forge.Forge.
func (f *Forge) EditBody(_ context.Context, r *forge.Release, body string) error {
	data, err := os.ReadFile(f.releasePath(r.Tag))
	if err != nil {
		return err
	}
	var stored forge.Release
	if err := json.Unmarshal(data, &stored); err != nil {
		return err
	}
	stored.Body = body
	out, err := json.MarshalIndent(stored, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(f.releasePath(r.Tag), append(out, '\n'), 0o644); err != nil {
		return err
	}
	r.Body = body
	return nil
}

// createOnce makes dir and writes data to path through a temporary file in
// f.Dir named after pattern: path appears whole and at once, and an
// existing path is never replaced (the error then names what and wraps
// forge.ErrExists).
func (f *Forge) createOnce(dir, pattern, path, what string, data []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := atomicfile.Create(f.Dir, pattern, path, data, 0o600); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s: %w", what, forge.ErrExists)
		}
		return err
	}
	return nil
}
