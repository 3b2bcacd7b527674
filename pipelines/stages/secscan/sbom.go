package secscan

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
)

// BOM is a CycloneDX 1.5 bill of materials (JSON), the subset written here.
type BOM struct {
	BOMFormat    string       `json:"bomFormat"`
	SpecVersion  string       `json:"specVersion"`
	SerialNumber string       `json:"serialNumber"`
	Version      int          `json:"version"`
	Metadata     BOMMetadata  `json:"metadata"`
	Components   []Component  `json:"components"`
	Dependencies []Dependency `json:"dependencies"`
}

// BOMMetadata describes the SBOM and its subject.
type BOMMetadata struct {
	Timestamp string     `json:"timestamp"`
	Tools     BOMTools   `json:"tools"`
	Component *Component `json:"component,omitempty"`
}

// BOMTools names the tool that wrote the SBOM (CycloneDX 1.5 form).
type BOMTools struct {
	Components []Component `json:"components"`
}

// Component is one store path of the closure.
type Component struct {
	Type       string     `json:"type"`
	BOMRef     string     `json:"bom-ref,omitempty"`
	Name       string     `json:"name"`
	Version    string     `json:"version,omitempty"`
	Hashes     []Hash     `json:"hashes,omitempty"`
	Properties []Property `json:"properties,omitempty"`
}

// Hash is a component hash.
type Hash struct {
	Alg     string `json:"alg"`
	Content string `json:"content"`
}

// Property is a name/value pair.
type Property struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Dependency lists what a component references.
type Dependency struct {
	Ref       string   `json:"ref"`
	DependsOn []string `json:"dependsOn"`
}

var storeNameRe = regexp.MustCompile(`^[0-9a-df-np-sv-z]{32}-(.+)$`)

// SplitStoreName splits "/nix/store/<hash>-ollama-0.5.4" into "ollama" and
// "0.5.4" the way Nix's parseDrvName does: the version starts at the first
// dash followed by a digit.
func SplitStoreName(p string) (name, version string) {
	base := path.Base(p)
	if m := storeNameRe.FindStringSubmatch(base); m != nil {
		base = m[1]
	}
	for i := 0; i+1 < len(base); i++ {
		if base[i] == '-' && base[i+1] >= '0' && base[i+1] <= '9' {
			return base[:i], base[i+1:]
		}
	}
	return base, ""
}

// NewBOM builds the SBOM of a runtime closure (nix path-info -r --json,
// parsed with nixcli.ParsePathInfo). subject is the output's attribute,
// roots its output paths.
func NewBOM(subject string, roots []string, closure []nixcli.PathInfo, now time.Time) *BOM {
	bom := &BOM{
		BOMFormat: "CycloneDX", SpecVersion: "1.5", SerialNumber: "urn:uuid:" + newUUID(), Version: 1,
		Metadata: BOMMetadata{
			Timestamp: now.UTC().Format(time.RFC3339),
			Tools:     BOMTools{Components: []Component{{Type: "application", Name: "ipex-flake ci"}}},
		},
		Components: []Component{}, Dependencies: []Dependency{},
	}
	if len(roots) > 0 {
		_, v := SplitStoreName(roots[0])
		bom.Metadata.Component = &Component{Type: "application", BOMRef: roots[0], Name: subject, Version: v}
	}
	for _, pi := range closure {
		name, version := SplitStoreName(pi.Path)
		c := Component{Type: "library", BOMRef: pi.Path, Name: name, Version: version,
			Properties: []Property{{Name: "nix:store_path", Value: pi.Path}}}
		if h, ok := NarHashHex(pi.NarHash); ok {
			c.Hashes = []Hash{{Alg: "SHA-256", Content: h}}
		}
		if pi.Deriver != "" {
			c.Properties = append(c.Properties, Property{Name: "nix:deriver", Value: pi.Deriver})
		}
		bom.Components = append(bom.Components, c)
		deps := []string{}
		for _, r := range pi.References {
			if r != pi.Path {
				deps = append(deps, r)
			}
		}
		bom.Dependencies = append(bom.Dependencies, Dependency{Ref: pi.Path, DependsOn: deps})
	}
	return bom
}

// NarHashHex converts a narHash ("sha256:<nix base32>" before Nix 2.19,
// "sha256-<base64>" after) to hex.
func NarHashHex(h string) (string, bool) {
	switch {
	case strings.HasPrefix(h, "sha256-"):
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "sha256-"))
		if err != nil || len(raw) != 32 {
			return "", false
		}
		return hex.EncodeToString(raw), true
	case strings.HasPrefix(h, "sha256:"):
		raw, ok := nixBase32Decode(strings.TrimPrefix(h, "sha256:"), 32)
		if !ok {
			return "", false
		}
		return hex.EncodeToString(raw), true
	}
	return "", false
}

const nixBase32Chars = "0123456789abcdfghijklmnpqrsvwxyz"

// nixBase32Decode decodes Nix's base32 (least significant digit last,
// its own alphabet).
func nixBase32Decode(s string, size int) ([]byte, bool) {
	if len(s) != (size*8+4)/5 {
		return nil, false
	}
	out := make([]byte, size)
	for n := 0; n < len(s); n++ {
		c := s[len(s)-n-1]
		digit := strings.IndexByte(nixBase32Chars, c)
		if digit < 0 {
			return nil, false
		}
		b := n * 5
		i, j := b/8, b%8
		out[i] |= byte(digit << j)
		if i+1 < size {
			out[i+1] |= byte(digit >> (8 - j))
		} else if digit>>(8-j) != 0 {
			return nil, false
		}
	}
	return out, true
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
