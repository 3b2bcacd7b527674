package stage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/host"
)

type fakeStage struct {
	name     string
	requires []Feature
	skip     string
	defErr   error
	run      func(ctx context.Context) error
	ran      bool
}

func (f *fakeStage) Name() string        { return f.name }
func (f *fakeStage) Requires() []Feature { return f.requires }
func (f *fakeStage) SkipReason() string  { return f.skip }
func (f *fakeStage) Default() error      { return f.defErr }
func (f *fakeStage) Run(ctx context.Context) error {
	f.ran = true
	if f.run == nil {
		return nil
	}
	return f.run(ctx)
}

func TestSkipIsTyped(t *testing.T) {
	err := errors.Join(errors.New("other"), Skip("no intel-gpu on this machine"))
	var s *SkipError
	require.ErrorAs(t, err, &s)
	assert.Equal(t, "no intel-gpu on this machine", s.Reason)
	why, ok := IsSkip(err)
	assert.True(t, ok)
	assert.Equal(t, s.Reason, why)
	_, ok = IsSkip(errors.New("plain"))
	assert.False(t, ok)
}

func TestRunStates(t *testing.T) {
	none := Host{DevRoot: t.TempDir(), SysRoot: t.TempDir(), ProcRoot: t.TempDir()}
	tests := []struct {
		name      string
		stage     *fakeStage
		host      Host
		wantState string
		wantRan   bool
		wantWhy   string
	}{
		{name: "passes", stage: &fakeStage{name: "x"}, host: none, wantState: Passed, wantRan: true},
		{name: "fails", stage: &fakeStage{name: "x", run: func(context.Context) error { return errors.New("boom\nmore") }},
			host: none, wantState: Failed, wantRan: true, wantWhy: "boom"},
		{name: "skips itself", stage: &fakeStage{name: "x", run: func(context.Context) error { return Skip("no workflows") }},
			host: none, wantState: Skipped, wantRan: true, wantWhy: "no workflows"},
		{name: "requirement missing", stage: &fakeStage{name: "x", requires: []Feature{IntelGPU}},
			host: none, wantState: Skipped, wantWhy: "no intel-gpu on this machine"},
		{name: "table requirement missing", stage: &fakeStage{name: "performance"},
			host: none, wantState: Skipped, wantWhy: "no intel-gpu on this machine"},
		{name: "requirement assumed", stage: &fakeStage{name: "x", requires: []Feature{IntelGPU}},
			host: Host{DevRoot: none.DevRoot, Assume: []Feature{IntelGPU}}, wantState: Passed, wantRan: true},
		{name: "skipper", stage: &fakeStage{name: "x", skip: "no flake.nix"}, host: none, wantState: Skipped, wantWhy: "no flake.nix"},
		{name: "defaulter error", stage: &fakeStage{name: "x", defErr: errors.New("bad tolerance")}, host: none,
			wantState: Failed, wantWhy: "bad tolerance"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Run(t.Context(), tt.stage, Options{Host: tt.host})
			assert.Equal(t, tt.wantState, o.State)
			assert.Equal(t, tt.wantRan, tt.stage.ran)
			assert.Contains(t, o.Reason, tt.wantWhy)
			if tt.wantState == Skipped {
				_, ok := IsSkip(o.Err)
				assert.True(t, ok, "a skipped outcome carries a Skip error")
				assert.True(t, strings.HasPrefix(o.Description(), "skipped: "))
			}
			if tt.wantState == Passed {
				assert.NoError(t, o.Err)
			} else {
				assert.Error(t, o.Err)
			}
		})
	}
}

func TestTimeouts(t *testing.T) {
	var o Options
	assert.Equal(t, 30*time.Minute, o.TimeoutFor("unit"))
	assert.Equal(t, 60*time.Minute, o.TimeoutFor("integration"))
	assert.Equal(t, 120*time.Minute, o.TimeoutFor("performance"))
	assert.Equal(t, 45*time.Minute, o.TimeoutFor("security"))
	o.Timeouts = map[string]time.Duration{"unit": time.Minute}
	assert.Equal(t, time.Minute, o.TimeoutFor("unit"))
}

// TestOverrunKillsChildren runs a real command tree on the host engine past
// the stage's limit: the stage is reported timed out and the grandchild is gone.
func TestOverrunKillsChildren(t *testing.T) {
	dir := t.TempDir()
	eng, err := host.New(engine.Options{Source: dir})
	require.NoError(t, err)
	defer eng.Close()
	pidFile := filepath.Join(dir, "child.pid")
	st := &fakeStage{name: "slow", run: func(ctx context.Context) error {
		var out bytes.Buffer
		_, err := eng.Run(ctx, engine.Cmd{
			Args:   []string{"/bin/sh", "-c", `sleep 300 & echo $! > child.pid; wait`},
			Stdout: &out, Stderr: &out,
		})
		return err
	}}
	o := Run(t.Context(), st, Options{Timeouts: map[string]time.Duration{"slow": 300 * time.Millisecond}})
	assert.Equal(t, TimedOut, o.State)
	assert.Equal(t, "timed out after 300ms", o.Description())
	assert.ErrorIs(t, o.Err, context.DeadlineExceeded)
	assert.Less(t, o.Duration, 60*time.Second)

	data, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	require.NoError(t, err)
	// The grandchild was killed with its group. Killing is asynchronous:
	// wait (bounded) until it is gone or a zombie.
	assert.Eventually(t, func() bool {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		return strings.Contains(string(stat), ") Z")
	}, 10*time.Second, 10*time.Millisecond, "child %d still running", pid)
}

func TestCollector(t *testing.T) {
	var out bytes.Buffer
	c := &Collector{Out: &out}
	assert.ErrorContains(t, c.Err(), "nothing to check")
	c.Pass("a", "", time.Second)
	c.SkipCheck("b", "needs kvm")
	assert.NoError(t, c.Err())
	c.Fail("c", "exit 1", 0)
	assert.ErrorContains(t, c.Err(), "1 of 3 checks failed: c")
	assert.Equal(t, "1 passed, 1 failed, 1 skipped", CountChecks(c.Checks()))
	assert.Contains(t, out.String(), "skipped  b: needs kvm")

	only := &Collector{}
	only.SkipCheck("vm", "needs kvm")
	why, ok := IsSkip(only.Err())
	assert.True(t, ok)
	assert.Contains(t, why, "vm: needs kvm")
}

func TestTableOrder(t *testing.T) {
	assert.Equal(t, []string{"unit", "integration", "performance", "security"}, Names())
	s, ok := Lookup("performance")
	require.True(t, ok)
	assert.Equal(t, []Feature{IntelGPU, BigMemory}, s.Requires)
}
