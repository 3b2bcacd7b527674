package stages

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipex-flake/ipex-flake/pipelines/stage"
	"github.com/ipex-flake/ipex-flake/tests/fakes"
	"github.com/ipex-flake/ipex-flake/tests/integration/apiclient"
	"github.com/ipex-flake/ipex-flake/tests/performance"
)

// Performance is the performance stage: the tests/performance harness
// against the running Ollama (OLLAMA_HOST, OLLAMA_MODEL) and ComfyUI
// (COMFYUI_URL, COMFYUI_WORKFLOW), the Phase 4 targets, and a comparison
// with the baseline (the previous accepted run's JSON).
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

// Run implements stage.Stage.
func (s *Performance) Run(ctx context.Context) error {
	s.Collector.Out = s.Env.out()
	cfg := performance.Config{
		Ollama: apiclient.NewOllama(s.Env.getenv("OLLAMA_HOST")),
		Model:  s.Env.getenv("OLLAMA_MODEL"),
		Users:  s.Users, Requests: s.Requests,
	}
	comfy := apiclient.NewComfyUI(s.Env.getenv("COMFYUI_URL"))
	if _, err := comfy.SystemStats(ctx); err != nil {
		s.Fail("images/min", fmt.Sprintf("ComfyUI at %s: %v", comfy.BaseURL, err), 0)
	} else {
		cfg.ComfyUI, cfg.Images, cfg.ImageUsers = comfy, s.Images, min(4, s.Users)
		cfg.Workflow = fakes.Workflow()
		if p := s.Env.getenv("COMFYUI_WORKFLOW"); p != "" {
			wf, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("COMFYUI_WORKFLOW: %w", err)
			}
			cfg.Workflow = wf
		}
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
	summary := fmt.Sprintf("ttft p50 %.0f ms p95 %.0f ms, total p95 %.0f ms, %.1f tokens/s, %d users",
		r.TTFT.P50, r.TTFT.P95, r.Total.P95, r.TokensPerSec, r.Users)
	if miss := r.CheckTargets(s.Targets); len(miss) > 0 {
		s.Fail("targets", strings.Join(miss, "; "), time.Since(start))
	} else {
		s.Pass("targets", summary, time.Since(start))
	}
	if cfg.ComfyUI != nil {
		s.Pass("images/min", fmt.Sprintf("%.2f images/min, p95 %.0f ms", r.ImagesPerMin, r.ImageLatency.P95), 0)
	}
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
	return s.Err()
}
