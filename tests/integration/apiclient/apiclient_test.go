package apiclient

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestNormalizeOllamaHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "http://127.0.0.1:11434"},
		{"127.0.0.1:11434", "http://127.0.0.1:11434"},
		{"0.0.0.0", "http://127.0.0.1:11434"},
		{"gpu-runner.lan", "http://gpu-runner.lan:11434"},
		{"https://ollama.example.org", "https://ollama.example.org:443"},
		{"http://[::1]:8080/", "http://[::1]:8080"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, NormalizeOllamaHost(tt.in), tt.in)
	}
}

func TestNewComfyUI(t *testing.T) {
	assert.Equal(t, DefaultComfyUI, NewComfyUI("").BaseURL)
	assert.Equal(t, "http://gpu:8188", NewComfyUI("gpu:8188/").BaseURL)
}
