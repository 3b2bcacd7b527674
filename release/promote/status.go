package promote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/shorthash"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
	"github.com/ipex-flake/ipex-flake/release/version"
)

// NextVersion returns the tag the next promotion of o.Rev to o.Channel
// would get, without checking the gate.
func (p *Promoter) NextVersion(ctx context.Context, o Options) (string, error) {
	if o.Version.PhaseTag == nil {
		o.Version = version.DefaultConfig()
	}
	rev, err := ResolveRev(ctx, p.Repo, o.Rev)
	if err != nil {
		return "", err
	}
	st, err := p.read(ctx)
	if err != nil {
		return "", err
	}
	plan := &Plan{Channel: o.Channel, Rev: rev}
	if err := p.version(ctx, o, st, plan); err != nil {
		return "", err
	}
	return plan.Tag, nil
}

// ChannelStatus is what a channel points at and what its next promotion
// would do.
type ChannelStatus struct {
	Channel version.Channel
	// Head is the commit of channels/<name> ("" when absent).
	Head string
	// Latest is the channel's highest release tag.
	Latest string
	// Candidate is the commit the next promotion would take: HEAD for dev,
	// the previous channel's head otherwise.
	Candidate string
	// Next is the tag it would get.
	Next string
	// Blocked is the refusal the gate gives now ("" when it would pass).
	Blocked string
	// UpToDate is true when Candidate already has its release on the
	// channel (Next is that release).
	UpToDate bool
	// Problem says what is wrong with the channel's latest release: its tag
	// was moved or deleted after the release was published.
	Problem string
}

// StatusReport is every channel, and the release tags that count for none.
type StatusReport struct {
	Channels []ChannelStatus
	// Ignored are release tags not reachable from HEAD (made on another
	// branch): versions ignore them.
	Ignored []string
}

// Status reports every channel. approvedBy is passed to the stable gate,
// want (the flake and build report to release) to the stage gates.
// What cannot be read for one channel (corrupt results, a moved tag) is
// marked on that channel; the others are still reported.
func (p *Promoter) Status(ctx context.Context, cfg version.Config, approvedBy string, want results.Binding) (*StatusReport, error) {
	st, err := p.read(ctx)
	if err != nil {
		return nil, err
	}
	rep := &StatusReport{}
	if head, err := ResolveRev(ctx, p.Repo, "HEAD"); err == nil {
		if reach, err := p.reachable(ctx, st, head); err == nil {
			in := map[string]bool{}
			for _, r := range reach {
				in[r.Tag] = true
			}
			for _, r := range st.rels {
				if !in[r.Tag] {
					rep.Ignored = append(rep.Ignored, r.Tag)
				}
			}
		}
	}
	out, err := p.channelStatus(ctx, cfg, approvedBy, want, st)
	rep.Channels = out
	return rep, err
}

func (p *Promoter) channelStatus(ctx context.Context, cfg version.Config, approvedBy string, want results.Binding, st *state) ([]ChannelStatus, error) {
	var err error
	var out []ChannelStatus
	prevHead := ""
	for _, c := range version.Channels {
		cs := ChannelStatus{Channel: c}
		if cs.Head, err = p.Forge.ChannelRef(ctx, string(c)); err != nil {
			return nil, err
		}
		if r, ok := version.Latest(st.rels, c); ok {
			cs.Latest = r.Tag
			cs.Problem = p.releaseProblem(ctx, r.Tag, st.sha[r.Tag])
		}
		cs.Candidate = "HEAD"
		if c != version.Dev {
			cs.Candidate = prevHead
		}
		prevHead = cs.Head
		if cs.Candidate == "" {
			prev, _ := c.Previous()
			cs.Blocked = fmt.Sprintf("nothing to promote: %s is empty", prev)
			out = append(out, cs)
			continue
		}
		if rev, err := ResolveRev(ctx, p.Repo, cs.Candidate); err == nil {
			if r, ok := st.releaseAt(c, rev); ok {
				cs.Candidate, cs.Next, cs.UpToDate = rev, r.Tag, true
				out = append(out, cs)
				continue
			}
		}
		o := Options{Channel: c, Rev: cs.Candidate, Version: cfg, ApprovedBy: approvedBy, Want: want}
		plan, err := p.Plan(ctx, o)
		var refusal *RefusedError
		var u *clierr.UsageError
		switch {
		case errors.As(err, &refusal):
			cs.Blocked = "blocked by its gates:\n  - " + strings.Join(refusal.Problems, "\n  - ")
			cs.Next, _ = p.NextVersion(ctx, o)
		case errors.As(err, &u):
			cs.Blocked = err.Error()
			cs.Next, _ = p.NextVersion(ctx, o)
		case err != nil:
			return nil, err
		default:
			cs.Next = plan.Tag
		}
		if rev, err := ResolveRev(ctx, p.Repo, cs.Candidate); err == nil {
			cs.Candidate = rev
		}
		out = append(out, cs)
	}
	return out, nil
}

// releaseProblem compares a release tag with its published release: ""
// when they agree (or there is no release yet).
func (p *Promoter) releaseProblem(ctx context.Context, tag, sha string) string {
	rel, err := p.Forge.Release(ctx, tag)
	switch {
	case err != nil:
		return fmt.Sprintf("release %s cannot be read: %v", tag, err)
	case rel == nil || rel.Rev == "" || rel.Rev == sha:
		return ""
	case sha == "":
		return fmt.Sprintf("the tag %s was deleted; its release names %s", tag, shorthash.Commit(rel.Rev))
	}
	return fmt.Sprintf("the tag %s points at %s but its release and manifest name %s: the tag was moved (git tag -f %s %s && git push -f origin refs/tags/%s puts it back)",
		tag, shorthash.Commit(sha), shorthash.Commit(rel.Rev), tag, rel.Rev, tag)
}

// PrintStatus writes the status table.
func PrintStatus(w io.Writer, rep *StatusReport) {
	for _, cs := range rep.Channels {
		head := "(none)"
		if cs.Head != "" {
			head = shorthash.Commit(cs.Head)
		}
		latest := cs.Latest
		if latest == "" {
			latest = "(no release)"
		}
		fmt.Fprintf(w, "%-7s channels/%s at %s, latest %s\n", cs.Channel, cs.Channel, head, latest)
		switch {
		case cs.UpToDate:
			fmt.Fprintf(w, "        up to date: %s is already %s\n", shorthash.Commit(cs.Candidate), cs.Next)
		case cs.Next != "" && cs.Blocked == "":
			fmt.Fprintf(w, "        next: %s as %s (gates pass)\n", shorthash.Commit(cs.Candidate), cs.Next)
		case cs.Next != "":
			fmt.Fprintf(w, "        next: %s as %s, %s\n", shorthash.Commit(cs.Candidate), cs.Next, strings.ReplaceAll(cs.Blocked, "\n", "\n        "))
		default:
			fmt.Fprintf(w, "        next: %s\n", cs.Blocked)
		}
		if cs.Problem != "" {
			fmt.Fprintf(w, "        PROBLEM: %s\n", cs.Problem)
		}
	}
	if len(rep.Ignored) > 0 {
		fmt.Fprintf(w, "ignored release tags (not reachable from HEAD; versions do not count them): %s\n", strings.Join(rep.Ignored, ", "))
	}
}

// Problems reports whether the status found a moved or deleted release tag.
func (rep *StatusReport) Problems() bool {
	for _, cs := range rep.Channels {
		if cs.Problem != "" {
			return true
		}
	}
	return false
}
