package githubhttp

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewClientRetriesAndResendsTheBody(t *testing.T) {
	var calls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, http.MethodPost, r.Method)
		body, _ := io.ReadAll(r.Body)
		assert.Equal(t, `{"state":"success"}`, string(body))
		calls++
		if calls == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(srv.Close)
	var waits []time.Duration
	c := NewClient(&RetryTransport{Sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }})
	assert.Equal(t, RequestTimeout, c.Timeout)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/repos/o/r/statuses/abc", strings.NewReader(`{"state":"success"}`))
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, 2, calls)
	assert.Equal(t, []time.Duration{time.Second}, waits)
}

func TestNewClientDefaults(t *testing.T) {
	c := NewClient(nil)
	require.IsType(t, &RetryTransport{}, c.Transport)
	assert.Equal(t, RequestTimeout, c.Timeout)
}
