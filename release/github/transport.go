package github

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryTransport retries GitHub API requests: on 5xx, on network errors and
// per-attempt timeouts, on secondary rate limits (honouring Retry-After,
// else a minute) and on an exhausted primary rate limit that resets soon.
// Non-idempotent requests are retried too: the caller treats a resulting
// 422 "already exists" as "re-read and decide again".
type RetryTransport struct {
	Base http.RoundTripper
	// MaxAttempts bounds the tries per request (default 5).
	MaxAttempts int
	// AttemptTimeout bounds each try (default 30s).
	AttemptTimeout time.Duration
	// MaxWait is the longest single wait the transport accepts (default
	// 2m); a longer Retry-After or rate-limit reset returns the response.
	MaxWait time.Duration
	// Sleep waits d or until ctx ends (tests replace it).
	Sleep func(ctx context.Context, d time.Duration) error
}

func (t *RetryTransport) defaults() (attempts int, timeout, maxWait time.Duration, sleep func(context.Context, time.Duration) error, base http.RoundTripper) {
	attempts, timeout, maxWait, sleep, base = t.MaxAttempts, t.AttemptTimeout, t.MaxWait, t.Sleep, t.Base
	if attempts <= 0 {
		attempts = 5
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	if maxWait <= 0 {
		maxWait = 2 * time.Minute
	}
	if sleep == nil {
		sleep = sleepCtx
	}
	if base == nil {
		base = http.DefaultTransport
	}
	return
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// backoff is 1s, 2s, 4s, … capped at 30s.
func backoff(attempt int) time.Duration {
	d := time.Second << attempt
	if d > 30*time.Second || d <= 0 {
		d = 30 * time.Second
	}
	return d
}

// cancelBody cancels the attempt's context when the body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error { err := b.ReadCloser.Close(); b.cancel(); return err }

// RoundTrip implements http.RoundTripper.
func (t *RetryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	attempts, timeout, maxWait, sleep, base := t.defaults()
	var body []byte
	if req.Body != nil && req.GetBody == nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, timeout)
		r := req.Clone(actx)
		switch {
		case body != nil:
			r.Body = io.NopCloser(bytes.NewReader(body))
		case req.GetBody != nil:
			rb, err := req.GetBody()
			if err != nil {
				cancel()
				return nil, err
			}
			r.Body = rb
		}
		resp, err := base.RoundTrip(r)
		last := attempt+1 >= attempts
		if err != nil {
			cancel()
			if ctx.Err() != nil || last {
				return nil, err
			}
			if serr := sleep(ctx, backoff(attempt)); serr != nil {
				return nil, err
			}
			continue
		}
		wait, retry := retryAfter(resp, attempt)
		if !retry || last || wait > maxWait {
			resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
			return resp, nil
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		cancel()
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// retryAfter decides whether resp is worth retrying and after how long.
// It may read and restore resp.Body.
func retryAfter(resp *http.Response, attempt int) (time.Duration, bool) {
	if ra := resp.Header.Get("Retry-After"); ra != "" && (resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500) {
		if s, err := strconv.Atoi(strings.TrimSpace(ra)); err == nil && s >= 0 {
			return time.Duration(s) * time.Second, true
		}
		if when, err := http.ParseTime(ra); err == nil {
			return max(time.Until(when), 0), true
		}
	}
	switch {
	case resp.StatusCode >= 500:
		return backoff(attempt), true
	case resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusTooManyRequests:
		if resp.Header.Get("X-RateLimit-Remaining") == "0" {
			if reset, err := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64); err == nil {
				return max(time.Until(time.Unix(reset, 0)), 0) + time.Second, true
			}
			return 0, false
		}
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(data))
		if bytes.Contains(bytes.ToLower(data), []byte("secondary rate limit")) || bytes.Contains(data, []byte("secondary-rate-limits")) {
			// GitHub: without Retry-After, wait at least one minute.
			return time.Minute << min(attempt, 2), true
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			return backoff(attempt), true
		}
	}
	return 0, false
}
