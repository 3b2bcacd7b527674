package daggerengine

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/fakedagger"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
)

func TestAvailable(t *testing.T) {
	cliDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(cliDir, "dagger"), []byte("#!/bin/sh\n"), 0o755))
	notExecDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(notExecDir, "dagger"), []byte("x"), 0o644))

	tests := []struct {
		name    string
		env     map[string]string
		want    bool
		wantWhy []string
	}{
		{name: "session", env: map[string]string{"DAGGER_SESSION_PORT": "1234", "DAGGER_SESSION_TOKEN": "t"}, want: true, wantWhy: []string{"1234"}},
		{name: "session without token", env: map[string]string{"DAGGER_SESSION_PORT": "1234"}, want: false, wantWhy: []string{"DAGGER_SESSION_TOKEN"}},
		{name: "session port not a number", env: map[string]string{"DAGGER_SESSION_PORT": "x", "DAGGER_SESSION_TOKEN": "t"}, want: false, wantWhy: []string{"not a port number"}},
		{name: "runner host without a CLI", env: map[string]string{"_EXPERIMENTAL_DAGGER_RUNNER_HOST": "tcp://engine:1234", "PATH": t.TempDir()}, want: false,
			wantWhy: []string{"tcp://engine:1234", "set _EXPERIMENTAL_DAGGER_CLI_BIN", "dagger CLI on PATH"}},
		{name: "runner host with the CLI on PATH", env: map[string]string{"_EXPERIMENTAL_DAGGER_RUNNER_HOST": "tcp://engine:1234", "PATH": cliDir}, want: true,
			wantWhy: []string{filepath.Join(cliDir, "dagger"), "tcp://engine:1234"}},
		{name: "runner host with an explicit CLI", env: map[string]string{"_EXPERIMENTAL_DAGGER_RUNNER_HOST": "tcp://engine:1234", "_EXPERIMENTAL_DAGGER_CLI_BIN": filepath.Join(cliDir, "dagger")}, want: true,
			wantWhy: []string{filepath.Join(cliDir, "dagger"), "tcp://engine:1234"}},
		{name: "explicit CLI by name", env: map[string]string{"_EXPERIMENTAL_DAGGER_CLI_BIN": "dagger", "PATH": cliDir}, want: true, wantWhy: []string{filepath.Join(cliDir, "dagger")}},
		{name: "explicit CLI missing", env: map[string]string{"_EXPERIMENTAL_DAGGER_CLI_BIN": "/opt/dagger-missing", "PATH": cliDir}, want: false,
			wantWhy: []string{"_EXPERIMENTAL_DAGGER_CLI_BIN=/opt/dagger-missing is not an executable file"}},
		{name: "cli on PATH", env: map[string]string{"PATH": "/nonexistent" + string(os.PathListSeparator) + cliDir}, want: true, wantWhy: []string{filepath.Join(cliDir, "dagger"), "default engine"}},
		{name: "cli not executable", env: map[string]string{"PATH": notExecDir}, want: false},
		{name: "nothing", env: map[string]string{"PATH": t.TempDir()}, want: false,
			wantWhy: []string{"no Dagger engine", "_EXPERIMENTAL_DAGGER_RUNNER_HOST", "DAGGER_SESSION_PORT", "dagger CLI", "internet"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, why := Available(func(k string) string { return tt.env[k] })
			assert.Equal(t, tt.want, ok)
			assert.NotEmpty(t, why)
			for _, w := range tt.wantWhy {
				assert.Contains(t, why, w)
			}
		})
	}
}

func TestResolveImage(t *testing.T) {
	dir := t.TempDir()
	tarball := filepath.Join(dir, "nix.tar")
	require.NoError(t, os.WriteFile(tarball, []byte("not really a tarball"), 0o644))
	other := filepath.Join(dir, "other-image")
	require.NoError(t, os.WriteFile(other, []byte("another"), 0o644))

	tests := []struct {
		name        string
		ref         string
		want        Image
		wantErr     string
		wantTarball bool
	}{
		{name: "default", ref: "", want: Image{Ref: DefaultImage, Key: DefaultImage}},
		{name: "reference", ref: "docker.io/nixos/nix:2.28.3", want: Image{Ref: "docker.io/nixos/nix:2.28.3", Key: "docker.io/nixos/nix:2.28.3"}},
		{name: "tarball", ref: tarball, wantTarball: true},
		{name: "existing file without .tar", ref: other, wantTarball: true},
		{name: "missing tarball", ref: filepath.Join(dir, "missing.tar"), wantErr: "no such OCI tarball"},
		{name: "relative missing tarball", ref: "./nix.tar.gz", wantErr: "no such OCI tarball"},
		{name: "directory", ref: dir, wantErr: "is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveImage(tt.ref)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			if tt.wantTarball {
				assert.True(t, got.Tarball)
				assert.True(t, filepath.IsAbs(got.Ref))
				assert.Equal(t, tt.ref, got.Ref)
				assert.True(t, strings.HasPrefix(got.Key, "sha256:"), got.Key)
				return
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestVolumeName(t *testing.T) {
	a := VolumeName(Image{Key: "nixos/nix:2.24.9"})
	b := VolumeName(Image{Key: "nixos/nix:2.28.3"})
	assert.Regexp(t, `^ipex-flake-nix-[0-9a-f]{12}$`, a)
	assert.NotEqual(t, a, b, "each image gets its own /nix volume")
	assert.Equal(t, a, VolumeName(Image{Key: "nixos/nix:2.24.9"}), "stable across runs")
}

// open starts a fake engine and opens a dagger engine on it.
func open(t *testing.T, image string) (*fakedagger.Server, *Engine, string) {
	t.Helper()
	fake := fakedagger.New(t)
	fake.Setenv(t)
	src := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(src, "flake.nix"), []byte("{ outputs = _: {}; }"), 0o644))
	e, err := Open(t.Context(), engine.Options{Source: src, Image: image, Log: &bytes.Buffer{}})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, e.Close()) })
	return fake, e, src
}

func envOf(exec *fakedagger.Obj) map[string]string {
	env := map[string]string{}
	for _, o := range exec.FindAll("withEnvVariable") {
		env[o.Str("name")] = o.Str("value")
	}
	return env
}

func TestRunFromRegistryImage(t *testing.T) {
	fake, e, src := open(t, "")
	fake.ExecResult = func(exec *fakedagger.Obj) fakedagger.ExecResult {
		return fakedagger.ExecResult{ExitCode: 0, Stdout: "out:" + strings.Join(exec.Strings("args"), " "), Stderr: "log"}
	}

	var stdout, stderr bytes.Buffer
	res, err := e.Run(t.Context(), engine.Cmd{
		Args:   []string{"nix", "build", "--no-link", ".#hello"},
		Env:    map[string]string{"FOO": "bar"},
		Dir:    "sub/dir",
		Stdout: &stdout,
		Stderr: &stderr,
	})
	require.NoError(t, err)
	assert.Equal(t, 0, res.ExitCode)
	assert.True(t, res.Buffered, "output is handed over when the exec ends")
	assert.Equal(t, "out:nix build --no-link .#hello", stdout.String())
	assert.Equal(t, "log", stderr.String())
	assert.Equal(t, "/src", e.SourcePath())
	assert.Equal(t, engine.KindDagger, e.Name())

	execs := fake.Execs()
	require.Len(t, execs, 1)
	exec := execs[0]
	assert.Equal(t, []string{"nix", "build", "--no-link", ".#hello"}, exec.Strings("args"))
	assert.Equal(t, "ANY", exec.Args["expect"], "a non-zero exit must not be an engine error")

	// Image: pulled with from, not imported.
	from := exec.Find("from")
	require.NotNil(t, from, exec.String())
	assert.Equal(t, DefaultImage, from.Str("address"))
	assert.Nil(t, exec.Find("import"))

	// /nix on the cache volume named for the image, seeded from the image's
	// own /nix, LOCKED.
	mounts := exec.FindAll("withMountedCache")
	require.Len(t, mounts, 1)
	mount := mounts[0]
	assert.Equal(t, "/nix", mount.Str("path"))
	assert.Equal(t, "LOCKED", mount.Args["sharing"])
	vol := fake.Resolve(mount.Str("cache"))
	require.NotNil(t, vol, "cache argument is an ID the fake handed out")
	assert.Equal(t, "cacheVolume", vol.Field)
	assert.Equal(t, VolumeName(Image{Key: DefaultImage}), vol.Str("key"))
	seed := fake.Resolve(mount.Str("source"))
	require.NotNil(t, seed)
	assert.Equal(t, "directory", seed.Field)
	assert.Equal(t, "/nix", seed.Str("path"))
	require.NotNil(t, seed.Find("from"), seed.String())
	assert.Equal(t, DefaultImage, seed.Find("from").Str("address"))
	assert.Nil(t, seed.Find("withMountedCache"), "seeded from the image, not from the volume")

	// Source at /src, .git and result* excluded.
	srcMount := exec.Find("withMountedDirectory")
	require.NotNil(t, srcMount)
	assert.Equal(t, "/src", srcMount.Str("path"))
	assert.Equal(t, src, fake.HostPath(srcMount.Str("source"), "directory"), "the source is the host's directory")
	hostDir := fake.Resolve(srcMount.Str("source"))
	require.NotNil(t, hostDir)
	assert.ElementsMatch(t, []string{".git", "result*"}, hostDir.Strings("exclude"))

	// Workdir, env, nix configuration.
	workdirs := exec.FindAll("withWorkdir")
	require.NotEmpty(t, workdirs)
	assert.Equal(t, "/src/sub/dir", workdirs[len(workdirs)-1].Str("path"))
	env := envOf(exec)
	assert.Equal(t, "bar", env["FOO"])
	assert.Contains(t, env["NIX_CONFIG"], "experimental-features = nix-command flakes")
	assert.Contains(t, env["NIX_CONFIG"], "sandbox = false")
	users, ok := settings(env["NIX_CONFIG"])["build-users-group"]
	assert.True(t, ok && users == "", "root builds without build users, so images need no nixbld group: %q", env["NIX_CONFIG"])
	assert.NotEmpty(t, env[BustEnv])
}

func TestRunImportsTarball(t *testing.T) {
	tarball := filepath.Join(t.TempDir(), "nix-image.tar")
	require.NoError(t, os.WriteFile(tarball, []byte("oci archive bytes"), 0o644))
	fake, e, _ := open(t, tarball)

	_, err := e.Run(t.Context(), engine.Cmd{Args: []string{"nix", "--version"}})
	require.NoError(t, err)

	execs := fake.Execs()
	require.Len(t, execs, 1)
	exec := execs[0]
	assert.Nil(t, exec.Find("from"), "a tarball is imported, not pulled")
	imp := exec.Find("import")
	require.NotNil(t, imp, exec.String())
	assert.Equal(t, tarball, fake.HostPath(imp.Str("source"), "file"), "the tarball is read from the host")

	vol := fake.Resolve(exec.Find("withMountedCache").Str("cache"))
	require.NotNil(t, vol)
	assert.Equal(t, e.Volume(), vol.Str("key"))
	assert.NotEqual(t, VolumeName(Image{Key: DefaultImage}), vol.Str("key"))
}

func TestRunSecretsOnlyAsDaggerSecrets(t *testing.T) {
	const secret = "s3cr3t-value-never-logged"
	fake, e, _ := open(t, "")

	_, err := e.Run(t.Context(), engine.Cmd{
		Args:    []string{"nix", "copy", "--to", "https://cache.example"},
		Env:     map[string]string{"PLAIN": "visible"},
		Secrets: map[string]string{"CACHIX_AUTH_TOKEN": secret},
	})
	require.NoError(t, err)

	execs := fake.Execs()
	require.Len(t, execs, 1)
	exec := execs[0]
	vars := exec.FindAll("withSecretVariable")
	require.Len(t, vars, 1)
	assert.Equal(t, "CACHIX_AUTH_TOKEN", vars[0].Str("name"))
	set := fake.Resolve(vars[0].Str("secret"))
	require.NotNil(t, set)
	assert.Equal(t, "setSecret", set.Field)
	assert.Equal(t, secret, set.Str("plaintext"))
	assert.NotContains(t, set.Str("name"), secret)
	assert.NotContains(t, envOf(exec), "CACHIX_AUTH_TOKEN")

	// The value appears in exactly one place: setSecret's plaintext.
	seen := 0
	for _, c := range fake.Calls() {
		for arg, v := range c.Args {
			if !strings.Contains(fmt.Sprint(v), secret) {
				continue
			}
			if c.Field == "setSecret" && arg == "plaintext" {
				seen++
				continue
			}
			t.Errorf("secret leaked in %s(%s:)", c.Field, arg)
		}
	}
	for _, q := range fake.Queries() {
		if strings.Contains(q, secret) {
			assert.Contains(t, q, "setSecret", "only setSecret queries carry the value")
			assert.NotContains(t, q, "withExec")
		}
	}
	assert.Positive(t, seen)
}

func TestRunNonZeroExitIsAResult(t *testing.T) {
	fake, e, _ := open(t, "")
	fake.ExecResult = func(*fakedagger.Obj) fakedagger.ExecResult {
		return fakedagger.ExecResult{ExitCode: 3, Stdout: "partial", Stderr: "error: build failed"}
	}
	var stdout, stderr bytes.Buffer
	res, err := e.Run(t.Context(), engine.Cmd{Args: []string{"nix", "build", ".#broken"}, Stdout: &stdout, Stderr: &stderr})
	require.NoError(t, err)
	assert.Equal(t, 3, res.ExitCode)
	assert.True(t, res.Buffered)
	assert.Equal(t, "partial", stdout.String())
	assert.Equal(t, "error: build failed", stderr.String())
}

func TestRunIsNeverServedFromDaggerCache(t *testing.T) {
	fake, e, _ := open(t, "")
	cmd := engine.Cmd{Args: []string{"nix", "build", ".#hello"}}
	for range 2 {
		_, err := e.Run(t.Context(), cmd)
		require.NoError(t, err)
	}
	execs := fake.Execs()
	require.Len(t, execs, 2)
	a, b := envOf(execs[0])[BustEnv], envOf(execs[1])[BustEnv]
	assert.NotEmpty(t, a)
	assert.NotEqual(t, a, b, "identical commands must differ for Dagger's cache")
}

func TestRunStdin(t *testing.T) {
	fake, e, _ := open(t, "")
	_, err := e.Run(t.Context(), engine.Cmd{Args: []string{"sh"}, Stdin: strings.NewReader("echo hi\n")})
	require.NoError(t, err)
	require.Len(t, fake.Execs(), 1)
	assert.Equal(t, "echo hi\n", fake.Execs()[0].Str("stdin"))
}

func TestRunUserNixConfigExtendsOurs(t *testing.T) {
	fake, e, _ := open(t, "")
	_, err := e.Run(t.Context(), engine.Cmd{Args: []string{"nix", "build"}, Env: map[string]string{"NIX_CONFIG": "max-jobs = 4\n"}})
	require.NoError(t, err)
	require.Len(t, fake.Execs(), 1)
	cfg := envOf(fake.Execs()[0])["NIX_CONFIG"]
	assert.Contains(t, cfg, "experimental-features = nix-command flakes")
	assert.True(t, strings.HasSuffix(cfg, "max-jobs = 4\n"), cfg)
}

// TestRunSecretNixConfig: nix settings given as a secret (access tokens)
// join the container's defaults in one Dagger secret, and the plain
// NIX_CONFIG variable is removed so the secret one is what nix reads.
func TestRunSecretNixConfig(t *testing.T) {
	const token = "ghp_0123456789abcdefTOKEN"
	fake, e, _ := open(t, "")
	_, err := e.Run(t.Context(), engine.Cmd{
		Args:    []string{"nix", "eval", "--json", "--impure", "--expr", "1"},
		Env:     map[string]string{"NIX_CONFIG": "max-jobs = 4\n"},
		Secrets: map[string]string{"NIX_CONFIG": "access-tokens = github.com=" + token},
	})
	require.NoError(t, err)
	require.Len(t, fake.Execs(), 1)
	exec := fake.Execs()[0]
	without := exec.FindAll("withoutEnvVariable")
	require.NotEmpty(t, without)
	assert.Equal(t, "NIX_CONFIG", without[len(without)-1].Str("name"))
	vars := exec.FindAll("withSecretVariable")
	require.Len(t, vars, 1)
	assert.Equal(t, "NIX_CONFIG", vars[0].Str("name"))
	plain := fake.Resolve(vars[0].Str("secret")).Str("plaintext")
	assert.Contains(t, plain, "experimental-features = nix-command flakes")
	assert.Contains(t, plain, "max-jobs = 4")
	assert.True(t, strings.HasSuffix(plain, "access-tokens = github.com="+token), plain)
	for _, q := range fake.Queries() {
		if strings.Contains(q, token) {
			assert.NotContains(t, q, "withExec", "the token reaches only setSecret")
		}
	}
}

func TestRunErrors(t *testing.T) {
	fake, e, _ := open(t, "")

	_, err := e.Run(t.Context(), engine.Cmd{})
	require.ErrorContains(t, err, "empty command")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = e.Run(ctx, engine.Cmd{Args: []string{"true"}})
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, fake.Execs(), "nothing runs after cancellation")

	fake.FailOn("withExec", "engine exploded")
	_, err = e.Run(t.Context(), engine.Cmd{Args: []string{"true"}})
	require.ErrorContains(t, err, "engine exploded")
}

func TestOpenReportsImageErrors(t *testing.T) {
	fake := fakedagger.New(t)
	fake.Setenv(t)
	fake.FailOn("from", "pull access denied for nixos/nope")
	_, err := New(t.Context(), engine.Options{Source: t.TempDir(), Image: "nixos/nope:1"})
	require.ErrorContains(t, err, "pull access denied")
	require.ErrorContains(t, err, "nixos/nope:1")
}

func TestNewWithoutEngine(t *testing.T) {
	for _, k := range []string{"DAGGER_SESSION_PORT", "DAGGER_SESSION_TOKEN", "_EXPERIMENTAL_DAGGER_RUNNER_HOST", "_EXPERIMENTAL_DAGGER_CLI_BIN"} {
		t.Setenv(k, "")
	}
	t.Setenv("PATH", t.TempDir())
	_, err := New(t.Context(), engine.Options{Source: t.TempDir()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no Dagger engine")
}

func TestOpenRejectsBadInputs(t *testing.T) {
	fake := fakedagger.New(t)
	fake.Setenv(t)
	_, err := New(t.Context(), engine.Options{Source: filepath.Join(t.TempDir(), "missing")})
	require.ErrorContains(t, err, "not a directory")
	_, err = New(t.Context(), engine.Options{Source: t.TempDir(), Image: "./missing.tar"})
	require.ErrorContains(t, err, "no such OCI tarball")
	assert.Empty(t, fake.Queries(), "nothing is sent to the engine")
}

func TestRunCancelledWhileRunning(t *testing.T) {
	fake, e, _ := open(t, "")
	started := make(chan struct{})
	fake.BeforeExec = func(ctx context.Context) {
		close(started)
		<-ctx.Done() // the command "runs" until the client goes away
	}
	ctx, cancel := context.WithCancel(t.Context())
	type outcome struct {
		res engine.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := e.Run(ctx, engine.Cmd{Args: []string{"nix", "build", ".#slow"}})
		done <- outcome{res, err}
	}()
	<-started
	cancel()
	got := <-done
	require.ErrorIs(t, got.err, context.Canceled)
	assert.Equal(t, -1, got.res.ExitCode)
	assert.Empty(t, fake.Execs(), "the cancelled exec never reported a result")
}
