package integration

// The Ollama contract: the API behaviour the project relies on, with status
// codes and bodies, written from ollama/ollama's server (server/routes.go,
// server/sched.go, server/images.go, api/types.go at
// fb30760996871fa9460115c753afd2c60d4ab0f7, v0.33.0-rc2) and checked
// against a real v0.17.4. Every test runs against the fake and, when
// OLLAMA_HOST is set, against that server. Bodies are compared parsed.

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/tests/integration/apiclient"
)

// missing is a well-formed model name no server has.
const missing = "no-such-model:0b"

func TestOllamaVersion(t *testing.T) {
	eachOllama(t, func(t *testing.T, o *ollamaTarget) {
		r := call(t, "GET", o.url("/api/version"), "")
		require.Equal(t, 200, r.Status)
		v, ok := r.JSON(t).(map[string]any)["version"].(string)
		assert.True(t, ok && v != "", "version is a non-empty string: %s", r.Body)
	})
}

func TestOllamaTags(t *testing.T) {
	eachOllama(t, func(t *testing.T, o *ollamaTarget) {
		models, err := o.client.Tags(t.Context())
		require.NoError(t, err)
		for _, m := range models {
			assert.Equal(t, apiclient.NormalizeModel(m.Name), m.Name, "/api/tags lists name:tag")
			assert.NotEmpty(t, m.Digest, m.Name)
			assert.Positive(t, m.Size, m.Name)
			assert.NotEmpty(t, m.Details.Format, m.Name)
		}
		name := *modelFlag
		if o.fake != nil {
			name = "llama3.2:3b"
		} else if name == "" {
			name = os.Getenv("OLLAMA_MODEL")
		}
		if name == "" {
			return
		}
		var found bool
		for _, m := range models {
			found = found || apiclient.SameModel(m.Name, name)
		}
		assert.True(t, found, "%s is listed (names compared as name:tag)", name)
	})
}

// TestOllamaErrors are the answers to requests the server refuses; none
// needs a model.
func TestOllamaErrors(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		status                   int
		want                     map[string]any
	}{
		{"generate unknown model", "POST", "/api/generate", `{"model":"` + missing + `","prompt":"x"}`, 404, map[string]any{"error": "model '" + missing + "' not found"}},
		{"chat unknown model", "POST", "/api/chat", `{"model":"` + missing + `","messages":[{"role":"user","content":"x"}]}`, 404, map[string]any{"error": "model '" + missing + "' not found"}},
		{"show unknown model", "POST", "/api/show", `{"model":"` + missing + `"}`, 404, map[string]any{"error": "model '" + missing + "' not found"}},
		{"chat without model", "POST", "/api/chat", `{"messages":[{"role":"user","content":"x"}]}`, 400, map[string]any{"error": "model is required"}},
		{"generate without model", "POST", "/api/generate", `{"prompt":"x"}`, 404, map[string]any{"error": "model '' not found"}},
		{"show without model", "POST", "/api/show", `{}`, 400, map[string]any{"error": "model is required"}},
		{"generate malformed JSON", "POST", "/api/generate", `{"model":`, 400, map[string]any{"error": "unexpected EOF"}},
		{"chat malformed JSON", "POST", "/api/chat", `{"model":`, 400, map[string]any{"error": "unexpected EOF"}},
		{"generate empty body", "POST", "/api/generate", ``, 400, map[string]any{"error": "missing request body"}},
		{"chat empty body", "POST", "/api/chat", ``, 400, map[string]any{"error": "missing request body"}},
		{"pull empty body", "POST", "/api/pull", ``, 400, map[string]any{"error": "missing request body"}},
	}
	eachOllama(t, func(t *testing.T, o *ollamaTarget) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := call(t, tt.method, o.url(tt.path), tt.body)
				assert.Equal(t, tt.status, r.Status, "%s", r.Body)
				assert.Equal(t, any(tt.want), r.JSON(t))
				assert.Contains(t, r.Type, "application/json")
			})
		}
		// The client reports them as an APIError with the server's message.
		_, err := o.client.Generate(t.Context(), apiclient.GenerateRequest{Model: missing, Prompt: "x"}, nil)
		var apiErr *apiclient.APIError
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, &apiclient.APIError{Status: 404, Message: "model '" + missing + "' not found"}, apiErr)
	})
}

// TestOllamaPullWithoutNetwork: a model the registry cannot give (no
// network, or no such model) streams the manifest status then an error
// line with 200, or answers 500 when not streaming.
func TestOllamaPullWithoutNetwork(t *testing.T) {
	const name = "ipex-flake-contract/no-such-model:0b"
	eachOllama(t, func(t *testing.T, o *ollamaTarget) {
		r := call(t, "POST", o.url("/api/pull"), `{"model":"`+name+`"}`)
		require.Equal(t, 200, r.Status, "%s", r.Body)
		assert.Contains(t, r.Type, "application/x-ndjson")
		ls := r.Lines(t)
		require.GreaterOrEqual(t, len(ls), 2, "%s", r.Body)
		assert.Equal(t, map[string]any{"status": "pulling manifest"}, ls[0])
		last := ls[len(ls)-1]
		require.Len(t, last, 1, "the last line is only the error: %v", last)
		assert.True(t, strings.HasPrefix(last["error"].(string), "pull model manifest: "), "%v", last)

		r = call(t, "POST", o.url("/api/pull"), `{"model":"`+name+`","stream":false}`)
		assert.Equal(t, 500, r.Status, "%s", r.Body)
		body, _ := r.JSON(t).(map[string]any)
		require.Len(t, body, 1, "%s", r.Body)
		assert.True(t, strings.HasPrefix(body["error"].(string), "pull model manifest: "), "%s", r.Body)
	})
}

func TestOllamaShow(t *testing.T) {
	eachOllama(t, func(t *testing.T, o *ollamaTarget) {
		model := o.model(t)
		info, err := o.client.Show(t.Context(), model)
		require.NoError(t, err)
		assert.NotEmpty(t, info.Details.Format)
		assert.NotEmpty(t, info.Details.Family)
		assert.NotEmpty(t, info.ModelInfo)
		assert.True(t, info.Can("completion"), "capabilities %v", info.Capabilities)
		assert.False(t, info.ModifiedAt.IsZero())
	})
}

// TestOllamaLoad: an empty prompt (or no messages) loads the model and
// answers one object without text, done_reason "load"; /api/ps then lists
// the model until its keep-alive expires.
func TestOllamaLoad(t *testing.T) {
	eachOllama(t, func(t *testing.T, o *ollamaTarget) {
		model := o.model(t)
		r := call(t, "POST", o.url("/api/generate"), `{"model":"`+model+`","prompt":""}`)
		require.Equal(t, 200, r.Status, "%s", r.Body)
		ls := r.Lines(t)
		require.Len(t, ls, 1, "one object: %s", r.Body)
		assert.Equal(t, true, ls[0]["done"])
		assert.Equal(t, "load", ls[0]["done_reason"])
		assert.Empty(t, ls[0]["response"])
		assert.Equal(t, model, ls[0]["model"])

		r = call(t, "POST", o.url("/api/chat"), `{"model":"`+model+`","messages":[]}`)
		require.Equal(t, 200, r.Status, "%s", r.Body)
		ls = r.Lines(t)
		require.Len(t, ls, 1, "one object: %s", r.Body)
		assert.Equal(t, "load", ls[0]["done_reason"])
		assert.Equal(t, map[string]any{"role": "assistant", "content": ""}, ls[0]["message"])

		running, err := o.client.PS(t.Context())
		require.NoError(t, err)
		var found *apiclient.Running
		for i := range running {
			if apiclient.SameModel(running[i].Name, model) {
				found = &running[i]
			}
		}
		require.NotNil(t, found, "/api/ps lists the loaded model: %+v", running)
		assert.True(t, found.ExpiresAt.After(time.Now()), "expires_at %s is ahead", found.ExpiresAt)
		assert.Positive(t, found.Size)
	})
}

func TestOllamaPSShape(t *testing.T) {
	eachOllama(t, func(t *testing.T, o *ollamaTarget) {
		r := call(t, "GET", o.url("/api/ps"), "")
		require.Equal(t, 200, r.Status)
		body, ok := r.JSON(t).(map[string]any)
		require.True(t, ok)
		_, isList := body["models"].([]any)
		assert.True(t, isList, "models is a list, empty when nothing is loaded: %s", r.Body)
	})
}

func TestOllamaBadOptionType(t *testing.T) {
	eachOllama(t, func(t *testing.T, o *ollamaTarget) {
		model := o.model(t)
		r := call(t, "POST", o.url("/api/generate"), `{"model":"`+model+`","prompt":"x","options":{"num_predict":"many"}}`)
		assert.Equal(t, 500, r.Status, "%s", r.Body)
		assert.Equal(t, any(map[string]any{"error": `option "num_predict" must be of type integer`}), r.JSON(t))
	})
}

func TestOllamaGenerateStreams(t *testing.T) {
	eachOllama(t, func(t *testing.T, o *ollamaTarget) {
		model := o.model(t)
		// A cold model's load is not first-token latency: load it first.
		_, err := o.client.Load(t.Context(), model)
		require.NoError(t, err)
		var chunks int
		var first time.Duration
		start := time.Now()
		final, err := o.client.Generate(t.Context(), apiclient.GenerateRequest{Model: model, Prompt: "Why is the sky blue? One sentence.",
			Options: map[string]any{"num_predict": 64}}, func(ch apiclient.GenerateChunk) error {
			if first == 0 && ch.Response != "" {
				first = time.Since(start)
			}
			chunks++
			return nil
		})
		require.NoError(t, err)
		assert.True(t, final.Done)
		assert.Contains(t, []string{"stop", "length"}, final.DoneReason)
		assert.Greater(t, chunks, 2, "the answer arrives in several chunks")
		assert.NotEmpty(t, strings.TrimSpace(final.Response))
		assert.Positive(t, final.EvalCount)
		assert.Positive(t, final.EvalDuration)
		assert.Positive(t, final.TotalDuration)
		assert.Positive(t, final.PromptEvalCount)
		assert.Empty(t, final.Thinking, "think is off unless asked for")
		require.NotZero(t, first, "a token arrived")
		assert.Less(t, first, 2*time.Second, "first token under 2 s on a loaded model (Phase 4 target for standard models)")

		r := call(t, "POST", o.url("/api/generate"), `{"model":"`+model+`","prompt":"Say hello.","think":false,"options":{"num_predict":8}}`)
		require.Equal(t, 200, r.Status)
		assert.Contains(t, r.Type, "application/x-ndjson")
	})
}

func TestOllamaGenerateNoStream(t *testing.T) {
	eachOllama(t, func(t *testing.T, o *ollamaTarget) {
		model := o.model(t)
		r := call(t, "POST", o.url("/api/generate"), `{"model":"`+model+`","prompt":"Say hello.","stream":false,"think":false,"options":{"num_predict":16}}`)
		require.Equal(t, 200, r.Status, "%s", r.Body)
		assert.Contains(t, r.Type, "application/json")
		ls := r.Lines(t)
		require.Len(t, ls, 1, "one object")
		assert.Equal(t, true, ls[0]["done"])
		assert.NotEmpty(t, ls[0]["response"])
		assert.Positive(t, ls[0]["eval_count"])
	})
}

func TestOllamaChatStreams(t *testing.T) {
	eachOllama(t, func(t *testing.T, o *ollamaTarget) {
		model := o.model(t)
		var parts []string
		final, err := o.client.Chat(t.Context(), apiclient.ChatRequest{Model: model,
			Messages: []apiclient.Message{{Role: "user", Content: "Hello!"}},
			Options:  map[string]any{"num_predict": 32}}, func(ch apiclient.ChatChunk) error {
			assert.Equal(t, "assistant", ch.Message.Role)
			parts = append(parts, ch.Message.Content)
			return nil
		})
		require.NoError(t, err)
		assert.True(t, final.Done)
		assert.Equal(t, strings.Join(parts, ""), final.Message.Content)
		assert.NotEmpty(t, final.Message.Content)
	})
}

// TestOllamaThinkRejected: asking a model that cannot think to think is a
// 400 naming the model.
func TestOllamaThinkRejected(t *testing.T) {
	eachOllama(t, func(t *testing.T, o *ollamaTarget) {
		model := o.model(t)
		if info, err := o.client.Show(t.Context(), model); err == nil && info.Can("thinking") {
			needs(t, "%s needs a model that cannot think; %s can: name one with -model or OLLAMA_MODEL", t.Name(), model)
		}
		r := call(t, "POST", o.url("/api/chat"), `{"model":"`+model+`","think":true,"messages":[{"role":"user","content":"x"}]}`)
		assert.Equal(t, 400, r.Status, "%s", r.Body)
		assert.Equal(t, any(map[string]any{"error": `"` + model + `" does not support thinking`}), r.JSON(t))
	})
}

// TestOllamaThinkingStream: a thinking model streams its reasoning in
// message.thinking before the answer; it thinks by default, and not when
// the client sends think: false (as it does unless told otherwise).
func TestOllamaThinkingStream(t *testing.T) {
	eachOllama(t, func(t *testing.T, o *ollamaTarget) {
		model := o.thinkingModel(t)
		msgs := []apiclient.Message{{Role: "user", Content: "Hello!"}}
		yes := true
		var order []string
		final, err := o.client.Chat(t.Context(), apiclient.ChatRequest{Model: model, Messages: msgs, Think: &yes,
			Options: map[string]any{"num_predict": 256}}, func(ch apiclient.ChatChunk) error {
			switch {
			case ch.Message.Thinking != "":
				order = append(order, "thinking")
			case ch.Message.Content != "":
				order = append(order, "content")
			}
			return nil
		})
		require.NoError(t, err)
		assert.NotEmpty(t, final.Message.Thinking)
		require.NotEmpty(t, order)
		assert.Equal(t, "thinking", order[0], "reasoning comes first")

		r := call(t, "POST", o.url("/api/chat"), `{"model":"`+model+`","messages":[{"role":"user","content":"Hello!"}],"options":{"num_predict":256}}`)
		require.Equal(t, 200, r.Status, "%s", r.Body)
		var thinks bool
		for _, l := range r.Lines(t) {
			if msg, ok := l["message"].(map[string]any); ok && msg["thinking"] != nil && msg["thinking"] != "" {
				thinks = true
			}
		}
		assert.True(t, thinks, "without think the model thinks (the server's default)")

		off := apiclient.NewOllama(o.client.BaseURL)
		off.HTTP = o.client.HTTP
		final, err = off.Chat(t.Context(), apiclient.ChatRequest{Model: model, Messages: msgs, Options: map[string]any{"num_predict": 64}}, nil)
		require.NoError(t, err)
		assert.Empty(t, final.Message.Thinking, "the client sends think: false by default")
		assert.NotEmpty(t, final.Message.Content)
	})
}
