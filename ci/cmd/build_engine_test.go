package cmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/fakedagger"
	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/daggerengine"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

func TestBuildHelpNamesConnectTimeout(t *testing.T) {
	io, out, _ := testIO(nil)
	require.Equal(t, 0, Run(t.Context(), io, []string{"build", "--help"}))
	assert.Contains(t, out.String(), "--dagger-connect-timeout D")
	assert.Contains(t, out.String(), "(default 1m0s)")
}

// TestBuildUnreachableDaggerEngine: `ci build` on a Dagger engine that never
// answers, or whose CLI hangs, fails with exit 2 at the connect deadline,
// writes nothing and leaves no dagger process; --engine auto builds on the
// host's nix instead and says why in one line.
func TestBuildUnreachableDaggerEngine(t *testing.T) {
	testlib.OfflineNix(t)
	old := daggerengine.ConnectKillGrace
	daggerengine.ConnectKillGrace = 500 * time.Millisecond
	t.Cleanup(func() { daggerengine.ConnectKillGrace = old })

	stalled := fakedagger.New(t)
	stalled.Stall(t)
	cliDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(cliDir, "dagger"), []byte(`#!/bin/sh
trap '' TERM INT HUP
echo "connecting to $_EXPERIMENTAL_DAGGER_RUNNER_HOST" >&2
sleep 600 &
wait
`), 0o755))

	tests := []struct {
		name       string
		engine     string
		session    bool // the stalled fake session, else the hanging CLI
		wantCode   int
		wantErr    string
		wantEngine string
	}{
		{name: "dagger, engine never answers", engine: "dagger", session: true, wantCode: clierr.ExitUsage, wantErr: "did not answer within 500ms"},
		{name: "dagger, CLI hangs", engine: "dagger", wantCode: clierr.ExitUsage, wantErr: "connecting to docker-container://nonexistent"},
		{name: "auto, engine never answers", engine: "auto", session: true, wantCode: clierr.ExitOK, wantEngine: engine.KindHost},
		{name: "auto, CLI hangs", engine: "auto", wantCode: clierr.ExitOK, wantEngine: engine.KindHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := t.TempDir()
			require.NoError(t, fixture.Write(src, fixture.Generated(2, testlib.Nonce())))
			marker := filepath.Join(t.TempDir(), "ci-build-dagger-"+testlib.Nonce())
			require.NoError(t, os.MkdirAll(marker, 0o755))
			env := map[string]string{"CI": "true", "TMPDIR": marker, "PATH": os.Getenv("PATH"), "HOME": t.TempDir()}
			if tt.session {
				env["DAGGER_SESSION_PORT"], env["DAGGER_SESSION_TOKEN"] = stalled.Port, fakedagger.Token
			} else {
				env["_EXPERIMENTAL_DAGGER_CLI_BIN"] = filepath.Join(cliDir, "dagger")
				env["_EXPERIMENTAL_DAGGER_RUNNER_HOST"] = "docker-container://nonexistent"
			}
			io, _, errb := testIO(env)
			rep := filepath.Join(t.TempDir(), "report.json")
			start := time.Now()
			code := Run(t.Context(), io, []string{"build", "--engine", tt.engine, "--flake", src, "--report", rep,
				"--cache", "file://" + t.TempDir(), "--dagger-connect-timeout", "500ms"})
			took := time.Since(start)
			require.Equal(t, tt.wantCode, code, errb.String())
			assert.Empty(t, testlib.PidsWith(marker), "no dagger process outlives ci build")
			if tt.wantErr != "" {
				assert.Contains(t, errb.String(), tt.wantErr)
				assert.Contains(t, errb.String(), "--dagger-connect-timeout")
				assert.Less(t, took, 500*time.Millisecond+daggerengine.ConnectKillGrace+time.Second, "fails at the deadline")
				assert.NoFileExists(t, rep, "nothing written")
				return
			}
			var why []string
			for _, l := range strings.Split(errb.String(), "\n") {
				if strings.HasPrefix(l, "--engine auto:") {
					why = append(why, l)
				}
			}
			require.Len(t, why, 1, errb.String())
			assert.Contains(t, why[0], "using the host's nix")
			assert.Contains(t, why[0], "did not answer within 500ms")
			assert.Contains(t, errb.String(), "on the host engine")
			r, err := report.Read(rep)
			require.NoError(t, err)
			assert.Equal(t, tt.wantEngine, r.Engine)
			require.Len(t, r.Outputs, 2)
			for _, o := range r.Outputs {
				assert.Equal(t, report.StatusBuilt, o.Status, o.Attr)
			}
		})
	}
}

// TestBuildThroughDaggerCLI: `ci build --engine dagger` with only a dagger
// CLI configured starts the CLI's session, builds through it (the fake
// engine replays the recorded nix session), and ends the session: no CLI
// process is left, and GITHUB_TOKEN reached neither the CLI's environment
// nor anything but a Dagger secret.
func TestBuildThroughDaggerCLI(t *testing.T) {
	rec, err := fakedagger.LoadRecording(daggerSession)
	require.NoError(t, err)
	nonce, err := os.ReadFile(filepath.Join(daggerSession, "nonce"))
	require.NoError(t, err)
	fake := fakedagger.New(t)
	keys := &fakedagger.SessionKeys{}
	fake.ExecResult = func(exec *fakedagger.Obj) fakedagger.ExecResult {
		r, ok := rec[keys.Key(exec.Strings("args"))]
		if !ok {
			return fakedagger.ExecResult{ExitCode: 127, Stderr: "not recorded\n"}
		}
		return r.ExecResult
	}
	cli := filepath.Join(t.TempDir(), "dagger")
	require.NoError(t, os.WriteFile(cli, []byte(`#!/bin/sh
export -p > "$TMPDIR/env"
printf '{"port":`+fake.Port+`,"session_token":"`+fakedagger.Token+`"}\n'
while read -r _; do :; done
echo ended > "$TMPDIR/ended"
`), 0o755))

	const token = "ghp_ci-build-through-the-cli"
	src := t.TempDir()
	require.NoError(t, fixture.Write(src, fixture.EveryStatus(strings.TrimSpace(string(nonce)))))
	marker := filepath.Join(t.TempDir(), "ci-build-cli-"+testlib.Nonce())
	require.NoError(t, os.MkdirAll(marker, 0o755))
	io, _, errb := testIO(map[string]string{
		"CI": "true", "TMPDIR": marker, "PATH": os.Getenv("PATH"), "HOME": t.TempDir(),
		"_EXPERIMENTAL_DAGGER_CLI_BIN": cli, "GITHUB_TOKEN": token,
	})
	rep := filepath.Join(t.TempDir(), "report.json")
	code := Run(t.Context(), io, []string{"build", "--engine", "dagger", "--image", "docker.io/nixos/nix:2.8.0", "--flake", src,
		"--systems", "x86_64-linux", "--cache", "file://" + t.TempDir(), "--report", rep, "--jobs", "2"})
	assert.Equal(t, clierr.ExitFailed, code, errb.String())
	assert.Contains(t, errb.String(), "on the dagger engine")

	r, err := report.Read(rep)
	require.NoError(t, err)
	assert.Equal(t, engine.KindDagger, r.Engine)
	got := map[string]string{}
	for _, o := range r.Outputs {
		got[o.Attr] = o.Status
		assert.Zero(t, o.DurationMs, "%s: the Dagger engine reports no build times", o.Attr)
	}
	assert.Equal(t, report.StatusBuilt, got["packages.x86_64-linux.ok"])
	assert.Equal(t, report.StatusFailed, got["packages.x86_64-linux.bad"])
	assert.NotEmpty(t, fake.Execs(), "the commands reached the engine through the CLI's session")

	assert.FileExists(t, filepath.Join(marker, "ended"), "ci build ended the session")
	assert.Empty(t, testlib.PidsWith(marker), "no dagger process outlives ci build")
	cliEnv, err := os.ReadFile(filepath.Join(marker, "env"))
	require.NoError(t, err)
	assert.NotContains(t, string(cliEnv), token)
	assert.NotContains(t, string(cliEnv), "GITHUB_TOKEN")
	for _, c := range fake.Calls() {
		for arg, v := range c.Args {
			if s, ok := v.(string); ok && strings.Contains(s, token) {
				assert.Equal(t, "setSecret.plaintext", c.Field+"."+arg, "the token travels only as a Dagger secret")
			}
		}
	}
}
