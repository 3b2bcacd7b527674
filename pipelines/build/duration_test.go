package build

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/host"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

// bufferedEngine marks every result as the dagger engine does: its output
// was handed over when the command ended.
type bufferedEngine struct{ engine.Engine }

func (e bufferedEngine) Run(ctx context.Context, c engine.Cmd) (engine.Result, error) {
	res, err := e.Engine.Run(ctx, c)
	res.Buffered = true
	return res, err
}

// TestDurationsOnlyFromTimedOutput: a build whose log arrived as it was
// printed has its duration; on an engine whose output is buffered
// (Dagger) durationMs is left unset rather than a made-up number.
func TestDurationsOnlyFromTimedOutput(t *testing.T) {
	testlib.OfflineNix(t)
	tests := []struct {
		name     string
		buffered bool
	}{
		{"streamed", false},
		{"buffered", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			// A builder that takes a while (shell builtins only) and prints
			// as it goes.
			require.NoError(t, fixture.Write(dir, fixture.Flake{
				Nonce:    testlib.Nonce(),
				Drvs:     map[string]fixture.Drv{"slow": {Script: `echo start; i=0; while [ $i -lt 60000 ]; do i=$((i+1)); done; echo done; echo > $out`}},
				Packages: map[string]string{"slow": "slow"},
			}))
			h, err := host.New(engine.Options{Source: dir})
			require.NoError(t, err)
			defer h.Close()
			var eng engine.Engine = h
			if tt.buffered {
				eng = bufferedEngine{h}
			}
			rep, _, err := Run(t.Context(), Options{Engine: eng, Flake: dir, Systems: []string{"x86_64-linux"}, Jobs: 1})
			require.NoError(t, err)
			require.Len(t, rep.Outputs, 1)
			o := rep.Outputs[0]
			require.Equal(t, report.StatusBuilt, o.Status, o.Reason)
			if tt.buffered {
				assert.Nil(t, o.DurationMs, "no duration from buffered output")
			} else {
				require.NotNil(t, o.DurationMs, "the build's own time")
				assert.Positive(t, *o.DurationMs, "the build's own time")
			}
		})
	}
}
