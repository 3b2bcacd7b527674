package githubtest

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/ipex-flake/ipex-flake/release/forge"
	"github.com/ipex-flake/ipex-flake/release/github"
)

// Fake is an in-memory GitHub (a github.Client) for tests; Server serves
// one over the REST API.
type Fake struct {
	mu       sync.Mutex
	Owner    string
	Repo     string
	TagRefs  map[string]string // tag → sha
	Channels map[string]string // channel → sha
	Releases map[string]*forge.Release
	Assets   map[string]map[string][]byte // tag → name → data
	Status   map[string][]github.Status   // sha → newest first
	// Annotated holds the annotated tags: tag name → tag object SHA (the
	// tag's commit stays in TagRefs).
	Annotated map[string]string
	// Ancestor decides fast-forwards (nil: every move is one).
	Ancestor func(a, b string) bool
	nextID   int64
}

var _ github.Client = (*Fake)(nil)

// NewFake returns an empty fake repository owner/repo.
func NewFake(owner, repo string) *Fake {
	return &Fake{Owner: owner, Repo: repo, TagRefs: map[string]string{}, Channels: map[string]string{},
		Releases: map[string]*forge.Release{}, Assets: map[string]map[string][]byte{}, Status: map[string][]github.Status{},
		Annotated: map[string]string{}}
}

// Kind implements forge.Forge.
func (f *Fake) Kind() string { return "github" }

// RepoURL implements forge.Forge.
func (f *Fake) RepoURL() string { return "https://github.com/" + f.Owner + "/" + f.Repo }

// Tags implements forge.Forge.
func (f *Fake) Tags(context.Context) ([]forge.Tag, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []forge.Tag
	for n, s := range f.TagRefs {
		out = append(out, forge.Tag{Name: n, SHA: s})
	}
	slices.SortFunc(out, func(a, b forge.Tag) int {
		if a.Name < b.Name {
			return -1
		}
		return 1
	})
	return out, nil
}

// CreateTag implements forge.Forge.
func (f *Fake) CreateTag(_ context.Context, name, sha string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.TagRefs[name]; ok {
		return fmt.Errorf("tag %s: %w", name, forge.ErrExists)
	}
	f.TagRefs[name] = sha
	return nil
}

// ChannelRef implements forge.Forge.
func (f *Fake) ChannelRef(_ context.Context, ch string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Channels[ch], nil
}

// SetChannelRef implements forge.Forge.
func (f *Fake) SetChannelRef(_ context.Context, ch, old, sha string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, ok := f.Channels[ch]
	if old == "" {
		if ok {
			return forge.ErrExists
		}
		f.Channels[ch] = sha
		return nil
	}
	if !ok || (f.Ancestor != nil && !f.Ancestor(cur, sha)) {
		return forge.ErrNotFastForward
	}
	f.Channels[ch] = sha
	return nil
}

func (f *Fake) copyRelease(r *forge.Release) *forge.Release {
	c := *r
	c.Assets = nil
	for n := range f.Assets[r.Tag] {
		c.Assets = append(c.Assets, n)
	}
	slices.Sort(c.Assets)
	return &c
}

// Release implements forge.Forge.
func (f *Fake) Release(_ context.Context, tag string) (*forge.Release, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.Releases[tag]
	if !ok {
		return nil, nil
	}
	return f.copyRelease(r), nil
}

// CreateRelease implements forge.Forge.
func (f *Fake) CreateRelease(_ context.Context, r forge.Release) (*forge.Release, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.Releases[r.Tag]; ok {
		return nil, forge.ErrExists
	}
	f.nextID++
	r.ID = f.nextID
	r.URL = f.RepoURL() + "/releases/tag/" + r.Tag
	f.Releases[r.Tag] = &r
	return f.copyRelease(&r), nil
}

// UploadAsset implements forge.Forge.
func (f *Fake) UploadAsset(_ context.Context, r *forge.Release, name string, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Assets[r.Tag] == nil {
		f.Assets[r.Tag] = map[string][]byte{}
	}
	if _, ok := f.Assets[r.Tag][name]; ok {
		return forge.ErrExists
	}
	f.Assets[r.Tag][name] = data
	r.Assets = append(r.Assets, name)
	return nil
}

// EditBody implements forge.Forge.
func (f *Fake) EditBody(_ context.Context, r *forge.Release, body string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Releases[r.Tag].Body = body
	r.Body = body
	return nil
}

// CreateStatus implements github.Client.
func (f *Fake) CreateStatus(_ context.Context, sha string, s github.Status) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Status[sha] = append([]github.Status{s}, f.Status[sha]...)
	return nil
}

// Statuses implements github.Client.
func (f *Fake) Statuses(_ context.Context, sha string) ([]github.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.Status[sha]), nil
}

// ReleaseByID returns the release with id, nil when there is none.
func (f *Fake) ReleaseByID(id int64) *forge.Release {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.Releases {
		if r.ID == id {
			return f.copyRelease(r)
		}
	}
	return nil
}

// HasTag reports whether tag exists.
func (f *Fake) HasTag(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.TagRefs[name]
	return ok
}

// Lock locks the fake's state for a test server that reads its maps.
func (f *Fake) Lock() { f.mu.Lock() }

// Unlock releases Lock.
func (f *Fake) Unlock() { f.mu.Unlock() }
