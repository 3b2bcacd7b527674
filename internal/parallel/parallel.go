// Package parallel runs one function per key with bounded concurrency.
package parallel

import (
	"context"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Map calls f once for every distinct key, at most limit calls at a time,
// and returns the results by key. The first error cancels the context the
// other calls get, and Map returns it with no results.
func Map[T any](ctx context.Context, keys []string, limit int, f func(context.Context, string) (T, error)) (map[string]T, error) {
	var mu sync.Mutex
	out := make(map[string]T, len(keys))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		g.Go(func() error {
			v, err := f(ctx, k)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			out[k] = v
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}
