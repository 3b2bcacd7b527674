package cache

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// NarInfo is a parsed .narinfo file. Lines keeps the file as read, so that
// writing it back changes only the signatures.
type NarInfo struct {
	StorePath   string
	URL         string
	Compression string
	FileHash    string
	FileSize    int64
	NarHash     string
	NarSize     int64
	// References are base names (hash-name), as the narinfo lists them.
	References []string
	Sigs       []string
	lines      []string
}

// ParseNarInfo reads a narinfo; it needs StorePath, URL, NarHash and NarSize.
func ParseNarInfo(data []byte) (*NarInfo, error) {
	ni := &NarInfo{}
	for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			k, v, ok = strings.Cut(l, ":")
		}
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if k == "Sig" {
			ni.Sigs = append(ni.Sigs, v) // kept apart from lines
			continue
		}
		if err := ni.set(k, v); err != nil {
			return nil, fmt.Errorf("narinfo field %s: %w", k, err)
		}
		ni.lines = append(ni.lines, l)
	}
	if ni.StorePath == "" || ni.URL == "" || ni.NarHash == "" || ni.NarSize == 0 {
		return nil, fmt.Errorf("narinfo lacks StorePath, URL, NarHash or NarSize")
	}
	return ni, nil
}

// textFields and sizeFields are the narinfo fields NarInfo keeps as
// text and as sizes.
var (
	textFields = map[string]func(*NarInfo) *string{
		"StorePath":   func(n *NarInfo) *string { return &n.StorePath },
		"URL":         func(n *NarInfo) *string { return &n.URL },
		"Compression": func(n *NarInfo) *string { return &n.Compression },
		"FileHash":    func(n *NarInfo) *string { return &n.FileHash },
		"NarHash":     func(n *NarInfo) *string { return &n.NarHash },
	}
	sizeFields = map[string]func(*NarInfo) *int64{
		"FileSize": func(n *NarInfo) *int64 { return &n.FileSize },
		"NarSize":  func(n *NarInfo) *int64 { return &n.NarSize },
	}
)

// set stores the value of field k, leaving fields it does not know alone.
func (n *NarInfo) set(k, v string) error {
	var err error
	if f, ok := textFields[k]; ok {
		*f(n) = v
	} else if f, ok := sizeFields[k]; ok {
		*f(n), err = strconv.ParseInt(v, 10, 64)
	} else if k == "References" {
		n.References = strings.Fields(v)
	}
	return err
}

// Bytes renders the narinfo with its current signatures.
func (n *NarInfo) Bytes() []byte {
	var b strings.Builder
	for _, l := range n.lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	for _, s := range n.Sigs {
		b.WriteString("Sig: " + s + "\n")
	}
	return []byte(b.String())
}

// Fingerprint is what a signature of the path signs, as nix computes it:
// 1;<store path>;<nar hash>;<nar size>;<references, full paths, sorted>.
func (n *NarInfo) Fingerprint() string {
	dir := n.StorePath[:strings.LastIndexByte(n.StorePath, '/')+1]
	refs := make([]string, len(n.References))
	for i, r := range n.References {
		refs[i] = dir + r
	}
	sort.Strings(refs)
	return "1;" + n.StorePath + ";" + n.NarHash + ";" + strconv.FormatInt(n.NarSize, 10) + ";" + strings.Join(refs, ",")
}

// SigKeys returns the names of the keys that signed the narinfo, each once.
func (n *NarInfo) SigKeys() []string {
	var out []string
	for _, s := range n.Sigs {
		name, _, _ := strings.Cut(s, ":")
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// SignedBy reports whether the narinfo carries a valid signature by the
// public key pub (nix's text form, name:base64).
func (n *NarInfo) SignedBy(pub string) bool {
	fp := []byte(n.Fingerprint())
	for _, s := range n.Sigs {
		if validSig(pub, s, fp) {
			return true
		}
	}
	return false
}

// validSig reports whether sig (name:base64) is pub's signature of fp.
func validSig(pub, sig string, fp []byte) bool {
	name, b64, ok := strings.Cut(pub, ":")
	key, err := base64.StdEncoding.DecodeString(b64)
	if !ok || err != nil || len(key) != ed25519.PublicKeySize {
		return false
	}
	sname, sb64, ok := strings.Cut(sig, ":")
	if !ok || sname != name {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(sb64)
	return err == nil && ed25519.Verify(ed25519.PublicKey(key), fp, raw)
}

// KeepSigsOf drops every signature that is not pub's valid signature of
// the path and reports whether any was dropped.
func (n *NarInfo) KeepSigsOf(pub string) bool {
	fp := []byte(n.Fingerprint())
	kept := n.Sigs[:0:0]
	for _, s := range n.Sigs {
		if validSig(pub, s, fp) {
			kept = append(kept, s)
		}
	}
	dropped := len(kept) != len(n.Sigs)
	n.Sigs = kept
	return dropped
}

// AddSig adds a signature (name:base64), replacing one by the same key.
func (n *NarInfo) AddSig(sig string) {
	name, _, _ := strings.Cut(sig, ":")
	n.KeepSigsExcept(name)
	n.Sigs = append(n.Sigs, sig)
}

// KeepSigsExcept drops the signatures of the key named name.
func (n *NarInfo) KeepSigsExcept(name string) {
	kept := n.Sigs[:0:0]
	for _, s := range n.Sigs {
		if sname, _, _ := strings.Cut(s, ":"); sname != name {
			kept = append(kept, s)
		}
	}
	n.Sigs = kept
}

// NarInfoName is the file name of a store path's narinfo.
func NarInfoName(storePath string) string { return HashPart(storePath) + ".narinfo" }

// nix32Alphabet is nix's base-32 alphabet (no e, o, u, t).
const nix32Alphabet = "0123456789abcdfghijklmnpqrsvwxyz"

// Nix32 encodes a hash in nix's base 32, as narinfos print it.
func Nix32(hash []byte) string {
	n := (len(hash)*8-1)/5 + 1
	out := make([]byte, 0, n)
	for i := n - 1; i >= 0; i-- {
		b := i * 5
		j, k := b/8, uint(b%8)
		c := hash[j] >> k
		if j+1 < len(hash) {
			c |= hash[j+1] << (8 - k)
		}
		out = append(out, nix32Alphabet[c&0x1f])
	}
	return string(out)
}

// DecodeNix32 decodes a hash of size bytes written in nix's base 32.
func DecodeNix32(s string, size int) ([]byte, error) {
	out := make([]byte, size)
	for n := 0; n < len(s); n++ {
		c := s[len(s)-n-1]
		d := strings.IndexByte(nix32Alphabet, c)
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

// SHA256Nix32 is "sha256:<nix32>" of data, the form of FileHash.
func SHA256Nix32(sum [sha256.Size]byte) string { return "sha256:" + Nix32(sum[:]) }
