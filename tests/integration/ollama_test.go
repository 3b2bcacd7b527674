package integration

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/tests/integration/apiclient"
)

func TestOllamaTags(t *testing.T) {
	c, model := ollama(t)
	models, err := c.Tags(t.Context())
	require.NoError(t, err)
	var names []string
	for _, m := range models {
		names = append(names, m.Name)
		assert.NotEmpty(t, m.Digest, m.Name)
		assert.Positive(t, m.Size, m.Name)
	}
	assert.Contains(t, names, model)
}

func TestOllamaGenerateStreams(t *testing.T) {
	c, model := ollama(t)
	var chunks int
	var first time.Duration
	start := time.Now()
	final, err := c.Generate(t.Context(), apiclient.GenerateRequest{Model: model, Prompt: "Why is the sky blue? One sentence.",
		Options: map[string]any{"num_predict": 64}}, func(ch apiclient.GenerateChunk) error {
		if chunks == 0 {
			first = time.Since(start)
		}
		chunks++
		return nil
	})
	require.NoError(t, err)
	assert.True(t, final.Done)
	assert.Greater(t, chunks, 2, "the answer arrives in several chunks")
	assert.NotEmpty(t, strings.TrimSpace(final.Response))
	assert.Positive(t, final.EvalCount)
	assert.Less(t, first, 2*time.Second, "first token under 2 s (Phase 4 target for standard models)")
}

func TestOllamaGenerateNoStream(t *testing.T) {
	c, model := ollama(t)
	no := false
	final, err := c.Generate(t.Context(), apiclient.GenerateRequest{Model: model, Prompt: "Say hello.", Stream: &no,
		Options: map[string]any{"num_predict": 16}}, nil)
	require.NoError(t, err)
	assert.True(t, final.Done)
	assert.NotEmpty(t, final.Response)
}

func TestOllamaChatStreams(t *testing.T) {
	c, model := ollama(t)
	var parts []string
	final, err := c.Chat(t.Context(), apiclient.ChatRequest{Model: model,
		Messages: []apiclient.Message{{Role: "user", Content: "Hello!"}},
		Options:  map[string]any{"num_predict": 32}}, func(ch apiclient.ChatChunk) error {
		if !ch.Done {
			assert.Equal(t, "assistant", ch.Message.Role)
			parts = append(parts, ch.Message.Content)
		}
		return nil
	})
	require.NoError(t, err)
	assert.True(t, final.Done)
	assert.Equal(t, strings.Join(parts, ""), final.Message.Content)
	assert.NotEmpty(t, final.Message.Content)
}

func TestOllamaUnknownModel(t *testing.T) {
	c, _ := ollama(t)
	_, err := c.Generate(t.Context(), apiclient.GenerateRequest{Model: "no-such-model:0b", Prompt: "x"}, nil)
	var apiErr *apiclient.APIError
	require.True(t, errors.As(err, &apiErr), "got %v", err)
	assert.Equal(t, 404, apiErr.Status)
	assert.Contains(t, apiErr.Message, "not found")
}
