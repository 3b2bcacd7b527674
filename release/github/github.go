// Package github is the GitHub side of releases: tags, channel refs,
// releases and their assets, and commit statuses, through go-github v89
// behind our own Client interface. StatusStore reads and writes stage
// results as commit statuses (context ci/<stage>) and implements
// results.Store, so promotion gates read GitHub the same way they read the
// local results file.
package github

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	gh "github.com/google/go-github/v89/github"

	"github.com/ipex-flake/ipex-flake/internal/githubhttp"
	"github.com/ipex-flake/ipex-flake/release/forge"
)

// Status is one commit status.
type Status struct {
	Context     string
	State       string // pending, success, error, failure
	Description string
	TargetURL   string
}

// Client is everything the release code asks of GitHub.
type Client interface {
	forge.Forge
	// CreateStatus adds a commit status to sha.
	CreateStatus(ctx context.Context, sha string, s Status) error
	// Statuses returns the latest status per context of sha.
	Statuses(ctx context.Context, sha string) ([]Status, error)
}

// Config configures the go-github client.
type Config struct {
	// Token authenticates (from GITHUB_TOKEN only).
	Token string
	// Owner and Repo name the repository.
	Owner, Repo string
	// APIURL is the REST base (default https://api.github.com/; GitHub
	// Enterprise: https://HOST/api/v3/). UploadURL is derived when empty.
	APIURL, UploadURL string
	// ServerURL is the web URL (default https://github.com) for links.
	ServerURL string
	// Transport is the retrying transport (defaults apply when nil).
	Transport *githubhttp.RetryTransport
}

// API is the go-github implementation of Client.
type API struct {
	gh          *gh.Client
	owner, repo string
	server      string
	// LocalPeel, when set, follows annotated tag objects to their commits
	// in a local clone (gitrepo.Repo.Peel), so reading the tags costs one
	// API call whatever their number.
	LocalPeel func(ctx context.Context, objs []string) (map[string]string, error)
}

var _ Client = (*API)(nil)

// ErrNoRepository is returned when a token is set but no repository is known.
var ErrNoRepository = errors.New("no GitHub repository: set GITHUB_REPOSITORY=owner/name or pass --repo owner/name")

// ConfigFromEnv reads GITHUB_TOKEN, GITHUB_REPOSITORY (or repoFlag),
// GITHUB_API_URL, GITHUB_UPLOAD_URL and GITHUB_SERVER_URL. ok is false
// without a token (the local default applies).
func ConfigFromEnv(getenv func(string) string, repoFlag string) (cfg Config, ok bool, err error) {
	cfg.Token = getenv("GITHUB_TOKEN")
	if cfg.Token == "" {
		return cfg, false, nil
	}
	full := repoFlag
	if full == "" {
		full = getenv("GITHUB_REPOSITORY")
	}
	if full == "" {
		return cfg, false, ErrNoRepository
	}
	owner, name, found := strings.Cut(full, "/")
	if !found || owner == "" || name == "" || strings.Contains(name, "/") {
		return cfg, false, fmt.Errorf("repository %q is not owner/name: pass --repo owner/name", full)
	}
	cfg.Owner, cfg.Repo = owner, name
	cfg.APIURL, cfg.UploadURL, cfg.ServerURL = getenv("GITHUB_API_URL"), getenv("GITHUB_UPLOAD_URL"), getenv("GITHUB_SERVER_URL")
	return cfg, true, nil
}

// New returns the go-github client of cfg: the v89 options idiom with the
// token, base URLs, and a retrying transport.
func New(cfg Config) (*API, error) {
	if cfg.Token == "" {
		return nil, errors.New("GITHUB_TOKEN is empty")
	}
	c, err := githubhttp.NewGitHub(githubhttp.Config{Token: cfg.Token, APIURL: cfg.APIURL, UploadURL: cfg.UploadURL, Transport: cfg.Transport})
	if err != nil {
		return nil, err
	}
	server := cfg.ServerURL
	if server == "" {
		server = "https://github.com"
	}
	return &API{gh: c, owner: cfg.Owner, repo: cfg.Repo, server: strings.TrimSuffix(server, "/")}, nil
}

// Kind implements forge.Forge.
func (a *API) Kind() string { return "github" }

// RepoURL implements forge.Forge.
func (a *API) RepoURL() string { return a.server + "/" + a.owner + "/" + a.repo }

func status(err error) int {
	var er *gh.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		return er.Response.StatusCode
	}
	return 0
}

// exists recognises GitHub's answers to creating something that exists.
func exists(err error) bool {
	var er *gh.ErrorResponse
	if !errors.As(err, &er) || er.Response == nil || er.Response.StatusCode != http.StatusUnprocessableEntity {
		return false
	}
	if strings.Contains(strings.ToLower(er.Message), "already exists") {
		return true
	}
	for _, e := range er.Errors {
		if e.Code == "already_exists" {
			return true
		}
	}
	return false
}

// Tags implements forge.Forge (annotated tags are peeled). One listing
// call: annotated tags are peeled by LocalPeel, the local clone, and only
// those the clone lacks cost a call each.
func (a *API) Tags(ctx context.Context) ([]forge.Tag, error) {
	refs, _, err := a.gh.Git.ListMatchingRefs(ctx, a.owner, a.repo, "tags/")
	if err != nil {
		return nil, err
	}
	var annotated []string
	for _, r := range refs {
		if r.GetObject().GetType() == "tag" {
			annotated = append(annotated, r.GetObject().GetSHA())
		}
	}
	local := map[string]string{}
	if a.LocalPeel != nil && len(annotated) > 0 {
		if local, err = a.LocalPeel(ctx, annotated); err != nil {
			return nil, fmt.Errorf("peel tags in the local clone: %w", err)
		}
	}
	var out []forge.Tag
	for _, r := range refs {
		name := strings.TrimPrefix(r.GetRef(), "refs/tags/")
		sha := r.GetObject().GetSHA()
		if r.GetObject().GetType() == "tag" {
			if c, ok := local[sha]; ok {
				sha = c
			} else {
				t, _, err := a.gh.Git.GetTag(ctx, a.owner, a.repo, sha)
				if err != nil {
					return nil, fmt.Errorf("peel tag %s: %w", name, err)
				}
				sha = t.GetObject().GetSHA()
			}
		}
		out = append(out, forge.Tag{Name: name, SHA: sha})
	}
	return out, nil
}

// CreateTag implements forge.Forge.
func (a *API) CreateTag(ctx context.Context, name, sha string) error {
	_, _, err := a.gh.Git.CreateRef(ctx, a.owner, a.repo, gh.CreateRef{Ref: "refs/tags/" + name, SHA: sha})
	if exists(err) {
		return fmt.Errorf("tag %s: %w", name, forge.ErrExists)
	}
	return err
}

// ChannelRef implements forge.Forge.
func (a *API) ChannelRef(ctx context.Context, channel string) (string, error) {
	ref, _, err := a.gh.Git.GetRef(ctx, a.owner, a.repo, "heads/channels/"+channel)
	if status(err) == http.StatusNotFound {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return ref.GetObject().GetSHA(), nil
}

// SetChannelRef implements forge.Forge: GitHub refuses a non-fast-forward
// update because force is false.
func (a *API) SetChannelRef(ctx context.Context, channel, old, sha string) error {
	ref := forge.ChannelRefName(channel)
	if old == "" {
		_, _, err := a.gh.Git.CreateRef(ctx, a.owner, a.repo, gh.CreateRef{Ref: ref, SHA: sha})
		if exists(err) {
			return fmt.Errorf("%s: %w", ref, forge.ErrExists)
		}
		return err
	}
	force := false
	_, _, err := a.gh.Git.UpdateRef(ctx, a.owner, a.repo, strings.TrimPrefix(ref, "refs/"), gh.UpdateRef{SHA: sha, Force: &force})
	if status(err) == http.StatusUnprocessableEntity {
		return fmt.Errorf("%s: %w (%v)", ref, forge.ErrNotFastForward, err)
	}
	return err
}

func toRelease(r *gh.RepositoryRelease) *forge.Release {
	out := &forge.Release{ID: r.GetID(), Tag: r.TagName, Name: r.GetName(), Body: r.GetBody(), Rev: r.TargetCommitish,
		Prerelease: r.Prerelease, Latest: !r.Prerelease, URL: r.HTMLURL}
	for _, as := range r.Assets {
		out.Assets = append(out.Assets, as.GetName())
	}
	return out
}

// Release implements forge.Forge.
func (a *API) Release(ctx context.Context, tag string) (*forge.Release, error) {
	r, _, err := a.gh.Repositories.GetReleaseByTag(ctx, a.owner, a.repo, tag)
	if status(err) == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return toRelease(r), nil
}

// CreateRelease implements forge.Forge.
func (a *API) CreateRelease(ctx context.Context, r forge.Release) (*forge.Release, error) {
	latest := "false"
	if r.Latest {
		latest = "true"
	}
	req := gh.CreateReleaseRequest{TagName: r.Tag, TargetCommitish: &r.Rev, Name: &r.Name, Body: &r.Body,
		Prerelease: &r.Prerelease, MakeLatest: &latest}
	got, _, err := a.gh.Repositories.CreateRelease(ctx, a.owner, a.repo, req)
	if exists(err) {
		return nil, fmt.Errorf("release %s: %w", r.Tag, forge.ErrExists)
	}
	if err != nil {
		return nil, err
	}
	return toRelease(got), nil
}

// UploadAsset implements forge.Forge.
func (a *API) UploadAsset(ctx context.Context, r *forge.Release, name string, data []byte) error {
	u := fmt.Sprintf("repos/%s/%s/releases/%d/assets?name=%s", a.owner, a.repo, r.ID, url.QueryEscape(name))
	req, err := a.gh.NewUploadRequest(ctx, u, bytes.NewReader(data), int64(len(data)), "application/json")
	if err != nil {
		return err
	}
	_, err = a.gh.Do(req, nil)
	if exists(err) {
		return fmt.Errorf("asset %s: %w", name, forge.ErrExists)
	}
	if err != nil {
		return err
	}
	r.Assets = append(r.Assets, name)
	return nil
}

// EditBody implements forge.Forge.
func (a *API) EditBody(ctx context.Context, r *forge.Release, body string) error {
	_, _, err := a.gh.Repositories.UpdateRelease(ctx, a.owner, a.repo, r.ID, gh.UpdateReleaseRequest{Body: &body})
	if err != nil {
		return err
	}
	r.Body = body
	return nil
}

// CreateStatus implements Client.
func (a *API) CreateStatus(ctx context.Context, sha string, s Status) error {
	st := gh.RepoStatus{State: &s.State, Context: &s.Context}
	if s.Description != "" {
		st.Description = &s.Description
	}
	if s.TargetURL != "" {
		st.TargetURL = &s.TargetURL
	}
	_, _, err := a.gh.Repositories.CreateStatus(ctx, a.owner, a.repo, sha, st)
	return err
}

// Statuses implements Client from the combined status (latest per context).
func (a *API) Statuses(ctx context.Context, sha string) ([]Status, error) {
	var out []Status
	opts := &gh.ListOptions{PerPage: 100}
	for {
		cs, resp, err := a.gh.Repositories.GetCombinedStatus(ctx, a.owner, a.repo, sha, opts)
		if err != nil {
			return nil, err
		}
		for _, s := range cs.Statuses {
			out = append(out, Status{Context: s.GetContext(), State: s.GetState(), Description: s.GetDescription(), TargetURL: s.GetTargetURL()})
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}
