// Package version computes release versions: the semver tag of each channel
// (stable vX.Y.Z, beta vX.Y.Z-beta.N, dev vX.Y.Z-dev.N), the bump implied by
// conventional commits since the last stable release, and the versions that
// maintainers' phaseN-complete tags stand for.
package version

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/ipex-flake/ipex-flake/internal/shorthash"
	"github.com/ipex-flake/ipex-flake/pipelines/stage"
)

// Channel is a release channel.
type Channel string

// The release channels, from least to most trusted.
const (
	Dev    Channel = "dev"
	Beta   Channel = "beta"
	Stable Channel = "stable"
)

// Channels lists the channels in promotion order.
var Channels = []Channel{Dev, Beta, Stable}

// ParseChannel returns the channel named s.
func ParseChannel(s string) (Channel, error) {
	if c := Channel(s); slices.Contains(Channels, c) {
		return c, nil
	}
	return "", fmt.Errorf("unknown channel %q: use dev, beta or stable", s)
}

// Previous returns the channel a commit must be on before it is promoted to
// c (beta ⇐ dev, stable ⇐ beta); ok is false for dev.
func (c Channel) Previous() (prev Channel, ok bool) {
	switch c {
	case Beta:
		return Dev, true
	case Stable:
		return Beta, true
	}
	return "", false
}

// Stages returns the stages that must have passed on a commit before it is
// promoted to c.
func (c Channel) Stages() []string { return stage.Gate(string(c)) }

// Release is a parsed release tag.
type Release struct {
	Tag     string
	Version *semver.Version
	Channel Channel
	// N is the pre-release counter (0 for stable).
	N int
}

// Base returns the release's version without pre-release: X.Y.Z.
func (r Release) Base() *semver.Version { return BaseOf(r.Version) }

// BaseOf returns v without pre-release and metadata.
func BaseOf(v *semver.Version) *semver.Version {
	return semver.New(v.Major(), v.Minor(), v.Patch(), "", "")
}

var preRe = regexp.MustCompile(`^(dev|beta)\.([1-9][0-9]{0,8})$`)

// ParseTag parses a release tag. ok is false for tags that are not release
// tags of this project (no leading v, not strict semver, build metadata, a
// pre-release other than dev.N or beta.N).
func ParseTag(tag string) (r Release, ok bool) {
	if !strings.HasPrefix(tag, "v") {
		return Release{}, false
	}
	v, err := semver.StrictNewVersion(tag[1:])
	if err != nil || v.Metadata() != "" {
		return Release{}, false
	}
	r = Release{Tag: tag, Version: v, Channel: Stable}
	if pre := v.Prerelease(); pre != "" {
		m := preRe.FindStringSubmatch(pre)
		if m == nil {
			return Release{}, false
		}
		r.Channel = Channel(m[1])
		r.N, _ = strconv.Atoi(m[2])
	}
	return r, true
}

// Format returns the tag of base on channel c with counter n (ignored for
// stable).
func Format(base *semver.Version, c Channel, n int) string {
	s := fmt.Sprintf("v%d.%d.%d", base.Major(), base.Minor(), base.Patch())
	if c != Stable {
		s += fmt.Sprintf("-%s.%d", c, n)
	}
	return s
}

// Bump is the size of a version increment.
type Bump int

// Bump sizes.
const (
	Patch Bump = iota + 1
	Minor
	Major
)

func (b Bump) String() string {
	switch b {
	case Major:
		return "major"
	case Minor:
		return "minor"
	case Patch:
		return "patch"
	}
	return "none"
}

// Commit is one commit of the history.
type Commit struct {
	SHA     string
	Subject string
	Body    string
}

// Short returns the abbreviated SHA.
func (c Commit) Short() string {
	return shorthash.Commit(c.SHA)
}

// Kinds of commits, used to group release notes.
const (
	KindBreaking = "breaking"
	KindFeature  = "feature"
	KindPhase    = "phase"
	KindFix      = "fix"
	KindOther    = "other"
)

var conventionalRe = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]*)(\([^()]*\))?(!)?:\s`)
var phaseTypeRe = regexp.MustCompile(`^phase[0-9]+$`)

// Kind classifies a commit by its conventional-commit header and footers.
func Kind(c Commit) string {
	m := conventionalRe.FindStringSubmatch(c.Subject)
	if m != nil && m[3] == "!" || breakingFooter(c.Body) {
		return KindBreaking
	}
	if m == nil {
		return KindOther
	}
	typ := strings.ToLower(m[1])
	switch {
	case typ == "feat":
		return KindFeature
	case phaseTypeRe.MatchString(typ):
		return KindPhase
	case typ == "fix":
		return KindFix
	}
	return KindOther
}

func breakingFooter(body string) bool {
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "BREAKING CHANGE:") || strings.HasPrefix(line, "BREAKING-CHANGE:") {
			return true
		}
	}
	return false
}

// BumpOf returns the increment one commit asks for: feat: and phaseN:
// minor, a breaking change major, anything else patch.
func BumpOf(c Commit) Bump {
	switch Kind(c) {
	case KindBreaking:
		return Major
	case KindFeature, KindPhase:
		return Minor
	}
	return Patch
}

// Apply increments v by b. Below 1.0.0 a major bump increments the minor
// version (0.y.z is the unstable series).
func Apply(v *semver.Version, b Bump) *semver.Version {
	base := BaseOf(v)
	var n semver.Version
	switch {
	case b == Major && base.Major() > 0:
		n = base.IncMajor()
	case b >= Minor:
		n = base.IncMinor()
	default:
		n = base.IncPatch()
	}
	return &n
}

// Config holds the configurable parts of version computation.
type Config struct {
	// PhaseTag matches maintainers' phase tags; its first group is N.
	PhaseTag *regexp.Regexp
	// PhaseVersion is the version a phase tag stands for, with {N} replaced
	// by the phase number.
	PhaseVersion string
}

// DefaultPhaseVersion maps phaseN-complete to v0.N.0.
const DefaultPhaseVersion = "v0.{N}.0"

// DefaultConfig returns phaseN-complete → v0.N.0.
func DefaultConfig() Config {
	return Config{PhaseTag: regexp.MustCompile(`^phase([0-9]+)-complete$`), PhaseVersion: DefaultPhaseVersion}
}

// Validate checks the phase mapping.
func (c Config) Validate() error {
	if !strings.Contains(c.PhaseVersion, "{N}") {
		return fmt.Errorf("phase version %q has no {N}: use a template such as %s", c.PhaseVersion, DefaultPhaseVersion)
	}
	if _, err := semver.StrictNewVersion(strings.TrimPrefix(strings.ReplaceAll(c.PhaseVersion, "{N}", "1"), "v")); err != nil {
		return fmt.Errorf("phase version %q is not a semver template: use a template such as %s", c.PhaseVersion, DefaultPhaseVersion)
	}
	return nil
}

// PhaseVersionOf returns the version a phase tag stands for.
func (c Config) PhaseVersionOf(tag string) (*semver.Version, bool) {
	if c.PhaseTag == nil {
		return nil, false
	}
	m := c.PhaseTag.FindStringSubmatch(tag)
	if m == nil || len(m) < 2 {
		return nil, false
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return nil, false
	}
	s := strings.ReplaceAll(c.PhaseVersion, "{N}", strconv.Itoa(n))
	v, err := semver.StrictNewVersion(strings.TrimPrefix(s, "v"))
	if err != nil {
		return nil, false
	}
	return BaseOf(v), true
}

// Releases parses the release tags among tags, ignoring the others.
func Releases(tags []string) []Release {
	var out []Release
	for _, t := range tags {
		if r, ok := ParseTag(t); ok {
			out = append(out, r)
		}
	}
	return out
}

// Latest returns the highest release of channel c, or ok false.
func Latest(rels []Release, c Channel) (Release, bool) {
	var best Release
	found := false
	for _, r := range rels {
		if r.Channel == c && (!found || r.Version.GreaterThan(best.Version)) {
			best, found = r, true
		}
	}
	return best, found
}

// Input is what the next version depends on.
type Input struct {
	// Releases are the release tags reachable from the commit being
	// promoted: the last stable release and each channel's base come from
	// them, so a tag on an unmerged branch changes nothing.
	Releases []Release
	// Taken are every release tag of the repository, reachable or not
	// (default Releases): counters skip them, so a new tag never collides.
	Taken []Release
	// Commits are the commits since the last stable release up to the
	// commit being promoted.
	Commits []Commit
	// PhaseTags are the names of the phase tags on those commits.
	PhaseTags []string
}

// Decision is the next version of a channel and how it was reached.
type Decision struct {
	// Tag is the release tag the next promotion gets.
	Tag string
	// Bump is the largest increment the commits ask for.
	Bump Bump
	// Phase is the phase tag the version comes from ("" when the commits'
	// bump decided it), PhaseVersion the version it stands for.
	Phase, PhaseVersion string
}

// Next returns the tag the next promotion to channel c gets, and the bump
// that led to it.
func Next(cfg Config, c Channel, in Input) (string, Bump) {
	d := Decide(cfg, c, in)
	return d.Tag, d.Bump
}

// Decide computes the next version of channel c: the last stable release
// bumped by the commits since, raised to the highest phase tag's version,
// never below the channel's latest base version, with the next free
// counter on dev and beta.
func Decide(cfg Config, c Channel, in Input) Decision {
	last := semver.New(0, 0, 0, "", "")
	if r, ok := Latest(in.Releases, Stable); ok {
		last = r.Version
	}
	d := Decision{Bump: Patch}
	for _, cm := range in.Commits {
		if b := BumpOf(cm); b > d.Bump {
			d.Bump = b
		}
	}
	base := Apply(last, d.Bump)
	for _, t := range in.PhaseTags {
		if pv, ok := cfg.PhaseVersionOf(t); ok && pv.GreaterThan(base) {
			base = pv
			d.Phase, d.PhaseVersion = t, "v"+pv.String()
		}
	}
	if c == Stable {
		d.Tag = Format(base, c, 0)
		return d
	}
	// A channel's base version never goes backwards.
	if r, ok := Latest(in.Releases, c); ok && r.Base().GreaterThan(base) {
		base = r.Base()
		d.Phase, d.PhaseVersion = "", ""
	}
	taken := in.Taken
	if taken == nil {
		taken = in.Releases
	}
	n := 0
	for _, r := range taken {
		if r.Channel == c && r.Base().Equal(base) && r.N > n {
			n = r.N
		}
	}
	d.Tag = Format(base, c, n+1)
	return d
}
