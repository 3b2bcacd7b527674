package fakes

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var last map[string]any
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		require.NoError(t, dec.Decode(&last))
	}
	return resp.StatusCode, last
}

// TestOllamaSlots: the fake answers Parallel requests at once, as
// OLLAMA_NUM_PARALLEL makes the server do, and refuses beyond MaxQueue
// waiting ones with the server's 503.
func TestOllamaSlots(t *testing.T) {
	tests := []struct {
		name               string
		parallel, maxQueue int
		wantBusy           bool
	}{
		{name: "one slot, all wait", parallel: 1, maxQueue: 16},
		{name: "two slots", parallel: 2, maxQueue: 16},
		{name: "queue of one", parallel: 1, maxQueue: 1, wantBusy: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := NewOllamaWith(OllamaOptions{Parallel: tt.parallel, MaxQueue: tt.maxQueue, TokenDelay: 2 * time.Millisecond})
			defer o.Close()
			var wg sync.WaitGroup
			var mu sync.Mutex
			codes := map[int]int{}
			var busy map[string]any
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					code, last := post(t, o.URL+"/api/generate", `{"model":"llama3.2:3b","prompt":"x"}`)
					mu.Lock()
					defer mu.Unlock()
					codes[code]++
					if code == 503 {
						busy = last
					}
				}()
			}
			wg.Wait()
			assert.LessOrEqual(t, o.PeakBusy.Load(), int64(tt.parallel))
			assert.Positive(t, o.PeakBusy.Load())
			if !tt.wantBusy {
				assert.Equal(t, map[int]int{200: 8}, codes)
				return
			}
			assert.Positive(t, codes[503], "%v", codes)
			assert.Equal(t, map[string]any{"error": "server busy, please try again.  maximum pending requests exceeded"}, busy)
		})
	}
}

func TestOllamaNumPredictAndUnload(t *testing.T) {
	o := NewOllama()
	defer o.Close()
	code, last := post(t, o.URL+"/api/generate", `{"model":"llama3.2:3b","prompt":"x","stream":false,"options":{"num_predict":2}}`)
	require.Equal(t, 200, code)
	assert.Equal(t, "The sky", last["response"])
	assert.Equal(t, "length", last["done_reason"])
	assert.EqualValues(t, 2, last["eval_count"])

	code, last = post(t, o.URL+"/api/generate", `{"model":"llama3.2:3b","keep_alive":0}`)
	require.Equal(t, 200, code)
	assert.Equal(t, "unload", last["done_reason"])
	resp, err := http.Get(o.URL + "/api/ps")
	require.NoError(t, err)
	defer resp.Body.Close()
	var ps struct{ Models []any }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&ps))
	assert.Empty(t, ps.Models, "unloaded")
}

func TestOllamaThinkLevels(t *testing.T) {
	o := NewOllama()
	defer o.Close()
	tests := []struct {
		name, think string
		thinking    bool
	}{
		{"unset: the model's default", ``, true},
		{"off", `,"think":false`, false},
		{"on", `,"think":true`, true},
		{"a level", `,"think":"high"`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, last := post(t, o.URL+"/api/generate", `{"model":"qwen3:0.6b","prompt":"x","stream":false`+tt.think+`}`)
			require.Equal(t, 200, code)
			assert.Equal(t, tt.thinking, last["thinking"] != nil, "%v", last)
			assert.Equal(t, "Sunlight scatters off air.", last["response"])
		})
	}
	code, last := post(t, o.URL+"/api/generate", `{"model":"llama3.2:3b","prompt":"x","think":"high"}`)
	assert.Equal(t, 400, code)
	assert.Equal(t, map[string]any{"error": `"llama3.2:3b" does not support thinking`}, last)
}
