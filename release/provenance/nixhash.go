package provenance

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// nixBase32 is Nix's base-32 alphabet (no e, o, u, t).
const nixBase32 = "0123456789abcdfghijklmnpqrsvwxyz"

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
		raw, err := decodeNixBase32(body, 32)
		if err != nil {
			return "", fmt.Errorf("%q is not a SHA-256 hash: %v", h, err)
		}
		return hex.EncodeToString(raw), nil
	}
	return "", fmt.Errorf("%q is not a SHA-256 hash (its length is %d)", h, len(body))
}

// NixBase32 encodes raw the way nix prints hashes in narinfos.
func NixBase32(raw []byte) string {
	n := (len(raw)*8-1)/5 + 1
	out := make([]byte, 0, n)
	for i := n - 1; i >= 0; i-- {
		b := i * 5
		j, k := b/8, uint(b%8)
		c := raw[j] >> k
		if j+1 < len(raw) {
			c |= raw[j+1] << (8 - k)
		}
		out = append(out, nixBase32[c&0x1f])
	}
	return string(out)
}

func decodeNixBase32(s string, size int) ([]byte, error) {
	out := make([]byte, size)
	for n := 0; n < len(s); n++ {
		c := s[len(s)-n-1]
		d := strings.IndexByte(nixBase32, c)
		if d < 0 {
			return nil, fmt.Errorf("invalid character %q", c)
		}
		b := n * 5
		i, j := b/8, uint(b%8)
		out[i] |= byte(d << j)
		carry := byte(d >> (8 - j))
		if i+1 < size {
			out[i+1] |= carry
		} else if carry != 0 {
			return nil, fmt.Errorf("hash too long")
		}
	}
	return out, nil
}
