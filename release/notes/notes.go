// Package notes renders release notes: the commits since the channel's
// previous release, grouped by kind, the stage results the gate read, and
// the approval of a stable release.
package notes

import (
	"fmt"
	"strings"

	"github.com/ipex-flake/ipex-flake/internal/shorthash"
	"github.com/ipex-flake/ipex-flake/release/version"
)

// Stage is a gate stage's result as recorded in the notes.
type Stage struct {
	Name, State, URL string
}

// Notes is the input of Render.
type Notes struct {
	Tag     string
	Channel version.Channel
	Rev     string
	// Previous is the channel's previous release tag, "" for the first.
	Previous string
	// RepoURL is the repository's web URL ("" → no links).
	RepoURL string
	// Commits since Previous, newest first.
	Commits    []version.Commit
	Stages     []Stage
	ApprovedBy string
	// Compat is the GPU compatibility table (nil: none).
	Compat *Compat
}

// groups orders the sections of the notes.
var groups = []struct{ kind, title string }{
	{version.KindBreaking, "Breaking changes"},
	{version.KindPhase, "Phases"},
	{version.KindFeature, "Features"},
	{version.KindFix, "Fixes"},
	{version.KindOther, "Other changes"},
}

// Render returns the notes as Markdown.
func Render(n Notes) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s (%s)\n\n", n.Tag, n.Channel)
	fmt.Fprintf(&b, "Commit: %s\n", link(n.RepoURL, shorthash.Commit(n.Rev), "commit/"+n.Rev))
	if n.Previous != "" {
		fmt.Fprintf(&b, "Changes since %s: %s\n", n.Previous, link(n.RepoURL, n.Previous+"..."+n.Tag, "compare/"+n.Previous+"..."+n.Tag))
	} else {
		fmt.Fprintf(&b, "First %s release.\n", n.Channel)
	}
	by := map[string][]version.Commit{}
	for _, c := range n.Commits {
		k := version.Kind(c)
		by[k] = append(by[k], c)
	}
	for _, g := range groups {
		cs := by[g.kind]
		if len(cs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n### %s\n\n", g.title)
		for _, c := range cs {
			fmt.Fprintf(&b, "- %s (%s)\n", c.Subject, link(n.RepoURL, c.Short(), "commit/"+c.SHA))
		}
	}
	if len(n.Commits) == 0 {
		b.WriteString("\nNo new commits.\n")
	}
	if len(n.Stages) > 0 {
		b.WriteString("\n### Gate\n\n")
		for _, s := range n.Stages {
			name := s.Name
			if s.URL != "" {
				name = "[" + s.Name + "](" + s.URL + ")"
			}
			fmt.Fprintf(&b, "- %s: %s\n", name, s.State)
		}
	}
	renderCompat(&b, n.Compat)
	if n.ApprovedBy != "" {
		fmt.Fprintf(&b, "\nApproved by: %s\n", n.ApprovedBy)
	}
	return b.String()
}

func link(repo, text, path string) string {
	if repo == "" {
		return text
	}
	return "[" + text + "](" + strings.TrimSuffix(repo, "/") + "/" + path + ")"
}
