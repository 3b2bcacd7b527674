package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/golden"
)

func sample() *Report {
	return &Report{Flake: ".", Engine: "host", Outputs: []Output{
		{Attr: "packages.x86_64-linux.a", System: "x86_64-linux", DrvPath: "/nix/store/aaaa-a.drv", OutPaths: []string{"/nix/store/aaaa-a"}, Status: StatusBuilt, DurationMs: Ms(1500 * time.Millisecond)},
		{Attr: "packages.x86_64-linux.c", System: "x86_64-linux", OutPaths: []string{"/nix/store/cccc-c"}, Status: StatusCached},
		{Attr: "checks.x86_64-linux.bad", System: "x86_64-linux", Status: StatusFailed, Reason: "builder for '/nix/store/bbbb-bad.drv' failed with exit code 3", Log: []string{"compiling", "error: <oops> & more"}, DurationMs: Ms(250 * time.Millisecond)},
		{Attr: "packages.x86_64-linux.p", System: "x86_64-linux", OutPaths: []string{"/nix/store/pppp-p"}, Status: StatusPresent},
		{Attr: "checks.x86_64-linux.vm", System: "x86_64-linux", Status: StatusSkipped, Reason: "requires system features kvm that this machine lacks"},
	}}
}

func TestJUnitGolden(t *testing.T) {
	data, err := sample().JUnit()
	require.NoError(t, err)
	golden.Assert(t, "junit.xml", data)
}

func TestWriteReadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "report.json")
	r := sample()
	require.NoError(t, r.Write(path))
	got, err := Read(path)
	require.NoError(t, err)
	assert.Equal(t, r, got)
	assert.Equal(t, map[string]int{StatusBuilt: 1, StatusPresent: 1, StatusCached: 1, StatusFailed: 1, StatusSkipped: 1}, got.Counts())

	// An unknown duration is left out, not written as 0.
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, 2, strings.Count(string(data), "durationMs"))
	assert.Nil(t, got.Outputs[1].DurationMs)

	require.NoError(t, os.WriteFile(path, []byte("{"), 0o644))
	_, err = Read(path)
	assert.ErrorContains(t, err, "not a build report")
}

func TestAvailable(t *testing.T) {
	for _, tc := range []struct {
		status      string
		avail, locl bool
	}{
		{StatusBuilt, true, true},
		{StatusPresent, true, true},
		{StatusCached, true, false},
		{StatusWouldBuild, false, false},
		{StatusFailed, false, false},
		{StatusSkipped, false, false},
	} {
		o := Output{Status: tc.status, OutPaths: []string{"/nix/store/x"}}
		assert.Equal(t, tc.avail, o.Available(), tc.status)
		assert.Equal(t, tc.locl, o.Local(), tc.status)
		o.OutPaths = nil
		assert.False(t, o.Available(), "no paths: %s", tc.status)
	}
}
