// Package nixstr writes Go strings into Nix expressions: string literals
// that evaluate to exactly the Go value, and attribute names.
package nixstr

import (
	"regexp"
	"slices"
	"strings"
)

var escaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `${`, `\${`, "\n", `\n`, "\r", `\r`, "\t", `\t`)

// Quote returns s as a double-quoted Nix string literal. Backslashes,
// quotes and `${` are escaped, so no value can start an interpolation or
// end the string early; newlines, carriage returns and tabs are written
// as escapes. (strconv.Quote is not a Nix quote: it leaves `${` alone.)
func Quote(s string) string {
	return `"` + escaper.Replace(s) + `"`
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_'-]*$`)

var keywords = []string{"assert", "else", "if", "in", "inherit", "let", "or", "rec", "then", "with"}

// Attr returns name as one attribute-path element: bare when it is a Nix
// identifier (and no keyword), else quoted.
func Attr(name string) string {
	if identRe.MatchString(name) && !slices.Contains(keywords, name) {
		return name
	}
	return Quote(name)
}
