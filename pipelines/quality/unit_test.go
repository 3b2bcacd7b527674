package quality

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/fixture"
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

// hostEnv is an Env for the flake in dir on the host engine, for
// x86_64-linux, printing into the returned buffer; closed when t ends.
func hostEnv(t *testing.T, dir string) (*Env, *bytes.Buffer) {
	var out bytes.Buffer
	env := &Env{Flake: dir, EngineKind: engine.KindHost, Systems: []string{"x86_64-linux"}, Out: &out}
	t.Cleanup(func() { _ = env.Close() })
	return env, &out
}

func TestUnitStage(t *testing.T) {
	testlib.OfflineNix(t)
	nonce := strconv.FormatInt(time.Now().UnixNano(), 10)
	const ok, fmtCheck = "echo ok > $out", "checks.x86_64-linux.fmt"
	tests := []struct {
		name      string
		checks    map[string]string
		wantState string
		want      map[string]string
	}{
		{"passing", map[string]string{"fmt": ok, "web-vm": "echo > $out"},
			stage.Passed, map[string]string{"nix flake check": stage.Passed, fmtCheck: stage.Passed}},
		{"one failing", map[string]string{"fmt": ok, "lint": "echo lint found 2 problems >&2; exit 3"},
			stage.Failed, map[string]string{"nix flake check": stage.Passed, fmtCheck: stage.Passed, "checks.x86_64-linux.lint": stage.Failed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := fixtureFlake(t, nonce+tt.name, tt.checks, "")
			env, out := hostEnv(t, dir)
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
	env, _ := hostEnv(t, dir)
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

// TestUnitStageOneBuild builds every check in one nix invocation and still
// gives each its own result: a check whose dependency fails is failed, a
// check that throws is failed without stopping the others, and the
// passing ones pass.
func TestUnitStageOneBuild(t *testing.T) {
	testlib.OfflineNix(t)
	nonce := strconv.FormatInt(time.Now().UnixNano(), 10)
	f := fixture.Flake{Nonce: nonce, Drvs: map[string]fixture.Drv{
		"ok":     {Script: "echo ok > $out"},
		"broken": {Script: "echo schema mismatch in broken >&2; exit 4"},
		"uses":   {Script: "echo > $out", Deps: []string{"broken"}},
		"bad":    {Throw: "check bad is misconfigured"},
		"vm":     {Script: "echo > $out", Features: []string{"kvm", "nixos-test"}},
	}, Checks: map[string]string{"ok": "ok", "broken": "broken", "uses": "uses", "bad": "bad", "vm": "vm"}}
	dir := t.TempDir()
	require.NoError(t, fixture.Write(dir, f))
	env, out := hostEnv(t, dir)
	o := stage.Run(t.Context(), &Unit{Env: env}, stage.Options{})
	require.Equal(t, stage.Failed, o.State, out.String())
	got := checkStates(o.Checks)
	assert.Equal(t, stage.Passed, got["checks.x86_64-linux.ok"], out.String())
	assert.Equal(t, stage.Failed, got["checks.x86_64-linux.broken"])
	assert.Equal(t, stage.Failed, got["checks.x86_64-linux.uses"], "a failed dependency fails the check")
	assert.Equal(t, stage.Failed, got["checks.x86_64-linux.bad"])
	assert.NotContains(t, got, "checks.x86_64-linux.vm")
	details := map[string]string{}
	for _, c := range o.Checks {
		details[c.Name] = c.Detail
	}
	assert.Contains(t, details["checks.x86_64-linux.broken"], "schema mismatch in broken")
	assert.Contains(t, details["checks.x86_64-linux.bad"], "does not evaluate")
}

func TestFailedDrvs(t *testing.T) {
	const a, b, c = "/nix/store/aaaa-lint.drv", "/nix/store/bbbb-uses.drv", "/nix/store/cccc-vm.drv"
	tests := []struct {
		name, stderr string
		want         map[string]string
	}{
		{name: "nix 2.8", stderr: "error: builder for '" + a + "' failed with exit code 3;\n" +
			"       last 10 log lines:\n       > lint found 2 problems\n       For full logs, run 'nix log " + a + "'.\n" +
			"error: 1 dependencies of derivation '" + b + "' failed to build\n" +
			"error: build of '" + a + "', '" + b + "' failed\n",
			want: map[string]string{
				a: "builder for '" + a + "' failed with exit code 3; | last 10 log lines: | lint found 2 problems",
				b: "1 dependencies of derivation '" + b + "' failed to build",
			}},
		{name: "newer nix", stderr: "error: Cannot build '" + c + "'.\n       Reason: builder failed with exit code 1.\n" +
			"       Last 10 log lines:\n       > vm did not boot\n",
			want: map[string]string{c: "Cannot build '" + c + "'. | Reason: builder failed with exit code 1. | Last 10 log lines: | vm did not boot"}},
		{name: "no build errors", stderr: "error: flake 'path:/x' does not provide attribute 'checks'\n", want: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, failedDrvs(tt.stderr))
		})
	}
}

func TestFetchFailure(t *testing.T) {
	dir := t.TempDir()
	e := &Env{Flake: dir}
	stderr := "warning: error: unable to download 'https://api.github.com/repos/o/r/commits/HEAD': Couldn't resolve host name (6); retrying in 259 ms\n" +
		"error: unable to download 'https://api.github.com/repos/o/r/commits/HEAD': Couldn't resolve host name (6)\n" +
		"(use '--show-trace' to show detailed location information)\n"
	why, ok := e.fetchFailure(stderr)
	require.True(t, ok)
	assert.Contains(t, why, "unable to download 'https://api.github.com/repos/o/r/commits/HEAD'")
	assert.NotContains(t, why, "retrying")
	assert.Contains(t, why, "run `nix flake lock`", "without a lock the fix is to lock")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "flake.lock"), []byte("{}"), 0o644))
	why, _ = e.fetchFailure(stderr)
	assert.Contains(t, why, "nix flake archive")

	_, ok = e.fetchFailure("error: attribute 'x' missing\n")
	assert.False(t, ok)
	assert.Equal(t, "error: unable to download 'https://api.github.com/repos/o/r/commits/HEAD': Couldn't resolve host name (6)", tail(stderr, 3))
}
