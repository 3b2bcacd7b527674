package report

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
)

// DigestPrefix starts every report digest.
const DigestPrefix = "sha256:"

// Digest is a stable digest of the report's attribute → out paths map:
// every output that has out paths, sorted by attribute, paths sorted. Two
// reports with the same out paths for the same attributes have the same
// digest whatever their statuses, timings or order; one changed out path
// changes it. Stage results name the digest of the report they tested,
// and the push and promotion gates compare it with the report they use.
func (r *Report) Digest() string {
	m := map[string][]string{}
	for _, o := range r.Outputs {
		if len(o.OutPaths) == 0 {
			continue
		}
		m[o.Attr] = append(m[o.Attr], o.OutPaths...)
	}
	attrs := make([]string, 0, len(m))
	for a := range m {
		attrs = append(attrs, a)
	}
	sort.Strings(attrs)
	h := sha256.New()
	for _, a := range attrs {
		paths := append([]string(nil), m[a]...)
		sort.Strings(paths)
		// Attribute paths and store paths hold neither tab nor newline.
		h.Write([]byte(a + "\t" + strings.Join(paths, "\t") + "\n"))
	}
	return DigestPrefix + hex.EncodeToString(h.Sum(nil))
}
