// Package performance is the performance harness: after warming the model,
// latency (p50/p95 of time to first token, of the whole answer, and the
// server's load_duration apart), the per-request decode rate
// (eval_count/eval_duration) and the aggregate throughput (tokens/s over
// wall-clock time, images/min) under N concurrent users, results as JSON,
// and a comparison with a stored baseline that fails beyond a tolerance.
// An answer without text is an error, never a time to first token. The
// Phase 4 targets are checked too: first token under 2 s for standard
// models, 100+ concurrent users served within it.
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
	"sync/atomic"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/atomicfile"
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
	// Ollama is the server's client; its Think setting is sent with every
	// request (off unless set).
	Ollama *apiclient.Ollama
	// Model is the Ollama model (default: the first of /api/tags).
	Model  string
	Prompt string
	// MaxTokens caps each answer (num_predict).
	MaxTokens int
	// Users is the number of concurrent clients; Requests the total number
	// of LLM requests they share.
	Users, Requests int
	// TTFTTarget is the first-token latency a user must get on every
	// request to count as served (default DefaultTargets.TTFTP95).
	TTFTTarget time.Duration

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

// Rate is a distribution of per-request rates (tokens/s).
type Rate struct {
	P50 float64 `json:"p50"`
	Min float64 `json:"min"`
}

// Results is the JSON document of one run.
type Results struct {
	Time     time.Time `json:"time"`
	Model    string    `json:"model,omitempty"`
	Users    int       `json:"users"`
	Requests int       `json:"requests"`
	Errors   int       `json:"errors"`
	// WarmupMs is the time to load the model and answer one request
	// before the timed run (not part of any latency below).
	WarmupMs float64 `json:"warmupMs"`
	// TTFT is the time to the first streamed token, for answers with
	// text only (an answer without text is an error); Total to the last.
	TTFT  Latency `json:"ttft"`
	Total Latency `json:"total"`
	// Load is the server's load_duration of each request (loading the
	// model and scheduling it), apart from first-token latency.
	Load Latency `json:"load"`
	// DecodeTokensPerSec is each request's decode rate
	// (eval_count/eval_duration); ThroughputTokensPerSec is all requests'
	// eval_count over the run's wall-clock time.
	DecodeTokensPerSec     Rate    `json:"decodeTokensPerSec"`
	ThroughputTokensPerSec float64 `json:"throughputTokensPerSec"`
	// TTFTTargetMs and UsersServed: the users whose every request
	// succeeded with a first token within the target. This, not Users, is
	// the concurrency the server sustained.
	TTFTTargetMs float64 `json:"ttftTargetMs"`
	UsersServed  int     `json:"usersServed"`
	// PeakStreams is the most answers seen streaming at the same time: the
	// concurrency the server actually gave.
	PeakStreams  int     `json:"peakStreams"`
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

func ms(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Millisecond)*100) / 100 }

func latency(ds []time.Duration) Latency {
	return Latency{P50: ms(Percentile(ds, 50)), P95: ms(Percentile(ds, 95)), Max: ms(Percentile(ds, 100))}
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

func rate(rs []float64) Rate {
	if len(rs) == 0 {
		return Rate{}
	}
	s := append([]float64(nil), rs...)
	sort.Float64s(s)
	return Rate{P50: round2(s[int(math.Ceil(0.5*float64(len(s))))-1]), Min: round2(s[0])}
}

// ErrNoText is the error of an answer without text: it has no time to
// first token.
var ErrNoText = errors.New("the answer has no text, so no time to first token")

// CheckCapacity says whether the server can serve users at once: Ollama
// answers OLLAMA_NUM_PARALLEL requests at a time (parallel, 0 when
// unknown) and queues up to OLLAMA_MAX_QUEUE more (maxQueue, 0 when
// unknown); the others wait, and their first token waits with them.
func CheckCapacity(users, parallel, maxQueue int) error {
	if parallel <= 0 || users <= parallel {
		return nil
	}
	msg := fmt.Sprintf("%d concurrent users exceed the server's concurrency OLLAMA_NUM_PARALLEL=%d: the other requests queue and their time to first token grows with the queue; "+
		"set services.ollama-ipex.numParallel to %d or more (docs/tuning.md), or measure with --users %d", users, parallel, users, parallel)
	if maxQueue > 0 && users > parallel+maxQueue {
		msg += fmt.Sprintf("; beyond OLLAMA_MAX_QUEUE=%d waiting requests the server answers 503", maxQueue)
	}
	return errors.New(msg)
}

// span is one answer's streaming interval, for PeakStreams.
type span struct{ from, to time.Time }

func peak(spans []span) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var es []edge
	for _, s := range spans {
		es = append(es, edge{s.from, 1}, edge{s.to, -1})
	}
	sort.Slice(es, func(i, j int) bool {
		if es[i].at.Equal(es[j].at) {
			return es[i].delta < es[j].delta
		}
		return es[i].at.Before(es[j].at)
	})
	n, best := 0, 0
	for _, e := range es {
		n += e.delta
		best = max(best, n)
	}
	return best
}

// Run measures the configured services: it warms the model, then runs the
// timed requests.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if cfg.Users < 1 || cfg.Requests < 1 {
		return nil, errors.New("users and requests must be at least 1")
	}
	if err := cfg.defaults(ctx); err != nil {
		return nil, err
	}
	r := &Results{Time: time.Now().UTC(), Model: apiclient.NormalizeModel(cfg.Model), Users: cfg.Users, Requests: cfg.Requests,
		TTFTTargetMs: ms(cfg.TTFTTarget)}
	if err := warmUp(ctx, cfg, r); err != nil {
		return nil, err
	}
	measureText(ctx, cfg, r)
	if cfg.ComfyUI != nil && cfg.Images > 0 {
		if err := images(ctx, cfg, r); err != nil {
			return r, err
		}
	}
	return r, ctx.Err()
}

// defaults fills in the prompt, token limit, target and (from the
// server's models) the model.
func (cfg *Config) defaults(ctx context.Context) error {
	if cfg.Prompt == "" {
		cfg.Prompt = "Explain in three sentences what a GPU does."
	}
	if cfg.MaxTokens == 0 {
		cfg.MaxTokens = 128
	}
	if cfg.TTFTTarget == 0 {
		cfg.TTFTTarget = DefaultTargets.TTFTP95
	}
	if cfg.Model == "" {
		models, err := cfg.Ollama.Tags(ctx)
		if err != nil {
			return fmt.Errorf("Ollama at %s: %w", cfg.Ollama.BaseURL, err)
		}
		if len(models) == 0 {
			return fmt.Errorf("Ollama at %s has no models: pull one (ollama pull NAME) and name it with OLLAMA_MODEL", cfg.Ollama.BaseURL)
		}
		cfg.Model = models[0].Name
	}
	return nil
}

// warmUp loads the model, then answers once, so that neither the load
// nor first-use compilation counts as first-token latency.
func warmUp(ctx context.Context, cfg Config, r *Results) error {
	t0 := time.Now()
	if _, err := cfg.Ollama.Load(ctx, cfg.Model); err != nil {
		return fmt.Errorf("warming up %s: %w", cfg.Model, err)
	}
	if _, err := cfg.Ollama.Generate(ctx, apiclient.GenerateRequest{Model: cfg.Model, Prompt: cfg.Prompt,
		Options: map[string]any{"num_predict": 8}}, nil); err != nil {
		return fmt.Errorf("warming up %s: %w", cfg.Model, err)
	}
	r.WarmupMs = ms(time.Since(t0))

	return nil
}

// measureText runs the timed text requests: Users at once, Requests in all.
func measureText(ctx context.Context, cfg Config, r *Results) {
	var mu sync.Mutex
	var ttft, total, load []time.Duration
	var decode []float64
	var spans []span
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
	r.UsersServed = users(cfg.Users, cfg.Requests, func() bool {
		t0 := time.Now()
		var first time.Time
		final, err := cfg.Ollama.Generate(ctx, apiclient.GenerateRequest{Model: cfg.Model, Prompt: cfg.Prompt,
			Options: map[string]any{"num_predict": cfg.MaxTokens}}, func(ch apiclient.GenerateChunk) error {
			if first.IsZero() && ch.Response != "" {
				first = time.Now()
			}
			return nil
		})
		end := time.Now()
		if err == nil && first.IsZero() {
			err = fmt.Errorf("%w (done_reason %q, eval_count %d)", ErrNoText, final.DoneReason, final.EvalCount)
		}
		if err != nil {
			fail(err)
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		ttft = append(ttft, first.Sub(t0))
		total = append(total, end.Sub(t0))
		load = append(load, time.Duration(final.LoadDuration))
		spans = append(spans, span{first, end})
		tokens += final.EvalCount
		if final.EvalDuration > 0 {
			decode = append(decode, float64(final.EvalCount)/time.Duration(final.EvalDuration).Seconds())
		}
		return first.Sub(t0) <= cfg.TTFTTarget
	})
	wall := time.Since(start)
	r.TTFT, r.Total, r.Load = latency(ttft), latency(total), latency(load)
	r.DecodeTokensPerSec = rate(decode)
	r.PeakStreams = peak(spans)
	if wall > 0 {
		r.ThroughputTokensPerSec = round2(float64(tokens) / wall.Seconds())
	}
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

// users runs calls of fn on n goroutines, one per user, each user making
// its own share of the calls one after the other (calls/n, the remainder
// spread over the first users), and returns how many users had every call
// succeed (fn returns true).
func users(n, calls int, fn func() bool) int {
	n = min(n, calls)
	var wg sync.WaitGroup
	var served atomic.Int64
	for u := range n {
		share := calls / n
		if u < calls%n {
			share++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok := true
			for range share {
				ok = fn() && ok
			}
			if ok {
				served.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(served.Load())
}

// Targets are absolute limits every run must meet.
type Targets struct {
	// TTFTP95 is the p95 time to first token (Phase 4: under 2 s).
	TTFTP95 time.Duration
	// MinUsers is the number of concurrent users that must be served
	// within the first-token target (Phase 4: 100+).
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
	if r.Requests > r.Errors && r.TTFT == (Latency{}) {
		out = append(out, "no time to first token was measured")
	}
	if t.TTFTP95 > 0 && r.TTFT.P95 > float64(t.TTFTP95.Milliseconds()) {
		out = append(out, fmt.Sprintf("p95 time to first token %.0f ms, target under %s", r.TTFT.P95, t.TTFTP95))
	}
	switch {
	case r.Users < t.MinUsers:
		out = append(out, fmt.Sprintf("measured with %d concurrent users, target %d+", r.Users, t.MinUsers))
	case r.UsersServed < t.MinUsers:
		out = append(out, fmt.Sprintf("%d of %d concurrent users served with every first token within %.0f ms, target %d+ (the server streamed at most %d answers at once)",
			r.UsersServed, r.Users, r.TTFTTargetMs, t.MinUsers, r.PeakStreams))
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
	worseUp("load p95", base.Load.P95, cur.Load.P95)
	worseDown("decode tokens/s p50", base.DecodeTokensPerSec.P50, cur.DecodeTokensPerSec.P50)
	worseDown("throughput tokens/s", base.ThroughputTokensPerSec, cur.ThroughputTokensPerSec)
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
	return atomicfile.Write(path, append(data, '\n'), 0o644)
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
