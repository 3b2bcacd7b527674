package integration

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/tests/integration/apiclient"
)

func TestComfyUISystemStats(t *testing.T) {
	c, _ := comfyUI(t)
	s, err := c.SystemStats(t.Context())
	require.NoError(t, err)
	assert.NotEmpty(t, s.System.ComfyUIVersion)
	require.NotEmpty(t, s.Devices)
	assert.Equal(t, "xpu", s.Devices[0].Type, "ComfyUI runs on the Intel GPU (IPEX xpu device)")
	assert.Positive(t, s.Devices[0].VRAMTotal)
}

func TestComfyUIPromptProgressHistory(t *testing.T) {
	c, wf := comfyUI(t)
	ctx := t.Context()
	id := apiclient.NewClientID()
	w, err := c.Watch(ctx, id)
	require.NoError(t, err, "the websocket greets with the queue status")
	defer w.Close()
	assert.Equal(t, id, w.ClientID, "the server keeps the client id")

	q, err := c.QueuePrompt(ctx, wf, w.ClientID)
	require.NoError(t, err)
	require.NotEmpty(t, q.PromptID)
	assert.Empty(t, q.NodeErrors)

	var progress []apiclient.Progress
	require.NoError(t, w.Wait(ctx, q.PromptID, func(p apiclient.Progress) { progress = append(progress, p) }))
	require.NotEmpty(t, progress, "sampling reports progress")
	last := progress[len(progress)-1]
	assert.Equal(t, last.Max, last.Value)

	h, ok, err := c.History(ctx, q.PromptID)
	require.NoError(t, err)
	require.True(t, ok, "a finished prompt is in the history")
	assert.True(t, h.Status.Completed)
	assert.Equal(t, "success", h.Status.StatusStr)
	require.NotEmpty(t, h.Images())
	assert.Equal(t, "output", h.Images()[0].Type)
}

func TestComfyUIRejectsPromptWithoutOutputs(t *testing.T) {
	c, _ := comfyUI(t)
	_, err := c.QueuePrompt(t.Context(), []byte(`{"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}}`), "x")
	var apiErr *apiclient.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 400, apiErr.Status)
	assert.Equal(t, "Prompt has no outputs", apiErr.Message)
}

func TestComfyUIUnknownHistory(t *testing.T) {
	c, _ := comfyUI(t)
	_, ok, err := c.History(t.Context(), "00000000-0000-4000-8000-000000000000")
	require.NoError(t, err)
	assert.False(t, ok)
}
