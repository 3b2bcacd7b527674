package version

import (
	"regexp"
	"testing"

	"github.com/Masterminds/semver/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseTag(t *testing.T) {
	tests := []struct {
		tag     string
		ok      bool
		channel Channel
		n       int
	}{
		{"v0.1.0", true, Stable, 0},
		{"v1.2.3", true, Stable, 0},
		{"v0.2.0-beta.1", true, Beta, 1},
		{"v0.2.0-dev.12", true, Dev, 12},
		{"0.1.0", false, "", 0},
		{"v0.1", false, "", 0},
		{"v01.1.0", false, "", 0},
		{"v0.2.0-rc.1", false, "", 0},
		{"v0.2.0-beta.0", false, "", 0},
		{"v0.2.0-beta.01", false, "", 0},
		{"v0.2.0-beta", false, "", 0},
		{"v0.2.0+build", false, "", 0},
		{"phase3-complete", false, "", 0},
		{"", false, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.tag, func(t *testing.T) {
			r, ok := ParseTag(tt.tag)
			require.Equal(t, tt.ok, ok)
			if !ok {
				return
			}
			assert.Equal(t, tt.channel, r.Channel)
			assert.Equal(t, tt.n, r.N)
			assert.Equal(t, tt.tag, Format(r.Base(), r.Channel, r.N))
		})
	}
}

func FuzzParseTag(f *testing.F) {
	for _, s := range []string{"v0.1.0", "v1.2.3-beta.4", "v0.0.1-dev.1", "v1.0.0-rc.1", "x", "v1.2.3+meta"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, ok := ParseTag(s)
		if !ok {
			return
		}
		// A release tag round-trips and has a counter exactly when it is a pre-release.
		if got := Format(r.Base(), r.Channel, r.N); got != s {
			t.Fatalf("ParseTag(%q) formats back as %q", s, got)
		}
		if (r.Channel == Stable) != (r.N == 0) {
			t.Fatalf("ParseTag(%q): channel %s with counter %d", s, r.Channel, r.N)
		}
	})
}

func TestParseChannel(t *testing.T) {
	for _, c := range []string{"dev", "beta", "stable"} {
		got, err := ParseChannel(c)
		require.NoError(t, err)
		assert.Equal(t, Channel(c), got)
	}
	_, err := ParseChannel("nightly")
	require.ErrorContains(t, err, "use dev, beta or stable")
}

func TestChannelOrderAndStages(t *testing.T) {
	_, ok := Dev.Previous()
	assert.False(t, ok)
	p, _ := Beta.Previous()
	assert.Equal(t, Dev, p)
	p, _ = Stable.Previous()
	assert.Equal(t, Beta, p)
	assert.Equal(t, []string{"unit"}, Dev.Stages())
	assert.Equal(t, []string{"unit", "integration"}, Beta.Stages())
	assert.Equal(t, []string{"unit", "integration", "performance", "security"}, Stable.Stages())
}

func TestKindAndBump(t *testing.T) {
	tests := []struct {
		subject, body string
		kind          string
		bump          Bump
	}{
		{"feat: add ollama", "", KindFeature, Minor},
		{"feat(ollama): sycl", "", KindFeature, Minor},
		{"phase4: production", "", KindPhase, Minor},
		{"fix: typo", "", KindFix, Patch},
		{"chore: deps", "", KindOther, Patch},
		{"update readme", "", KindOther, Patch},
		{"feat!: drop python 3.10", "", KindBreaking, Major},
		{"fix(api)!: rename", "", KindBreaking, Major},
		{"refactor: x", "text\n\nBREAKING CHANGE: config renamed", KindBreaking, Major},
		{"feat:no space", "", KindOther, Patch},
	}
	for _, tt := range tests {
		t.Run(tt.subject, func(t *testing.T) {
			c := Commit{Subject: tt.subject, Body: tt.body}
			assert.Equal(t, tt.kind, Kind(c))
			assert.Equal(t, tt.bump, BumpOf(c))
		})
	}
}

func TestApply(t *testing.T) {
	tests := []struct {
		from string
		bump Bump
		want string
	}{
		{"0.1.0", Patch, "0.1.1"},
		{"0.1.0", Minor, "0.2.0"},
		{"0.1.0", Major, "0.2.0"}, // below 1.0.0 a breaking change bumps minor
		{"1.2.3", Major, "2.0.0"},
		{"1.2.3", Minor, "1.3.0"},
		{"1.2.3", Patch, "1.2.4"},
	}
	for _, tt := range tests {
		t.Run(tt.from+"+"+tt.bump.String(), func(t *testing.T) {
			assert.Equal(t, tt.want, Apply(semver.MustParse(tt.from), tt.bump).String())
		})
	}
}

func rels(tags ...string) []Release { return Releases(tags) }

func TestNext(t *testing.T) {
	feat := Commit{Subject: "feat: x"}
	fix := Commit{Subject: "fix: y"}
	brk := Commit{Subject: "feat!: z"}
	tests := []struct {
		name    string
		channel Channel
		in      Input
		want    string
	}{
		{"issue example stable", Stable, Input{Releases: rels("v0.1.0"), Commits: []Commit{feat}}, "v0.2.0"},
		{"issue example beta", Beta, Input{Releases: rels("v0.1.0"), Commits: []Commit{feat}}, "v0.2.0-beta.1"},
		{"issue example dev", Dev, Input{Releases: rels("v0.1.0"), Commits: []Commit{feat}}, "v0.2.0-dev.1"},
		{"dev counts up", Dev, Input{Releases: rels("v0.1.0", "v0.2.0-dev.1", "v0.2.0-dev.2"), Commits: []Commit{feat, fix}}, "v0.2.0-dev.3"},
		{"counter per channel", Beta, Input{Releases: rels("v0.1.0", "v0.2.0-dev.5", "v0.2.0-beta.1"), Commits: []Commit{feat}}, "v0.2.0-beta.2"},
		{"counter per base", Dev, Input{Releases: rels("v0.1.0", "v0.1.1-dev.4", "v0.2.0-dev.1"), Commits: []Commit{fix}}, "v0.2.0-dev.2"},
		{"fix only", Stable, Input{Releases: rels("v0.1.0"), Commits: []Commit{fix}}, "v0.1.1"},
		{"breaking below 1.0", Stable, Input{Releases: rels("v0.1.0"), Commits: []Commit{fix, brk}}, "v0.2.0"},
		{"breaking above 1.0", Stable, Input{Releases: rels("v1.4.2"), Commits: []Commit{brk}}, "v2.0.0"},
		{"no stable yet", Dev, Input{Commits: []Commit{feat}}, "v0.1.0-dev.1"},
		{"highest stable wins", Stable, Input{Releases: rels("v0.1.0", "v0.3.0", "v0.2.0"), Commits: []Commit{fix}}, "v0.3.1"},
		{"phase tag", Beta, Input{Releases: rels("v0.1.0"), Commits: []Commit{fix}, PhaseTags: []string{"phase4-complete"}}, "v0.4.0-beta.1"},
		{"phase tag below bump", Stable, Input{Releases: rels("v0.4.0"), Commits: []Commit{feat}, PhaseTags: []string{"phase2-complete"}}, "v0.5.0"},
		{"other tags ignored", Stable, Input{Releases: rels("v0.1.0"), Commits: []Commit{feat}, PhaseTags: []string{"release-x"}}, "v0.2.0"},
		{"channel never backwards", Dev, Input{Releases: rels("v0.1.0", "v0.3.0-dev.1"), Commits: []Commit{fix}}, "v0.3.0-dev.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := Next(DefaultConfig(), tt.channel, tt.in)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestPhaseConfig(t *testing.T) {
	cfg := Config{PhaseTag: regexp.MustCompile(`^phase([0-9]+)-complete$`), PhaseVersion: "v1.{N}.0"}
	require.NoError(t, cfg.Validate())
	v, ok := cfg.PhaseVersionOf("phase3-complete")
	require.True(t, ok)
	assert.Equal(t, "1.3.0", v.String())
	_, ok = cfg.PhaseVersionOf("phase-complete")
	assert.False(t, ok)
	assert.ErrorContains(t, Config{PhaseVersion: "v0.1.0"}.Validate(), "no {N}")
	assert.ErrorContains(t, Config{PhaseVersion: "v0.{N}"}.Validate(), "not a semver template")
}
