package host

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

	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	e, err := New(engine.Options{Source: dir})
	require.NoError(t, err)
	assert.Equal(t, dir, e.SourcePath())
	assert.Equal(t, "host", e.Name())

	var out, errb bytes.Buffer
	res, err := e.Run(t.Context(), engine.Cmd{
		Args:    []string{"sh", "-c", `pwd; echo "$PLAIN $SECRET"; read -r l; echo "in:$l"; echo oops >&2; exit 7`},
		Dir:     "sub",
		Env:     map[string]string{"PLAIN": "p"},
		Secrets: map[string]string{"SECRET": "s3cr3t"},
		Stdin:   strings.NewReader("hello\n"),
		Stdout:  &out, Stderr: &errb,
	})
	require.NoError(t, err)
	assert.Equal(t, 7, res.ExitCode)
	assert.Equal(t, filepath.Join(dir, "sub")+"\np s3cr3t\nin:hello\n", out.String())
	assert.Equal(t, "oops\n", errb.String())
}

// TestRunNixConfigAdds: NIX_CONFIG from Env and Secrets adds lines to the
// process's NIX_CONFIG instead of replacing it.
func TestRunNixConfigAdds(t *testing.T) {
	t.Setenv("NIX_CONFIG", "substituters =")
	e, err := New(engine.Options{})
	require.NoError(t, err)
	var out bytes.Buffer
	_, err = e.Run(t.Context(), engine.Cmd{
		Args:    []string{"sh", "-c", `printf '%s' "$NIX_CONFIG"`},
		Env:     map[string]string{"NIX_CONFIG": "max-jobs = 4"},
		Secrets: map[string]string{"NIX_CONFIG": "access-tokens = github.com=t0k"},
		Stdout:  &out,
	})
	require.NoError(t, err)
	assert.Equal(t, "substituters =\nmax-jobs = 4\naccess-tokens = github.com=t0k", out.String())
}

func TestRunMissingProgram(t *testing.T) {
	e, err := New(engine.Options{})
	require.NoError(t, err)
	_, err = e.Run(t.Context(), engine.Cmd{Args: []string{"ipex-flake-no-such-program"}})
	require.ErrorContains(t, err, "not found on PATH")
	_, err = e.Run(t.Context(), engine.Cmd{})
	require.Error(t, err)
}

// TestRunCancelStopsProcessGroup: cancelling stops the command and the
// children it started, including one that ignores SIGTERM.
func TestRunCancelStopsProcessGroup(t *testing.T) {
	marker := "host-cancel-" + testlib.Nonce()
	e, err := New(engine.Options{})
	require.NoError(t, err)
	e.GracePeriod = 500 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	started := make(chan struct{})
	var once bool
	w := writerFunc(func(p []byte) {
		if !once && strings.Contains(string(p), "ready") {
			once = true
			close(started)
		}
	})
	done := make(chan error, 1)
	go func() {
		_, err := e.Run(ctx, engine.Cmd{
			Args:   []string{"sh", "-c", `MARK=` + marker + ` sh -c 'trap "" TERM; while :; do :; done' & echo ready; wait`},
			Env:    map[string]string{"MARK": marker},
			Stdout: w,
		})
		done <- err
	}()
	<-started
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	assert.Empty(t, testlib.PidsWith(marker))
}

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

// TestRunAllowListedEnvironment: the child sees the allow-listed variables
// and what the command passes, never a credential of this process.
func TestRunAllowListedEnvironment(t *testing.T) {
	t.Setenv("GITHUB_TOKEN", "ghs_never")
	t.Setenv("NIX_SIGNING_KEY", "k:never")
	t.Setenv("LC_ALL", "C")
	e, err := New(engine.Options{})
	require.NoError(t, err)
	var out bytes.Buffer
	_, err = e.Run(t.Context(), engine.Cmd{
		Args:    []string{"sh", "-c", `echo "gh=${GITHUB_TOKEN-unset} key=${NIX_SIGNING_KEY-unset} lc=$LC_ALL named=$NAMED path=${PATH:+set}"`},
		Secrets: map[string]string{"NAMED": "given"},
		Stdout:  &out,
	})
	require.NoError(t, err)
	assert.Equal(t, "gh=unset key=unset lc=C named=given path=set\n", out.String())
}
