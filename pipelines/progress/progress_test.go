package progress

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/golden"
	"github.com/ipex-flake/ipex-flake/pipelines/build"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

const (
	drvA   = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-1.0.drv"
	drvBad = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-bad.drv"
)

func sampleReport() *report.Report {
	return &report.Report{Flake: ".", Engine: "host", Outputs: []report.Output{
		{Attr: "packages.x86_64-linux.hello", Status: report.StatusBuilt, DurationMs: report.Ms(1200 * time.Millisecond)},
		{Attr: "packages.x86_64-linux.bad", Status: report.StatusFailed, DurationMs: report.Ms(300 * time.Millisecond),
			Reason: "builder for '" + drvBad + "' failed with exit code 3", Log: []string{"make: *** [all] Error 3"}},
		{Attr: "checks.x86_64-linux.vm", Status: report.StatusSkipped, Reason: "requires system features kvm | nixos-test"},
		{Attr: "devShells.x86_64-linux.default", Status: report.StatusCached},
		{Attr: "packages.x86_64-linux.python", Status: report.StatusPresent},
	}}
}

// play feeds a fixed sequence of events with a fake clock.
func play(p *Printer) {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return clock }
	p.start = clock
	p.Phase("evaluating . for x86_64-linux")
	p.Event(build.Event{Kind: build.BuildStarted, DrvPath: drvA})
	p.Event(build.Event{Kind: build.BuildStarted, DrvPath: drvBad})
	clock = clock.Add(time.Second)
	p.Event(build.Event{Kind: build.BuildLog, DrvPath: drvA, Line: "compiling hello.c"})
	p.Event(build.Event{Kind: build.BuildFailed, DrvPath: drvBad, Elapsed: 300 * time.Millisecond})
	clock = clock.Add(time.Second)
	p.Event(build.Event{Kind: build.BuildFinished, DrvPath: drvA, Elapsed: 1200 * time.Millisecond})
}

func TestPlain(t *testing.T) {
	var buf bytes.Buffer
	p := New(&buf, Plain)
	play(p)
	require.NoError(t, p.Finish(sampleReport()))
	assert.NotContains(t, buf.String(), "\x1b[", "no escape codes in plain mode")
	golden.Assert(t, "plain.txt", buf.Bytes())
}

func TestLive(t *testing.T) {
	var buf bytes.Buffer
	p := New(&buf, Live)
	play(p)
	out := buf.String()
	assert.Contains(t, out, "\x1b[2K[1s] 1 running, 1 done, 1 failed")
	assert.Contains(t, out, "hello-1.0")
	assert.Contains(t, out, "compiling hello.c", "the running build's last log line is shown")
	require.NoError(t, p.Finish(sampleReport()))
	// After Finish the live view is erased and nothing is left running.
	assert.Zero(t, p.drawn)
	golden.Assert(t, "live.txt", []byte(strings.ReplaceAll(buf.String(), "\x1b", "<ESC>")))
}

// TestLiveFollowsNixCounters: nix closes the activity of a requested
// derivation only when it exits, so the live view trusts nix's running
// counter and shows the most recently active builds.
func TestLiveFollowsNixCounters(t *testing.T) {
	var buf bytes.Buffer
	p := New(&buf, Live)
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return clock }
	p.start = clock
	p.Event(build.Event{Kind: build.BuildStarted, DrvPath: drvA})
	p.Event(build.Event{Kind: build.BuildStarted, DrvPath: drvBad})
	clock = clock.Add(2 * time.Second)
	p.Event(build.Event{Kind: build.BuildLog, DrvPath: drvBad, Line: "still going"})
	buf.Reset()
	p.Event(build.Event{Kind: build.BuildCounts, Counts: build.Counts{Done: 1, Expected: 3, Running: 1}})
	out := buf.String()
	assert.Contains(t, out, "[2s] 1/3 built, 1 running, 0 failed")
	assert.Contains(t, out, "still going")
	assert.NotContains(t, out, "hello-1.0", "the quiet build is no longer shown as running")

	p.Event(build.Event{Kind: build.BuildStopped, DrvPath: drvBad})
	assert.NotContains(t, p.running, drvBad)
}

// TestLiveTicks: while nix is quiet the live view still redraws once per
// tick, and the elapsed time and the build's timer move with the clock.
func TestLiveTicks(t *testing.T) {
	var buf bytes.Buffer
	p := New(&buf, Live)
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	p.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	p.start = clock
	p.Event(build.Event{Kind: build.BuildStarted, DrvPath: drvA})

	ticks := make(chan time.Time) // unbuffered: a send returns once the loop took it
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	go func() { defer close(done); p.TickEvery(ctx, ticks) }()
	var frames []string
	for i := 1; i <= 3; i++ {
		mu.Lock()
		clock = clock.Add(time.Second)
		mu.Unlock()
		ticks <- clock
		ticks <- clock // the first tick's redraw has finished when this one is taken
		p.mu.Lock()
		frames = append(frames, buf.String())
		buf.Reset()
		p.mu.Unlock()
	}
	cancel()
	<-done
	for i, f := range frames {
		sec := fmt.Sprintf("%ds", i+1)
		assert.Contains(t, f, "["+sec+"] 1 running", "frame %d", i+1)
		assert.Regexp(t, `hello-1\.0\s+`+sec, f, "the build's timer ticks (frame %d)", i+1)
	}

	// Ticking does nothing outside Live mode.
	var plain bytes.Buffer
	q := New(&plain, Plain)
	q.Event(build.Event{Kind: build.BuildStarted, DrvPath: drvA})
	plain.Reset()
	q.Tick()
	q.Ticking(t.Context())()
	assert.Empty(t, plain.String())
}

// TestFailedDependencyLogOnce: a dependency that made many outputs fail is
// printed once, naming them, in every mode.
func TestFailedDependencyLogOnce(t *testing.T) {
	const dep = "/nix/store/dddddddddddddddddddddddddddddddd-base.drv"
	r := &report.Report{Flake: ".", Engine: "host"}
	for i := 0; i < 100; i++ {
		r.Outputs = append(r.Outputs, report.Output{Attr: fmt.Sprintf("packages.x86_64-linux.p%03d", i), Status: report.StatusFailed,
			Reason: "dependency base.drv failed: builder for '" + dep + "' failed with exit code 4", FailedDependency: dep,
			Log: []string{"base breaks here"}})
	}
	r.Outputs = append(r.Outputs, report.Output{Attr: "packages.x86_64-linux.own", Status: report.StatusFailed,
		Reason: "builder failed", Log: []string{"own log"}})
	for _, mode := range []Mode{Plain, GitHubActions, Live} {
		var buf bytes.Buffer
		p := New(&buf, mode)
		p.Width = 100000
		require.NoError(t, p.Finish(r))
		out := buf.String()
		assert.Equal(t, 1, strings.Count(out, "base breaks here"), "mode %d", mode)
		assert.Contains(t, out, "base (needed by 100: packages.x86_64-linux.p000, packages.x86_64-linux.p001")
		assert.Contains(t, out, "packages.x86_64-linux.p099)")
		assert.Equal(t, 1, strings.Count(out, "own log"))
	}
}

func TestGitHubActions(t *testing.T) {
	var buf bytes.Buffer
	summary := filepath.Join(t.TempDir(), "summary.md")
	require.NoError(t, os.WriteFile(summary, []byte("earlier step\n"), 0o644))
	p := New(&buf, GitHubActions)
	p.SummaryFile = summary
	play(p)
	require.NoError(t, p.Finish(sampleReport()))
	out := buf.String()
	assert.Contains(t, out, "::group::packages.x86_64-linux.bad: last log lines\nmake: *** [all] Error 3\n::endgroup::")
	golden.Assert(t, "github-actions.txt", []byte(out))
	md, err := os.ReadFile(summary)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(md), "earlier step\n"), "the summary is appended to")
	golden.Assert(t, "summary.md", md)
}

func TestDetect(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	tests := []struct {
		name string
		env  func(string) string
		tty  bool
		want Mode
	}{
		{"terminal", env(), true, Live},
		{"pipe", env(), false, Plain},
		{"ci terminal", env("CI", "true"), true, Plain},
		{"dumb terminal", env("TERM", "dumb"), true, Plain},
		{"github actions", env("GITHUB_ACTIONS", "true", "CI", "true"), false, GitHubActions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Detect(tt.env, tt.tty))
		})
	}
}

func TestName(t *testing.T) {
	assert.Equal(t, "hello-1.0", Name(drvA))
	assert.Equal(t, "weird", Name("weird.drv"))
}

func TestLiveCutsLinesToTheTerminal(t *testing.T) {
	var buf bytes.Buffer
	p := New(&buf, Live)
	p.Width = 40
	require.NoError(t, p.Finish(sampleReport()))
	for _, l := range strings.Split(buf.String(), "\n") {
		assert.LessOrEqual(t, len([]rune(l)), 40, l)
	}
	assert.Contains(t, buf.String(), "…")
}
