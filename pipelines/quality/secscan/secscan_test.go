package secscan

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
)

// Planted values are assembled at run time so that this file itself holds
// no secret-shaped string.
func plantedGitHub() string { return "gh" + "p_" + strings.Repeat("Z9", 18) }
func plantedAWS() string    { return "AK" + "IA" + "Q7RT2MZ4XK5PLW3N" }
func plantedNixKey() string {
	_, priv, _ := ed25519.GenerateKey(nil)
	return "cache.example.org-1" + ":" + base64.StdEncoding.EncodeToString(priv)
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}
}

func rules(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Rule+"@"+f.Location())
	}
	return out
}

func TestScanTree(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{name: "clean tree", files: map[string]string{
			"main.go":   "package main\n// token comes from GITHUB_TOKEN\n",
			"cache.pub": "cache.example.org-1:" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n",
		}},
		{name: "planted github token", files: map[string]string{"ci/env.sh": "export T=1\nexport GH=" + plantedGitHub() + "\n"},
			want: []string{"github-token@ci/env.sh:2"}},
		{name: "aws key and nix signing key", files: map[string]string{
			"deploy.nix": "{ key = \"" + plantedAWS() + "\"; }\n",
			"secret.key": plantedNixKey() + "\n",
		}, want: []string{"aws-access-key-id@deploy.nix:1", "nix-signing-key@secret.key:1"}},
		{name: "private key", files: map[string]string{"id": "-----BEGIN OPENSSH " + "PRIVATE KEY-----\nabc\n"},
			want: []string{"private-key@id:1"}},
		{name: "slack token", files: map[string]string{"notify.yml": "token: xox" + "b-1234567890-abcdefghij\n"},
			want: []string{"slack-token@notify.yml:1"}},
		{name: "placeholder words are not slack tokens", files: map[string]string{
			"notify_test.go": "tok := \"xox" + "b-secret-token\"; other := \"xox" + "b-never-printed\"\n",
		}},
		{name: "fake value in testdata is allowed", files: map[string]string{
			"tests/testdata/env": "GITHUB_TOKEN=" + plantedGitHub() + " # fake\n",
			"testdata/fake.key":  "-----BEGIN RSA " + "PRIVATE KEY-----\n",
		}},
		{name: "testdata without marker is not allowed", files: map[string]string{"x/testdata/env": "T=" + plantedGitHub() + "\n"},
			want: []string{"github-token@x/testdata/env:1"}},
		{name: ".git is skipped", files: map[string]string{".git/config": plantedGitHub()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tt.files)
			fs, err := ScanTree(t.Context(), root)
			require.NoError(t, err)
			assert.ElementsMatch(t, tt.want, rules(fs))
			for _, f := range fs {
				assert.Equal(t, Critical, f.Severity)
				for _, body := range tt.files {
					for _, line := range strings.Split(body, "\n") {
						if len(line) > 30 {
							assert.NotContains(t, f.String(), strings.TrimSpace(line), "secret values are never shown")
						}
					}
				}
			}
		})
	}
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false"}, args...)...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
}

func TestScanHistory(t *testing.T) {
	testlib.CheckPath(t, "git")
	dir := t.TempDir()
	git(t, dir, "init", "-q")
	writeFiles(t, dir, map[string]string{"config.env": "TOKEN=" + plantedGitHub() + "\n"})
	git(t, dir, "add", ".")
	git(t, dir, "commit", "-q", "-m", "add config")
	writeFiles(t, dir, map[string]string{"config.env": "TOKEN=${TOKEN}\n"})
	git(t, dir, "commit", "-q", "-am", "remove token")

	tree, err := ScanTree(t.Context(), dir)
	require.NoError(t, err)
	assert.Empty(t, tree, "the token is gone from the tree")

	hist, err := ScanHistory(t.Context(), dir)
	require.NoError(t, err)
	require.Len(t, hist, 1, "but not from history")
	assert.Equal(t, "github-token", hist[0].Rule)
	assert.Equal(t, "config.env", hist[0].File)
	assert.Len(t, hist[0].Commit, 40)
}

func TestAuditLock(t *testing.T) {
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	fresh := now.Add(-24 * time.Hour).Unix()
	old := now.Add(-200 * 24 * time.Hour).Unix()
	node := func(lm int64, original map[string]any, inputs map[string]any) map[string]any {
		n := map[string]any{
			"locked":   map[string]any{"type": "github", "owner": "o", "repo": "r", "rev": "abc", "narHash": "sha256-x", "lastModified": lm},
			"original": original,
		}
		if inputs != nil {
			n["inputs"] = inputs
		}
		return n
	}
	lock := map[string]any{"version": 7, "root": "root", "nodes": map[string]any{
		"root":    map[string]any{"inputs": map[string]any{"nixpkgs": "nixpkgs", "mordragt": "mordragt", "hm": "hm", "reg": "reg"}},
		"nixpkgs": node(fresh, map[string]any{"type": "github", "owner": "NixOS", "repo": "nixpkgs", "ref": "nixos-unstable"}, nil),
		// follows nixpkgs: fine; but tracks the default branch and is old.
		"mordragt": node(old, map[string]any{"type": "github", "owner": "MordragT", "repo": "nixos"},
			map[string]any{"nixpkgs": []string{"nixpkgs"}}),
		// its own nixpkgs.
		"hm":        node(fresh, map[string]any{"type": "github", "owner": "nix-community", "repo": "home-manager", "ref": "master"}, map[string]any{"nixpkgs": "nixpkgs_2"}),
		"nixpkgs_2": node(fresh, map[string]any{"type": "github", "owner": "NixOS", "repo": "nixpkgs", "ref": "nixos-unstable"}, nil),
		"reg":       node(fresh, map[string]any{"type": "indirect", "id": "flake-utils"}, nil),
	}}
	dir := t.TempDir()
	data, _ := json.Marshal(lock)
	writeFiles(t, dir, map[string]string{"flake.nix": "{\n  inputs.nixpkgs.url = \"github:NixOS/nixpkgs\";\n}\n", "flake.lock": string(data)})

	fs, err := AuditLock(dir, 90*24*time.Hour, now)
	require.NoError(t, err)
	got := map[string]Severity{}
	for _, f := range fs {
		got[f.Rule+" "+strings.SplitN(f.Message, ":", 2)[0]] = f.Severity
	}
	assert.Equal(t, map[string]Severity{
		"stale-input mordragt":           Medium,
		"unpinned-ref mordragt":          Low,
		"nixpkgs-not-followed nixpkgs_2": Medium,
		"registry-input reg":             Medium,
	}, got)

	missing := t.TempDir()
	writeFiles(t, missing, map[string]string{"flake.nix": "{\n  inputs.nixpkgs.url = \"github:NixOS/nixpkgs\";\n  outputs = _: { };\n}\n"})
	fs, err = AuditLock(missing, 0, now)
	require.NoError(t, err)
	require.Len(t, fs, 1)
	assert.Equal(t, "missing-lock", fs[0].Rule)
	assert.Equal(t, High, fs[0].Severity)

	noInputs := t.TempDir()
	writeFiles(t, noInputs, map[string]string{"flake.nix": "{ outputs = _: { }; }\n"})
	fs, err = AuditLock(noInputs, 0, now)
	require.NoError(t, err)
	assert.Empty(t, fs)
}

func TestLintWorkflows(t *testing.T) {
	dir := t.TempDir()
	assert.Empty(t, WorkflowFiles(dir))
	writeFiles(t, dir, map[string]string{
		".github/workflows/ok.yml": `on: push
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - run: echo hi
`,
		".github/workflows/bad.yaml": `on: push
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - run: echo ${{ matrix.nope }}
`,
	})
	files := WorkflowFiles(dir)
	require.Len(t, files, 2)
	fs, err := LintWorkflows(dir, files)
	require.NoError(t, err)
	require.NotEmpty(t, fs)
	for _, f := range fs {
		assert.Equal(t, ".github/workflows/bad.yaml", f.File)
		assert.Equal(t, High, f.Severity)
	}
	assert.Contains(t, fs[0].Message, `property "nope" is not defined`)
}

func TestNarHashHex(t *testing.T) {
	const empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	for _, h := range []string{"sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73", "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="} {
		got, ok := NarHashHex(h)
		assert.True(t, ok, h)
		assert.Equal(t, empty, got)
	}
	_, ok := NarHashHex("sha256:tooshort")
	assert.False(t, ok)
}

func TestSplitStoreName(t *testing.T) {
	tests := []struct{ in, name, version string }{
		{"/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-ollama-0.5.4", "ollama", "0.5.4"},
		{"/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-python3.11-torch-2.3.0", "python3.11-torch", "2.3.0"},
		{"/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-etc", "etc", ""},
	}
	for _, tt := range tests {
		n, v := SplitStoreName(tt.in)
		assert.Equal(t, tt.name, n)
		assert.Equal(t, tt.version, v)
	}
}

func TestNewBOM(t *testing.T) {
	// Nix 2.8 shape of nix path-info -r --json.
	raw := `[{"path":"/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-ollama-0.5.4","narHash":"sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73","narSize":10,
	  "references":["/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-glibc-2.39","/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-ollama-0.5.4"],"deriver":"/nix/store/cccccccccccccccccccccccccccccccc-ollama-0.5.4.drv"},
	 {"path":"/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-glibc-2.39","narHash":"sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=","narSize":5,"references":[]}]`
	closure, err := nixcli.ParsePathInfo([]byte(raw))
	require.NoError(t, err)
	bom := NewBOM("packages.x86_64-linux.ollama", []string{"/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-ollama-0.5.4"}, closure, time.Unix(0, 0))
	assert.Equal(t, "CycloneDX", bom.BOMFormat)
	assert.Equal(t, "1.5", bom.SpecVersion.String())
	assert.Regexp(t, `^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, bom.SerialNumber)
	require.Len(t, *bom.Components, 2)
	comps := *bom.Components
	assert.Equal(t, "glibc", comps[1].Name)
	assert.Equal(t, "2.39", comps[1].Version)
	assert.Equal(t, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", (*comps[0].Hashes)[0].Value)
	assert.Equal(t, []string{"/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-glibc-2.39"}, *(*bom.Dependencies)[0].Dependencies, "self-references dropped")
	assert.Equal(t, "0.5.4", bom.Metadata.Component.Version)
	var buf bytes.Buffer
	require.NoError(t, WriteBOM(&buf, bom))
	data := buf.Bytes()
	assert.Contains(t, string(data), `"bom-ref": "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-ollama-0.5.4"`)
	// The written document keeps the CycloneDX 1.5 JSON shape: the
	// version as a string, tools as an object of components, SHA-256
	// hashes, store paths as properties, empty dependsOn lists kept.
	var doc map[string]any
	require.NoError(t, json.Unmarshal(data, &doc))
	assert.Equal(t, "1.5", doc["specVersion"])
	assert.Equal(t, "ipex-flake ci", doc["metadata"].(map[string]any)["tools"].(map[string]any)["components"].([]any)[0].(map[string]any)["name"])
	c0 := doc["components"].([]any)[0].(map[string]any)
	assert.Equal(t, "library", c0["type"])
	assert.Equal(t, []any{map[string]any{"alg": "SHA-256", "content": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}, c0["hashes"])
	assert.Contains(t, c0["properties"], map[string]any{"name": "nix:deriver", "value": "/nix/store/cccccccccccccccccccccccccccccccc-ollama-0.5.4.drv"})
	assert.Equal(t, []any{}, doc["dependencies"].([]any)[1].(map[string]any)["dependsOn"])
	assert.Equal(t, byte('\n'), data[len(data)-1])
}

func TestParseSeverity(t *testing.T) {
	s, err := ParseSeverity("HIGH")
	require.NoError(t, err)
	assert.Equal(t, High, s)
	assert.True(t, Critical > High && High > Medium && Medium > Low)
	_, err = ParseSeverity("severe")
	assert.Error(t, err)
}
