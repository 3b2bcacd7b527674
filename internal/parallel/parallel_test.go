package parallel

import (
	"context"
	"errors"
	"fmt"
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
// flight at once, then checks that no more ever were.
func TestMapBoundsConcurrency(t *testing.T) {
	const limit = 3
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = fmt.Sprint(i)
	}
	var inFlight, most atomic.Int32
	full := make(chan struct{})
	var once sync.Once
	_, err := Map(t.Context(), keys, limit, func(_ context.Context, _ string) (bool, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		if n == limit {
			once.Do(func() { close(full) })
		}
		<-full
		return true, nil
	})
	require.NoError(t, err)
	assert.Equal(t, int32(limit), most.Load())
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
