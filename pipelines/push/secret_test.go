package push

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/host"
)

// TestKeyNeverLeaks pushes with a key and searches the output, the temp
// directory, the closure in /nix/store, the cache's narinfos and
// (uncompressed) NARs, and the report for the key.
func TestKeyNeverLeaks(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	b := buildFixture(t, 2, 20)
	dir := filepath.Join(t.TempDir(), "cache")
	uri := "file://" + dir + "?compression=none"
	key := testKey(t)
	secretB64 := key.Secret()[len(key.Name())+1:]
	raw, err := base64.StdEncoding.DecodeString(secretB64)
	require.NoError(t, err)
	needles := [][]byte{[]byte(secretB64), []byte(base64.StdEncoding.EncodeToString(raw[:32])), raw[:32]}
	leaks := func(what string, data []byte) {
		t.Helper()
		for _, n := range needles {
			assert.False(t, bytes.Contains(data, n), "signing key found in %s", what)
		}
	}

	out, log, sums, err := pushTo(t, b, uri, key)
	require.NoError(t, err, log)
	require.Equal(t, 3, sums[0].Pushed)
	leaks("stdout", []byte(out))
	leaks("stderr", []byte(log))

	rep, err := json.Marshal(b.Report)
	require.NoError(t, err)
	leaks("report", rep)

	nars := 0
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasSuffix(p, ".nar") {
			nars++
		}
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		leaks(p, data)
		return nil
	}))
	assert.Equal(t, 3, nars, "uncompressed NARs must have been searched")

	closure, err := Closure(t.Context(), b.Engine, b.Paths)
	require.NoError(t, err)
	for _, p := range closure {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		leaks(p, data)
	}

	// Nothing the push left in TMPDIR holds the key.
	require.NoError(t, filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		leaks(p, data)
		return nil
	}))
}

func TestSignCmdCarriesKeyOnlyAsSecret(t *testing.T) {
	key := testKey(t)
	c := SignCmd(key, []string{"/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x"})
	assert.Equal(t, map[string]string{secretEnv: key.Secret()}, c.Secrets)
	for _, a := range c.Args {
		assert.NotContains(t, a, key.Secret()[len(key.Name())+1:])
	}
	assert.Empty(t, c.Env)
	assert.Nil(t, c.Stdin)
}

// recordingEngine records commands and answers them with canned output.
type recordingEngine struct {
	cmds   []engine.Cmd
	answer func(engine.Cmd) (string, int)
}

var _ engine.Engine = (*recordingEngine)(nil)

func (r *recordingEngine) Name() string       { return "fake" }
func (r *recordingEngine) SourcePath() string { return "/src" }
func (r *recordingEngine) Close() error       { return nil }
func (r *recordingEngine) Run(_ context.Context, c engine.Cmd) (engine.Result, error) {
	r.cmds = append(r.cmds, c)
	out, code := "", 0
	if r.answer != nil {
		out, code = r.answer(c)
	}
	if c.Stdout != nil {
		_, _ = c.Stdout.Write([]byte(out))
	}
	return engine.Result{ExitCode: code}, nil
}

func TestNoCommandCarriesKeyOutsideSecrets(t *testing.T) {
	key := testKey(t)
	eng := &recordingEngine{answer: func(c engine.Cmd) (string, int) {
		if strings.Contains(strings.Join(c.Args, " "), "path-info") {
			return `[{"path":"/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x","narHash":"sha256-x","narSize":1,"references":[]}]`, 0
		}
		return "", 0
	}}
	dir := filepath.Join(t.TempDir(), "cache")
	targets, err := Targets(TargetConfig{Cache: "file://" + dir, Engine: eng})
	require.NoError(t, err)
	targets[0].Files = nil // nothing is really uploaded: decide by Lookup
	_, err = Run(t.Context(), Options{
		Engine: eng, Report: reportWith("/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x"), Force: true,
		Signer: &NixSigner{Engine: eng, Key: key}, PublicKey: key.Public(), Targets: targets,
	})
	require.NoError(t, err)
	require.Len(t, eng.cmds, 5, "check-validity, path-info, sign, copy, verify")
	secret := key.Secret()[len(key.Name())+1:]
	for _, c := range eng.cmds {
		assert.NotContains(t, strings.Join(c.Args, " "), secret)
		for _, v := range c.Env {
			assert.NotContains(t, v, secret)
		}
	}
	assert.Equal(t, key.Secret(), eng.cmds[2].Secrets[secretEnv])
}

// TestSignKeepsKeyOutOfNixEnvironment runs the signing command on the host
// engine against a stand-in nix that records its environment, arguments and
// stdin: the key reaches nix on stdin only.
func TestSignKeepsKeyOutOfNixEnvironment(t *testing.T) {
	bin, rec := t.TempDir(), t.TempDir()
	script := "#!/bin/sh\nenv > " + rec + "/env\necho \"$@\" > " + rec + "/args\nexec cat /dev/stdin > " + rec + "/stdin\n"
	require.NoError(t, os.WriteFile(filepath.Join(bin, "nix"), []byte(script), 0o755))
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	eng, err := host.New(engine.Options{Source: t.TempDir()})
	require.NoError(t, err)
	key := testKey(t)
	p := "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x"
	require.NoError(t, (&NixSigner{Engine: eng, Key: key}).Sign(t.Context(), []string{p}))

	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join(rec, name))
		require.NoError(t, err)
		return string(data)
	}
	secret := key.Secret()[len(key.Name())+1:]
	assert.NotContains(t, read("env"), secret, "the key is not in nix's environment")
	assert.NotContains(t, read("env"), secretEnv)
	assert.Contains(t, read("args"), "store sign --key-file /dev/stdin "+p)
	assert.Equal(t, key.Secret(), read("stdin"), "nix reads the key from stdin")
}
