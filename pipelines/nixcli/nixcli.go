// Package nixcli builds nix command lines that work from Nix 2.8 to current
// releases, and parses the JSON nix prints whose shape changed between them.
package nixcli

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Features is the experimental-features flag every nix invocation carries.
var Features = []string{"--extra-experimental-features", "nix-command flakes"}

// Nix returns the argument vector of `nix <args…>` with flakes enabled.
func Nix(args ...string) []string {
	out := append([]string{"nix"}, Features...)
	return append(out, args...)
}

// Version is a parsed `nix --version`.
type Version struct{ Major, Minor, Patch int }

var versionRe = regexp.MustCompile(`(\d+)\.(\d+)(?:\.(\d+))?`)

// ParseVersion reads the output of `nix --version`, e.g. "nix (Nix) 2.8.0".
func ParseVersion(s string) (Version, error) {
	m := versionRe.FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("cannot read nix version from %q", strings.TrimSpace(s))
	}
	var v Version
	v.Major, _ = strconv.Atoi(m[1])
	v.Minor, _ = strconv.Atoi(m[2])
	if m[3] != "" {
		v.Patch, _ = strconv.Atoi(m[3])
	}
	return v, nil
}

// AtLeast reports whether v >= major.minor.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// DrvInstallable names all outputs of a derivation as a `nix build`
// installable: `drv^*` from Nix 2.13 on, the bare .drv path before.
func (v Version) DrvInstallable(drvPath string) string {
	if v.AtLeast(2, 13) {
		return drvPath + "^*"
	}
	return drvPath
}

// PathInfo is one entry of `nix path-info --json`.
type PathInfo struct {
	Path       string   `json:"path"`
	NarHash    string   `json:"narHash"`
	NarSize    int64    `json:"narSize"`
	References []string `json:"references"`
	Signatures []string `json:"signatures"`
	Deriver    string   `json:"deriver"`
	Valid      bool     `json:"valid"`
	// RegistrationTime is when the path became valid in the store (Unix
	// seconds; 0 when nix does not say).
	RegistrationTime int64 `json:"registrationTime"`
}

// ParsePathInfo parses `nix path-info --json` from any Nix version: before
// 2.19 a list of objects with a "path" field; from 2.19 an object keyed by
// store path (null for invalid paths). The result is sorted by path and holds
// only valid paths.
func ParsePathInfo(data []byte) ([]PathInfo, error) {
	trimmed := strings.TrimSpace(string(data))
	var out []PathInfo
	switch {
	case strings.HasPrefix(trimmed, "["):
		var list []json.RawMessage
		if err := json.Unmarshal(data, &list); err != nil {
			return nil, fmt.Errorf("nix path-info --json: %w", err)
		}
		for _, raw := range list {
			var pi PathInfo
			pi.Valid = true
			if err := json.Unmarshal(raw, &pi); err != nil {
				return nil, fmt.Errorf("nix path-info --json: %w", err)
			}
			if pi.Valid {
				out = append(out, pi)
			}
		}
	case strings.HasPrefix(trimmed, "{"):
		var m map[string]*json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("nix path-info --json: %w", err)
		}
		for p, raw := range m {
			if raw == nil || string(*raw) == "null" {
				continue
			}
			var pi PathInfo
			if err := json.Unmarshal(*raw, &pi); err != nil {
				return nil, fmt.Errorf("nix path-info --json: %w", err)
			}
			pi.Path = p
			pi.Valid = true
			out = append(out, pi)
		}
	default:
		return nil, fmt.Errorf("nix path-info --json: unexpected output %.60q", trimmed)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}
