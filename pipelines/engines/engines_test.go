package engines

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
)

func TestResolve(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	withNix := func(string) (string, error) { return "/usr/bin/nix", nil }
	noNix := func(string) (string, error) { return "", errors.New("not found") }
	tests := []struct {
		name    string
		kind    string
		env     func(string) string
		look    func(string) (string, error)
		want    string
		wantErr string
	}{
		{"auto prefers a reachable engine", "auto", env("_EXPERIMENTAL_DAGGER_RUNNER_HOST", "tcp://engine:1234"), withNix, "dagger", ""},
		{"auto falls back to nix", "auto", env(), withNix, "host", ""},
		{"empty means auto", "", env(), withNix, "host", ""},
		{"auto with nothing", "auto", env(), noNix, "", "Install Nix"},
		{"host needs nix", "host", env(), noNix, "", "nix is not on PATH"},
		{"host", "host", env(), withNix, "host", ""},
		{"dagger session", "dagger", env("DAGGER_SESSION_PORT", "9000", "DAGGER_SESSION_TOKEN", "t"), noNix, "dagger", ""},
		{"dagger unreachable", "dagger", env(), withNix, "", "--engine host"},
		{"unknown", "docker", env(), withNix, "", "unknown engine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := LookPath
			LookPath = tt.look
			t.Cleanup(func() { LookPath = old })
			got, err := Resolve(tt.kind, tt.env)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.Equal(t, clierr.ExitUsage, clierr.Code(err))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
