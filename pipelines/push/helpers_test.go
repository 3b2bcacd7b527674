package push

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/host"
	"github.com/ipex-flake/ipex-flake/pipelines/push/signing"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

// built is a fixture flake built in the host store.
type built struct {
	Report *report.Report
	Engine engine.Engine
	Paths  []string // out paths of the built outputs
}

// buildFixture builds a fresh flake of n dependencies of size lines×100
// bytes each and one top package that refers to them all.
func buildFixture(t *testing.T, n, lines int) *built {
	t.Helper()
	testlib.OfflineNix(t)
	dir := t.TempDir()
	f := fixture.Flake{Nonce: testlib.Nonce(), Drvs: map[string]fixture.Drv{}, Packages: map[string]string{}}
	var deps []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("dep%d", i)
		// Each line differs so that compression cannot shrink the NAR to nothing.
		f.Drvs[name] = fixture.Drv{Script: fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "%d $i $$ abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789 $i$i$i"; i=$((i+1)); done > $out`, lines, i)}
		deps = append(deps, name)
	}
	var refs strings.Builder
	for _, d := range deps {
		fmt.Fprintf(&refs, " $dep_%s", d)
	}
	f.Drvs["top"] = fixture.Drv{Script: "echo" + refs.String() + " > $out", Deps: deps}
	f.Packages["top"] = "top"
	require.NoError(t, fixture.Write(dir, f))
	eng, err := host.New(engine.Options{Source: dir})
	require.NoError(t, err)
	t.Cleanup(func() { eng.Close() })
	out, err := exec.CommandContext(t.Context(), "nix", "--extra-experimental-features", "nix-command flakes",
		"--option", "substituters", "", "build", "--no-link", "--json", dir+"#top").Output()
	require.NoError(t, err, "nix build of the fixture")
	var res []struct {
		Outputs map[string]string `json:"outputs"`
	}
	require.NoError(t, json.Unmarshal(out, &res))
	require.Len(t, res, 1)
	top := res[0].Outputs["out"]
	return &built{
		Engine: eng,
		Paths:  []string{top},
		Report: &report.Report{Flake: dir, Engine: "host", Rev: "deadbeef", Outputs: []report.Output{
			{Attr: "packages.x86_64-linux.top", System: "x86_64-linux", OutPaths: []string{top}, Status: report.StatusBuilt},
			{Attr: "packages.x86_64-linux.gone", System: "x86_64-linux", Status: report.StatusFailed},
		}},
	}
}

// testKey returns a fresh signing key.
func testKey(t *testing.T) *signing.Key {
	t.Helper()
	k, err := signing.Generate("ipex-test-1")
	require.NoError(t, err)
	return k
}

// nixRun runs nix with flakes and without substituters.
func nixRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "nix", append([]string{"--extra-experimental-features", "nix-command flakes"}, args...)...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return b.String(), err
}

// narinfos returns the narinfo files of a file:// cache directory.
func narinfos(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.narinfo"))
	require.NoError(t, err)
	return m
}

// requireNARsPresent fails when a narinfo in dir names a missing NAR.
func requireNARsPresent(t *testing.T, dir string) {
	t.Helper()
	for _, ni := range narinfos(t, dir) {
		data, err := os.ReadFile(ni)
		require.NoError(t, err)
		info, err := cache.ParseNarInfo(data)
		require.NoError(t, err)
		_, err = os.Stat(filepath.Join(dir, info.URL))
		require.NoError(t, err, "narinfo %s names a missing NAR", filepath.Base(ni))
	}
}
