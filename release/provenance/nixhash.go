package provenance

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/ipex-flake/ipex-flake/pipelines/cache"
)

// SHA256Hex turns a Nix SHA-256 hash in any of the forms nix prints —
// "sha256:<nix base32>" (narinfo, path-info before 2.19), "sha256-<base64>"
// (SRI, path-info from 2.19, flake.lock), "sha256:<hex>" — into lowercase
// hex, the form an in-toto digest set uses.
func SHA256Hex(h string) (string, error) {
	h = strings.TrimSpace(h)
	var body string
	switch {
	case strings.HasPrefix(h, "sha256-"):
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "sha256-"))
		if err != nil || len(raw) != 32 {
			return "", fmt.Errorf("%q is not a SHA-256 SRI hash", h)
		}
		return hex.EncodeToString(raw), nil
	case strings.HasPrefix(h, "sha256:"):
		body = strings.TrimPrefix(h, "sha256:")
	default:
		return "", fmt.Errorf("%q is not a SHA-256 hash (want sha256:… or sha256-…)", h)
	}
	switch len(body) {
	case 64:
		raw, err := hex.DecodeString(body)
		if err != nil {
			return "", fmt.Errorf("%q is not a SHA-256 hash: %v", h, err)
		}
		return hex.EncodeToString(raw), nil
	case 52:
		raw, err := cache.DecodeNix32(body, 32)
		if err != nil {
			return "", fmt.Errorf("%q is not a SHA-256 hash: %v", h, err)
		}
		return hex.EncodeToString(raw), nil
	}
	return "", fmt.Errorf("%q is not a SHA-256 hash (its length is %d)", h, len(body))
}
