package quality

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/stage"
)

func TestIntegrationStage(t *testing.T) {
	testlib.OfflineNix(t)
	dir := fixtureFlake(t, "integration", map[string]string{"fmt": "echo > $out", "services-vm": "echo > $out"}, "")
	// A Go module beside the flake with a suite in tests/integration.
	files := map[string]string{
		"go.mod": "module example.org/suite\n\ngo 1.22\n",
		"tests/integration/api_test.go": `package integration

import (
	"os"
	"testing"
)

func TestLive(t *testing.T) {
	if os.Getenv("IPEX_LIVE") != "1" {
		t.Fatal("the stage runs the suite against live services")
	}
}
func TestChat(t *testing.T)       { if _, err := os.Stat("BREAK"); err == nil { t.Fatal("chat stream ended early") } }
func TestWebsocket(t *testing.T)  { t.Skip("COMFYUI_URL has no websocket") }
`,
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}
	noKVM := stage.Host{DevRoot: t.TempDir(), Assume: []stage.Feature{stage.IntelGPU}}

	for _, broken := range []bool{false, true} {
		if broken {
			// A marker file, not a variable: children get an
			// allow-listed environment.
			require.NoError(t, os.WriteFile(filepath.Join(dir, "tests", "integration", "BREAK"), nil, 0o644))
		}
		var out bytes.Buffer
		env := &Env{Flake: dir, EngineKind: engine.KindHost, Systems: []string{"x86_64-linux"}, Host: noKVM, Out: &out, Services: external}
		o := stage.Run(t.Context(), &Integration{Env: env}, stage.Options{Host: noKVM})
		env.Close()
		st := checkStates(o.Checks)
		assert.Equal(t, stage.Skipped, st["checks.x86_64-linux.services-vm"], "VM tests need kvm")
		assert.NotContains(t, st, "checks.x86_64-linux.fmt", "fast checks belong to the unit stage")
		assert.Equal(t, stage.Passed, st["integration.TestLive"], out.String())
		assert.Equal(t, stage.Skipped, st["integration.TestWebsocket"])
		if broken {
			assert.Equal(t, stage.Failed, o.State)
			assert.Equal(t, stage.Failed, st["integration.TestChat"])
			assert.Contains(t, out.String(), "chat stream ended early")
		} else {
			assert.Equal(t, stage.Passed, o.State, out.String())
			assert.True(t, strings.Contains(out.String(), "NixOS VM test needs kvm"))
		}
	}
}

func TestIntegrationStageSkipsWithoutGPU(t *testing.T) {
	empty := t.TempDir()
	o := stage.Run(t.Context(), &Integration{Env: &Env{Flake: empty}}, stage.Options{Host: stage.Host{DevRoot: empty, SysRoot: empty}})
	assert.Equal(t, stage.Skipped, o.State)
	assert.Contains(t, o.Reason, "no intel-gpu on this machine")
}
