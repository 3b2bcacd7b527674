package quality

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/stage"
)

// fakeServers builds the recorded fakes (tests/fakes/cmd) into a
// directory of their own and returns their paths.
func fakeServers(t *testing.T) (ollama, comfyui string) {
	t.Helper()
	testlib.CheckPath(t, "go")
	wd, err := os.Getwd()
	require.NoError(t, err)
	root := ModuleRoot(wd)
	require.NotEmpty(t, root)
	dir := t.TempDir()
	for _, name := range []string{"fakeollama", "fakecomfyui"} {
		cmd := exec.CommandContext(t.Context(), "go", "build", "-o", filepath.Join(dir, name), "./tests/fakes/cmd/"+name)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
	}
	return filepath.Join(dir, "fakeollama"), filepath.Join(dir, "fakecomfyui")
}

// serviceFlake writes a flake whose ollama-ipex and comfyui-ipex packages
// are bin/ollama and bin/comfyui scripts around the given shell bodies
// (the fixture builders use /bin/mkdir and /bin/chmod by absolute path:
// builds here run without a sandbox), and a Go module beside it whose
// tests/integration suite is suite.
func serviceFlake(t *testing.T, ollamaBody, comfyBody, suite string) string {
	t.Helper()
	script := func(name, body string) string {
		return fmt.Sprintf("/bin/mkdir -p $out/bin\nprintf '%%s\\n' '#!/bin/sh' %s > $out/bin/%s\n/bin/chmod 0555 $out/bin/%s\n",
			shellQuote(body), name, name)
	}
	dir := t.TempDir()
	require.NoError(t, fixture.Write(dir, fixture.Flake{Nonce: testlib.Nonce(),
		Drvs: map[string]fixture.Drv{
			"ollama-ipex":  {Script: script("ollama", ollamaBody)},
			"comfyui-ipex": {Script: script("comfyui", comfyBody)},
		},
		Packages: map[string]string{"ollama-ipex": "ollama-ipex", "comfyui-ipex": "comfyui-ipex"}}))
	files := map[string]string{
		"go.mod":                        "module example.org/suite\n\ngo 1.22\n",
		"tests/integration/api_test.go": suite,
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}
	return dir
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// liveSuite checks that both services answer where the stage says.
const liveSuite = `package integration

import (
	"net/http"
	"os"
	"strings"
	"testing"
)

func get(t *testing.T, url string) {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %s", url, resp.Status)
	}
}

func TestServices(t *testing.T) {
	host, comfy := os.Getenv("OLLAMA_HOST"), os.Getenv("COMFYUI_URL")
	if !strings.HasPrefix(host, "http://127.0.0.1:") || !strings.HasPrefix(comfy, "http://127.0.0.1:") {
		t.Fatalf("services not on loopback: %q %q", host, comfy)
	}
	if host == "http://127.0.0.1:11434" || comfy == "http://127.0.0.1:8188" {
		t.Fatal("the default ports: not the services the stage started")
	}
	get(t, host+"/api/tags")
	get(t, comfy+"/system_stats")
	MARK
}
`

// TestServicesFromTheBuild: the integration stage builds ollama-ipex and
// comfyui-ipex (the report lacks them), starts them on free loopback ports,
// runs the suite against them and stops them with every process gone;
// a service that crashes mid-suite fails the stage with its log tail; one
// that never answers fails at the readiness deadline; a stage that times
// out still stops them.
func TestServicesFromTheBuild(t *testing.T) {
	testlib.OfflineNix(t)
	fakeOllama, fakeComfy := fakeServers(t)
	fifoDir := t.TempDir()
	crash := filepath.Join(fifoDir, "crash")
	never := filepath.Join(fifoDir, "never")
	hang := filepath.Join(fifoDir, "hang")
	for _, f := range []string{crash, never, hang} {
		require.NoError(t, syscall.Mkfifo(f, 0o600))
	}
	serveOllama := "exec " + fakeOllama + ` "$@"`
	// The stage starts ComfyUI as main.py takes it (--listen A --port P
	// --output-directory D); the fake knows the first two.
	serveComfy := `[ "$1 $3 $5" = "--listen --port --output-directory" ] || exit 64; exec ` + fakeComfy + ` --listen "$2" --port "$4"`
	host := stage.Host{DevRoot: t.TempDir(), Assume: []stage.Feature{stage.IntelGPU}}

	envFile := filepath.Join(fifoDir, "ollama.env")
	t.Setenv("GITHUB_TOKEN", "ghs_services_never")
	t.Setenv("SLACK_BOT_TOKEN", "xoxb-services-never")
	tests := []struct {
		name          string
		ollama, mark  string
		ready         time.Duration
		stageTimeout  time.Duration
		want          string
		wantChecks    map[string]string
		wantInDetails []string
	}{
		{name: "start, test, stop", ollama: serveOllama, want: stage.Passed,
			wantChecks: map[string]string{"integration.TestServices": stage.Passed}},
		{name: "credentials stay out", ollama: "export -p > " + envFile + "; " + serveOllama, want: stage.Passed},
		{name: "exits before ready", ollama: `echo "no GPU found"; exit 4`,
			want: stage.Failed, wantChecks: map[string]string{"services": stage.Failed},
			wantInDetails: []string{"ollama-ipex exited before it was ready (exit status 4)", "no GPU found"}},
		{name: "crash mid-suite",
			// The server runs until the suite writes to the FIFO; then the
			// service dies with a message, as a crashing server does.
			ollama: fakeOllama + ` "$@" & pid=$!; read _ < ` + crash + `; echo "SIGSEGV in the GPU driver"; kill -9 $pid; exit 3`,
			mark:   `if f, err := os.OpenFile("` + crash + `", os.O_WRONLY, 0); err == nil { f.WriteString("x\n"); f.Close() }`,
			want:   stage.Failed, wantChecks: map[string]string{"services": stage.Failed},
			wantInDetails: []string{"ollama-ipex exited during the suite (exit status 3)", "SIGSEGV in the GPU driver"}},
		{name: "never ready", ready: 2 * time.Second,
			// It ignores SIGTERM too: only the SIGKILL after the grace
			// period ends it.
			ollama: `trap '' TERM; echo "loading the model"; read _ < ` + never,
			want:   stage.Failed, wantChecks: map[string]string{"services": stage.Failed},
			wantInDetails: []string{"ollama-ipex was not ready within 2s", "loading the model"}},
		{name: "stage timeout", ollama: serveOllama, stageTimeout: 8 * time.Second,
			mark: `f, _ := os.Open("` + hang + `"); if f != nil { f.Close() }`,
			want: stage.TimedOut},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			suite := strings.Replace(liveSuite, "MARK", tt.mark, 1)
			dir := serviceFlake(t, tt.ollama, serveComfy, suite)
			var out bytes.Buffer
			env := &Env{Flake: dir, EngineKind: engine.KindHost, Systems: []string{"x86_64-linux"}, Host: host, Out: &out,
				Services: &ServiceOptions{ReadyTimeout: tt.ready, StopGrace: 2 * time.Second}}
			defer env.Close()
			opts := stage.Options{Host: host}
			if tt.stageTimeout > 0 {
				opts.Timeouts = map[string]time.Duration{"integration": tt.stageTimeout}
			}
			start := time.Now()
			o := stage.Run(t.Context(), &Integration{Env: env}, opts)
			took := time.Since(start)
			assert.Equal(t, tt.want, o.State, "%s\n%s", o.Reason, out.String())
			st := checkStates(o.Checks)
			for name, want := range tt.wantChecks {
				assert.Equal(t, want, st[name], name)
			}
			var details strings.Builder
			for _, c := range o.Checks {
				details.WriteString(c.Name + ": " + c.Detail + "\n")
			}
			for _, s := range tt.wantInDetails {
				assert.Contains(t, details.String(), s)
			}
			assert.Contains(t, out.String(), "building packages.x86_64-linux.ollama-ipex: the build report does not list it")
			assert.Regexp(t, `started ollama-ipex \(/nix/store/[^)]+/bin/ollama\) on http://127\.0\.0\.1:\d+`, out.String())
			if m := regexp.MustCompile(`log (\S+)/ollama-ipex\.log`).FindStringSubmatch(out.String()); assert.NotNil(t, m) {
				assert.NoDirExists(t, m[1], "the scratch state directory is removed")
			}
			if tt.ready > 0 {
				assert.Less(t, took, tt.ready+30*time.Second, "the deadline bounds the wait")
			}
			if tt.name == "credentials stay out" {
				data, err := os.ReadFile(envFile)
				require.NoError(t, err)
				assert.Contains(t, string(data), "OLLAMA_MODELS=", "the service's own settings arrive")
				assert.NotContains(t, string(data), "GITHUB_TOKEN")
				assert.NotContains(t, string(data), "SLACK_BOT_TOKEN")
			}
			// Every process of the services is gone: the fakes, and the
			// wrapper scripts around them.
			assert.Empty(t, testlib.PidsWith(fakeOllama), "no fake Ollama left")
			assert.Empty(t, testlib.PidsWith(fakeComfy), "no fake ComfyUI left")
			assert.Empty(t, testlib.PidsWith(never), "no never-ready service left")
		})
	}
}

// modelSuite checks the model the stage hands the suites.
const modelSuite = `package integration

import (
	"os"
	"testing"
)

func TestModel(t *testing.T) {
	if got := os.Getenv("OLLAMA_MODEL"); got != "WANT" {
		t.Fatalf("OLLAMA_MODEL is %q", got)
	}
}
`

// TestServicesModel: --model names a model the server has (used as is),
// one it lacks (pulled; the offline server's refusal fails the stage with
// the fix), or a local file (imported with the service's `ollama create`).
func TestServicesModel(t *testing.T) {
	testlib.OfflineNix(t)
	fakeOllama, fakeComfy := fakeServers(t)
	created := filepath.Join(t.TempDir(), "created")
	gguf := filepath.Join(t.TempDir(), "tiny.gguf")
	require.NoError(t, os.WriteFile(gguf, []byte("GGUF"), 0o644))
	// `ollama create` is recorded; everything else is the fake server.
	ollama := `if [ "$1" = create ]; then echo "$@" > ` + created + `; exit 0; fi; exec ` + fakeOllama + ` "$@"`
	comfy := `exec ` + fakeComfy + ` --listen "$2" --port "$4"`
	host := stage.Host{DevRoot: t.TempDir(), Assume: []stage.Feature{stage.IntelGPU}}
	for _, tt := range []struct {
		name, model, want string
		state             string
		detail            string
	}{
		{name: "a model the server has", model: "llama3.2:3b", want: "llama3.2:3b", state: stage.Passed},
		{name: "a model to pull", model: "absent:7b", state: stage.Failed,
			detail: "pulling --model absent:7b failed (500 Internal Server Error)"},
		{name: "a local file to import", model: gguf, want: "tiny", state: stage.Passed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := serviceFlake(t, ollama, comfy, strings.Replace(modelSuite, "WANT", tt.want, 1))
			var out bytes.Buffer
			env := &Env{Flake: dir, EngineKind: engine.KindHost, Systems: []string{"x86_64-linux"}, Host: host, Out: &out,
				Services: &ServiceOptions{Model: tt.model, StopGrace: 2 * time.Second}}
			defer env.Close()
			o := stage.Run(t.Context(), &Integration{Env: env}, stage.Options{Host: host})
			assert.Equal(t, tt.state, o.State, "%s\n%s", o.Reason, out.String())
			var details strings.Builder
			for _, c := range o.Checks {
				details.WriteString(c.Name + ": " + c.Detail + "\n")
			}
			if tt.detail != "" {
				assert.Contains(t, details.String(), tt.detail)
				assert.Contains(t, details.String(), "registry.ollama.ai")
				assert.Contains(t, details.String(), "pass --model with a local GGUF file")
			}
			if tt.model == gguf {
				data, err := os.ReadFile(created)
				require.NoError(t, err)
				assert.Regexp(t, `^create tiny -f /\S+/Modelfile\n$`, string(data))
			}
			assert.Empty(t, testlib.PidsWith(fakeOllama))
		})
	}
}

// TestPerformanceOnServicesFromTheBuild: the performance stage measures
// the services it started from the build and stops them afterwards.
func TestPerformanceOnServicesFromTheBuild(t *testing.T) {
	testlib.OfflineNix(t)
	fakeOllama, fakeComfy := fakeServers(t)
	dir := serviceFlake(t, "exec "+fakeOllama+` "$@"`, "exec "+fakeComfy+` --listen "$2" --port "$4"`, "package integration\n")
	host := stage.Host{Assume: []stage.Feature{stage.IntelGPU, stage.BigMemory}}
	var out bytes.Buffer
	env := &Env{Flake: dir, EngineKind: engine.KindHost, Systems: []string{"x86_64-linux"}, Host: host, Out: &out,
		Services: &ServiceOptions{StopGrace: 2 * time.Second}}
	defer env.Close()
	s := &Performance{Env: env, Users: 4, Requests: 4, Images: 1}
	o := stage.Run(t.Context(), s, stage.Options{Host: host})
	require.NotNil(t, s.Results, "%s\n%s", o.Reason, out.String())
	assert.Equal(t, 4, s.Results.Users)
	assert.Contains(t, out.String(), "started ollama-ipex")
	assert.Contains(t, out.String(), "started comfyui-ipex")
	assert.Empty(t, testlib.PidsWith(fakeOllama))
	assert.Empty(t, testlib.PidsWith(fakeComfy))
}
