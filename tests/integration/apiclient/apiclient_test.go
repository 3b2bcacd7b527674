package apiclient

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/tests/fakes"
)

// TestNormalizeOllamaHost holds the cases of ollama's own envconfig
// TestHost (ollama/ollama fb307609, envconfig/config_test.go) and more:
// the CLI's reading of OLLAMA_HOST, case for case.
func TestNormalizeOllamaHost(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", "http://127.0.0.1:11434"},
		{"only address", "1.2.3.4", "http://1.2.3.4:11434"},
		{"only port", ":1234", "http://:1234"},
		{"address and port", "1.2.3.4:1234", "http://1.2.3.4:1234"},
		{"hostname", "example.com", "http://example.com:11434"},
		{"hostname and port", "example.com:1234", "http://example.com:1234"},
		{"zero port", ":0", "http://:0"},
		{"too large port", ":66000", "http://:11434"},
		{"too small port", ":-1", "http://:11434"},
		{"ipv6 localhost", "[::1]", "http://[::1]:11434"},
		{"ipv6 world open", "[::]", "http://[::]:11434"},
		{"ipv6 no brackets", "::1", "http://[::1]:11434"},
		{"ipv6 + port", "[::1]:1337", "http://[::1]:1337"},
		{"extra space", " 1.2.3.4 ", "http://1.2.3.4:11434"},
		{"extra quotes", "\"1.2.3.4\"", "http://1.2.3.4:11434"},
		{"extra space+quotes", " \" 1.2.3.4 \" ", "http://1.2.3.4:11434"},
		{"extra single quotes", "'1.2.3.4'", "http://1.2.3.4:11434"},
		{"http", "http://1.2.3.4", "http://1.2.3.4:80"},
		{"http port", "http://1.2.3.4:4321", "http://1.2.3.4:4321"},
		{"https", "https://1.2.3.4", "https://1.2.3.4:443"},
		{"https port", "https://1.2.3.4:4321", "https://1.2.3.4:4321"},
		{"proxy path", "https://example.com/ollama", "https://example.com:443/ollama"},
		{"ollama.com", "ollama.com", "https://ollama.com:443"},
		{"http hostname without port", "http://gpu-runner.lan", "http://gpu-runner.lan:80"},
		{"unspecified kept", "0.0.0.0", "http://0.0.0.0:11434"},
		{"unspecified and port", "0.0.0.0:8080", "http://0.0.0.0:8080"},
		{"http ipv6 and port", "http://[::1]:8080", "http://[::1]:8080"},
		{"https ipv6", "https://[fe80::1]", "https://[fe80::1]:443"},
		{"trailing slash", "http://[::1]:8080/", "http://[::1]:8080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, NormalizeOllamaHost(tt.in), "%q", tt.in)
		})
	}
	assert.Equal(t, DefaultOllama, NewOllama("").BaseURL)
}

func TestNormalizeModel(t *testing.T) {
	tests := []struct{ in, want string }{
		{"tiny", "tiny:latest"},
		{"tiny:latest", "tiny:latest"},
		{"llama3.2:3b", "llama3.2:3b"},
		{"registry.ollama.ai/library/tiny:latest", "tiny:latest"},
		{"library/tiny", "tiny:latest"},
		{"user/model", "user/model:latest"},
		{"host:5000/user/model", "host:5000/user/model:latest"},
		{"", ""},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, NormalizeModel(tt.in), tt.in)
	}
	assert.True(t, SameModel("tiny", "tiny:latest"))
	assert.True(t, SameModel("Tiny", "tiny:latest"))
	assert.False(t, SameModel("tiny", "tiny:1b"))
}

func TestNewComfyUI(t *testing.T) {
	assert.Equal(t, DefaultComfyUI, NewComfyUI("").BaseURL)
	assert.Equal(t, "http://gpu:8188", NewComfyUI("gpu:8188/").BaseURL)
}

// TestThinking: the client sends think explicitly (false unless Think is
// set) and reads the recorded thinking stream apart from the answer.
func TestThinking(t *testing.T) {
	f := fakes.NewOllama()
	defer f.Close()
	c := NewOllama(f.URL)
	msgs := []Message{{Role: "user", Content: "Hello!"}}

	final, err := c.Chat(t.Context(), ChatRequest{Model: "qwen3:0.6b", Messages: msgs}, nil)
	require.NoError(t, err)
	assert.Empty(t, final.Message.Thinking, "off by default")
	assert.Equal(t, "Hello! How can I help?", final.Message.Content)

	c.Think = true
	final, err = c.Chat(t.Context(), ChatRequest{Model: "qwen3:0.6b", Messages: msgs}, nil)
	require.NoError(t, err)
	assert.Equal(t, "Okay, the user greets me.", final.Message.Thinking)
	assert.Equal(t, "Hello! How can I help?", final.Message.Content)

	gen, err := c.Generate(t.Context(), GenerateRequest{Model: "qwen3:0.6b", Prompt: "Why is the sky blue?"}, nil)
	require.NoError(t, err)
	assert.Equal(t, "Rayleigh scattering.", gen.Thinking)
	assert.Equal(t, "Sunlight scatters off air.", gen.Response)

	_, err = c.Generate(t.Context(), GenerateRequest{Model: "llama3.2:3b", Prompt: "x"}, nil)
	assert.Equal(t, &APIError{Status: 400, Message: `"llama3.2:3b" does not support thinking`}, err, "asked to think, a model that cannot says so")
}
