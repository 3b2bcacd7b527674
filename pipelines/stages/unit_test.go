package stages

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/stage"
)

func checkStates(cs []stage.Check) map[string]string {
	m := map[string]string{}
	for _, c := range cs {
		m[c.Name] = c.State
	}
	return m
}

func TestUnitStage(t *testing.T) {
	testlib.OfflineNix(t)
	nonce := strconv.FormatInt(time.Now().UnixNano(), 10)
	tests := []struct {
		name      string
		checks    map[string]string
		wantState string
		want      map[string]string
	}{
		{
			name:      "passing",
			checks:    map[string]string{"fmt": "echo ok > $out", "web-vm": "echo > $out"},
			wantState: stage.Passed,
			want: map[string]string{
				"nix flake check":         stage.Passed,
				"checks.x86_64-linux.fmt": stage.Passed,
			},
		},
		{
			name:      "one failing",
			checks:    map[string]string{"fmt": "echo ok > $out", "lint": "echo lint found 2 problems >&2; exit 3"},
			wantState: stage.Failed,
			want: map[string]string{
				"nix flake check":          stage.Passed,
				"checks.x86_64-linux.fmt":  stage.Passed,
				"checks.x86_64-linux.lint": stage.Failed,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := fixtureFlake(t, nonce+tt.name, tt.checks, "")
			var out bytes.Buffer
			env := &Env{Flake: dir, EngineKind: engine.KindHost, Systems: []string{"x86_64-linux"}, Out: &out}
			defer env.Close()
			o := stage.Run(t.Context(), &Unit{Env: env}, stage.Options{})
			assert.Equal(t, tt.wantState, o.State, out.String())
			got := checkStates(o.Checks)
			assert.Equal(t, tt.want, got, "VM tests belong to the integration stage")
			if tt.wantState == stage.Failed {
				assert.Contains(t, o.Reason, "checks.x86_64-linux.lint")
				assert.Contains(t, out.String(), "lint found 2 problems")
			}
		})
	}
}

func TestUnitStageBrokenFlake(t *testing.T) {
	testlib.OfflineNix(t)
	dir := fixtureFlake(t, "broken", map[string]string{"fmt": "echo > $out"}, "      packages = throw \"packages are broken\";\n")
	env := &Env{Flake: dir, EngineKind: engine.KindHost, Systems: []string{"x86_64-linux"}}
	o := stage.Run(t.Context(), &Unit{Env: env}, stage.Options{})
	require.Equal(t, stage.Failed, o.State)
	assert.Equal(t, stage.Failed, checkStates(o.Checks)["nix flake check"])
	var detail string
	for _, c := range o.Checks {
		if c.Name == "nix flake check" {
			detail = c.Detail
		}
	}
	assert.Contains(t, detail, "packages are broken")
}
