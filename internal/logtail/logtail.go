// Package logtail cuts the end of a command's output down to one line for
// an error message.
package logtail

import "strings"

// Lines joins the last n non-empty lines of s, trimmed, with " | " ("" when
// s has none).
func Lines(s string, n int) string {
	return LinesExcept(s, n, nil)
}

// LinesExcept is Lines leaving out the lines skip reports (nil: none).
func LinesExcept(s string, n int, skip func(line string) bool) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && (skip == nil || !skip(l)) {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
