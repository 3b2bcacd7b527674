// Package forge is the interface promotion uses to make its effects: tags,
// channel refs and releases. Two implementations exist: the local git
// repository (release/gitrepo) and GitHub (release/github).
//
// Every creating call reports a concurrent creation with ErrExists and a
// refused ref move with ErrNotFastForward, so the caller re-reads and decides
// again instead of failing or duplicating.
package forge

import (
	"context"
	"errors"
)

// Errors a Forge returns when the state changed under it.
var (
	// ErrExists: the tag, ref, release or asset already exists.
	ErrExists = errors.New("already exists")
	// ErrNotFastForward: the channel ref is not an ancestor of the new
	// commit (or moved concurrently); refs are never forced.
	ErrNotFastForward = errors.New("not a fast-forward")
)

// ManifestAsset is the name of the channel manifest attached to a release.
const ManifestAsset = "channel-manifest.json"

// NotifiedMarker is appended to a release body once its notification was
// sent, so a rerun does not send it again.
const NotifiedMarker = "<!-- ipex-ci: notified -->"

// Tag is a git tag and the commit it points at.
type Tag struct {
	Name string `json:"name"`
	SHA  string `json:"sha"`
}

// Release is a published release.
type Release struct {
	ID         int64    `json:"id,omitempty"`
	Tag        string   `json:"tag"`
	Name       string   `json:"name"`
	Body       string   `json:"body"`
	Rev        string   `json:"rev"`
	Prerelease bool     `json:"prerelease"`
	Latest     bool     `json:"latest"`
	URL        string   `json:"url,omitempty"`
	Assets     []string `json:"assets,omitempty"`
}

// HasAsset reports whether the release has an asset called name.
func (r *Release) HasAsset(name string) bool {
	for _, a := range r.Assets {
		if a == name {
			return true
		}
	}
	return false
}

// Forge makes and reads the effects of promotions.
type Forge interface {
	// Kind names the forge for messages: "github" or "local".
	Kind() string
	// RepoURL is the web URL of the repository, "" when there is none.
	RepoURL() string
	// Tags lists every tag.
	Tags(ctx context.Context) ([]Tag, error)
	// CreateTag creates a lightweight tag; ErrExists if it exists.
	CreateTag(ctx context.Context, name, sha string) error
	// ChannelRef returns the commit of refs/heads/channels/<channel>, "" if absent.
	ChannelRef(ctx context.Context, channel string) (string, error)
	// SetChannelRef moves the channel ref from old ("" to create it) to
	// sha, fast-forward only: ErrExists when creating an existing ref,
	// ErrNotFastForward when the move is refused.
	SetChannelRef(ctx context.Context, channel, old, sha string) error
	// Release returns the release of tag, nil when there is none.
	Release(ctx context.Context, tag string) (*Release, error)
	// CreateRelease publishes r; ErrExists if tag already has a release.
	CreateRelease(ctx context.Context, r Release) (*Release, error)
	// UploadAsset attaches an asset; ErrExists if it is already there.
	UploadAsset(ctx context.Context, r *Release, name string, data []byte) error
	// EditBody replaces the release body.
	EditBody(ctx context.Context, r *Release, body string) error
}

// ChannelRefName returns the full ref name of a channel.
func ChannelRefName(channel string) string { return "refs/heads/channels/" + channel }
