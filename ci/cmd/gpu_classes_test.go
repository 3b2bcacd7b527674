package cmd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
	"github.com/ipex-flake/ipex-flake/release/gitrepo/gittest"
	"github.com/ipex-flake/ipex-flake/tests/fakes"
)

const twoGPUClasses = `{
  "classes": [{"name": "intel-gpu-arc-a"}, {"name": "intel-gpu-xe2", "labels": ["battlemage"]}],
  "required": {"beta": ["intel-gpu-arc-a"], "stable": ["intel-gpu-arc-a", "intel-gpu-xe2"]}
}`

func TestMatrixGPUClasses(t *testing.T) {
	p := filepath.Join(t.TempDir(), "gpu.json")
	require.NoError(t, os.WriteFile(p, []byte(twoGPUClasses), 0o644))
	io, out, errb := testIO(nil)
	require.Equal(t, 0, Run(t.Context(), io, []string{"matrix", "--gpu-classes", p}), errb.String())
	assert.JSONEq(t, `{"include":[
	  {"stage":"unit","system":"x86_64-linux","runs-on":["ubuntu-latest"],"timeout-minutes":30},
	  {"stage":"integration","system":"x86_64-linux","runs-on":["self-hosted","linux","x64","intel-gpu","intel-gpu-arc-a"],"timeout-minutes":60,"gpu-class":"intel-gpu-arc-a"},
	  {"stage":"integration","system":"x86_64-linux","runs-on":["self-hosted","linux","x64","intel-gpu","intel-gpu-xe2","battlemage"],"timeout-minutes":60,"gpu-class":"intel-gpu-xe2"},
	  {"stage":"performance","system":"x86_64-linux","runs-on":["self-hosted","linux","x64","intel-gpu","intel-gpu-arc-a"],"timeout-minutes":120,"gpu-class":"intel-gpu-arc-a"},
	  {"stage":"performance","system":"x86_64-linux","runs-on":["self-hosted","linux","x64","intel-gpu","intel-gpu-xe2","battlemage"],"timeout-minutes":120,"gpu-class":"intel-gpu-xe2"},
	  {"stage":"security","system":"x86_64-linux","runs-on":["ubuntu-latest"],"timeout-minutes":45}
	]}`, out.String())

	// A classes file that was asked for must exist and be valid.
	io, _, errb = testIO(nil)
	assert.Equal(t, clierr.ExitUsage, Run(t.Context(), io, []string{"matrix", "--gpu-classes", filepath.Join(t.TempDir(), "none.json")}))
	assert.Contains(t, errb.String(), "GPU classes")
	bad := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"classes":[{"name":"a"}],"required":{"beta":["b"]}}`), 0o644))
	io, _, errb = testIO(nil)
	assert.Equal(t, clierr.ExitUsage, Run(t.Context(), io, []string{"matrix", "--gpu-classes", bad}))
	assert.Contains(t, errb.String(), "not a registered class")
}

// TestGPUClassesComposed runs the integration and performance stages per
// class against the recorded fakes, then promotes: beta requires the
// arc-a class, stable also xe2, and the notes carry the class × stage table.
func TestGPUClassesComposed(t *testing.T) {
	testlib.OfflineNix(t)
	config := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", config)
	g := gittest.New(t)
	require.NoError(t, fixture.Write(g.Dir, fixture.Flake{Nonce: testlib.Nonce(),
		Drvs: map[string]fixture.Drv{"a": {Script: "echo a > $out"}}, Packages: map[string]string{"a": "a"}}))
	require.NoError(t, os.MkdirAll(filepath.Join(g.Dir, "ci"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(g.Dir, "ci", "gpu-classes.json"), []byte(twoGPUClasses), 0o644))
	g.Git("add", "-A")
	sha := g.Commit("feat: two GPU classes")
	t.Chdir(g.Dir)
	rep := filepath.Join(t.TempDir(), "build-report.json")
	io, out, errb := testIO(nil)
	require.Equal(t, 0, Run(t.Context(), io, []string{"build", "--engine", "host", "--flake", g.Dir, "--cache", "file://" + filepath.Join(t.TempDir(), "cache"), "--report", rep}), errb.String())
	bound := bindingOf(t, g.Dir, rep)
	store := &results.FileStore{Path: results.DefaultPath(filepath.Join(g.Dir, ".git"))}
	for _, s := range []string{"unit", "security"} {
		require.NoError(t, store.Record(t.Context(), results.Result{Stage: s, Rev: sha, State: results.StatePassed, Binding: bound}))
	}

	// arc-a: a server that serves every user; xe2: one that serves two at once.
	runClass := func(class string, users string, stages ...string) int {
		o := fakes.NewOllamaWith(fakes.OllamaOptions{Parallel: 100})
		t.Cleanup(o.Close)
		c := fakes.NewComfyUI()
		t.Cleanup(c.Close)
		env := map[string]string{"OLLAMA_HOST": o.URL, "COMFYUI_URL": c.URL}
		args := []string{"test", "--gpu-class", class, "--assume", "intel-gpu", "--assume", "big-memory", "--users", users, "--requests", "100",
			"--report", rep, "--external-services"}
		for _, s := range stages {
			args = append(args, "--stage", s)
		}
		io, sout, serr := testIO(env)
		code := Run(t.Context(), io, args)
		t.Logf("%s: exit %d\n%s%s", class, code, sout, serr)
		return code
	}
	// arc-a serves 100 users; on xe2 the run is too small for the target.
	// The integration stage has no Intel GPU test environment here (it is
	// skipped and recorded so); a GPU runner's pass is recorded in its place.
	require.Equal(t, 0, runClass("intel-gpu-arc-a", "100", "integration", "performance"))
	got, err := store.Get(t.Context(), sha)
	require.NoError(t, err)
	assert.Equal(t, results.StateSkipped, got["integration@intel-gpu-arc-a"].State)
	require.NoError(t, store.Record(t.Context(), results.Result{Stage: "integration@intel-gpu-arc-a", Rev: sha, State: results.StatePassed, Description: "passed (4 passed)", Binding: bound}))
	assert.Equal(t, clierr.ExitFailed, runClass("intel-gpu-xe2", "8", "performance"))
	io, _, errb = testIO(nil)
	assert.Equal(t, clierr.ExitUsage, Run(t.Context(), io, []string{"test", "--stage", "integration", "--gpu-class", "intel-gpu-igpu"}))
	assert.Contains(t, errb.String(), "use one of intel-gpu-arc-a, intel-gpu-xe2")

	got, err = store.Get(t.Context(), sha)
	require.NoError(t, err)
	assert.Equal(t, results.StatePassed, got["integration@intel-gpu-arc-a"].State)
	assert.Equal(t, results.StatePassed, got["performance@intel-gpu-arc-a"].State)
	assert.Regexp(t, `^ttft p95 \d+ ms, [\d.]+ tokens/s, 100/100 users \(\d+ passed, 1 skipped\)$`, got["performance@intel-gpu-arc-a"].Description)
	assert.Equal(t, results.StateFailed, got["performance@intel-gpu-xe2"].State)
	assert.NotContains(t, got, "integration", "per-class runs record STAGE@CLASS only")

	// A dry run signs nothing and generates no key; the promotion does.
	keyFile := filepath.Join(config, "ipex-flake", "signing-key.sec")
	io, out, errb = relIO(nil)
	require.Equal(t, 0, Run(t.Context(), io, []string{"release", "promote", "--to", "dev", "--dry-run", "--report", rep}), errb.String())
	assert.NoFileExists(t, keyFile)
	assert.NotContains(t, out.String(), "provenance")
	io, out, errb = relIO(nil)
	require.Equal(t, 0, Run(t.Context(), io, []string{"release", "promote", "--to", "dev", "--report", rep}), errb.String())
	assert.FileExists(t, keyFile)
	assert.Contains(t, errb.String(), "generated signing key")
	assert.Contains(t, out.String(), "attached provenance.intoto.jsonl")
	io, out, errb = relIO(nil)
	require.Equal(t, 0, Run(t.Context(), io, []string{"release", "promote", "--to", "beta", "--report", rep, "--allow-external-services"}), errb.String())
	notes := out.String()
	assert.Contains(t, notes, "### Intel GPU compatibility\n\n| GPU class | integration | performance |\n|---|---|---|\n")
	assert.Regexp(t, `\| intel-gpu-arc-a \(required\) \| passed \(4 passed\) \| passed: ttft p95 \d+ ms, [\d.]+ tokens/s, 100/100 users \(\d+ passed, 1 skipped\) \|\n`, notes)
	assert.Regexp(t, `\| intel-gpu-xe2 \| not run \| failed: ttft p95 \d+ ms, [\d.]+ tokens/s, \d+/8 users; failed: [^|\n]+\|\n`, notes)

	// Stable requires both classes, each stage.
	io, _, errb = relIO(nil)
	assert.Equal(t, clierr.ExitUsage, Run(t.Context(), io, []string{"release", "promote", "--to", "stable", "--approved-by", "alice", "--report", rep, "--allow-external-services"}))
	assert.Contains(t, errb.String(), "stage gate: integration@intel-gpu-xe2 has no result for "+sha[:7]+" (run: ci test --stage integration --gpu-class intel-gpu-xe2 on a runner of that class)")
	assert.Contains(t, errb.String(), "stage gate: performance@intel-gpu-xe2 is failed")
	assert.NotContains(t, errb.String(), "stage gate: performance has no result", "the classes take the place of the plain stage")

	// ci release status lists the per-class results.
	io, out, errb = relIO(nil)
	require.Equal(t, 0, Run(t.Context(), io, []string{"release", "status"}), errb.String())
	assert.Contains(t, out.String(), "evidence for "+sha[:7]+": performance@intel-gpu-xe2 failed")
	var m struct{ Outputs map[string]string }
	data, err := os.ReadFile(filepath.Join(g.Dir, ".git", "ipex-ci", "releases", regexp.MustCompile(`v\d+\.\d+\.\d+-beta\.\d+`).FindString(notes), "channel-manifest.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &m))
}
