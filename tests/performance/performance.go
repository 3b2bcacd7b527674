// Package performance is the performance harness: latency (p50/p95 of time
// to first token and of the whole answer), throughput (tokens/s,
// images/min) under N concurrent users, results as JSON, and a comparison
// with a stored baseline that fails beyond a tolerance. The Phase 4 targets
// are checked too: first token under 2 s for standard models, 100+
// concurrent users without errors.
package performance

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/ipex-flake/ipex-flake/pipelines/report"
	"github.com/ipex-flake/ipex-flake/tests/integration/apiclient"
)

//go:embed txt2img.json
var defaultWorkflow []byte

// DefaultWorkflow is the ComfyUI API-format txt2img workflow measured when
// none is given (COMFYUI_WORKFLOW): SD 1.5 (v1-5-pruned-emaonly), 512x512,
// 20 steps.
func DefaultWorkflow() json.RawMessage { return append(json.RawMessage(nil), defaultWorkflow...) }

// Config is one measurement.
type Config struct {
	Ollama *apiclient.Ollama
	// Model is the Ollama model (default: the first of /api/tags).
	Model  string
	Prompt string
	// MaxTokens caps each answer (num_predict).
	MaxTokens int
	// Users is the number of concurrent clients; Requests the total number
	// of LLM requests they share.
	Users, Requests int

	// ComfyUI (nil: no image measurement) and the API-format workflow.
	ComfyUI  *apiclient.ComfyUI
	Workflow json.RawMessage
	// Images is the number of images; ImageUsers the concurrent clients.
	Images, ImageUsers int
}

// Latency is a distribution in milliseconds.
type Latency struct {
	P50 float64 `json:"p50Ms"`
	P95 float64 `json:"p95Ms"`
	Max float64 `json:"maxMs"`
}

// Results is the JSON document of one run.
type Results struct {
	Time     time.Time `json:"time"`
	Model    string    `json:"model,omitempty"`
	Users    int       `json:"users"`
	Requests int       `json:"requests"`
	Errors   int       `json:"errors"`
	// TTFT is the time to the first streamed token; Total to the last.
	TTFT         Latency `json:"ttft"`
	Total        Latency `json:"total"`
	TokensPerSec float64 `json:"tokensPerSec"`
	Images       int     `json:"images,omitempty"`
	ImageErrors  int     `json:"imageErrors,omitempty"`
	ImageLatency Latency `json:"imageLatency,omitempty"`
	ImagesPerMin float64 `json:"imagesPerMin,omitempty"`
	// FirstError is one error message, to say what went wrong.
	FirstError string `json:"firstError,omitempty"`
}

// Percentile returns the p-th percentile (0..100) by nearest rank.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(math.Ceil(p/100*float64(len(s)))) - 1
	rank = max(0, min(rank, len(s)-1))
	return s[rank]
}

func latency(ds []time.Duration) Latency {
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Millisecond)*100) / 100 }
	return Latency{P50: ms(Percentile(ds, 50)), P95: ms(Percentile(ds, 95)), Max: ms(Percentile(ds, 100))}
}

// Run measures the configured services.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if cfg.Users < 1 || cfg.Requests < 1 {
		return nil, errors.New("users and requests must be at least 1")
	}
	if cfg.Prompt == "" {
		cfg.Prompt = "Explain in three sentences what a GPU does."
	}
	if cfg.MaxTokens == 0 {
		cfg.MaxTokens = 128
	}
	if cfg.Model == "" {
		models, err := cfg.Ollama.Tags(ctx)
		if err != nil {
			return nil, fmt.Errorf("Ollama at %s: %w", cfg.Ollama.BaseURL, err)
		}
		if len(models) == 0 {
			return nil, fmt.Errorf("Ollama at %s has no models: pull one or name one", cfg.Ollama.BaseURL)
		}
		cfg.Model = models[0].Name
	}
	r := &Results{Time: time.Now().UTC(), Model: cfg.Model, Users: cfg.Users, Requests: cfg.Requests}
	var mu sync.Mutex
	var ttft, total []time.Duration
	var tokens int
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		r.Errors++
		if r.FirstError == "" {
			r.FirstError = err.Error()
		}
	}
	start := time.Now()
	parallel(cfg.Users, cfg.Requests, func() {
		t0 := time.Now()
		var first time.Duration
		final, err := cfg.Ollama.Generate(ctx, apiclient.GenerateRequest{Model: cfg.Model, Prompt: cfg.Prompt,
			Options: map[string]any{"num_predict": cfg.MaxTokens}}, func(ch apiclient.GenerateChunk) error {
			if first == 0 && ch.Response != "" {
				first = time.Since(t0)
			}
			return nil
		})
		if err != nil {
			fail(err)
			return
		}
		d := time.Since(t0)
		mu.Lock()
		ttft = append(ttft, first)
		total = append(total, d)
		tokens += final.EvalCount
		mu.Unlock()
	})
	wall := time.Since(start)
	r.TTFT, r.Total = latency(ttft), latency(total)
	if wall > 0 {
		r.TokensPerSec = math.Round(float64(tokens)/wall.Seconds()*100) / 100
	}
	if cfg.ComfyUI != nil && cfg.Images > 0 {
		if err := images(ctx, cfg, r); err != nil {
			return r, err
		}
	}
	return r, ctx.Err()
}

func images(ctx context.Context, cfg Config, r *Results) error {
	users := max(1, min(cfg.ImageUsers, cfg.Images))
	var mu sync.Mutex
	var lat []time.Duration
	start := time.Now()
	jobs := make(chan struct{}, cfg.Images)
	for range cfg.Images {
		jobs <- struct{}{}
	}
	close(jobs)
	var wg sync.WaitGroup
	for range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := cfg.ComfyUI.Watch(ctx, apiclient.NewClientID())
			if err != nil {
				mu.Lock()
				r.ImageErrors++
				if r.FirstError == "" {
					r.FirstError = err.Error()
				}
				mu.Unlock()
				return
			}
			defer w.Close()
			for range jobs {
				t0 := time.Now()
				q, err := cfg.ComfyUI.QueuePrompt(ctx, cfg.Workflow, w.ClientID)
				if err == nil {
					err = w.Wait(ctx, q.PromptID, nil)
				}
				mu.Lock()
				if err != nil {
					r.ImageErrors++
					if r.FirstError == "" {
						r.FirstError = err.Error()
					}
				} else {
					lat = append(lat, time.Since(t0))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	r.Images = len(lat)
	r.ImageLatency = latency(lat)
	if wall > 0 {
		r.ImagesPerMin = math.Round(float64(len(lat))/wall.Minutes()*100) / 100
	}
	return nil
}

// parallel runs n calls of fn on users goroutines.
func parallel(users, n int, fn func()) {
	jobs := make(chan struct{}, n)
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	var wg sync.WaitGroup
	for range min(users, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				fn()
			}
		}()
	}
	wg.Wait()
}

// Targets are absolute limits every run must meet.
type Targets struct {
	// TTFTP95 is the p95 time to first token (Phase 4: under 2 s).
	TTFTP95 time.Duration
	// MinUsers is the concurrency the run must have used (Phase 4: 100+).
	MinUsers int
}

// DefaultTargets are the Phase 4 targets.
var DefaultTargets = Targets{TTFTP95: 2 * time.Second, MinUsers: 100}

// CheckTargets lists the targets r misses.
func (r *Results) CheckTargets(t Targets) []string {
	var out []string
	if r.Errors > 0 || r.ImageErrors > 0 {
		out = append(out, fmt.Sprintf("%d of %d requests and %d images failed: %s", r.Errors, r.Requests, r.ImageErrors, r.FirstError))
	}
	if t.TTFTP95 > 0 && r.TTFT.P95 > float64(t.TTFTP95.Milliseconds()) {
		out = append(out, fmt.Sprintf("p95 time to first token %.0f ms, target under %s", r.TTFT.P95, t.TTFTP95))
	}
	if r.Users < t.MinUsers {
		out = append(out, fmt.Sprintf("measured with %d concurrent users, target %d+", r.Users, t.MinUsers))
	}
	return out
}

// Compare lists the regressions of cur against base beyond tolerance (0.2 =
// 20% worse): latencies may grow, throughputs may shrink, by at most that.
func Compare(base, cur *Results, tolerance float64) []string {
	var out []string
	worseUp := func(name string, b, c float64) {
		if b > 0 && c > b*(1+tolerance) {
			out = append(out, fmt.Sprintf("%s %.1f ms vs baseline %.1f ms (+%.0f%%, tolerance %.0f%%)", name, c, b, (c/b-1)*100, tolerance*100))
		}
	}
	worseDown := func(name string, b, c float64) {
		if b > 0 && c < b*(1-tolerance) {
			out = append(out, fmt.Sprintf("%s %.2f vs baseline %.2f (-%.0f%%, tolerance %.0f%%)", name, c, b, (1-c/b)*100, tolerance*100))
		}
	}
	worseUp("ttft p50", base.TTFT.P50, cur.TTFT.P50)
	worseUp("ttft p95", base.TTFT.P95, cur.TTFT.P95)
	worseUp("total p50", base.Total.P50, cur.Total.P50)
	worseUp("total p95", base.Total.P95, cur.Total.P95)
	worseDown("tokens/s", base.TokensPerSec, cur.TokensPerSec)
	worseUp("image p95", base.ImageLatency.P95, cur.ImageLatency.P95)
	worseDown("images/min", base.ImagesPerMin, cur.ImagesPerMin)
	return out
}

// Write stores r as indented JSON, atomically.
func (r *Results) Write(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return report.WriteFileAtomic(path, append(data, '\n'), 0o644)
}

// Read reads results written by Write (a baseline).
func Read(path string) (*Results, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s is not a performance results file: %w", path, err)
	}
	return &r, nil
}
