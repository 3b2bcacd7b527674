package quality

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
	"github.com/ipex-flake/ipex-flake/pipelines/stage"
)

// noGovulncheck is a PATH without govulncheck (its database is online).
func noGovulncheck(string) (string, error) { return "", errors.New("not found") }

func TestSecurityStage(t *testing.T) {
	testlib.OfflineNix(t)

	tests := []struct {
		name, planted, failOn, wantState string
	}{
		{name: "clean tree passes", wantState: stage.Passed},
		{name: "planted token fails", planted: "gh" + "p_" + strings.Repeat("k3", 18), wantState: stage.Failed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := fixtureFlake(t, "sec", map[string]string{"fmt": "echo > $out"}, "")
			if tt.planted != "" {
				require.NoError(t, os.WriteFile(filepath.Join(dir, "deploy.env"), []byte("TOKEN="+tt.planted+"\n"), 0o644))
			}
			env, out := hostEnv(t, dir)
			sec := &Security{Env: env, LookPath: noGovulncheck}
			o := stage.Run(t.Context(), sec, stage.Options{})
			assert.Equal(t, tt.wantState, o.State, out.String())
			st := checkStates(o.Checks)
			assert.Equal(t, stage.Skipped, st["actionlint"], "no workflows yet")
			assert.Equal(t, stage.Skipped, st["govulncheck"])
			assert.Equal(t, stage.Skipped, st["nix run .#security-scan"])
			assert.Equal(t, stage.Passed, st["flake.lock audit"])
			if tt.planted != "" {
				assert.Equal(t, stage.Failed, st["secrets (tree)"])
				assert.Contains(t, out.String(), "github-token")
				assert.NotContains(t, out.String(), tt.planted, "the secret is never printed")
			} else {
				assert.Equal(t, stage.Passed, st["secrets (tree)"])
			}
		})
	}
}

func TestSecurityThreshold(t *testing.T) {
	testlib.OfflineNix(t)
	dir := fixtureFlake(t, "sec", map[string]string{"fmt": "echo > $out"}, "")
	// A flake with inputs and no lock: a high finding.
	text, err := os.ReadFile(filepath.Join(dir, "flake.nix"))
	require.NoError(t, err)
	withInputs := strings.Replace(string(text), "\n  outputs", "\n  inputs.nixpkgs.url = \"github:NixOS/nixpkgs\";\n  outputs", 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "flake.nix"), []byte(withInputs), 0o644))
	for failOn, want := range map[string]string{"high": stage.Failed, "critical": stage.Passed} {
		env, _ := hostEnv(t, dir)
		sec := &Security{Env: env, FailOn: failOn, LookPath: noGovulncheck}
		// Only the file scanners matter here: keep nix out of it.
		o := stage.Run(t.Context(), sec, stage.Options{})
		st := checkStates(o.Checks)
		assert.Equal(t, want, st["flake.lock audit"], failOn)
		require.NotEmpty(t, sec.Findings)
		assert.Equal(t, "missing-lock", sec.Findings[0].Rule)
	}
}

func TestSecuritySBOM(t *testing.T) {
	testlib.OfflineNix(t)
	dir := fixtureFlake(t, "sbom-"+t.Name(), map[string]string{"app": "echo > $out"}, "")
	env, out := hostEnv(t, dir)
	eng, err := env.Engine(t.Context())
	require.NoError(t, err)
	stdout, stderr, err := run(t.Context(), eng, []string{"nix", "--extra-experimental-features", "nix-command flakes",
		"build", "--no-link", "--json", dir + "#checks.x86_64-linux.app"})
	require.NoError(t, err, stderr)
	var built []struct {
		Outputs map[string]string `json:"outputs"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &built))
	rep := &report.Report{Outputs: []report.Output{
		{Attr: "checks.x86_64-linux.app", System: "x86_64-linux", Status: report.StatusBuilt, OutPaths: []string{built[0].Outputs["out"]}},
		{Attr: "packages.x86_64-linux.broken", Status: report.StatusFailed},
	}}
	repPath := filepath.Join(t.TempDir(), "report.json")
	require.NoError(t, rep.Write(repPath))

	sbomDir := t.TempDir()
	sec := &Security{Env: env, Report: repPath, SBOMDir: sbomDir, LookPath: noGovulncheck}
	o := stage.Run(t.Context(), sec, stage.Options{})
	assert.Equal(t, stage.Passed, o.State, out.String())
	assert.Equal(t, stage.Passed, checkStates(o.Checks)["sbom checks.x86_64-linux.app"])
	data, err := os.ReadFile(filepath.Join(sbomDir, "checks.x86_64-linux.app.cdx.json"))
	require.NoError(t, err)
	var bom map[string]any
	require.NoError(t, json.Unmarshal(data, &bom))
	assert.Equal(t, "1.5", bom["specVersion"])
	comps := bom["components"].([]any)
	require.Len(t, comps, 1)
	assert.Equal(t, "app", comps[0].(map[string]any)["name"])
}

// TestSecurityScanApp runs the flake's own apps.<system>.security-scan:
// exit 0 passes, any other exit is a high finding that fails the stage.
func TestSecurityScanApp(t *testing.T) {
	testlib.OfflineNix(t)
	// The script is in the flake's own store copy; the context is dropped
	// because Nix 2.8 asserts on an app whose program has a source context.
	app := "      apps.x86_64-linux.security-scan = { type = \"app\"; program = builtins.unsafeDiscardStringContext \"${self}/scan.sh\"; };\n"
	for _, tt := range []struct {
		name, script, wantState string
	}{
		{name: "clean", script: "#!/bin/sh\necho vulnix: nothing found\n", wantState: stage.Passed},
		{name: "findings", script: "#!/bin/sh\necho 'CVE-2024-0001 in libfoo' >&2\nexit 2\n", wantState: stage.Failed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := fixtureFlake(t, "scan-"+tt.name, map[string]string{"fmt": "echo > $out"}, app)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "scan.sh"), []byte(tt.script), 0o755))
			env, out := hostEnv(t, dir)
			o := stage.Run(t.Context(), &Security{Env: env, LookPath: noGovulncheck}, stage.Options{})
			assert.Equal(t, tt.wantState, o.State, out.String())
			assert.Equal(t, tt.wantState, checkStates(o.Checks)["nix run .#security-scan"], out.String())
			if tt.wantState == stage.Failed {
				assert.Contains(t, out.String(), "CVE-2024-0001 in libfoo")
				assert.Contains(t, out.String(), "exited 2")
			}
		})
	}
}

func TestSecurityScanAppUnfetchableInputs(t *testing.T) {
	testlib.OfflineNix(t)
	dir := t.TempDir()
	// An input on a host that does not resolve: the app cannot be looked
	// up here, which is a skip with the reason, not a pass or a finding.
	flake := `{
  inputs.tools.url = "git+http://inputs.invalid/tools";
  outputs = { self, tools }: { apps.x86_64-linux.security-scan = { type = "app"; program = "${tools}/scan"; }; };
}
`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "flake.nix"), []byte(flake), 0o644))
	env, out := hostEnv(t, dir)
	sec := &Security{Env: env, LookPath: noGovulncheck}
	o := stage.Run(t.Context(), sec, stage.Options{})
	st := checkStates(o.Checks)
	assert.Equal(t, stage.Skipped, st["nix run .#security-scan"], out.String())
	assert.Contains(t, out.String(), "cannot be fetched from here")
	assert.Contains(t, out.String(), "run `nix flake lock`")
	assert.Equal(t, stage.Failed, st["flake.lock audit"], "the missing lock is the finding")
}
