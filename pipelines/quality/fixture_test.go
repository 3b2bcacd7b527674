package quality

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/fixture"
)

// fixtureFlake writes a flake with no inputs whose checks use /bin/sh as
// builder. checks maps a check name to its builder script; a name ending
// in "-vm" gets requiredSystemFeatures kvm and nixos-test. extra is raw Nix
// added to the outputs.
func fixtureFlake(t *testing.T, nonce string, checks map[string]string, extra string) string {
	t.Helper()
	f := fixture.Flake{Nonce: nonce, Drvs: map[string]fixture.Drv{}, Checks: map[string]string{}, Extra: extra}
	for name, script := range checks {
		d := fixture.Drv{Script: script}
		if strings.HasSuffix(name, "-vm") {
			d.Features = []string{"kvm", "nixos-test"}
		}
		f.Drvs[name] = d
		f.Checks[name] = name
	}
	dir := t.TempDir()
	require.NoError(t, fixture.Write(dir, f))
	return dir
}

// external points the stages at the services the test started itself
// (OLLAMA_HOST, COMFYUI_URL), as `ci test --external-services` does.
var external = &ServiceOptions{External: true}
