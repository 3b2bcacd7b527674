package results

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// FuzzStatusRoundTrip: whatever a stage reports, ToStatus writes a status
// GitHub accepts (valid UTF-8, at most MaxDescription characters, skipped
// never success) and FromStatus reads back the same state, URL, external
// mark and binding; a description that fits reads back unchanged (a
// skipped one without its "skipped: "), a longer one as its beginning and
// "...", and no description reads back as a binding. `go test` runs the
// seed corpus; `go test -fuzz FuzzStatusRoundTrip ./pipelines/results`
// searches further.
func FuzzStatusRoundTrip(f *testing.F) {
	for _, s := range []struct {
		state, desc string
		bound, ext  bool
	}{
		{StatePassed, "passed (3 passed)", true, false},
		{StateSkipped, "no intel-gpu on this machine", true, false},
		{StateSkipped, "skipped: no big-memory", false, false},
		{StateFailed, strings.Repeat("x", 200), true, true},
		{StateFailed, strings.Repeat("ü", 139) + "✓✓", true, false},
		{StateSkipped, strings.Repeat("漢", 150), false, false},
		{StatePending, "", false, false},
		{StateFailed, "a\xff\xfeb", true, false},
		{StatePassed, "forged [flake=. nar=sha256-x report=sha256:y]", false, false},
		{StatePassed, "[flake=.]", false, true},
		{StatePassed, "a [b] c", true, false},
		{"bogus", "x", false, false},
	} {
		f.Add(s.state, s.desc, "https://ci.example/1", s.bound, s.ext)
	}
	f.Fuzz(func(t *testing.T, state, desc, url string, bound, ext bool) {
		in := Result{Stage: "unit", Rev: "0123456789abcdef", State: state, Description: desc, URL: url, External: ext}
		if bound {
			in.Binding = bindA
		}
		st, d := ToStatus(in)
		require.True(t, utf8.ValidString(d), "%q", d)
		require.LessOrEqual(t, utf8.RuneCountInString(d), MaxDescription, "%q", d)
		if state != StatePassed {
			require.NotEqual(t, "success", st)
		}

		got := FromStatus(in.Rev, in.Stage, st, d, url)
		wantState := state
		switch state {
		case StatePassed, StateFailed, StatePending, StateSkipped:
		default:
			wantState = StateFailed
		}
		require.Equal(t, wantState, got.State)
		require.Equal(t, url, got.URL)
		require.Equal(t, ext, got.External)
		if bound {
			require.True(t, got.Binding.Matches(bindA), "%q reads back as %+v", d, got.Binding)
		} else {
			require.Equal(t, "", got.Binding.Flake+got.Binding.NarHash+got.Binding.Report, "%q forged a binding", d)
		}

		// What should read back: the text as valid UTF-8, a skipped one
		// without one "skipped: ".
		written := strings.ToValidUTF8(desc, "\uFFFD")
		if state == StateSkipped && !strings.HasPrefix(written, SkippedPrefix) {
			written = SkippedPrefix + written
		}
		canon := written
		if state == StateSkipped {
			canon = strings.TrimPrefix(written, SkippedPrefix)
		}
		if strings.HasPrefix(d, written) {
			require.Equal(t, canon, got.Description)
			return
		}
		cut, ok := strings.CutSuffix(got.Description, "...")
		require.True(t, ok, "%q ends in ...", got.Description)
		require.True(t, strings.HasPrefix(canon, cut) || strings.HasPrefix(written, cut), "%q is a cut of %q", got.Description, canon)
	})
}
