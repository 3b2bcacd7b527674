package integration

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/tests/fakes"
	"github.com/ipex-flake/ipex-flake/tests/integration/apiclient"
	"github.com/ipex-flake/ipex-flake/tests/performance"
)

var (
	modelFlag = flag.String("model", "", "Ollama model for the tests that need one (default $OLLAMA_MODEL, else the first of /api/tags)")
	thinkFlag = flag.Bool("think", false, "send think: true with the tests' generate and chat requests")
)

func live() bool { return os.Getenv("IPEX_LIVE") == "1" }

// strict is true where a missing model must fail rather than skip: in CI
// and when the integration stage runs the suite against the deployed
// services.
func strict() bool { return live() || os.Getenv("CI") == "true" }

// needs skips (or, when strict, fails) a test that cannot run here and
// says what to provide.
func needs(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if strict() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// ollamaTarget is one server the Ollama contract runs against: the fake
// always, the real server when OLLAMA_HOST is set (or IPEX_LIVE=1).
type ollamaTarget struct {
	name   string
	client *apiclient.Ollama
	fake   *fakes.Ollama
}

func (o *ollamaTarget) url(path string) string { return o.client.BaseURL + path }

// eachOllama runs fn as a subtest against every target.
func eachOllama(t *testing.T, fn func(t *testing.T, o *ollamaTarget)) {
	t.Run("fake", func(t *testing.T) {
		f := fakes.NewOllama()
		t.Cleanup(f.Close)
		c := apiclient.NewOllama(f.URL)
		c.Think = *thinkFlag
		fn(t, &ollamaTarget{name: "fake", client: c, fake: f})
	})
	host := os.Getenv("OLLAMA_HOST")
	if host == "" && !live() {
		return
	}
	t.Run("real", func(t *testing.T) {
		c := apiclient.NewOllama(host)
		c.HTTP.Timeout = 5 * time.Minute
		c.Think = *thinkFlag
		fn(t, &ollamaTarget{name: "real", client: c})
	})
}

// model returns the model for a test that needs one: -model, OLLAMA_MODEL
// or the first model the server lists. Without one the test is skipped
// (failed when strict) with how to provide it.
func (o *ollamaTarget) model(t *testing.T) string {
	t.Helper()
	name, err := o.pickModel(t)
	if err != nil {
		needs(t, "%s %v", t.Name(), err)
	}
	return name
}

// pickModel is model's choice, or the advice when there is none.
func (o *ollamaTarget) pickModel(t *testing.T) (string, error) {
	t.Helper()
	if o.fake != nil {
		return "llama3.2:3b", nil
	}
	name := *modelFlag
	if name == "" {
		name = os.Getenv("OLLAMA_MODEL")
	}
	if name != "" {
		return apiclient.NormalizeModel(name), nil
	}
	models, err := o.client.Tags(t.Context())
	require.NoError(t, err, "Ollama at %s", o.client.BaseURL)
	if len(models) == 0 {
		return "", fmt.Errorf("needs a model and Ollama at %s has none: pull one (ollama pull llama3.2:1b) and name it with "+
			"`go test ./tests/integration -args -model NAME` or OLLAMA_MODEL=NAME", o.client.BaseURL)
	}
	return apiclient.NormalizeModel(models[0].Name), nil
}

// thinkingModel returns a model with the "thinking" capability:
// OLLAMA_THINKING_MODEL, else the first such model the server lists.
func (o *ollamaTarget) thinkingModel(t *testing.T) string {
	t.Helper()
	if o.fake != nil {
		return "qwen3:0.6b"
	}
	if name := os.Getenv("OLLAMA_THINKING_MODEL"); name != "" {
		return name
	}
	models, err := o.client.Tags(t.Context())
	require.NoError(t, err)
	for _, m := range models {
		if info, err := o.client.Show(t.Context(), m.Name); err == nil && info.Can("thinking") {
			return m.Name
		}
	}
	needs(t, "%s needs a model that thinks and Ollama at %s has none: pull one (ollama pull qwen3:0.6b) or name it with OLLAMA_THINKING_MODEL=NAME",
		t.Name(), o.client.BaseURL)
	return ""
}

// reply is a raw HTTP answer, for the cases where the status code and the
// body are the contract.
type reply struct {
	Status int
	Type   string
	Body   []byte
}

func call(t *testing.T, method, url, body string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	c := &http.Client{Timeout: 5 * time.Minute}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{Status: resp.StatusCode, Type: resp.Header.Get("Content-Type"), Body: data}
}

// JSON parses the body as one JSON value.
func (r reply) JSON(t *testing.T) any {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(r.Body, &v), "body %q", r.Body)
	return v
}

// Lines parses the body as NDJSON objects.
func (r reply) Lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(r.Body), []byte("\n")) {
		var m map[string]any
		require.NoError(t, json.Unmarshal(l, &m), "line %q", l)
		out = append(out, m)
	}
	return out
}

// comfyTarget is one server the ComfyUI contract runs against: the fake
// always, the real server when COMFYUI_URL is set (or IPEX_LIVE=1).
type comfyTarget struct {
	name     string
	client   *apiclient.ComfyUI
	fake     *fakes.ComfyUI
	workflow []byte
}

func (c *comfyTarget) url(path string) string { return c.client.BaseURL + path }

// eachComfyUI runs fn as a subtest against every target.
func eachComfyUI(t *testing.T, fn func(t *testing.T, c *comfyTarget)) {
	t.Run("fake", func(t *testing.T) {
		f := fakes.NewComfyUI()
		t.Cleanup(f.Close)
		fn(t, &comfyTarget{name: "fake", client: apiclient.NewComfyUI(f.URL), fake: f, workflow: fakes.Workflow()})
	})
	base := os.Getenv("COMFYUI_URL")
	if base == "" && !live() {
		return
	}
	t.Run("real", func(t *testing.T) {
		wf := []byte(performance.DefaultWorkflow())
		if p := os.Getenv("COMFYUI_WORKFLOW"); p != "" {
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			wf = data
		}
		c := apiclient.NewComfyUI(base)
		c.HTTP.Timeout = 5 * time.Minute
		fn(t, &comfyTarget{name: "real", client: c, workflow: wf})
	})
}
