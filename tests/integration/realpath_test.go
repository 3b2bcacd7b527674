package integration

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/tests/fakes"
	"github.com/ipex-flake/ipex-flake/tests/integration/apiclient"
)

// TestRealPathWithoutModels runs the model-free contract through the
// real-server path (OLLAMA_HOST set) against a fresh server with no
// models: those tests pass, and the tests that need a model say so and
// how to name one.
func TestRealPathWithoutModels(t *testing.T) {
	if *modelFlag != "" {
		t.Skip("-model is set")
	}
	f := fakes.NewOllamaWith(fakes.OllamaOptions{NoModels: true})
	defer f.Close()
	t.Setenv("OLLAMA_HOST", f.URL)
	t.Setenv("OLLAMA_MODEL", "")
	t.Setenv("IPEX_LIVE", "")
	t.Setenv("CI", "")
	for name, test := range map[string]func(*testing.T){
		"TestOllamaVersion": TestOllamaVersion, "TestOllamaTags": TestOllamaTags, "TestOllamaErrors": TestOllamaErrors,
		"TestOllamaPullWithoutNetwork": TestOllamaPullWithoutNetwork, "TestOllamaPSShape": TestOllamaPSShape,
	} {
		assert.True(t, t.Run(name, test), "%s needs no model", name)
	}

	o := &ollamaTarget{name: "real", client: apiclient.NewOllama(f.URL)}
	_, err := o.pickModel(t)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "needs a model and Ollama at "+o.client.BaseURL+" has none")
	assert.Contains(t, err.Error(), "-args -model NAME")
	assert.Contains(t, err.Error(), "OLLAMA_MODEL=NAME")

	t.Setenv("OLLAMA_MODEL", "tiny")
	name, err := o.pickModel(t)
	require.NoError(t, err)
	assert.Equal(t, "tiny:latest", name, "named models are compared as name:tag")
}

// TestRealPathWithModels runs the whole contract through the real-server
// path (OLLAMA_HOST and COMFYUI_URL set, no model named) against the
// fakes: the model is the first listed, the thinking model the first with
// that capability, the workflow the default one.
func TestRealPathWithModels(t *testing.T) {
	if *modelFlag != "" {
		t.Skip("-model is set")
	}
	o := fakes.NewOllama()
	defer o.Close()
	c := fakes.NewComfyUI()
	defer c.Close()
	t.Setenv("OLLAMA_HOST", o.URL)
	t.Setenv("COMFYUI_URL", c.URL)
	for _, k := range []string{"OLLAMA_MODEL", "OLLAMA_THINKING_MODEL", "COMFYUI_WORKFLOW", "IPEX_LIVE"} {
		t.Setenv(k, "")
	}
	for name, test := range map[string]func(*testing.T){
		"TestOllamaVersion": TestOllamaVersion, "TestOllamaTags": TestOllamaTags, "TestOllamaErrors": TestOllamaErrors,
		"TestOllamaPullWithoutNetwork": TestOllamaPullWithoutNetwork, "TestOllamaShow": TestOllamaShow, "TestOllamaLoad": TestOllamaLoad,
		"TestOllamaPSShape": TestOllamaPSShape, "TestOllamaBadOptionType": TestOllamaBadOptionType,
		"TestOllamaGenerateStreams": TestOllamaGenerateStreams, "TestOllamaGenerateNoStream": TestOllamaGenerateNoStream,
		"TestOllamaChatStreams": TestOllamaChatStreams, "TestOllamaThinkRejected": TestOllamaThinkRejected,
		"TestOllamaThinkingStream": TestOllamaThinkingStream,
		"TestComfyUISystemStats":   TestComfyUISystemStats, "TestComfyUIQueue": TestComfyUIQueue,
		"TestComfyUIRejectsPrompts": TestComfyUIRejectsPrompts, "TestComfyUIUnknownHistory": TestComfyUIUnknownHistory,
		"TestComfyUIViewErrors": TestComfyUIViewErrors, "TestComfyUIPromptProgressHistoryView": TestComfyUIPromptProgressHistoryView,
	} {
		assert.True(t, t.Run(name, test), name)
	}
	assert.EqualValues(t, 1, c.Prompts.Load(), "the real path queued its prompt on the server named by COMFYUI_URL")
}
