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
	ready := make(chan string, 1)
	done := make(chan int, 1)
	var stdout, stderr bytes.Buffer
	go func() { done <- run(ctx, []string{"--listen", "127.0.0.1", "--port", "0"}, &stdout, &stderr, ready) }()
	base := <-ready
	s, err := apiclient.NewComfyUI(base).SystemStats(t.Context())
	require.NoError(t, err)
	assert.NotEmpty(t, s.Devices)
	cancel()
	assert.Equal(t, 0, <-done, stderr.String())
	assert.Equal(t, base+"\n", stdout.String())
}

func TestBadPort(t *testing.T) {
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 2, run(t.Context(), []string{"--port", "70000"}, &stdout, &stderr, nil))
	assert.Contains(t, stderr.String(), "give a port from 0 to 65535")
	assert.Equal(t, 2, run(t.Context(), []string{"--no-such-flag"}, &stdout, &stderr, nil))
}
