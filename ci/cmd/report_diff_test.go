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

func TestReportDiff(t *testing.T) {
	dir := t.TempDir()
	write := func(name, engine string, outs ...report.Output) string {
		p := filepath.Join(dir, name)
		require.NoError(t, (&report.Report{Engine: engine, Outputs: outs}).Write(p))
		return p
	}
	ok := report.Output{Attr: "packages.x86_64-linux.ok", Status: report.StatusBuilt, DrvPath: "/nix/store/a-ok.drv", OutPaths: []string{"/nix/store/b-ok"}}
	bad := report.Output{Attr: "packages.x86_64-linux.bad", Status: report.StatusFailed, DrvPath: "/nix/store/c-bad.drv", OutPaths: []string{"/nix/store/d-bad"}}
	badBuilt := bad
	badBuilt.Status = report.StatusBuilt
	host := write("host.json", "host", ok, bad)
	notJSON := filepath.Join(dir, "broken.json")
	require.NoError(t, os.WriteFile(notJSON, []byte("{"), 0o644))

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{name: "agree", args: []string{host, write("dagger.json", "dagger", bad, ok)}, wantCode: clierr.ExitOK, wantErr: "agree: 2 outputs"},
		{name: "differ", args: []string{host, write("dagger2.json", "dagger", ok, badBuilt)}, wantCode: clierr.ExitFailed,
			wantOut: "packages.x86_64-linux.bad: status failed ≠ built\n", wantErr: "differ in 1 places"},
		{name: "empty", args: []string{write("e1.json", "host"), write("e2.json", "dagger")}, wantCode: clierr.ExitFailed, wantErr: "nothing to compare"},
		{name: "missing file", args: []string{host, filepath.Join(dir, "nope.json")}, wantCode: clierr.ExitUsage, wantErr: "nope.json"},
		{name: "not a report", args: []string{host, notJSON}, wantCode: clierr.ExitUsage, wantErr: "not a build report"},
		{name: "one argument", args: []string{host}, wantCode: clierr.ExitUsage, wantErr: "takes two report files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			io, out, errb := testIO(nil)
			code := Run(t.Context(), io, append([]string{"report", "diff"}, tt.args...))
			assert.Equal(t, tt.wantCode, code, errb.String())
			assert.Equal(t, tt.wantOut, out.String())
			assert.Contains(t, errb.String(), tt.wantErr)
		})
	}
}
