package quality

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ipex-flake/ipex-flake/pipelines/stage"
	"github.com/ipex-flake/ipex-flake/tests/integration/apiclient"
	"github.com/ipex-flake/ipex-flake/tests/performance"
)

// Performance is the performance stage: the tests/performance harness
// against the running Ollama (OLLAMA_HOST, OLLAMA_MODEL, OLLAMA_THINK=1 to
// let the model think) and ComfyUI (COMFYUI_URL, COMFYUI_WORKFLOW), the
// Phase 4 targets, and a comparison with the baseline (the previous
// accepted run's JSON).
//
// The server's concurrency is the setting it runs with: Parallel and
// MaxQueue, else OLLAMA_NUM_PARALLEL and OLLAMA_MAX_QUEUE in the stage's
// environment (the variables services.ollama-ipex sets). When it is known
// and the users exceed it the stage fails with that reason before
// loading the server; when it is not, the run's observed concurrency
// (answers streamed at once) names the reason of a missed users target.
type Performance struct {
	Env *Env
	// Baseline and Out are paths relative to the flake directory.
	Baseline, Out string
	// Tolerance is the allowed regression (0.2 = 20%).
	Tolerance       float64
	Users, Requests int
	// Images is the number of images to generate (default 10).
	Images  int
	Targets performance.Targets
	// Parallel and MaxQueue are the Ollama server's OLLAMA_NUM_PARALLEL
	// and OLLAMA_MAX_QUEUE (0: read from the environment; unknown when
	// unset there too).
	Parallel, MaxQueue int

	// Results of the last run.
	Results *performance.Results
	stage.Collector
}

var _ stage.Checker = (*Performance)(nil)

// Name implements stage.Stage.
func (s *Performance) Name() string { return "performance" }

// Default implements stage.Defaulter.
func (s *Performance) Default() error {
	if s.Users == 0 {
		s.Users = 100
	}
	if s.Requests == 0 {
		s.Requests = 200
	}
	if s.Images == 0 {
		s.Images = 10
	}
	if s.Out == "" {
		s.Out = "performance-results.json"
	}
	if s.Targets == (performance.Targets{}) {
		s.Targets = performance.DefaultTargets
	}
	if s.Tolerance < 0 {
		return errors.New("tolerance must be 0 or more")
	}
	return nil
}

func (s *Performance) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	dir := s.Env.Dir()
	if dir == "" {
		dir = "."
	}
	return filepath.Join(dir, p)
}

// concurrency is the server's OLLAMA_NUM_PARALLEL and OLLAMA_MAX_QUEUE:
// the fields, else the environment; 0 when unknown.
func (s *Performance) concurrency() (parallel, maxQueue int, err error) {
	read := func(field int, name string) (int, error) {
		if field > 0 {
			return field, nil
		}
		v := strings.TrimSpace(s.Env.getenv(name))
		if v == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s=%q is not a number of requests: set it as the Ollama service has it", name, v)
		}
		return n, nil
	}
	if parallel, err = read(s.Parallel, "OLLAMA_NUM_PARALLEL"); err != nil {
		return 0, 0, err
	}
	maxQueue, err = read(s.MaxQueue, "OLLAMA_MAX_QUEUE")
	return parallel, maxQueue, err
}

// Run implements stage.Stage.
func (s *Performance) Run(ctx context.Context) (err error) {
	s.Collector.Out = s.Env.out()
	parallel, maxQueue, err := s.concurrency()
	if err != nil {
		return err
	}
	if err := performance.CheckCapacity(s.Users, parallel, maxQueue); err != nil {
		s.Fail("concurrency", err.Error(), 0)
		return s.Err()
	}
	svc, err := s.Env.StartServices(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.Fail("services", err.Error(), 0)
		return s.Err()
	}
	defer func() {
		s.stopServices(svc)
		if err == nil {
			err = s.Err()
		}
	}()
	cfg, err := s.config(ctx, svc)
	if err != nil {
		return err
	}
	start := time.Now()
	r, err := performance.Run(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.Fail("latency", err.Error(), time.Since(start))
		return s.Err()
	}
	s.Results = r
	if err := r.Write(s.path(s.Out)); err != nil {
		return err
	}
	s.judge(r, parallel, cfg.ComfyUI != nil, time.Since(start))
	s.compareBaseline(r)
	return s.Err()
}

// stopServices stops the services under test. A service that died during
// the measurement fails the stage with its log tail, whatever the numbers
// said.
func (s *Performance) stopServices(svc *Services) {
	for _, c := range svc.Crashed() {
		s.Fail("services", c, 0)
	}
	if err := svc.Stop(); err != nil {
		s.Fail("services", "stopping: "+err.Error(), 0)
	}
}

// config is the measurement of the running services: Ollama always,
// ComfyUI (with COMFYUI_WORKFLOW or the default workflow) when it answers.
func (s *Performance) config(ctx context.Context, svc *Services) (performance.Config, error) {
	cfg := performance.Config{
		Ollama: apiclient.NewOllama(svc.OllamaURL),
		Model:  svc.Model,
		Users:  s.Users, Requests: s.Requests,
		TTFTTarget: s.Targets.TTFTP95,
	}
	cfg.Ollama.Think, _ = strconv.ParseBool(s.Env.getenv("OLLAMA_THINK"))
	comfy := apiclient.NewComfyUI(svc.ComfyUIURL)
	if _, err := comfy.SystemStats(ctx); err != nil {
		s.Fail("images/min", fmt.Sprintf("ComfyUI at %s: %v", comfy.BaseURL, err), 0)
		return cfg, nil
	}
	cfg.ComfyUI, cfg.Images, cfg.ImageUsers = comfy, s.Images, min(4, s.Users)
	cfg.Workflow = performance.DefaultWorkflow()
	if p := s.Env.getenv("COMFYUI_WORKFLOW"); p != "" {
		wf, err := os.ReadFile(p)
		if err != nil {
			return cfg, fmt.Errorf("COMFYUI_WORKFLOW: %w", err)
		}
		cfg.Workflow = wf
	}
	return cfg, nil
}

// judge records the concurrency, target and images/min checks of result r
// (images only when ComfyUI was measured); took is the measurement's time.
func (s *Performance) judge(r *performance.Results, parallel int, images bool, took time.Duration) {
	summary := fmt.Sprintf("ttft p50 %.0f ms p95 %.0f ms, total p95 %.0f ms, load p95 %.0f ms, decode %.1f tokens/s per request, %.1f tokens/s in all, %d of %d users served within %.0f ms",
		r.TTFT.P50, r.TTFT.P95, r.Total.P95, r.Load.P95, r.DecodeTokensPerSec.P50, r.ThroughputTokensPerSec, r.UsersServed, r.Users, r.TTFTTargetMs)
	switch {
	case parallel > 0:
		s.Pass("concurrency", fmt.Sprintf("%d users within OLLAMA_NUM_PARALLEL=%d; at most %d answers streamed at once", s.Users, parallel, r.PeakStreams), 0)
	case r.UsersServed < s.Targets.MinUsers && r.PeakStreams < s.Users:
		s.Fail("concurrency", fmt.Sprintf("the server streamed at most %d answers at once for %d users: its concurrency (OLLAMA_NUM_PARALLEL) is below the load; "+
			"set services.ollama-ipex.numParallel to %d or more (docs/tuning.md) and pass OLLAMA_NUM_PARALLEL to this stage", r.PeakStreams, s.Users, s.Users), 0)
	default:
		s.Pass("concurrency", fmt.Sprintf("at most %d answers streamed at once (OLLAMA_NUM_PARALLEL not given)", r.PeakStreams), 0)
	}
	if miss := r.CheckTargets(s.Targets); len(miss) > 0 {
		s.Fail("targets", strings.Join(miss, "; ")+" ("+summary+")", took)
	} else {
		s.Pass("targets", summary, took)
	}
	if images {
		s.Pass("images/min", fmt.Sprintf("%.2f images/min, p95 %.0f ms", r.ImagesPerMin, r.ImageLatency.P95), 0)
	}
}

// compareBaseline records the baseline check: r against the accepted
// results in Baseline, within Tolerance.
func (s *Performance) compareBaseline(r *performance.Results) {
	base, err := performance.Read(s.path(s.Baseline))
	switch {
	case s.Baseline == "" || errors.Is(err, os.ErrNotExist):
		s.SkipCheck("baseline", "no baseline yet: accept this run by copying "+s.Out+" to "+s.Baseline)
	case err != nil:
		s.Fail("baseline", err.Error(), 0)
	default:
		if reg := performance.Compare(base, r, s.Tolerance); len(reg) > 0 {
			s.Fail("baseline", strings.Join(reg, "; "), 0)
		} else {
			s.Pass("baseline", fmt.Sprintf("within %.0f%% of %s", s.Tolerance*100, s.Baseline), 0)
		}
	}
}
