package results

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The store `ci test` and `ci push` open (no HTTP client given) goes
// through githubhttp: a 502 is retried, not reported.
func TestGitHubStoreDefaultClientRetries(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, http.MethodPost, r.Method)
		assert.Equal(t, "/api/v3/repos/o/r/statuses/"+strings.Repeat("a", 40), r.URL.Path)
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"state":"success","context":"ci/unit"}`))
	}))
	t.Cleanup(srv.Close)
	s, err := NewGitHubStore("o/r", "tok", srv.URL+"/api/v3", nil)
	require.NoError(t, err)
	require.NoError(t, s.Record(t.Context(), Result{Stage: "unit", Rev: strings.Repeat("a", 40), State: StatePassed}))
	assert.Equal(t, int32(2), calls.Load())
}
