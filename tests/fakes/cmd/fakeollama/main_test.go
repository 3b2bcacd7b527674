package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/tests/integration/apiclient"
)

func TestServes(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	env := map[string]string{"OLLAMA_HOST": "127.0.0.1:0", "OLLAMA_NUM_PARALLEL": "4"}
	ready := make(chan string, 1)
	done := make(chan int, 1)
	var stdout, stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve"}, func(k string) string { return env[k] }, &stdout, &stderr, ready)
	}()
	base := <-ready
	models, err := apiclient.NewOllama(base).Tags(t.Context())
	require.NoError(t, err)
	assert.NotEmpty(t, models)
	cancel()
	assert.Equal(t, 0, <-done, stderr.String())
	assert.Equal(t, base+"\n", stdout.String())
}

func TestBadConfig(t *testing.T) {
	tests := []struct{ name, host, parallel, want string }{
		{"parallel not a number", "127.0.0.1:0", "many", `OLLAMA_NUM_PARALLEL="many" is not a number`},
		{"https", "https://127.0.0.1:0", "", "plain http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"OLLAMA_HOST": tt.host, "OLLAMA_NUM_PARALLEL": tt.parallel}
			var stdout, stderr bytes.Buffer
			assert.Equal(t, 2, run(t.Context(), nil, func(k string) string { return env[k] }, &stdout, &stderr, nil))
			assert.Contains(t, stderr.String(), tt.want)
			assert.Empty(t, stdout.String())
		})
	}
}
