package pick

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/fakedagger"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// Whether the PATH the engines are given holds a nix.
const (
	withNix = true
	noNix   = false
)

// withPATH is getenv whose PATH also holds a directory with an executable
// nix when nix is set.
func withPATH(t *testing.T, getenv func(string) string, nix bool) func(string) string {
	t.Helper()
	if !nix {
		return getenv
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "nix"), []byte("#!/bin/sh\n"), 0o755))
	return func(k string) string {
		if k != "PATH" {
			return getenv(k)
		}
		if p := getenv("PATH"); p != "" {
			return p + string(filepath.ListSeparator) + dir
		}
		return dir
	}
}

func TestResolve(t *testing.T) {
	cliDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(cliDir, "dagger"), []byte("#!/bin/sh\n"), 0o755))
	empty := t.TempDir()
	tests := []struct {
		name, kind    string
		env           func(string) string
		look          bool
		want, wantErr string
	}{
		{"auto prefers a reachable engine", "auto", env("_EXPERIMENTAL_DAGGER_RUNNER_HOST", "tcp://engine:1234", "PATH", cliDir), withNix, "dagger", ""},
		{"auto: runner host without a CLI is the host", "auto", env("_EXPERIMENTAL_DAGGER_RUNNER_HOST", "tcp://engine:1234", "PATH", empty), withNix, "host", ""},
		{"auto uses a session", "auto", env("DAGGER_SESSION_PORT", "9000", "DAGGER_SESSION_TOKEN", "t"), withNix, "dagger", ""},
		{"auto uses the CLI on PATH", "auto", env("PATH", cliDir), withNix, "dagger", ""},
		{"auto falls back to nix", "auto", env(), withNix, "host", ""},
		{"empty means auto", "", env(), withNix, "host", ""},
		{"auto with nothing", "auto", env(), noNix, "", "Install Nix"},
		{"host needs nix", "host", env(), noNix, "", "nix is not on PATH"},
		{"host", "host", env(), withNix, "host", ""},
		{"dagger session", "dagger", env("DAGGER_SESSION_PORT", "9000", "DAGGER_SESSION_TOKEN", "t"), noNix, "dagger", ""},
		{"dagger unreachable", "dagger", env(), withNix, "", "--engine host"},
		{"dagger runner host without a CLI", "dagger", env("_EXPERIMENTAL_DAGGER_RUNNER_HOST", "tcp://engine:1234", "PATH", empty), withNix, "", "set _EXPERIMENTAL_DAGGER_CLI_BIN"},
		{"unknown", "docker", env(), withNix, "", "unknown engine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(tt.kind, withPATH(t, tt.env, tt.look))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.Equal(t, clierr.ExitUsage, clierr.Code(err))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestOpen: what auto and dagger open, and the one line auto prints when
// it uses the host.
func TestOpen(t *testing.T) {
	stalled := fakedagger.New(t)
	stalled.Stall(t)
	empty := t.TempDir()
	stalledEnv := env("DAGGER_SESSION_PORT", stalled.Port, "DAGGER_SESSION_TOKEN", fakedagger.Token, "PATH", empty)
	tests := []struct {
		name, kind, want string
		env              func(string) string
		look             bool
		wantLine         []string
		wantErr          string
	}{
		{name: "auto without an engine", kind: "auto", env: env("PATH", empty), look: withNix, want: "host",
			wantLine: []string{"--engine auto: using the host's nix: no Dagger engine"}},
		{name: "auto with a runner host but no CLI", kind: "auto", env: env("_EXPERIMENTAL_DAGGER_RUNNER_HOST", "tcp://engine:1234", "PATH", empty), look: withNix, want: "host",
			wantLine: []string{"using the host's nix", "_EXPERIMENTAL_DAGGER_CLI_BIN"}},
		{name: "auto with an engine that does not answer", kind: "auto", env: stalledEnv, look: withNix, want: "host",
			wantLine: []string{"using the host's nix", "did not answer within 300ms"}},
		{name: "auto with an engine that does not answer and no nix", kind: "auto", env: stalledEnv, look: noNix, wantErr: "nix is not on PATH"},
		{name: "dagger with an engine that does not answer", kind: "dagger", env: stalledEnv, look: withNix, wantErr: "did not answer within 300ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := withPATH(t, tt.env, tt.look)
			var log bytes.Buffer
			start := time.Now()
			e, err := Open(t.Context(), tt.kind, getenv, engine.Options{Source: t.TempDir(), Log: &log, ConnectTimeout: 300 * time.Millisecond})
			assert.Less(t, time.Since(start), 5*time.Second)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.Equal(t, clierr.ExitUsage, clierr.Code(err), "an engine that cannot be reached is a configuration error")
				return
			}
			require.NoError(t, err)
			t.Cleanup(func() { _ = e.Close() })
			assert.Equal(t, tt.want, e.Name())
			lines := strings.Split(strings.TrimSuffix(log.String(), "\n"), "\n")
			require.Len(t, lines, 1, "one line says why: %q", log.String())
			for _, w := range tt.wantLine {
				assert.Contains(t, lines[0], w)
			}
		})
	}
}
