package parallel

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMapCallsEachDistinctKeyOnce(t *testing.T) {
	var calls sync.Map
	got, err := Map(t.Context(), []string{"a", "b", "a", "c"}, 2, func(_ context.Context, k string) (string, error) {
		n, _ := calls.LoadOrStore(k, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		return k + k, nil
	})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"a": "aa", "b": "bb", "c": "cc"}, got)
	calls.Range(func(k, n any) bool {
		assert.Equal(t, int32(1), n.(*atomic.Int32).Load(), "calls for %s", k)
		return true
	})
}

// TestMapBoundsConcurrency holds every call until limit calls are in
// flight at once, gives Map the chance to start more, and checks that it
// never did.
func TestMapBoundsConcurrency(t *testing.T) {
	const limit = 3
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = fmt.Sprint(i)
	}
	var (
		mu             sync.Mutex
		inFlight, most int
		once           sync.Once
	)
	full := make(chan struct{})
	_, err := Map(t.Context(), keys, limit, func(_ context.Context, _ string) (bool, error) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		reached := inFlight == limit
		mu.Unlock()
		if reached {
			// Let Map start more calls if it would (a bounded number of
			// yields, never needed for the test to pass), then release all.
			for range 1000 {
				runtime.Gosched()
			}
			once.Do(func() { close(full) })
		}
		<-full
		mu.Lock()
		inFlight--
		mu.Unlock()
		return true, nil
	})
	require.NoError(t, err)
	assert.Equal(t, limit, most)
}

func TestMapFirstErrorCancelsTheRest(t *testing.T) {
	boom := errors.New("boom")
	got, err := Map(t.Context(), []string{"bad", "b", "c", "d"}, 1, func(ctx context.Context, k string) (int, error) {
		if k == "bad" {
			return 0, boom
		}
		return 0, ctx.Err()
	})
	require.ErrorIs(t, err, boom)
	assert.Nil(t, got)
}
