package secscan

import (
	"encoding/base64"
	"encoding/hex"
	"io"
	"path"
	"regexp"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/google/uuid"

	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
)

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

// NewBOM builds the CycloneDX 1.5 SBOM of a runtime closure (nix path-info
// -r --json, parsed with nixcli.ParsePathInfo). subject is the output's
// attribute, roots its output paths. Every store path is a library
// component with its NAR hash and store path; dependencies follow the
// closure's references without self-references.
func NewBOM(subject string, roots []string, closure []nixcli.PathInfo, now time.Time) *cdx.BOM {
	components := []cdx.Component{}
	dependencies := []cdx.Dependency{}
	bom := &cdx.BOM{
		BOMFormat: cdx.BOMFormat, SpecVersion: cdx.SpecVersion1_5, SerialNumber: "urn:uuid:" + uuid.NewString(), Version: 1,
		Metadata: &cdx.Metadata{
			Timestamp: now.UTC().Format(time.RFC3339),
			Tools:     &cdx.ToolsChoice{Components: &[]cdx.Component{{Type: cdx.ComponentTypeApplication, Name: "ipex-flake ci"}}},
		},
		Components: &components, Dependencies: &dependencies,
	}
	if len(roots) > 0 {
		_, v := SplitStoreName(roots[0])
		bom.Metadata.Component = &cdx.Component{Type: cdx.ComponentTypeApplication, BOMRef: roots[0], Name: subject, Version: v}
	}
	for _, pi := range closure {
		name, version := SplitStoreName(pi.Path)
		props := []cdx.Property{{Name: "nix:store_path", Value: pi.Path}}
		if pi.Deriver != "" {
			props = append(props, cdx.Property{Name: "nix:deriver", Value: pi.Deriver})
		}
		c := cdx.Component{Type: cdx.ComponentTypeLibrary, BOMRef: pi.Path, Name: name, Version: version, Properties: &props}
		if h, ok := NarHashHex(pi.NarHash); ok {
			c.Hashes = &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: h}}
		}
		components = append(components, c)
		deps := []string{}
		for _, r := range pi.References {
			if r != pi.Path {
				deps = append(deps, r)
			}
		}
		dependencies = append(dependencies, cdx.Dependency{Ref: pi.Path, Dependencies: &deps})
	}
	return bom
}

// WriteBOM writes bom as indented CycloneDX JSON, one trailing newline.
func WriteBOM(w io.Writer, bom *cdx.BOM) error {
	return cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON).SetPretty(true).Encode(bom)
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
