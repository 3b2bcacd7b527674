package cmd

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/host"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
	"github.com/ipex-flake/ipex-flake/pipelines/push/signing"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
	"github.com/ipex-flake/ipex-flake/release/forge"
	"github.com/ipex-flake/ipex-flake/release/gitrepo/gittest"
	"github.com/ipex-flake/ipex-flake/release/provenance"
)

// releasedFixture is a local release of a fixture flake with one locked
// input: built, pushed to a file:// cache, promoted to dev with its
// provenance.
type releasedFixture struct {
	repo, cache, tag, sha string
	key                   *signing.Key
	env                   map[string]string
	assets                string
	binding               results.Binding
	report                string
}

// bindingOf is the binding ci test gives results of the flake in dir
// tested against the build report rep.
func bindingOf(t *testing.T, dir, rep string) results.Binding {
	t.Helper()
	r, err := report.Read(rep)
	require.NoError(t, err)
	b, err := results.ResolveFlake(t.Context(), dir)
	require.NoError(t, err)
	b.Report = r.Digest()
	return b
}

func releaseFixture(t *testing.T) *releasedFixture {
	t.Helper()
	testlib.OfflineNix(t)
	g := gittest.New(t)
	nix := fixture.Nix(fixture.Flake{Nonce: testlib.Nonce(),
		Drvs:     map[string]fixture.Drv{"a": {Script: "echo a > $out"}, "b": {Script: "echo b > $out"}},
		Packages: map[string]string{"a": "a", "b": "b"}})
	nix = strings.Replace(nix, "outputs = { self }:", "inputs.dep = { url = \"path:./dep\"; flake = false; };\n  outputs = { self, dep }:", 1)
	require.NoError(t, os.WriteFile(filepath.Join(g.Dir, "flake.nix"), []byte(nix), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(g.Dir, "dep"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(g.Dir, "dep", "x"), []byte("locked input\n"), 0o644))
	g.Git("add", "-A")
	lock := exec.Command("nix", append(nixcli.Features, "flake", "lock")...)
	lock.Dir = g.Dir
	out, err := lock.CombinedOutput()
	require.NoError(t, err, string(out))
	g.Git("add", "flake.lock")
	sha := g.Commit("feat: fixture with a locked input")
	t.Chdir(g.Dir)

	key, err := signing.Generate("test-cache-1")
	require.NoError(t, err)
	f := &releasedFixture{repo: g.Dir, sha: sha, key: key, cache: "file://" + filepath.Join(t.TempDir(), "cache"),
		env: map[string]string{signing.EnvKey: key.Secret()}}
	rep := filepath.Join(t.TempDir(), "r.json")
	io, _, errb := testIO(f.env)
	require.Equal(t, 0, Run(t.Context(), io, []string{"build", "--engine", "host", "--flake", g.Dir, "--cache", f.cache, "--report", rep}), errb.String())
	store := &results.FileStore{Path: results.DefaultPath(filepath.Join(g.Dir, ".git"))}
	f.binding, f.report = bindingOf(t, g.Dir, rep), rep
	require.NoError(t, store.Record(t.Context(), results.Result{Stage: "unit", Rev: sha, State: results.StatePassed, Description: "3 checks passed", Binding: f.binding}))
	io, _, errb = testIO(f.env)
	require.Equal(t, 0, Run(t.Context(), io, []string{"push", "--report", rep, "--cache", f.cache}), errb.String())
	io, stdout, errb := testIO(f.env)
	require.Equal(t, 0, Run(t.Context(), io, []string{"release", "promote", "--to", "dev", "--report", rep, "--cache", f.cache}), errb.String())
	assert.Contains(t, stdout.String(), "attached "+provenance.AssetName)
	for _, s := range []string{stdout.String(), errb.String()} {
		assert.NotContains(t, s, key.Secret())
	}
	m := regexp.MustCompile(`created (v\S+) at`).FindStringSubmatch(stdout.String())
	require.NotNil(t, m, stdout.String())
	f.tag = m[1]
	f.assets = filepath.Join(g.Dir, ".git", "ipex-ci", "releases", f.tag)
	return f
}

func TestVerifyReleaseComposed(t *testing.T) {
	f := releaseFixture(t)
	prov := filepath.Join(f.assets, provenance.AssetName)
	manifest := filepath.Join(f.assets, forge.ManifestAsset)
	data, err := os.ReadFile(prov)
	require.NoError(t, err)
	assert.NotContains(t, string(data), f.key.Secret())

	// The provenance is an in-toto statement with SLSA provenance v1.
	env, err := provenance.ParseEnvelope(data)
	require.NoError(t, err)
	st, err := env.Verify(f.key.Public())
	require.NoError(t, err)
	assert.Equal(t, provenance.StatementType, st.Type)
	assert.Equal(t, provenance.PredicateType, st.PredicateType)
	require.Len(t, st.Subject, 2)
	for _, s := range st.Subject {
		out, err := exec.Command("nix", append(nixcli.Features, "path-info", "--json", s.Name)...).Output()
		require.NoError(t, err)
		infos, err := nixcli.ParsePathInfo(out)
		require.NoError(t, err)
		want, err := provenance.SHA256Hex(infos[0].NarHash)
		require.NoError(t, err)
		assert.Equal(t, want, s.Digest["sha256"], s.Name)
	}
	bd := st.Predicate.BuildDefinition
	assert.Equal(t, f.sha, bd.ExternalParameters.Rev)
	assert.Equal(t, f.tag, bd.ExternalParameters.Version)
	assert.Equal(t, "host", bd.InternalParameters.Engine)
	require.Len(t, bd.InternalParameters.Outputs, 2)
	assert.Regexp(t, `^/nix/store/[a-z0-9]{32}-a\.drv$`, bd.InternalParameters.Outputs[0].DrvPath)
	require.Len(t, bd.InternalParameters.Gates, 1)
	assert.Equal(t, provenance.Gate{Stage: "unit", State: "passed", Rev: f.sha, Description: "3 checks passed",
		Time: bd.InternalParameters.Gates[0].Time, Flake: ".", NarHash: f.binding.NarHash, Report: f.binding.Report}, bd.InternalParameters.Gates[0])
	require.Len(t, bd.ResolvedDependencies, 2)
	assert.Equal(t, map[string]string{"gitCommit": f.sha}, bd.ResolvedDependencies[0].Digest)
	assert.Equal(t, "dep", bd.ResolvedDependencies[1].Name)
	assert.Regexp(t, `^sha256-`, bd.ResolvedDependencies[1].Annotations["narHash"])
	assert.Len(t, bd.ResolvedDependencies[1].Digest["sha256"], 64)
	assert.NotEmpty(t, st.Predicate.RunDetails.Builder.ID)
	assert.NotEmpty(t, st.Predicate.RunDetails.Metadata.InvocationID)

	// A rerun of the promotion attaches nothing again.
	io, stdout, errb := testIO(f.env)
	require.Equal(t, 0, Run(t.Context(), io, []string{"release", "promote", "--to", "dev", "--report", f.report}), errb.String())
	assert.Contains(t, stdout.String(), provenance.AssetName+" already attached")
	after, err := os.ReadFile(prov)
	require.NoError(t, err)
	assert.Equal(t, data, after)

	io, stdout, errb = testIO(nil)
	require.Equal(t, 0, Run(t.Context(), io, []string{"verify", "release", f.tag}), stdout.String()+errb.String())
	for _, c := range []string{"ok      signature", "ok      cache     2 of 2 out paths", "ok      gates"} {
		assert.Contains(t, stdout.String(), c)
	}

	// One tampered field per check; each is put back afterwards.
	other, err := signing.Generate("test-cache-1")
	require.NoError(t, err)
	narinfo := func() string {
		var m struct{ Outputs map[string]string }
		d, _ := os.ReadFile(manifest)
		require.NoError(t, json.Unmarshal(d, &m))
		p := m.Outputs["packages.x86_64-linux.a"]
		return filepath.Join(strings.TrimPrefix(f.cache, "file://"), strings.SplitN(filepath.Base(p), "-", 2)[0]+".narinfo")
	}()
	store := &results.FileStore{Path: results.DefaultPath(filepath.Join(f.repo, ".git"))}
	tests := []struct {
		name   string
		tamper func(t *testing.T)
		args   []string
		failed string
		want   string
	}{
		{"subject digest changed after signing", func(t *testing.T) {
			payload, _ := base64.StdEncoding.DecodeString(env.Payload)
			changed := regexp.MustCompile(`"sha256":"[0-9a-f]`).ReplaceAllString(string(payload), `"sha256":"0`)
			e := *env
			e.Payload = base64.StdEncoding.EncodeToString([]byte(changed))
			require.NoError(t, os.WriteFile(prov, e.Marshal(), 0o644))
		}, nil, "signature", "signature does not verify"},
		{"another key", func(*testing.T) {}, []string{"--public-key", other.Public()}, "signature", "signature does not verify"},
		{"manifest out path replaced", func(t *testing.T) {
			d, _ := os.ReadFile(manifest)
			changed := regexp.MustCompile(`/nix/store/[a-z0-9]{32}-a"`).ReplaceAllString(string(d), `/nix/store/00000000000000000000000000000000-a"`)
			require.NoError(t, os.WriteFile(manifest, []byte(changed), 0o644))
		}, nil, "signature", "is not a subject of the provenance"},
		{"NAR hash in the cache", func(t *testing.T) {
			d, err := os.ReadFile(narinfo)
			require.NoError(t, err)
			changed := regexp.MustCompile(`NarHash: sha256:[0-9a-z]`).ReplaceAllString(string(d), "NarHash: sha256:0")
			require.NotEqual(t, string(d), changed)
			require.NoError(t, os.WriteFile(narinfo, []byte(changed), 0o644))
		}, nil, "cache", "with NAR hash sha256:0"},
		{"narinfo gone from the cache", func(t *testing.T) { require.NoError(t, os.Remove(narinfo)) }, nil, "cache", "is not in file://"},
		{"gating result changed", func(t *testing.T) {
			require.NoError(t, store.Record(t.Context(), results.Result{Stage: "unit", Rev: f.sha, State: results.StateFailed, Binding: f.binding}))
		}, nil, "gates", "unit: the provenance says passed, the recorded result is failed"},
		{"gating result bound to another build", func(t *testing.T) {
			other := f.binding
			other.Report = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
			require.NoError(t, store.Record(t.Context(), results.Result{Stage: "unit", Rev: f.sha, State: results.StatePassed, Binding: other}))
		}, nil, "gates", "unit: the recorded result is bound to"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved := map[string][]byte{}
			for _, p := range []string{prov, manifest, narinfo, store.Path} {
				saved[p], _ = os.ReadFile(p)
			}
			t.Cleanup(func() {
				for p, d := range saved {
					require.NoError(t, os.WriteFile(p, d, 0o644))
				}
			})
			tt.tamper(t)
			io, stdout, errb := testIO(nil)
			assert.Equal(t, clierr.ExitFailed, Run(t.Context(), io, append([]string{"verify", "release", f.tag}, tt.args...)), errb.String())
			assert.Contains(t, stdout.String(), "FAILED  "+tt.failed)
			assert.Contains(t, stdout.String(), tt.want)
			assert.Contains(t, errb.String(), "does not verify: ")
		})
	}

	// After the tampering is undone, the release verifies again.
	io, stdout, errb = testIO(nil)
	require.Equal(t, 0, Run(t.Context(), io, []string{"verify", "release", f.tag}), stdout.String()+errb.String())
}

func TestVerifyReleaseUsageErrors(t *testing.T) {
	gittest.RequireGit(t)
	g := gittest.New(t)
	g.Commit("first")
	t.Chdir(g.Dir)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, forge.ManifestAsset), []byte(`{"version":"v1.0.0","rev":"abc","outputs":{}}`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, provenance.AssetName), []byte(`{"payloadType":"x","payload":"eA=="}`), 0o644))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no such release", []string{"v9.9.9"}, "has no " + forge.ManifestAsset},
		{"no key", []string{"v1.0.0", "--assets", dir}, "pass --public-key"},
		{"bad key", []string{"v1.0.0", "--assets", dir, "--public-key", "nope"}, "not a Nix public key"},
		{"other tag", []string{"v2.0.0", "--assets", dir, "--public-key", "k:" + base64.StdEncoding.EncodeToString(make([]byte, 32))}, "is for v1.0.0, not v2.0.0"},
		{"no tag", nil, "accepts 1 arg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			io, _, errb := testIO(nil)
			assert.Equal(t, clierr.ExitUsage, Run(t.Context(), io, append([]string{"verify", "release"}, tt.args...)))
			assert.Contains(t, errb.String(), tt.want)
		})
	}
}

// TestProvenanceMissingPaths: out paths in neither the store nor the cache
// get no subject; the promotion warns and the verification fails on them.
func TestProvenanceMissingPaths(t *testing.T) {
	testlib.OfflineNix(t)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	g := gittest.New(t)
	require.NoError(t, fixture.Write(g.Dir, fixture.Flake{Nonce: testlib.Nonce(), Drvs: map[string]fixture.Drv{"a": {Script: "echo a > $out"}}, Packages: map[string]string{"a": "a"}}))
	g.Git("add", "flake.nix")
	sha := g.Commit("feat: first")
	t.Chdir(g.Dir)
	cacheDir := t.TempDir()
	rep := filepath.Join(t.TempDir(), "r.json")
	require.NoError(t, os.WriteFile(rep, []byte(`{"flake":".","engine":"host","rev":"`+sha+`","outputs":[
	  {"attr":"packages.x86_64-linux.gone","outPaths":["/nix/store/00000000000000000000000000000000-gone"],"status":"built","builder":"ssh://builder.example"}]}`), 0o644))
	store := &results.FileStore{Path: results.DefaultPath(filepath.Join(g.Dir, ".git"))}
	require.NoError(t, store.Record(t.Context(), results.Result{Stage: "unit", Rev: sha, State: results.StatePassed, Binding: bindingOf(t, g.Dir, rep)}))
	io, _, errb := relIO(nil)
	require.Equal(t, 0, Run(t.Context(), io, []string{"release", "promote", "--to", "dev", "--report", rep, "--cache", "file://" + cacheDir}), errb.String())
	assert.Contains(t, errb.String(), "warning: 1 released paths are in neither the store nor the cache")
	tag := g.Git("tag")
	data, err := os.ReadFile(filepath.Join(g.Dir, ".git", "ipex-ci", "releases", tag, provenance.AssetName))
	require.NoError(t, err)
	env, err := provenance.ParseEnvelope(data)
	require.NoError(t, err)
	var m struct{ PublicKey string }
	mdata, err := os.ReadFile(filepath.Join(g.Dir, ".git", "ipex-ci", "releases", tag, forge.ManifestAsset))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(mdata, &m))
	st, err := env.Verify(m.PublicKey)
	require.NoError(t, err)
	outs := st.Predicate.BuildDefinition.InternalParameters.Outputs
	require.Len(t, outs, 1)
	assert.Equal(t, "ssh://builder.example", outs[0].Builder, "the report's builder is recorded")
	assert.Empty(t, st.Subject)
	io, stdout, errb := relIO(nil)
	assert.Equal(t, clierr.ExitFailed, Run(t.Context(), io, []string{"verify", "release", tag}), errb.String())
	assert.Contains(t, stdout.String(), "packages.x86_64-linux.gone: the manifest's /nix/store/00000000000000000000000000000000-gone is not a subject")
	assert.Contains(t, stdout.String(), "is not in file://"+cacheDir)
	assert.Contains(t, stdout.String(), "ok      gates")
}

// TestReproduceRunnerHoldsNoSecrets: the runner ci verify reproducible
// uses by default (the host engine) hands its children neither the
// signing key nor tokens, and reports their exit code.
func TestReproduceRunnerHoldsNoSecrets(t *testing.T) {
	t.Setenv(signing.EnvKey, "secret-key-1:c2VjcmV0")
	t.Setenv("GITHUB_TOKEN", "ghp_secret")
	eng, err := host.New(engine.Options{})
	require.NoError(t, err)
	defer eng.Close()
	var out bytes.Buffer
	res, err := eng.Run(t.Context(), engine.Cmd{Args: []string{"/bin/sh", "-c", "echo \"[$NIX_SIGNING_KEY][$GITHUB_TOKEN][$PATH]\"; exit 3"}, Stdout: &out})
	require.NoError(t, err)
	assert.Equal(t, 3, res.ExitCode)
	assert.Equal(t, "[][]["+os.Getenv("PATH")+"]\n", out.String())
}
