// Package githubhttp makes every GitHub API client of the project
// (releases, stage results, `ci doctor`): NewGitHub, on an HTTP client with
// a per-attempt timeout and retries on go-retryablehttp with GitHub's
// rate-limit rules, inside an overall limit per request.
package githubhttp

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// RetryTransport retries GitHub API requests with go-retryablehttp: on 5xx,
// on network errors and per-attempt timeouts, on secondary rate limits
// (honouring Retry-After, else a minute) and on an exhausted primary rate
// limit that resets soon. Non-idempotent requests are retried too: the
// caller treats a resulting 422 "already exists" as "re-read and decide
// again". When the tries are used up, the last response is returned as it
// is, so go-github reports GitHub's own error.
type RetryTransport struct {
	Base http.RoundTripper
	// MaxAttempts bounds the tries per request (default 5).
	MaxAttempts int
	// AttemptTimeout bounds each try, body included (default 30s).
	AttemptTimeout time.Duration
	// MaxWait is the longest single wait the transport accepts (default
	// 2m); a longer Retry-After or rate-limit reset returns the response.
	MaxWait time.Duration
	// Sleep, when set, waits d or until ctx ends in place of
	// go-retryablehttp's own timer (tests record the waits with it).
	Sleep func(ctx context.Context, d time.Duration) error
}

// backoff is 1s, 2s, 4s, … capped at 30s.
func backoff(attempt int) time.Duration {
	d := time.Second << attempt
	if d > 30*time.Second || d <= 0 {
		d = 30 * time.Second
	}
	return d
}

// RoundTrip implements http.RoundTripper.
func (t *RetryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		// A RoundTripper closes the body; go-retryablehttp reads it into
		// memory once to resend it on every try.
		defer req.Body.Close()
	}
	rt := &retryablehttp.RoundTripper{Client: t.client(req.Context())}
	return rt.RoundTrip(req.Clone(req.Context()))
}

// client is the retrying client of one request: CheckRetry decides from
// the response (and its body, for secondary rate limits) whether and
// after how long to try again, Backoff hands that wait on.
func (t *RetryTransport) client(ctx context.Context) *retryablehttp.Client {
	attempts := cmpOr(t.MaxAttempts, 5)
	maxWait := cmpOr(t.MaxWait, 2*time.Minute)
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	attempt, wait := 0, time.Duration(0)
	return &retryablehttp.Client{
		HTTPClient: &http.Client{
			Transport: base,
			Timeout:   cmpOr(t.AttemptTimeout, 30*time.Second),
			// Redirects go back to go-github's own client.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		RetryMax: attempts - 1,
		CheckRetry: func(ctx context.Context, resp *http.Response, err error) (bool, error) {
			defer func() { attempt++ }()
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			if err != nil {
				wait = backoff(attempt)
				return true, nil
			}
			var retry bool
			wait, retry = retryAfter(resp, attempt)
			return retry && wait <= maxWait, nil
		},
		Backoff: func(_, _ time.Duration, _ int, _ *http.Response) time.Duration {
			if t.Sleep == nil {
				return wait
			}
			// An error here is the context's: the retry that follows
			// fails on it at once.
			_ = t.Sleep(ctx, wait)
			return 0
		},
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
}

// cmpOr is v, or def when v is not positive.
func cmpOr[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
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

// RequestTimeout bounds one request with all its retries and waits.
const RequestTimeout = 10 * time.Minute

// NewClient returns the HTTP client for go-github: t (defaults when nil)
// under RequestTimeout.
func NewClient(t *RetryTransport) *http.Client {
	if t == nil {
		t = &RetryTransport{}
	}
	return &http.Client{Transport: t, Timeout: RequestTimeout}
}
