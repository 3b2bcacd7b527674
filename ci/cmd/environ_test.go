package cmd

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/childenv"
	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
)

// childEnv is the environment of one child process, read from
// /proc/<pid>/environ while it ran.
type childEnv struct {
	Name string // nix, sh, go
	Pid  int
	// Real is set when the environment was read after the wrapper had
	// exec'd the real program (for sh the wrapper is the real sh).
	Real bool
	Env  []string
}

// envWatcher puts wrappers for programs in front of PATH. Each wrapper
// announces its pid on a FIFO and waits; the watcher reads
// /proc/<pid>/environ, lets it go, and (for nix and go) reads the environ
// of the real program once the wrapper has exec'd it. No sleeps: the
// wrapper blocks on a FIFO until the watcher has read it.
type envWatcher struct {
	t    *testing.T
	dir  string
	real map[string]string
	pids *os.File
	mu   sync.Mutex
	seen []childEnv
	done chan struct{}
}

func watchChildren(t *testing.T, programs ...string) *envWatcher {
	t.Helper()
	testlib.CheckPath(t, "mkfifo")
	w := &envWatcher{t: t, dir: t.TempDir(), real: map[string]string{}, done: make(chan struct{})}
	mkfifo, err := exec.LookPath("mkfifo")
	require.NoError(t, err)
	bin := filepath.Join(w.dir, "bin")
	require.NoError(t, os.Mkdir(bin, 0o755))
	fifo := filepath.Join(w.dir, "pids")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	for _, p := range programs {
		real := realProgram(t, p)
		w.real[p] = real
		script := fmt.Sprintf("#!/bin/sh\n%s %s/r.$$ || exit 97\necho \"$$ %s\" > %s\nread _ < %s/r.$$\nexec %s \"$@\"\n",
			mkfifo, w.dir, p, fifo, w.dir, real)
		require.NoError(t, os.WriteFile(filepath.Join(bin, p), []byte(script), 0o755))
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	// Read-write so that the FIFO never reports end of file between
	// writers.
	w.pids, err = os.OpenFile(fifo, os.O_RDWR, 0)
	require.NoError(t, err)
	go w.loop()
	t.Cleanup(w.stop)
	return w
}

// realProgram finds p on PATH, skipping the wrappers of earlier watchers.
func realProgram(t *testing.T, p string) string {
	t.Helper()
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if _, err := os.Stat(filepath.Join(filepath.Dir(d), "pids")); err == nil {
			continue // a watcher's wrapper directory
		}
		if st, err := os.Stat(filepath.Join(d, p)); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			real, err := filepath.EvalSymlinks(filepath.Join(d, p))
			require.NoError(t, err)
			return real
		}
	}
	t.Fatalf("%s is not on PATH", p)
	return ""
}

func (w *envWatcher) loop() {
	defer close(w.done)
	sc := bufio.NewScanner(w.pids)
	for sc.Scan() {
		pidText, name, _ := strings.Cut(sc.Text(), " ")
		if name == "stop" {
			return
		}
		pid, err := strconv.Atoi(pidText)
		if err != nil {
			continue
		}
		env := readEnviron(pid)
		w.add(childEnv{Name: name, Pid: pid, Real: name == "sh", Env: env})
		// Let the wrapper go on to exec the real program.
		if f, err := os.OpenFile(filepath.Join(w.dir, "r."+pidText), os.O_WRONLY, 0); err == nil {
			_, _ = f.WriteString("go\n")
			f.Close()
		}
		if name == "sh" {
			continue
		}
		// Wait for the exec (bounded: the process ends, or we give up).
		for i := 0; i < 1_000_000; i++ {
			exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
			if err != nil {
				break // gone before we saw it
			}
			if exe == w.real[name] {
				if env := readEnviron(pid); env != nil {
					w.add(childEnv{Name: name, Pid: pid, Real: true, Env: env})
				}
				break
			}
		}
	}
}

func readEnviron(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
}

func (w *envWatcher) add(c childEnv) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, c)
}

func (w *envWatcher) stop() {
	select {
	case <-w.done:
		return
	default:
	}
	_, _ = w.pids.WriteString("0 stop\n")
	<-w.done
	w.pids.Close()
}

// children returns what was read, after stopping the watcher.
func (w *envWatcher) children() []childEnv {
	w.stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]childEnv(nil), w.seen...)
}

// credentials are set in this process's environment by the tests below;
// no child may see one of them.
var credentials = map[string]string{
	"CACHIX_AUTH_TOKEN": "cachix-secret-5c1f",
	"GITHUB_TOKEN":      "ghs_secret_9a7d",
	"SLACK_BOT_TOKEN":   "xoxb-secret-3e2b",
	"SLACK_WEBHOOK_URL": "https://hooks.slack.invalid/services/secret-77",
	"SMTP_URL":          "smtp://user:secret-pw@127.0.0.1:1",
}

// assertNoCredentials checks every environment read: no credential
// variable, no credential value.
func assertNoCredentials(t *testing.T, kids []childEnv, values ...string) {
	t.Helper()
	for _, c := range kids {
		for _, kv := range c.Env {
			k, v, _ := strings.Cut(kv, "=")
			for _, secret := range childenv.Secrets {
				assert.NotEqual(t, secret, k, "%s (pid %d) has %s in its environment", c.Name, c.Pid, k)
			}
			for _, s := range values {
				assert.NotContains(t, v, s, "%s (pid %d): %s carries a credential", c.Name, c.Pid, k)
			}
		}
	}
}

func count(kids []childEnv, name string, real bool) int {
	n := 0
	for _, c := range kids {
		if c.Name == name && (!real || c.Real) {
			n++
		}
	}
	return n
}

// TestChildrenNeverSeeCredentials sets every credential the pipeline knows
// in this process's environment and reads /proc/<pid>/environ of the real
// nix, sh and go test children of stage runs (ci test --stage unit, and
// --stage integration, whose suite runs under go test) and a push (ci
// push, which signs with NIX_SIGNING_KEY): none of them holds a
// credential.
func TestChildrenNeverSeeCredentials(t *testing.T) {
	testlib.CheckPath(t, "go")
	dir, rev := trustRepo(t, map[string]string{
		"go.mod":                        "module example.org/suite\n\ngo 1.22\n",
		"tests/integration/env_test.go": "package integration\n\nimport \"testing\"\n\nfunc TestSuite(t *testing.T) {}\n",
	})
	t.Chdir(dir)
	// The suite's go test keeps the machine's build cache (XDG_CACHE_HOME
	// moves below).
	gocache, err := exec.CommandContext(t.Context(), "go", "env", "GOCACHE").Output()
	require.NoError(t, err)
	t.Setenv("GOCACHE", strings.TrimSpace(string(gocache)))
	home := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", filepath.Join(home, "cache"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "config"))
	t.Setenv("NIX_CONFIG", "substituters =")
	rep := filepath.Join(".ci-out", "build-report.json")
	io, _, errb := testIO(nil)
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, []string{"build", "--engine", "host", "--report", rep}), errb.String())

	var keyOut bytes.Buffer
	gen := exec.CommandContext(t.Context(), "nix", "--extra-experimental-features", "nix-command", "key", "generate-secret", "--key-name", "environ-test-1")
	gen.Stdout = &keyOut
	require.NoError(t, gen.Run())
	key := strings.TrimSpace(keyOut.String())
	_, keySecret, _ := strings.Cut(key, ":")
	require.NotEmpty(t, keySecret)
	t.Setenv("NIX_SIGNING_KEY", key)
	values := []string{keySecret}
	for k, v := range credentials {
		t.Setenv(k, v)
		values = append(values, v)
	}

	w := watchChildren(t, "nix", "sh")
	io, _, errb = testIO(nil)
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, append([]string{"test", "--stage", "unit", "--engine", "host", "--report", rep}, noGPU(t)...)), errb.String())
	stage := w.children()
	assert.Positive(t, count(stage, "nix", true), "the stage ran real nix children: %v", stage)
	assertNoCredentials(t, stage, values...)

	w = watchChildren(t, "nix", "go")
	io, out, errb := testIO(nil)
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, append([]string{"test", "--stage", "integration", "--engine", "host", "--report", rep,
		"--external-services", "--assume", "intel-gpu"}, noGPU(t)...)), errb.String())
	assert.Regexp(t, `integration\s+passed`, out.String())
	suite := w.children()
	got, err := (&results.FileStore{Path: results.DefaultPath(filepath.Join(dir, ".git"))}).Get(t.Context(), rev)
	require.NoError(t, err)
	assert.True(t, got["integration"].External, "--external-services is recorded")
	assert.False(t, got["unit"].External, "only the stages that test services")
	assert.Positive(t, count(suite, "go", true), "the suite ran under a real go test child")
	assertNoCredentials(t, suite, values...)

	w = watchChildren(t, "nix", "sh")
	io, out, errb = testIO(nil)
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, []string{"push", "--report", rep, "--cache", "file://" + filepath.Join(home, "bincache")}), errb.String())
	assert.Contains(t, out.String(), "pushed")
	push := w.children()
	assert.Positive(t, count(push, "nix", true), "the push ran real nix children")
	assert.Positive(t, count(push, "sh", true), "the push signed through sh")
	assertNoCredentials(t, push, values...)
}
