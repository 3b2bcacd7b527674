package cmd

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

func TestReportMerge(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, r *report.Report) string {
		p := filepath.Join(dir, name)
		require.NoError(t, r.Write(p))
		return p
	}
	a := report.Output{Attr: "packages.x86_64-linux.a", DrvPath: "/nix/store/a.drv", OutPaths: []string{"/nix/store/a"}, Status: report.StatusBuilt}
	b := report.Output{Attr: "packages.x86_64-linux.b", DrvPath: "/nix/store/b.drv", OutPaths: []string{"/nix/store/b"}, Status: report.StatusCached}
	one := write("1.json", &report.Report{Flake: "/src", Rev: "abc", Engine: "host", Outputs: []report.Output{a}})
	two := write("2.json", &report.Report{Flake: "/src", Rev: "abc", Engine: "host", Outputs: []report.Output{b}})
	out := filepath.Join(dir, "merged.json")

	io, stdout, errb := testIO(nil)
	code := Run(t.Context(), io, []string{"report", "merge", "--out", out, one, two})
	require.Equal(t, clierr.ExitOK, code, errb.String())
	assert.Contains(t, stdout.String(), "2 outputs from 2 reports")
	got, err := report.Read(out)
	require.NoError(t, err)
	assert.Equal(t, []report.Output{a, b}, got.Outputs)

	// Bad input: exit 2, the fix named, the existing report untouched.
	before, err := os.ReadFile(out)
	require.NoError(t, err)
	other := write("3.json", &report.Report{Flake: "/src", Rev: "def", Engine: "host"})
	notReport := filepath.Join(dir, "x.json")
	require.NoError(t, os.WriteFile(notReport, []byte("{"), 0o644))
	for _, args := range [][]string{{one, other}, {notReport}, {filepath.Join(dir, "missing.json")}} {
		io, _, errb := testIO(nil)
		code := Run(t.Context(), io, append([]string{"report", "merge", "--out", out}, args...))
		assert.Equal(t, clierr.ExitUsage, code, errb.String())
		after, err := os.ReadFile(out)
		require.NoError(t, err)
		assert.Equal(t, before, after)
	}
}
