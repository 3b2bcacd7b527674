package integration

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/tests/fakes"
	"github.com/ipex-flake/ipex-flake/tests/integration/apiclient"
)

func live() bool { return os.Getenv("IPEX_LIVE") == "1" }

// ollama returns a client and the model to prompt.
func ollama(t *testing.T) (*apiclient.Ollama, string) {
	t.Helper()
	host := os.Getenv("OLLAMA_HOST")
	if host == "" && !live() {
		f := fakes.NewOllama()
		t.Cleanup(f.Close)
		host = f.URL
		t.Logf("OLLAMA_HOST unset: using the recorded fake at %s", host)
	}
	c := apiclient.NewOllama(host)
	c.HTTP.Timeout = 5 * time.Minute
	model := os.Getenv("OLLAMA_MODEL")
	if model == "" {
		models, err := c.Tags(t.Context())
		require.NoError(t, err, "Ollama at %s", c.BaseURL)
		require.NotEmpty(t, models, "Ollama at %s has no models: pull one or set OLLAMA_MODEL", c.BaseURL)
		model = models[0].Name
	}
	return c, model
}

// comfyUI returns a client and the workflow to queue.
func comfyUI(t *testing.T) (*apiclient.ComfyUI, []byte) {
	t.Helper()
	base := os.Getenv("COMFYUI_URL")
	if base == "" && !live() {
		f := fakes.NewComfyUI()
		t.Cleanup(f.Close)
		base = f.URL
		t.Logf("COMFYUI_URL unset: using the recorded fake at %s", base)
	}
	wf := []byte(fakes.Workflow())
	if p := os.Getenv("COMFYUI_WORKFLOW"); p != "" {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		wf = data
	}
	c := apiclient.NewComfyUI(base)
	c.HTTP.Timeout = 5 * time.Minute
	return c, wf
}
