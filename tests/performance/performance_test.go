package performance

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/tests/fakes"
	"github.com/ipex-flake/ipex-flake/tests/integration/apiclient"
)

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	assert.Equal(t, 50*time.Millisecond, Percentile(ds, 50))
	assert.Equal(t, 95*time.Millisecond, Percentile(ds, 95))
	assert.Equal(t, 100*time.Millisecond, Percentile(ds, 100))
	assert.Equal(t, time.Duration(0), Percentile(nil, 50))
	assert.Equal(t, 7*time.Millisecond, Percentile([]time.Duration{7 * time.Millisecond}, 95))
}

// TestRunAgainstFakes drives the harness with 100 concurrent users against
// the loopback fakes (bounded: 200 requests, 8 images).
func TestRunAgainstFakes(t *testing.T) {
	o := fakes.NewOllamaWith(fakes.OllamaOptions{Parallel: 100})
	defer o.Close()
	c := fakes.NewComfyUI()
	defer c.Close()
	r, err := Run(t.Context(), Config{
		Ollama: apiclient.NewOllama(o.URL), Users: 100, Requests: 200,
		ComfyUI: apiclient.NewComfyUI(c.URL), Workflow: DefaultWorkflow(), Images: 8, ImageUsers: 4,
	})
	require.NoError(t, err)
	assert.Equal(t, "llama3.2:3b", r.Model, "the first model of /api/tags")
	assert.Equal(t, 0, r.Errors, r.FirstError)
	assert.EqualValues(t, 202, o.Requests.Load(), "200 timed requests after loading the model and one warm-up answer")
	assert.Positive(t, r.WarmupMs)
	assert.Positive(t, r.TTFT.Max)
	assert.LessOrEqual(t, r.TTFT.P50, r.TTFT.P95)
	assert.LessOrEqual(t, r.TTFT.P95, r.Total.Max)
	// The recorded answer: eval_count 9 in eval_duration 172.881 ms, load_duration 21.384917 ms.
	assert.Equal(t, Rate{P50: 52.06, Min: 52.06}, r.DecodeTokensPerSec, "per-request decode rate from eval_count/eval_duration")
	assert.Equal(t, Latency{P50: 21.38, P95: 21.38, Max: 21.38}, r.Load, "load_duration, apart from first-token latency")
	assert.Positive(t, r.ThroughputTokensPerSec)
	assert.Equal(t, 100, r.UsersServed)
	assert.Equal(t, 2000.0, r.TTFTTargetMs)
	assert.GreaterOrEqual(t, r.PeakStreams, 1)
	assert.LessOrEqual(t, r.PeakStreams, 100)
	assert.Equal(t, 8, r.Images)
	assert.EqualValues(t, 8, c.Prompts.Load())
	assert.Positive(t, r.ImagesPerMin)
	assert.Empty(t, r.CheckTargets(DefaultTargets))

	path := filepath.Join(t.TempDir(), "results.json")
	require.NoError(t, r.Write(path))
	back, err := Read(path)
	require.NoError(t, err)
	assert.Equal(t, r, back)
	assert.Empty(t, Compare(back, r, 0), "a run equals itself")
}

// TestRunNoText: answers without text (a model that answers empty) are
// errors with the reason, never a time to first token of 0.
func TestRunNoText(t *testing.T) {
	o := fakes.NewOllamaWith(fakes.OllamaOptions{EmptyAnswers: true})
	defer o.Close()
	r, err := Run(t.Context(), Config{Ollama: apiclient.NewOllama(o.URL), Users: 4, Requests: 8})
	require.NoError(t, err)
	assert.Equal(t, 8, r.Errors)
	assert.Contains(t, r.FirstError, ErrNoText.Error())
	assert.Contains(t, r.FirstError, `done_reason "stop"`)
	assert.Equal(t, Latency{}, r.TTFT, "no time to first token is recorded")
	assert.Equal(t, 0, r.UsersServed)
	miss := r.CheckTargets(Targets{TTFTP95: 2 * time.Second, MinUsers: 4})
	require.NotEmpty(t, miss)
	assert.Contains(t, miss[0], "8 of 8 requests")
}

// TestRunUsersServed: the users counted are those served within the
// first-token target, not the configured number.
func TestRunUsersServed(t *testing.T) {
	o := fakes.NewOllamaWith(fakes.OllamaOptions{TokenDelay: time.Millisecond})
	defer o.Close()
	tests := []struct {
		name   string
		target time.Duration
		want   int
	}{
		{"none within 1ns", time.Nanosecond, 0},
		{"all within an hour", time.Hour, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Run(t.Context(), Config{Ollama: apiclient.NewOllama(o.URL), Users: 10, Requests: 10, TTFTTarget: tt.target})
			require.NoError(t, err)
			assert.Equal(t, 0, r.Errors, r.FirstError)
			assert.Equal(t, tt.want, r.UsersServed)
			miss := r.CheckTargets(Targets{MinUsers: 10})
			if tt.want < 10 {
				require.Len(t, miss, 1)
				assert.Contains(t, miss[0], "0 of 10 concurrent users served")
			} else {
				assert.Empty(t, miss)
			}
		})
	}
}

// TestRunPeakStreams: with four slots and four users the answers overlap.
func TestRunPeakStreams(t *testing.T) {
	o := fakes.NewOllamaWith(fakes.OllamaOptions{Parallel: 4, TokenDelay: 5 * time.Millisecond})
	defer o.Close()
	r, err := Run(t.Context(), Config{Ollama: apiclient.NewOllama(o.URL), Users: 4, Requests: 4})
	require.NoError(t, err)
	assert.Greater(t, r.PeakStreams, 1)
	assert.LessOrEqual(t, r.PeakStreams, 4)
	assert.LessOrEqual(t, o.PeakBusy.Load(), int64(4))
}

func TestRunCountsErrors(t *testing.T) {
	o := fakes.NewOllama()
	defer o.Close()
	_, err := Run(t.Context(), Config{Ollama: apiclient.NewOllama(o.URL), Model: "missing:1b", Users: 3, Requests: 6})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "warming up missing:1b")
	assert.Contains(t, err.Error(), "model 'missing:1b' not found")

	// One slot and a queue of one: the other users are refused with 503.
	busy := fakes.NewOllamaWith(fakes.OllamaOptions{Parallel: 1, MaxQueue: 1, TokenDelay: 2 * time.Millisecond})
	defer busy.Close()
	r, err := Run(t.Context(), Config{Ollama: apiclient.NewOllama(busy.URL), Users: 10, Requests: 10})
	require.NoError(t, err)
	assert.Positive(t, r.Errors)
	assert.Contains(t, r.FirstError, "server busy")
	assert.NotEmpty(t, r.CheckTargets(DefaultTargets))
}

func TestCheckCapacity(t *testing.T) {
	tests := []struct {
		name                      string
		users, parallel, maxQueue int
		wantErr                   []string
	}{
		{name: "unknown concurrency", users: 100},
		{name: "enough slots", users: 100, parallel: 100, maxQueue: 512},
		{name: "server default", users: 100, parallel: 1, maxQueue: 512, wantErr: []string{"100 concurrent users exceed", "OLLAMA_NUM_PARALLEL=1", "services.ollama-ipex.numParallel to 100"}},
		{name: "beyond the queue", users: 100, parallel: 4, maxQueue: 10, wantErr: []string{"OLLAMA_NUM_PARALLEL=4", "OLLAMA_MAX_QUEUE=10", "503"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckCapacity(tt.users, tt.parallel, tt.maxQueue)
			if tt.wantErr == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.wantErr {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	base := &Results{TTFT: Latency{P50: 100, P95: 200}, Total: Latency{P50: 1000, P95: 1500}, Load: Latency{P95: 50},
		DecodeTokensPerSec: Rate{P50: 80}, ThroughputTokensPerSec: 50, ImagesPerMin: 6}
	tests := []struct {
		name string
		cur  Results
		want int
	}{
		{name: "same", cur: *base},
		{name: "within tolerance", cur: Results{TTFT: Latency{P50: 115, P95: 230}, Total: Latency{P50: 1100, P95: 1700}, Load: Latency{P95: 55},
			DecodeTokensPerSec: Rate{P50: 70}, ThroughputTokensPerSec: 42, ImagesPerMin: 5}},
		{name: "slower first token", cur: Results{TTFT: Latency{P50: 100, P95: 300}, Total: base.Total, Load: base.Load,
			DecodeTokensPerSec: base.DecodeTokensPerSec, ThroughputTokensPerSec: 50, ImagesPerMin: 6}, want: 1},
		{name: "slower decode", cur: Results{TTFT: base.TTFT, Total: base.Total, Load: base.Load,
			DecodeTokensPerSec: Rate{P50: 40}, ThroughputTokensPerSec: 50, ImagesPerMin: 6}, want: 1},
		{name: "slower load", cur: Results{TTFT: base.TTFT, Total: base.Total, Load: Latency{P95: 80},
			DecodeTokensPerSec: base.DecodeTokensPerSec, ThroughputTokensPerSec: 50, ImagesPerMin: 6}, want: 1},
		{name: "lower throughput", cur: Results{TTFT: base.TTFT, Total: base.Total, Load: base.Load,
			DecodeTokensPerSec: base.DecodeTokensPerSec, ThroughputTokensPerSec: 30, ImagesPerMin: 3}, want: 2},
		{name: "faster is fine", cur: Results{TTFT: Latency{P50: 10, P95: 20}, Total: Latency{P50: 10, P95: 20},
			DecodeTokensPerSec: Rate{P50: 800}, ThroughputTokensPerSec: 500, ImagesPerMin: 60}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Compare(base, &tt.cur, 0.2)
			assert.Len(t, got, tt.want, strings.Join(got, "; "))
		})
	}
}

func TestCheckTargets(t *testing.T) {
	r := &Results{Requests: 10, Users: 100, UsersServed: 100, TTFT: Latency{P95: 1999}}
	assert.Empty(t, r.CheckTargets(DefaultTargets))
	r = &Results{Requests: 10, Users: 10, UsersServed: 10, TTFT: Latency{P95: 2500}}
	got := r.CheckTargets(DefaultTargets)
	require.Len(t, got, 2)
	assert.Contains(t, got[0], "target under 2s")
	assert.Contains(t, got[1], "target 100+")
	r = &Results{Requests: 200, Users: 100, UsersServed: 3, PeakStreams: 1, TTFTTargetMs: 2000, TTFT: Latency{P95: 1500}}
	got = r.CheckTargets(DefaultTargets)
	require.Len(t, got, 1)
	assert.Contains(t, got[0], "3 of 100 concurrent users served")
	assert.Contains(t, got[0], "at most 1 answers at once")
}

func TestPeak(t *testing.T) {
	at := func(ms int) time.Time { return time.Unix(0, 0).Add(time.Duration(ms) * time.Millisecond) }
	tests := []struct {
		name  string
		spans []span
		want  int
	}{
		{"none", nil, 0},
		{"one after another", []span{{at(0), at(10)}, {at(10), at(20)}, {at(20), at(30)}}, 1},
		{"two overlap", []span{{at(0), at(10)}, {at(5), at(15)}, {at(20), at(30)}}, 2},
		{"nested", []span{{at(0), at(100)}, {at(10), at(20)}, {at(15), at(30)}, {at(40), at(50)}}, 3},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, peak(tt.spans), tt.name)
	}
}
