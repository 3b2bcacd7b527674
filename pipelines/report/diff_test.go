package report

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestDiff(t *testing.T) {
	out := func(attr, status, drv string, outs ...string) Output {
		return Output{Attr: attr, Status: status, DrvPath: drv, OutPaths: outs}
	}
	base := []Output{
		out("packages.x86_64-linux.ok", StatusBuilt, "/nix/store/a-ok.drv", "/nix/store/b-ok", "/nix/store/c-ok-dev"),
		out("packages.x86_64-linux.bad", StatusFailed, "/nix/store/d-bad.drv", "/nix/store/e-bad"),
	}
	tests := []struct {
		name  string
		other []Output
		want  []string
	}{
		{name: "same", other: base},
		{name: "reasons, logs, durations and output order are not compared", other: []Output{
			{Attr: "packages.x86_64-linux.bad", Status: StatusFailed, DrvPath: "/nix/store/d-bad.drv", OutPaths: []string{"/nix/store/e-bad"}, Reason: "other words", Log: []string{"x"}, DurationMs: Ms(5 * time.Millisecond)},
			out("packages.x86_64-linux.ok", StatusBuilt, "/nix/store/a-ok.drv", "/nix/store/c-ok-dev", "/nix/store/b-ok"),
		}},
		{name: "status", other: []Output{base[0], out("packages.x86_64-linux.bad", StatusBuilt, "/nix/store/d-bad.drv", "/nix/store/e-bad")},
			want: []string{"packages.x86_64-linux.bad: status failed ≠ built"}},
		{name: "drvPath", other: []Output{out("packages.x86_64-linux.ok", StatusBuilt, "/nix/store/z-ok.drv", "/nix/store/b-ok", "/nix/store/c-ok-dev"), base[1]},
			want: []string{"packages.x86_64-linux.ok: drvPath /nix/store/a-ok.drv ≠ /nix/store/z-ok.drv"}},
		{name: "outPaths", other: []Output{out("packages.x86_64-linux.ok", StatusBuilt, "/nix/store/a-ok.drv", "/nix/store/b-ok"), base[1]},
			want: []string{"packages.x86_64-linux.ok: outPaths /nix/store/b-ok /nix/store/c-ok-dev ≠ /nix/store/b-ok"}},
		{name: "missing and extra", other: []Output{base[0], out("checks.x86_64-linux.vm", StatusSkipped, "")},
			want: []string{"checks.x86_64-linux.vm: only in the second report (skipped)", "packages.x86_64-linux.bad: only in the first report (failed)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diff(&Report{Outputs: base}, &Report{Outputs: tt.other})
			assert.Equal(t, tt.want, got)
		})
	}
}
