package results

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Binding names what a stage result tested: the flake (its path in the
// repository and the narHash of its source) and the build report (the
// digest of its attribute → out paths map, report.Report.Digest). Gates
// accept a result only when its binding matches the flake and report they
// push or promote.
type Binding struct {
	// Flake is the flake's directory relative to the repository root
	// ("." for the root), or its reference when it is not a local checkout.
	Flake string `json:"flake,omitempty"`
	// NarHash is the narHash of the flake's source (nix flake metadata).
	NarHash string `json:"narHash,omitempty"`
	// Report is the digest of the build report the stage tested.
	Report string `json:"report,omitempty"`
	// Short is set when the hashes were read back shortened (commit
	// statuses hold 140 characters): they then match by their short form.
	Short bool `json:"-"`
}

// Lengths of the shortened hashes in a commit status: the algorithm
// prefix and 20 characters (120 bits of a narHash, 80 of a digest).
const (
	shortNar    = len("sha256-") + 20
	shortReport = len("sha256:") + 20
	maxFlakeLen = 40
)

// String describes the binding for messages.
func (b Binding) String() string {
	if b.Flake == "" && b.NarHash == "" && b.Report == "" {
		return "no flake and no build report (recorded before results were bound to them)"
	}
	flake, nar, rep := orNone(b.Flake), orNone(b.NarHash), orNone(b.Report)
	return fmt.Sprintf("flake %s (narHash %s), build report %s", flake, nar, rep)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// Matches reports whether a result bound to b tested what want names.
// Empty fields never match: a result that names no flake or report proves
// nothing about either.
func (b Binding) Matches(want Binding) bool {
	if b.Flake == "" || b.NarHash == "" || b.Report == "" {
		return false
	}
	if b.Short || want.Short {
		return b.short() == want.short()
	}
	return b.Flake == want.Flake && b.NarHash == want.NarHash && b.Report == want.Report
}

// short is the binding as a commit status carries it.
func (b Binding) short() Binding {
	s := Binding{Flake: b.Flake, NarHash: cut(b.NarHash, shortNar), Report: cut(b.Report, shortReport), Short: true}
	if len(s.Flake) > maxFlakeLen || strings.ContainsAny(s.Flake, " []") {
		sum := sha256.Sum256([]byte(b.Flake))
		s.Flake = "~" + hex.EncodeToString(sum[:8])
	}
	return s
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// suffixField is one field of a binding as a commit status suffix names it.
type suffixField struct {
	key   string
	value *string
}

// suffixFields are b's fields in the order and under the keys of a commit
// status suffix.
func (b *Binding) suffixFields() []suffixField {
	return []suffixField{{"flake", &b.Flake}, {"nar", &b.NarHash}, {"report", &b.Report}}
}

// suffix is the binding and the external-service mark as they end a
// commit status description: " [flake=. nar=sha256-… report=sha256:… ext]".
func suffix(b Binding, external bool) string {
	if b.Flake == "" && b.NarHash == "" && b.Report == "" && !external {
		return ""
	}
	s := b.short()
	var f []string
	for _, sf := range s.suffixFields() {
		if *sf.value != "" {
			f = append(f, sf.key+"="+*sf.value)
		}
	}
	if external {
		f = append(f, "ext")
	}
	return " [" + strings.Join(f, " ") + "]"
}

// parseSuffix splits a description written with suffix into its text,
// binding and external mark. A description without one has an empty
// binding.
func parseSuffix(desc string) (text string, b Binding, external bool) {
	if !strings.HasSuffix(desc, "]") {
		return desc, b, false
	}
	i := strings.LastIndex(desc, " [")
	if i < 0 {
		if !strings.HasPrefix(desc, "[") {
			return desc, b, false
		}
		i = -1
	}
	inner := desc[i+2 : len(desc)-1]
	if i < 0 {
		inner = desc[1 : len(desc)-1]
	}
	var got Binding
	fields := got.suffixFields()
	for _, f := range strings.Fields(inner) {
		k, v, _ := strings.Cut(f, "=")
		if k == "ext" {
			external = true
			continue
		}
		i := slices.IndexFunc(fields, func(sf suffixField) bool { return sf.key == k })
		if i < 0 {
			return desc, Binding{}, false // not ours
		}
		*fields[i].value = v
	}
	got.Short = true
	if i < 0 {
		return "", got, external
	}
	return desc[:i], got, external
}

// statusDescription is the description of a commit status for r: its
// text (prefixed for skipped results, invalid UTF-8 as U+FFFD), cut at a
// character boundary so that the binding suffix fits in GitHub's
// MaxDescription characters. Text that ends in "]" gets an empty suffix
// " []" when it has none, so that it never reads back as a binding.
func statusDescription(r Result) string {
	desc := strings.ToValidUTF8(r.Description, "\uFFFD")
	if r.State == StateSkipped && !strings.HasPrefix(desc, SkippedPrefix) {
		desc = SkippedPrefix + desc
	}
	suf := suffix(r.Binding, r.External)
	if suf == "" && strings.HasSuffix(desc, "]") {
		suf = " []"
	}
	if room := MaxDescription - utf8.RuneCountInString(suf); utf8.RuneCountInString(desc) > room {
		if room < 3 {
			desc = ""
		} else {
			desc = cutRunes(desc, room-3) + "..."
		}
	}
	return desc + suf
}

// MaxDescription is GitHub's limit on a commit status description, in
// characters.
const MaxDescription = 140

// cutRunes is the first n characters of s.
func cutRunes(s string, n int) string {
	i := 0
	for k := range s {
		if i == n {
			return s[:k]
		}
		i++
	}
	return s
}

// ToStatus returns the commit status state and description of r. Commit
// statuses know success, failure, error and pending: a skipped stage is an
// "error" whose description starts with "skipped: " (never "success": a
// stage that did not run has not passed). The binding ends the
// description; FromStatus reads it back.
func ToStatus(r Result) (state, description string) {
	switch r.State {
	case StatePassed:
		state = "success"
	case StatePending:
		state = "pending"
	case StateSkipped:
		state = "error"
	default:
		state = "failure"
	}
	return state, statusDescription(r)
}

// FromStatus is the result a commit status written by ToStatus stands for.
func FromStatus(rev, stage, state, description, url string) Result {
	text, b, ext := parseSuffix(description)
	// "failure", and any state GitHub may add, is a failure.
	r := Result{Stage: stage, Rev: rev, State: StateFailed, Description: text, URL: url, Binding: b, External: ext}
	switch {
	case state == "success":
		r.State = StatePassed
	case state == "pending":
		r.State = StatePending
	case state == "error" && strings.HasPrefix(text, "skipped"):
		// "skipped: <why>", or a description that already started with
		// "skipped" (never read as passed); any other error is a failure.
		r.State, r.Description = StateSkipped, strings.TrimPrefix(text, SkippedPrefix)
	}
	return r
}
