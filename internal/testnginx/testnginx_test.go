package testnginx

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPutGetStopRestart(t *testing.T) {
	s := New(t)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, s.URL()+"/nar/deep/x.nar", bytes.NewReader([]byte("hello")))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusCreated, resp.StatusCode)

	data, err := os.ReadFile(filepath.Join(s.Root, "nar", "deep", "x.nar"))
	require.NoError(t, err)
	assert.Equal(t, "hello", string(data))

	s.Stop()
	_, err = http.Get(s.URL() + "/nar/deep/x.nar")
	require.Error(t, err, "nginx must be down after Stop")

	require.NoError(t, s.Restart())
	resp, err = http.Get(s.URL() + "/nar/deep/x.nar")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "hello", string(body))
}
