package quality

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/childenv"
	"github.com/ipex-flake/ipex-flake/internal/procgroup"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/host"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
	"github.com/ipex-flake/ipex-flake/tests/integration/apiclient"
)

// The packages the integration and performance stages test, as the flake
// names them, and the programs they run.
const (
	OllamaPackage  = "ollama-ipex"
	ComfyUIPackage = "comfyui-ipex"
)

// ServiceOptions say where the integration and performance stages get the
// services they test.
type ServiceOptions struct {
	// External tests the services already running at OLLAMA_HOST and
	// COMFYUI_URL instead of starting them from the build; the results
	// then record "external service".
	External bool
	// Report is the build report whose ollama-ipex and comfyui-ipex out
	// paths are started (built first when it lacks them).
	Report *report.Report
	// Model is the Ollama model the suites use: a name to pull, or a
	// local file (GGUF) to import. Empty: the server's first model.
	Model string
	// ReadyTimeout bounds the wait for a started service to answer
	// (default 2 minutes).
	ReadyTimeout time.Duration
	// StopGrace is the time between SIGTERM and SIGKILL (default 10s).
	StopGrace time.Duration
}

// Services are the services under test, running.
type Services struct {
	// OllamaURL and ComfyUIURL are the base URLs of the services.
	OllamaURL, ComfyUIURL string
	// Model is the model the suites use ("" for the server's first).
	Model string
	// External is set when the services were not started here.
	External bool
	procs    []*serviceProc
	dir      string
}

// Env returns the variables that point the suites at the services.
func (s *Services) Env() map[string]string {
	env := map[string]string{"OLLAMA_HOST": s.OllamaURL, "COMFYUI_URL": s.ComfyUIURL}
	if s.Model != "" {
		env["OLLAMA_MODEL"] = s.Model
	}
	return env
}

// Crashed returns, for every started service that has exited, its name,
// how it ended and the tail of its log.
func (s *Services) Crashed() []string {
	var out []string
	for _, p := range s.procs {
		select {
		case <-p.proc.Done():
			out = append(out, fmt.Sprintf("%s exited during the suite (%v); its log ends: %s", p.name, p.exitErr(), p.logTail(8)))
		default:
		}
	}
	return out
}

// Stop stops every started service: SIGTERM to its process group, SIGKILL
// after the grace period, and waits until no process of the group is
// left. The scratch state directory is removed.
func (s *Services) Stop() error {
	var errs []error
	for _, p := range s.procs {
		if err := p.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	s.procs = nil
	if s.dir != "" {
		if err := os.RemoveAll(s.dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// StartServices starts ollama-ipex and comfyui-ipex from the build report
// on free loopback ports with a scratch state directory, waits until both
// answer, and prepares the model. With External it returns the running
// services at OLLAMA_HOST and COMFYUI_URL. On error nothing is left
// running.
func (e *Env) StartServices(ctx context.Context) (*Services, error) {
	o := e.Services
	if o == nil {
		o = &ServiceOptions{}
	}
	if o.External {
		return e.externalServices(o), nil
	}
	ollamaOut, err := e.serviceOutPath(ctx, OllamaPackage)
	if err != nil {
		return nil, err
	}
	comfyOut, err := e.serviceOutPath(ctx, ComfyUIPackage)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ipex-services-")
	if err != nil {
		return nil, err
	}
	s := &Services{dir: dir, Model: o.Model}
	specs, err := e.serviceSpecs(s, ollamaOut, comfyOut)
	if err == nil {
		err = s.start(ctx, specs, o, e.out())
	}
	if err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// externalServices are the services already running at OLLAMA_HOST and
// COMFYUI_URL.
func (e *Env) externalServices(o *ServiceOptions) *Services {
	model := o.Model
	if model == "" {
		model = e.getenv("OLLAMA_MODEL")
	}
	return &Services{OllamaURL: apiclient.NormalizeOllamaHost(e.getenv("OLLAMA_HOST")),
		ComfyUIURL: apiclient.NewComfyUI(e.getenv("COMFYUI_URL")).BaseURL, Model: model, External: true}
}

// serviceSpec is how one service under test is started and when it is
// ready: when probe answers 200.
type serviceSpec struct {
	name, bin string
	args, env []string
	probe     string
}

// serviceSpecs picks free loopback ports for s, finds the programs in the
// out paths and returns how to start ollama-ipex (first) and comfyui-ipex
// with their state under s.dir.
func (e *Env) serviceSpecs(s *Services, ollamaOut, comfyOut string) ([]serviceSpec, error) {
	ollamaPort, err := freePort()
	if err != nil {
		return nil, err
	}
	comfyPort, err := freePort()
	if err != nil {
		return nil, err
	}
	s.OllamaURL = "http://127.0.0.1:" + strconv.Itoa(ollamaPort)
	s.ComfyUIURL = "http://127.0.0.1:" + strconv.Itoa(comfyPort)
	ollamaBin, err := mainProgram(ollamaOut, "ollama")
	if err != nil {
		return nil, err
	}
	comfyBin, err := mainProgram(comfyOut, "comfyui")
	if err != nil {
		return nil, err
	}
	dir := s.dir
	ollamaEnv := []string{
		"HOME=" + filepath.Join(dir, "ollama"),
		"OLLAMA_HOST=127.0.0.1:" + strconv.Itoa(ollamaPort),
		"OLLAMA_MODELS=" + filepath.Join(dir, "ollama", "models"),
	}
	for _, k := range []string{"OLLAMA_NUM_PARALLEL", "OLLAMA_MAX_QUEUE"} {
		if v := e.getenv(k); v != "" {
			ollamaEnv = append(ollamaEnv, k+"="+v)
		}
	}
	return []serviceSpec{
		{OllamaPackage, ollamaBin, []string{"serve"}, ollamaEnv, s.OllamaURL + "/api/version"},
		{ComfyUIPackage, comfyBin, []string{"--listen", "127.0.0.1", "--port", strconv.Itoa(comfyPort),
			"--output-directory", filepath.Join(dir, "comfyui", "output")},
			[]string{"HOME=" + filepath.Join(dir, "comfyui"), "COMFYUI_USER_DIR=" + filepath.Join(dir, "comfyui", "user")},
			s.ComfyUIURL + "/system_stats"},
	}, nil
}

// start starts the services of specs, waits until all answer (within
// o.ReadyTimeout, default 2 minutes) and prepares the model with the first
// one, ollama-ipex. What it started stays in s for Stop.
func (s *Services) start(ctx context.Context, specs []serviceSpec, o *ServiceOptions, out io.Writer) error {
	ready := o.ReadyTimeout
	if ready <= 0 {
		ready = 2 * time.Minute
	}
	for _, sp := range specs {
		p, err := startService(sp.name, sp.bin, sp.args, sp.env, s.dir, o.StopGrace)
		if err != nil {
			return err
		}
		s.procs = append(s.procs, p)
		fmt.Fprintf(out, "started %s (%s) on %s, log %s\n", sp.name, sp.bin, strings.TrimSuffix(strings.TrimSuffix(sp.probe, "/api/version"), "/system_stats"), p.logPath)
		p.probe = sp.probe
	}
	deadline := time.Now().Add(ready)
	for _, p := range s.procs {
		if err := p.waitReady(ctx, deadline, ready); err != nil {
			return err
		}
	}
	return s.prepareModel(ctx, specs[0].bin, specs[0].env)
}

// serviceOutPath returns the out path of packages.<system>.<name>: from the
// report when it lists one that exists, else built now.
func (e *Env) serviceOutPath(ctx context.Context, name string) (string, error) {
	sys := e.systems()[0]
	attr := "packages." + sys + "." + name
	if e.Services != nil && e.Services.Report != nil {
		for _, o := range e.Services.Report.Outputs {
			if o.Attr == attr && len(o.OutPaths) > 0 {
				if _, err := os.Stat(o.OutPaths[0]); err == nil {
					return o.OutPaths[0], nil
				}
			}
		}
	}
	// Services run on this machine: build with the host's nix.
	ref := e.flake()
	if dir := e.Dir(); dir != "" {
		ref = dir
	}
	fmt.Fprintf(e.out(), "building %s: the build report does not list it\n", attr)
	eng, err := host.New(engine.Options{Source: e.Dir()})
	if err != nil {
		return "", err
	}
	defer eng.Close()
	var stdout, stderr bytes.Buffer
	res, err := eng.Run(ctx, engine.Cmd{Args: nixcli.Nix("build", "--no-link", "--json", ref+"#"+attr), Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		return "", err
	}
	if res.ExitCode != 0 {
		return "", fmt.Errorf("building %s for the services under test failed: %s", attr, tail(stderr.String(), 4))
	}
	var built []struct {
		Outputs map[string]string `json:"outputs"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &built); err != nil || len(built) == 0 || built[0].Outputs["out"] == "" {
		return "", fmt.Errorf("building %s: nix build printed no out path", attr)
	}
	return built[0].Outputs["out"], nil
}

// mainProgram is out/bin/<name>, or the only program in out/bin.
func mainProgram(out, name string) (string, error) {
	p := filepath.Join(out, "bin", name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	ents, err := os.ReadDir(filepath.Join(out, "bin"))
	if err == nil && len(ents) == 1 {
		return filepath.Join(out, "bin", ents[0].Name()), nil
	}
	return "", fmt.Errorf("%s has no bin/%s to start", out, name)
}

// freePort returns a TCP port that was free on 127.0.0.1.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// prepareModel pulls Model (a name the server lacks) or imports it (a local
// file) with the service's own CLI.
func (s *Services) prepareModel(ctx context.Context, ollamaBin string, ollamaEnv []string) error {
	if s.Model == "" {
		return nil
	}
	if st, err := os.Stat(s.Model); err == nil && !st.IsDir() {
		abs, err := filepath.Abs(s.Model)
		if err != nil {
			return err
		}
		name := strings.TrimSuffix(filepath.Base(abs), filepath.Ext(abs))
		modelfile := filepath.Join(s.dir, "Modelfile")
		if err := os.WriteFile(modelfile, []byte("FROM "+abs+"\n"), 0o644); err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, ollamaBin, "create", name, "-f", modelfile)
		cmd.Env = childenv.Environ(ollamaEnv...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("importing --model %s with `ollama create`: %v: %s", s.Model, err, tail(out.String(), 4))
		}
		s.Model = name
		return nil
	}
	c := apiclient.NewOllama(s.OllamaURL)
	models, err := c.Tags(ctx)
	if err != nil {
		return fmt.Errorf("listing the models of %s: %v", OllamaPackage, err)
	}
	for _, m := range models {
		if sameModel(m.Name, s.Model) {
			return nil
		}
	}
	body, _ := json.Marshal(map[string]any{"model": s.Model, "stream": false})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.OllamaURL+"/api/pull", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("pulling --model %s: %v", s.Model, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pulling --model %s failed (%s): %s; pass --model with a local GGUF file to import instead",
			s.Model, resp.Status, strings.TrimSpace(string(data)))
	}
	return nil
}

// sameModel compares model names as Ollama does: "name" is "name:latest".
func sameModel(a, b string) bool {
	norm := func(s string) string {
		if !strings.Contains(s, ":") {
			s += ":latest"
		}
		return s
	}
	return norm(a) == norm(b)
}

// serviceProc is one started service, leader of its own process group.
type serviceProc struct {
	name, probe, logPath string
	proc                 *procgroup.Process
	grace                time.Duration
}

func startService(name, bin string, args, env []string, dir string, grace time.Duration) (*serviceProc, error) {
	if grace <= 0 {
		grace = 10 * time.Second
	}
	sdir := filepath.Join(dir, strings.TrimSuffix(name, "-ipex"))
	if err := os.MkdirAll(sdir, 0o700); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	// The service writes to its own copy of the log file.
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = sdir
	cmd.Env = childenv.Environ(env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	proc, err := procgroup.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	return &serviceProc{name: name, logPath: logPath, proc: proc, grace: grace}, nil
}

func (p *serviceProc) exitErr() error {
	if err := p.proc.Err(); err != nil {
		return err
	}
	return errors.New("exit status 0")
}

func (p *serviceProc) logTail(n int) string {
	data, _ := os.ReadFile(p.logPath)
	t := tail(string(data), n)
	if t == "" {
		return "(empty)"
	}
	return t
}

// waitReady polls the service's probe URL until it answers 200, the
// service exits, or the deadline passes.
func (p *serviceProc) waitReady(ctx context.Context, deadline time.Time, limit time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.probe, nil)
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.proc.Done():
			return fmt.Errorf("%s exited before it was ready (%v); its log ends: %s", p.name, p.exitErr(), p.logTail(8))
		case <-timer.C:
			return fmt.Errorf("%s was not ready within %s (%s did not answer); its log ends: %s", p.name, limit, p.probe, p.logTail(8))
		case <-tick.C:
		}
	}
}

// stop ends the process group and waits until none of it is left.
func (p *serviceProc) stop() error {
	if err := p.proc.Stop(p.grace); err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	return nil
}
