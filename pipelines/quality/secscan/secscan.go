// Package secscan holds the scanners of the security stage: secrets in the
// tree and in git history, the flake.lock audit, workflow linting and the
// CycloneDX SBOM. Scanners return findings with a severity; the stage
// decides which severities fail.
package secscan

import (
	"fmt"
	"strings"

	"github.com/ipex-flake/ipex-flake/internal/shorthash"
)

// Severity orders findings; a threshold fails the stage at or above it.
type Severity int

// Severities, lowest first.
const (
	Low Severity = iota + 1
	Medium
	High
	Critical
)

var severityNames = map[Severity]string{Low: "low", Medium: "medium", High: "high", Critical: "critical"}

func (s Severity) String() string { return severityNames[s] }

// ParseSeverity reads low, medium, high or critical.
func ParseSeverity(s string) (Severity, error) {
	for k, v := range severityNames {
		if v == strings.ToLower(s) {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q: use low, medium, high or critical", s)
}

// Finding is one problem a scanner found.
type Finding struct {
	Scanner  string   `json:"scanner"`
	Rule     string   `json:"rule"`
	Severity Severity `json:"-"`
	// Where: a file (and line), or a commit and file.
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
	Commit string `json:"commit,omitempty"`
	// Message never contains a secret value.
	Message string `json:"message"`
}

// Location formats where the finding is.
func (f Finding) Location() string {
	loc := f.File
	if f.Line > 0 {
		loc = fmt.Sprintf("%s:%d", loc, f.Line)
	}
	if f.Commit != "" {
		loc = shorthash.Long(f.Commit) + ":" + loc
	}
	return loc
}

func (f Finding) String() string {
	s := fmt.Sprintf("[%s] %s: %s", f.Severity, f.Rule, f.Message)
	if l := f.Location(); l != "" {
		s += " (" + l + ")"
	}
	return s
}
