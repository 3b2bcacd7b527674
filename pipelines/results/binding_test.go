package results

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	bindA = Binding{Flake: ".", NarHash: "sha256-GhwDr/8C2RAUNikyBmZuKey4kc5JgyKma0fbQPhnUio=",
		Report: "sha256:" + strings.Repeat("ab", 32)}
	bindOffline = Binding{Flake: "examples/offline", NarHash: bindA.NarHash, Report: bindA.Report}
)

// TestStatusRoundTrip: what ToStatus writes, FromStatus reads back with the
// same state, text, binding and external mark, within 140 characters.
func TestStatusRoundTrip(t *testing.T) {
	long := Binding{Flake: "some/very/deeply/nested/directory/of/the/repository/flake", NarHash: bindA.NarHash, Report: bindA.Report}
	for _, tt := range []struct {
		name string
		r    Result
		want string // description read back
	}{
		{name: "passed", r: Result{State: StatePassed, Description: "passed (3 passed)", Binding: bindA}, want: "passed (3 passed)"},
		{name: "skipped", r: Result{State: StateSkipped, Description: "no intel-gpu", Binding: bindOffline}, want: "no intel-gpu"},
		{name: "failed external", r: Result{State: StateFailed, Description: "2 failed", Binding: bindA, External: true}, want: "2 failed"},
		{name: "pending unbound", r: Result{State: StatePending, Description: "running"}, want: "running"},
		{name: "long text is cut, binding kept", r: Result{State: StateFailed, Description: strings.Repeat("x", 200), Binding: bindA},
			want: strings.Repeat("x", 140-len(suffix(bindA, false))-3) + "..."},
		{name: "long flake path", r: Result{State: StatePassed, Description: "ok", Binding: long}, want: "ok"},
		{name: "text with brackets", r: Result{State: StatePassed, Description: "a [b] c", Binding: bindA}, want: "a [b] c"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			state, desc := ToStatus(tt.r)
			assert.LessOrEqual(t, len(desc), 140, desc)
			got := FromStatus("rev", "unit", state, desc, "")
			assert.Equal(t, tt.r.State, got.State)
			assert.Equal(t, tt.want, got.Description)
			assert.Equal(t, tt.r.External, got.External)
			if tt.r.Binding == (Binding{}) {
				assert.False(t, got.Binding.Matches(bindA))
				return
			}
			assert.True(t, got.Binding.Matches(tt.r.Binding), "%+v reads back as %+v", tt.r.Binding, got.Binding)
			other := tt.r.Binding
			other.Report = "sha256:" + strings.Repeat("cd", 32)
			assert.False(t, got.Binding.Matches(other), "another report does not match")
			other = tt.r.Binding
			other.Flake = "elsewhere"
			assert.False(t, got.Binding.Matches(other), "another flake does not match")
		})
	}
}

func TestBindingMatches(t *testing.T) {
	changedNar := bindA
	changedNar.NarHash = "sha256-QJQE+ZcwDr91BsqqAK0Hi+pH9q9W3KCXx/RPHsWBTSQ="
	for _, tt := range []struct {
		name      string
		got, want Binding
		match     bool
	}{
		{"same", bindA, bindA, true},
		{"other directory of the same source", bindOffline, bindA, false},
		{"other source", changedNar, bindA, false},
		{"other report", Binding{Flake: ".", NarHash: bindA.NarHash, Report: "sha256:00"}, bindA, false},
		{"unbound result", Binding{}, bindA, false},
		{"unbound on both sides", Binding{}, Binding{}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.match, tt.got.Matches(tt.want))
		})
	}
}

func TestGateCheck(t *testing.T) {
	g := Gate{Stages: []string{"unit", "integration"}, Want: bindA, RefuseExternal: true}
	v := g.Check(map[string]Result{
		"unit":        {Stage: "unit", State: StatePassed, Binding: bindOffline},
		"integration": {Stage: "integration", State: StatePassed, Binding: bindA, External: true},
	})
	assert.False(t, v.OK())
	require.Len(t, v.Mismatched, 1)
	assert.Contains(t, v.Mismatched[0], "flake examples/offline")
	assert.Contains(t, v.Mismatched[0], "but this is flake . ")
	assert.Equal(t, []string{"integration"}, v.External)

	v = g.Check(map[string]Result{"unit": {State: StateFailed, Binding: bindA}})
	assert.Equal(t, []string{"unit (failed)", "integration (no result)"}, v.NotPassed)

	g.RefuseExternal = false
	v = g.Check(map[string]Result{"unit": {State: StatePassed, Binding: bindA}, "integration": {State: StatePassed, Binding: bindA, External: true}})
	assert.True(t, v.OK())
	assert.Len(t, v.Passed, 2)
}
