package cmd

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
)

func TestTestFlags(t *testing.T) {
	var got *TestOptions
	io, _, _ := testIO(nil)
	c := newTestCmdWith(io, func(_ context.Context, o *TestOptions) error { got = o; return nil })
	c.SetArgs([]string{"--stage", "unit", "--stage", "security", "--require", "--assume", "intel-gpu",
		"--timeout", "unit=45m", "--flake", "/src", "--engine", "host", "--fail-on", "critical", "--report", "r.json"})
	require.NoError(t, c.Execute())
	assert.Equal(t, []string{"unit", "security"}, got.Stages)
	assert.True(t, got.Require)
	assert.Equal(t, []string{"intel-gpu"}, got.Assume)
	assert.Equal(t, "/src", got.Flake)
	assert.Equal(t, "critical", got.FailOn)
	names, opts, err := got.plan()
	require.NoError(t, err)
	assert.Equal(t, []string{"unit", "security"}, names)
	assert.Equal(t, 45*time.Minute, opts.TimeoutFor("unit"))
	assert.Equal(t, 45*time.Minute, opts.TimeoutFor("security"))
}

func TestTestPlanOrder(t *testing.T) {
	o := &TestOptions{Stages: []string{"security", "unit", "unit"}, FailOn: "high", Users: 1, Requests: 1}
	names, _, err := o.plan()
	require.NoError(t, err)
	assert.Equal(t, []string{"unit", "security"}, names, "table order, each once")
	o = &TestOptions{All: true, FailOn: "high", Users: 1, Requests: 1}
	names, _, err = o.plan()
	require.NoError(t, err)
	assert.Equal(t, []string{"unit", "integration", "performance", "security"}, names)
}

func TestTestUsageErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "no stage", args: []string{"test"}, wantErr: "name a stage with --stage"},
		{name: "unknown stage", args: []string{"test", "--stage", "smoke"}, wantErr: `unknown stage "smoke"`},
		{name: "all and stage", args: []string{"test", "--all", "--stage", "unit"}, wantErr: "not both"},
		{name: "bad assume", args: []string{"test", "--stage", "unit", "--assume", "nvidia"}, wantErr: `unknown feature "nvidia"`},
		{name: "bad timeout", args: []string{"test", "--stage", "unit", "--timeout", "unit=soon"}, wantErr: "not a positive duration"},
		{name: "timeout of unknown stage", args: []string{"test", "--stage", "unit", "--timeout", "lint=5m"}, wantErr: `unknown stage "lint"`},
		{name: "timeout without =", args: []string{"test", "--stage", "unit", "--timeout", "5m"}, wantErr: "STAGE=DURATION"},
		{name: "bad fail-on", args: []string{"test", "--stage", "security", "--fail-on", "severe"}, wantErr: "--fail-on"},
		{name: "missing report", args: []string{"test", "--stage", "unit", "--report", "/nonexistent/build-report.json"}, wantErr: "pass the file written by ci build --report"},
		{name: "negative ready timeout", args: []string{"test", "--stage", "integration", "--ready-timeout", "-1s"}, wantErr: "--ready-timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			io, out, errb := testIO(nil)
			code := Run(t.Context(), io, tt.args)
			assert.Equal(t, clierr.ExitUsage, code)
			assert.Contains(t, errb.String(), tt.wantErr)
			assert.Empty(t, out.String(), "nothing ran")
		})
	}
}

// gitRepo makes a git repository with one commit and returns its dir and rev.
func gitRepo(t *testing.T, files map[string]string) (string, string) {
	t.Helper()
	testlib.CheckPath(t, "git")
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}
	g := func(args ...string) string {
		out, err := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false"}, args...)...).CombinedOutput()
		require.NoError(t, err, string(out))
		return strings.TrimSpace(string(out))
	}
	g("init", "-q")
	g("add", ".")
	g("commit", "-q", "-m", "init")
	return dir, g("rev-parse", "HEAD")
}

// noGPU returns hidden-flag arguments pointing detection at empty trees.
func noGPU(t *testing.T) []string {
	empty := t.TempDir()
	return []string{"--sys-root", empty, "--dev-root", empty, "--proc-root", empty}
}

func TestTestSkipVersusRequire(t *testing.T) {
	dir, rev := gitRepo(t, map[string]string{"README": "x\n"})
	for _, tt := range []struct {
		name     string
		extra    []string
		wantCode int
	}{
		{name: "skipped exits 0", wantCode: clierr.ExitOK},
		{name: "skipped with --require exits 1", extra: []string{"--require"}, wantCode: clierr.ExitFailed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			io, out, errb := testIO(nil)
			args := append([]string{"test", "--stage", "integration", "--stage", "performance", "--flake", dir}, noGPU(t)...)
			code := Run(t.Context(), io, append(args, tt.extra...))
			assert.Equal(t, tt.wantCode, code, errb.String())
			assert.Regexp(t, `integration\s+skipped\s+no intel-gpu on this machine`, out.String())
			assert.Regexp(t, `performance\s+skipped\s+no intel-gpu on this machine`, out.String())
			assert.NotContains(t, out.String(), "passed")

			store := &results.FileStore{Path: results.DefaultPath(filepath.Join(dir, ".git"))}
			got, err := store.Get(t.Context(), rev)
			require.NoError(t, err)
			assert.Equal(t, results.StateSkipped, got["integration"].State)
			assert.Contains(t, got["integration"].Description, "no intel-gpu")
			assert.Equal(t, results.StateSkipped, got["performance"].State)
		})
	}
}

func TestTestSecurityThroughCommand(t *testing.T) {
	testlib.CheckPath(t, "nix")
	t.Setenv("NIX_CONFIG", "substituters =")
	flake := "{ outputs = { self }: { }; }\n"
	clean, cleanRev := gitRepo(t, map[string]string{"flake.nix": flake})
	dirty, dirtyRev := gitRepo(t, map[string]string{"flake.nix": flake, "ops/deploy.env": "SLACK=xox" + "b-" + "2834912223-QqW7eRt5yU\n"})
	for _, tt := range []struct {
		dir, rev  string
		wantCode  int
		wantState string
	}{
		{clean, cleanRev, clierr.ExitOK, results.StatePassed},
		{dirty, dirtyRev, clierr.ExitFailed, results.StateFailed},
	} {
		io, out, errb := testIO(nil)
		code := Run(t.Context(), io, []string{"test", "--stage", "security", "--flake", tt.dir, "--engine", "host"})
		assert.Equal(t, tt.wantCode, code, out.String()+errb.String())
		store := &results.FileStore{Path: results.DefaultPath(filepath.Join(tt.dir, ".git"))}
		got, err := store.Get(t.Context(), tt.rev)
		require.NoError(t, err)
		assert.Equal(t, tt.wantState, got["security"].State)
		if tt.wantCode != 0 {
			assert.Contains(t, errb.String(), "slack-token")
			assert.NotContains(t, errb.String(), "QqW7eRt5yU", "the secret is never printed")
		}
	}
}

func TestTestRecordsGitHubStatuses(t *testing.T) {
	dir, rev := gitRepo(t, map[string]string{"README": "x\n"})
	var mu sync.Mutex
	var posted []map[string]string
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v3/repos/ipex-flake/ipex-flake/statuses/{sha}", func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, http.MethodPost, r.Method)
		assert.Equal(t, rev, r.PathValue("sha"))
		assert.Equal(t, "Bearer ghs_fake", r.Header.Get("Authorization"))
		var body map[string]string
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		mu.Lock()
		posted = append(posted, body)
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	io, _, errb := testIO(map[string]string{
		"GITHUB_TOKEN": "ghs_fake", "GITHUB_REPOSITORY": "ipex-flake/ipex-flake", "GITHUB_API_URL": srv.URL + "/api/v3",
		"GITHUB_SHA": rev, "GITHUB_SERVER_URL": "https://github.com", "GITHUB_RUN_ID": "42",
	})
	code := Run(t.Context(), io, append([]string{"test", "--stage", "integration", "--flake", dir}, noGPU(t)...))
	require.Equal(t, clierr.ExitOK, code, errb.String())
	require.Len(t, posted, 2)
	assert.Regexp(t, `^running \[flake=\. nar=sha256-\S{20}\]$`, posted[0]["description"], "the result names the flake it tested")
	posted[0]["description"] = "running"
	assert.Equal(t, map[string]string{"context": "ci/integration", "state": "pending", "description": "running",
		"target_url": "https://github.com/ipex-flake/ipex-flake/actions/runs/42"}, posted[0])
	assert.Equal(t, "error", posted[1]["state"], "skipped is never success")
	assert.True(t, strings.HasPrefix(posted[1]["description"], "skipped: no intel-gpu"), posted[1]["description"])
	assert.NotContains(t, errb.String(), "ghs_fake")
	_, err := os.Stat(results.DefaultPath(filepath.Join(dir, ".git")))
	assert.ErrorIs(t, err, os.ErrNotExist, "GitHub is the store when a token is known")
}

// TestTestNotifiesSlackOfFailedStages: a failed stage sends one Slack
// message naming the stage and the commit; a Slack failure is reported and
// leaves the exit code to the stages.
func TestTestNotifiesSlackOfFailedStages(t *testing.T) {
	testlib.CheckPath(t, "nix")
	t.Setenv("NIX_CONFIG", "substituters =")
	flake := "{ outputs = { self }: { }; }\n"
	dirty, dirtyRev := gitRepo(t, map[string]string{"flake.nix": flake, "ops/deploy.env": "SLACK=xox" + "b-" + "2834912223-QqW7eRt5yU\n"})
	clean, _ := gitRepo(t, map[string]string{"flake.nix": flake})
	for _, tt := range []struct {
		name     string
		dir      string
		status   int
		wantMsgs int
		wantWarn bool
	}{
		{"failed stage", dirty, http.StatusOK, 1, false},
		{"slack down", dirty, http.StatusInternalServerError, 1, true},
		{"passed stage", clean, http.StatusOK, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var bodies []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				assert.Equal(t, http.MethodPost, r.Method)
				b, _ := io.ReadAll(r.Body)
				bodies = append(bodies, string(b))
				w.WriteHeader(tt.status)
			}))
			defer srv.Close()
			sio, out, errb := testIO(map[string]string{"SLACK_WEBHOOK_URL": srv.URL + "/hooks/T0/B0/x"})
			code := Run(t.Context(), sio, []string{"test", "--stage", "security", "--flake", tt.dir, "--engine", "host"})
			if tt.wantMsgs == 0 {
				assert.Equal(t, clierr.ExitOK, code, out.String()+errb.String())
				assert.Empty(t, bodies)
				return
			}
			assert.Equal(t, clierr.ExitFailed, code, out.String()+errb.String())
			require.Len(t, bodies, tt.wantMsgs)
			assert.Contains(t, bodies[0], "security")
			assert.Contains(t, bodies[0], dirtyRev[:7])
			assert.NotContains(t, bodies[0], "QqW7eRt5yU", "the secret never reaches Slack")
			if tt.wantWarn {
				assert.Contains(t, errb.String(), "could not announce that security failed (to slack webhook)")
				assert.NotContains(t, errb.String(), "/hooks/T0/B0/x", "the webhook URL is a secret")
			}
		})
	}
}
