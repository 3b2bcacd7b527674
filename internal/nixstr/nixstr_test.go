package nixstr_test

import (
	"encoding/json"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/nixstr"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
)

var values = []struct{ name, in string }{
	{"plain", "packages.x86_64-linux.ollama"},
	{"interpolation", "${builtins.abort \"injected\"}"},
	{"backslash before interpolation", `\${x}`},
	{"backslashes", `C:\path\n\t`},
	{"quotes", `say "hi"`},
	{"dollars", "$ $$ $${x} ends with $"},
	{"escaped-looking", `\"${`},
	{"newlines and tabs", "a\nb\r\nc\td"},
	{"unicode", "Grüße ✓ 漢字"},
	{"empty", ""},
}

func TestQuote(t *testing.T) {
	assert.Equal(t, `"a\${b}\\\"c\n"`, nixstr.Quote("a${b}\\\"c\n"))
}

// TestQuoteRoundTripsThroughNix evaluates every quoted value with the real
// nix and compares what nix returns with the Go value.
func TestQuoteRoundTripsThroughNix(t *testing.T) {
	testlib.CheckPath(t, "nix")
	for _, tt := range values {
		t.Run(tt.name, func(t *testing.T) {
			got := eval(t, nixstr.Quote(tt.in))
			assert.Equal(t, tt.in, got)
		})
	}
}

func TestAttr(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"identifier", "nixpkgs", "nixpkgs"},
		{"dash and quote", "home-manager'", "home-manager'"},
		{"dot", "x86_64-linux.foo", `"x86_64-linux.foo"`},
		{"keyword", "in", `"in"`},
		{"leading digit", "1password", `"1password"`},
		{"interpolation", "${x}", `"\${x}"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, nixstr.Attr(tt.in))
		})
	}
}

// TestAttrSelectsThroughNix builds an attribute set with the names and
// selects each back with real nix.
func TestAttrSelectsThroughNix(t *testing.T) {
	testlib.CheckPath(t, "nix")
	for _, name := range []string{"nixpkgs", "in", "a.b", "${x}", `back\slash`, "1st"} {
		got := eval(t, "{ "+nixstr.Attr(name)+" = "+nixstr.Quote(name)+"; }."+nixstr.Attr(name))
		assert.Equal(t, name, got)
	}
}

func eval(t *testing.T, expr string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "nix", "--extra-experimental-features", "nix-command",
		"eval", "--json", "--expr", expr).Output()
	var stderr string
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = string(ee.Stderr)
	}
	require.NoError(t, err, "%s\n%s", expr, stderr)
	var got string
	require.NoError(t, json.Unmarshal(out, &got))
	return got
}
