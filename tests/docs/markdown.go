package docs

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// Link is one link target found in a Markdown file.
type Link struct {
	Line   int
	Target string
}

var (
	fence      = regexp.MustCompile("^\\s*(```|~~~)")
	atxHeading = regexp.MustCompile(`^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$`)
	inlineLink = regexp.MustCompile(`!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+"[^"]*")?\s*\)`)
	refDef     = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)`)
	htmlHref   = regexp.MustCompile(`<a\s[^>]*href="([^"]+)"`)
	htmlAnchor = regexp.MustCompile(`<a\s[^>]*(?:id|name)="([^"]+)"`)
	codeSpan   = regexp.MustCompile("`+[^`]*`+")
	scheme     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
	lineAnchor = regexp.MustCompile(`^L(\d+)(?:-L(\d+))?$`)
	mdLinkText = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	htmlTag    = regexp.MustCompile(`<[^>]+>`)
)

// prose returns the lines of a Markdown text that are not inside fenced code
// blocks (other lines are empty, so line numbers stay).
func prose(text string) []string {
	lines := strings.Split(text, "\n")
	out := make([]string, len(lines))
	in := ""
	for i, l := range lines {
		if m := fence.FindStringSubmatch(l); m != nil {
			switch {
			case in == "":
				in = m[1]
			case in == m[1]:
				in = ""
			}
			continue
		}
		if in == "" {
			out[i] = l
		}
	}
	return out
}

// Links returns the link targets of a Markdown text: inline links and
// images, reference definitions and HTML hrefs, outside code.
func Links(text string) []Link {
	var out []Link
	for i, l := range prose(text) {
		l = codeSpan.ReplaceAllString(l, "")
		for _, m := range inlineLink.FindAllStringSubmatch(l, -1) {
			out = append(out, Link{i + 1, strings.Trim(m[1], "<>")})
		}
		if m := refDef.FindStringSubmatch(l); m != nil {
			out = append(out, Link{i + 1, strings.Trim(m[1], "<>")})
		}
		for _, m := range htmlHref.FindAllStringSubmatch(l, -1) {
			out = append(out, Link{i + 1, m[1]})
		}
	}
	return out
}

// Slug is GitHub's anchor for a heading's text: the rendered text lowercased,
// everything but letters, digits, spaces, hyphens and underscores removed,
// spaces turned into hyphens.
func Slug(heading string) string {
	heading = mdLinkText.ReplaceAllString(heading, "$1")
	heading = htmlTag.ReplaceAllString(heading, "")
	heading = strings.NewReplacer("`", "", "*", "").Replace(heading)
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.M, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Anchors returns the anchors GitHub gives a Markdown text: one per heading
// (a repeated slug gets -1, -2, …) and explicit <a id|name="…">.
func Anchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, l := range prose(text) {
		if m := atxHeading.FindStringSubmatch(l); m != nil {
			s := Slug(m[2])
			if n := seen[s]; n > 0 {
				out[s+"-"+strconv.Itoa(n)] = true
			} else {
				out[s] = true
			}
			seen[s]++
		}
		for _, m := range htmlAnchor.FindAllStringSubmatch(l, -1) {
			out[m[1]] = true
		}
	}
	return out
}

// CheckLink resolves a relative link target written in file (inside root)
// and returns why it does not resolve, or nil. Links with a scheme
// (https:, mailto:) are not checked.
func CheckLink(root, file, target string) error {
	if target == "" {
		return fmt.Errorf("empty link target")
	}
	if scheme.MatchString(target) || strings.HasPrefix(target, "//") {
		return nil
	}
	p, frag, _ := strings.Cut(target, "#")
	p, err := url.PathUnescape(p)
	if err != nil {
		return fmt.Errorf("link %q: %v", target, err)
	}
	dest := file
	if p != "" {
		if strings.HasPrefix(p, "/") {
			dest = filepath.Join(root, p)
		} else {
			dest = filepath.Join(filepath.Dir(file), p)
		}
		if rel, err := filepath.Rel(root, dest); err != nil || strings.HasPrefix(rel, "..") {
			return fmt.Errorf("link %q leaves the repository", target)
		}
	}
	fi, err := os.Stat(dest)
	if err != nil {
		return fmt.Errorf("link %q: no file %s", target, relTo(root, dest))
	}
	if frag == "" {
		return nil
	}
	if fi.IsDir() {
		return fmt.Errorf("link %q: anchor on a directory", target)
	}
	b, err := os.ReadFile(dest)
	if err != nil {
		return err
	}
	if strings.HasSuffix(dest, ".md") {
		if !Anchors(string(b))[frag] {
			return fmt.Errorf("link %q: %s has no heading with anchor #%s", target, relTo(root, dest), frag)
		}
		return nil
	}
	if m := lineAnchor.FindStringSubmatch(frag); m != nil {
		lines := strings.Count(string(b), "\n") + 1
		for _, n := range m[1:] {
			if v, _ := strconv.Atoi(n); n != "" && (v < 1 || v > lines) {
				return fmt.Errorf("link %q: %s has %d lines", target, relTo(root, dest), lines)
			}
		}
		return nil
	}
	return fmt.Errorf("link %q: anchor #%s in a file that is not Markdown", target, frag)
}

func relTo(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil {
		return r
	}
	return p
}
