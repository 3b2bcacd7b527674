package daggerengine

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/fakedagger"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
)

// Fake dagger CLIs. Each writes what it saw into $TMPDIR, which the tests
// make unique, so the processes a test started are found by it.
const (
	// cliHangs never opens a session and ignores SIGTERM, as does the
	// child it starts: only SIGKILL to the process group ends them.
	cliHangs = `#!/bin/sh
trap '' TERM INT HUP
echo "connecting to the engine..." >&2
sleep 600 &
wait
`
	// cliFails cannot reach its runner and says so.
	cliFails = `#!/bin/sh
echo "Error: failed to connect to $_EXPERIMENTAL_DAGGER_RUNNER_HOST: no such container" >&2
exit 1
`
	// cliSession opens a session on the fake engine (PORT, TOKEN), records
	// its arguments and environment, and ends when stdin closes.
	cliSession = `#!/bin/sh
echo "$@" > "$TMPDIR/args"
echo $$ > "$TMPDIR/pid"
printf '{"port":PORT,"session_token":"TOKEN"}\n'
while read -r _; do :; done
echo ended > "$TMPDIR/ended"
`
	// cliStubborn opens a session but ignores both stdin closing and
	// SIGTERM, with a child that does the same.
	cliStubborn = `#!/bin/sh
trap '' TERM INT HUP
printf '{"port":PORT,"session_token":"TOKEN"}\n'
sleep 600 &
wait
`
)

// fakeCLI writes script as an executable dagger CLI and returns its path and
// an environment for Open whose TMPDIR marks the processes it starts.
func fakeCLI(t *testing.T, script string, env map[string]string) (string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "dagger")
	require.NoError(t, os.WriteFile(bin, []byte(script), 0o755))
	marker := filepath.Join(t.TempDir(), "dagger-cli-"+testlib.Nonce())
	require.NoError(t, os.MkdirAll(marker, 0o755))
	full := map[string]string{
		"PATH":   dir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME":   t.TempDir(),
		"TMPDIR": marker,
	}
	for k, v := range env {
		full[k] = v
	}
	return marker, full
}

func getenvOf(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// shortGraces makes the kill path quick for the test.
func shortGraces(t *testing.T) {
	oldClose, oldKill, oldConnect := CloseGrace, KillGrace, ConnectKillGrace
	CloseGrace, KillGrace, ConnectKillGrace = 500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond
	t.Cleanup(func() { CloseGrace, KillGrace, ConnectKillGrace = oldClose, oldKill, oldConnect })
}

func openWith(t *testing.T, env map[string]string, timeout time.Duration) (*Engine, error, time.Duration, string) {
	t.Helper()
	src := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(src, "flake.nix"), []byte("{ outputs = _: {}; }"), 0o644))
	var log bytes.Buffer
	start := time.Now()
	e, err := Open(t.Context(), engine.Options{Source: src, Log: &log, Getenv: getenvOf(env), ConnectTimeout: timeout})
	return e, err, time.Since(start), log.String()
}

// requireConnectError asserts that err is a ConnectError for the deadline
// timeout (0: the attempt failed before any deadline) whose message holds
// every one of want.
func requireConnectError(t *testing.T, err error, timeout time.Duration, want ...string) {
	t.Helper()
	var ce *ConnectError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, timeout, ce.Timeout)
	for _, w := range want {
		assert.Contains(t, err.Error(), w)
	}
}

// TestConnectEngineNeverAnswers: an engine that accepts the connection and
// never answers fails the connection at the deadline.
func TestConnectEngineNeverAnswers(t *testing.T) {
	fake := fakedagger.New(t)
	fake.Stall(t)
	env := map[string]string{"DAGGER_SESSION_PORT": fake.Port, "DAGGER_SESSION_TOKEN": fakedagger.Token}
	const timeout = 400 * time.Millisecond
	_, err, took, _ := openWith(t, env, timeout)
	requireConnectError(t, err, timeout, "did not answer within 400ms", "--dagger-connect-timeout",
		"session on port "+fake.Port, "DAGGER_SESSION_PORT is still open")
	assert.GreaterOrEqual(t, took, timeout)
	assert.Less(t, took, timeout+2*time.Second, "fails at the deadline")
	assert.Positive(t, fake.Held(), "the engine was asked")
}

// TestConnectCLIHangs: a dagger CLI that never opens a session is stopped
// at the deadline, with everything it started, although it ignores SIGTERM.
func TestConnectCLIHangs(t *testing.T) {
	shortGraces(t)
	marker, env := fakeCLI(t, cliHangs, map[string]string{"_EXPERIMENTAL_DAGGER_RUNNER_HOST": "docker-container://nonexistent"})
	const timeout = 500 * time.Millisecond
	_, err, took, log := openWith(t, env, timeout)
	requireConnectError(t, err, timeout, "docker-container://nonexistent", "dagger said: connecting to the engine...")
	assert.Contains(t, log, "connecting to the engine...", "the CLI's output reaches the log")
	assert.Less(t, took, timeout+ConnectKillGrace+time.Second)
	assert.Empty(t, testlib.PidsWith(marker), "no process of the CLI outlives the failed connection")
}

// TestConnectCLIFails: a CLI that gives up fails the connection at once,
// quoting it.
func TestConnectCLIFails(t *testing.T) {
	marker, env := fakeCLI(t, cliFails, map[string]string{"_EXPERIMENTAL_DAGGER_RUNNER_HOST": "docker-container://nonexistent"})
	_, err, took, _ := openWith(t, env, time.Minute)
	requireConnectError(t, err, 0, "ended before it opened a session",
		"failed to connect to docker-container://nonexistent: no such container")
	assert.Less(t, took, 10*time.Second)
	assert.Empty(t, testlib.PidsWith(marker))
}

// TestConnectThroughCLI: the engine is reached through a session the CLI
// opens; the CLI gets an allow-listed environment (the runner host, PATH,
// never a token) and its session ends with the engine.
func TestConnectThroughCLI(t *testing.T) {
	fake := fakedagger.New(t)
	script := strings.NewReplacer("PORT", fake.Port, "TOKEN", fakedagger.Token).Replace(cliSession)
	const secret = "ghp_never-in-the-cli-environment"
	marker, env := fakeCLI(t, script, map[string]string{
		"_EXPERIMENTAL_DAGGER_RUNNER_HOST": "tcp://127.0.0.1:1",
		"GITHUB_TOKEN":                     secret,
		"DAGGER_CLOUD_TOKEN":               secret,
		"AWS_SECRET_ACCESS_KEY":            secret,
	})
	e, err, _, _ := openWith(t, env, 10*time.Second)
	require.NoError(t, err)

	res, err := e.Run(t.Context(), engine.Cmd{Args: []string{"nix", "--version"}})
	require.NoError(t, err)
	assert.Equal(t, 0, res.ExitCode)
	require.Len(t, fake.Execs(), 1, "the command reached the engine through the CLI's session")

	args, err := os.ReadFile(filepath.Join(marker, "args"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(args), "session "), string(args))
	// The running CLI's environment, as the kernel has it.
	pid, err := os.ReadFile(filepath.Join(marker, "pid"))
	require.NoError(t, err)
	raw, err := os.ReadFile(filepath.Join("/proc", strings.TrimSpace(string(pid)), "environ"))
	require.NoError(t, err, "the CLI runs while the session is open")
	cliEnv := map[string]string{}
	for _, kv := range strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		cliEnv[k] = v
	}
	assert.Equal(t, "tcp://127.0.0.1:1", cliEnv["_EXPERIMENTAL_DAGGER_RUNNER_HOST"])
	assert.Equal(t, env["PATH"], cliEnv["PATH"])
	assert.Equal(t, env["HOME"], cliEnv["HOME"])
	assert.NotContains(t, string(raw), secret)
	for _, k := range []string{"GITHUB_TOKEN", "DAGGER_CLOUD_TOKEN", "AWS_SECRET_ACCESS_KEY", "DAGGER_SESSION_TOKEN", "DAGGER_SESSION_PORT"} {
		assert.NotContains(t, cliEnv, k)
	}

	require.NoError(t, e.Close())
	assert.FileExists(t, filepath.Join(marker, "ended"), "closing stdin ends the session")
	assert.Empty(t, testlib.PidsWith(marker))
}

// TestCloseStubbornCLI: a session that ignores stdin closing and SIGTERM
// is killed with its process group.
func TestCloseStubbornCLI(t *testing.T) {
	shortGraces(t)
	fake := fakedagger.New(t)
	script := strings.NewReplacer("PORT", fake.Port, "TOKEN", fakedagger.Token).Replace(cliStubborn)
	marker, env := fakeCLI(t, script, nil)
	e, err, _, _ := openWith(t, env, 10*time.Second)
	require.NoError(t, err)
	start := time.Now()
	err = e.Close()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "did not end")
	assert.Less(t, time.Since(start), CloseGrace+KillGrace+2*time.Second)
	assert.Empty(t, testlib.PidsWith(marker))
}

// TestConnectCancelled: cancelling the caller's context stops the CLI too.
func TestConnectCancelled(t *testing.T) {
	shortGraces(t)
	marker, env := fakeCLI(t, cliHangs, nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// The CLI's first words cancel the context: it is running by then.
	log := writerFunc(func(p []byte) (int, error) { cancel(); return len(p), nil })
	start := time.Now()
	_, err := Open(ctx, engine.Options{Source: t.TempDir(), Log: log, Getenv: getenvOf(env), ConnectTimeout: time.Minute})
	require.ErrorIs(t, err, context.Canceled)
	assert.Less(t, time.Since(start), ConnectKillGrace+2*time.Second)
	assert.Empty(t, testlib.PidsWith(marker))
}

// TestRealCLIUnreachableRunner runs a real dagger CLI against a runner that
// does not exist: the connection fails within the deadline and no dagger
// process is left. It needs a dagger CLI (_EXPERIMENTAL_DAGGER_CLI_BIN or
// on PATH); with IPEX_FLAKE_REQUIRE_DAGGER=1 its absence is a failure.
func TestRealCLIUnreachableRunner(t *testing.T) {
	bin := os.Getenv("_EXPERIMENTAL_DAGGER_CLI_BIN")
	if bin == "" {
		bin = engine.FindExecutable("dagger", os.Getenv("PATH"))
	}
	if bin == "" {
		fakedagger.Skip(t, "no dagger CLI: set _EXPERIMENTAL_DAGGER_CLI_BIN or put dagger on PATH to run this test")
	}
	marker := filepath.Join(t.TempDir(), "real-dagger-"+testlib.Nonce())
	require.NoError(t, os.MkdirAll(marker, 0o755))
	env := map[string]string{
		"_EXPERIMENTAL_DAGGER_CLI_BIN":     bin,
		"_EXPERIMENTAL_DAGGER_RUNNER_HOST": "docker-container://ipex-flake-no-such-engine-" + testlib.Nonce(),
		"PATH":                             os.Getenv("PATH"),
		"HOME":                             os.Getenv("HOME"),
		"TMPDIR":                           marker,
	}
	const timeout = 15 * time.Second
	_, err, took, log := openWith(t, env, timeout)
	var ce *ConnectError
	require.ErrorAs(t, err, &ce, log)
	t.Logf("connection failed after %s: %v", took, err)
	assert.Less(t, took, timeout+ConnectKillGrace+2*time.Second)
	assert.Empty(t, testlib.PidsWith(marker), "no dagger process outlives the failed connection")
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
