package report

import (
	"encoding/xml"
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

// parsedJUnit is what a JUnit consumer reads: times as numbers, absent
// ones nil.
type parsedJUnit struct {
	Suites []struct {
		Tests int      `xml:"tests,attr"`
		Time  *float64 `xml:"time,attr"`
		Cases []struct {
			Name string   `xml:"name,attr"`
			Time *float64 `xml:"time,attr"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// TestJUnitTimes: a testcase has a time only when the output's duration is
// known (0 ms is known); the suite's time sums the known ones and is absent
// when none is. A consumer parses every case.
func TestJUnitTimes(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name      string
		outputs   []Output
		wantSuite *float64
		wantCases []*float64
	}{
		{"sample: unknown times left out", sample().Outputs, f(1.75), []*float64{f(1.5), nil, f(0.25), nil, nil}},
		{"none known", []Output{
			{Attr: "packages.x86_64-linux.c", Status: StatusCached},
			{Attr: "packages.x86_64-linux.d", Status: StatusFailed, Reason: "dependency failed"},
		}, nil, []*float64{nil, nil}},
		{"0 ms is known", []Output{
			{Attr: "packages.x86_64-linux.a", Status: StatusBuilt, DurationMs: Ms(0)},
			{Attr: "packages.x86_64-linux.c", Status: StatusCached},
		}, f(0), []*float64{f(0), nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := (&Report{Flake: ".", Outputs: tt.outputs}).JUnit()
			require.NoError(t, err)
			var got parsedJUnit
			require.NoError(t, xml.Unmarshal(data, &got))
			require.Len(t, got.Suites, 1)
			s := got.Suites[0]
			assert.Equal(t, len(tt.outputs), s.Tests)
			assert.Equal(t, tt.wantSuite, s.Time)
			require.Len(t, s.Cases, len(tt.outputs))
			for i, c := range s.Cases {
				assert.Equal(t, tt.outputs[i].Attr, c.Name)
				assert.Equal(t, tt.wantCases[i], c.Time, c.Name)
			}
			assert.NotContains(t, string(data), `time=""`)
		})
	}
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
