package reproduce

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/internal/testsshd"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/host"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

func TestCompareTrees(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	write := func(root, rel, data string, mode os.FileMode) {
		p := filepath.Join(root, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(data), mode))
	}
	for _, root := range []string{a, b} {
		write(root, "same", "x", 0o644)
		write(root, "lib/same", "y", 0o644)
	}
	write(a, "bin/tool", "v1", 0o755)
	write(b, "bin/tool", "v2", 0o755)
	write(a, "run", "r", 0o755)
	write(b, "run", "r", 0o644)
	write(a, "only-a", "", 0o644)
	write(b, "only-b", "", 0o644)
	big := make([]byte, 200<<10)
	write(a, "big", string(big), 0o644)
	big[150<<10] = 1
	write(b, "big", string(big), 0o644)
	require.NoError(t, os.Symlink("same", filepath.Join(a, "link")))
	require.NoError(t, os.Symlink("lib/same", filepath.Join(b, "link")))
	require.NoError(t, os.Mkdir(filepath.Join(a, "kind"), 0o755))
	write(b, "kind", "", 0o644)

	got, err := CompareTrees(a, b)
	require.NoError(t, err)
	assert.Equal(t, []Difference{
		{"big", DiffContent}, {"bin/tool", DiffContent}, {"kind", DiffType}, {"link", DiffLink},
		{"only-a", DiffOnlyA}, {"only-b", DiffOnlyB}, {"run", DiffMode},
	}, got)

	same, err := CompareTrees(filepath.Join(a, "lib"), filepath.Join(b, "lib"))
	require.NoError(t, err)
	assert.Empty(t, same)

	// A single-file output differs at its root.
	one, err := CompareTrees(filepath.Join(a, "bin/tool"), filepath.Join(b, "bin/tool"))
	require.NoError(t, err)
	assert.Equal(t, []Difference{{".", DiffContent}}, one)
}

func TestSelect(t *testing.T) {
	rep := &report.Report{Outputs: []report.Output{
		{Attr: "packages.x86_64-linux.a", DrvPath: "/nix/store/a.drv", Status: report.StatusBuilt},
		{Attr: "packages.x86_64-linux.b", DrvPath: "/nix/store/b.drv", Status: report.StatusCached},
		{Attr: "packages.x86_64-linux.alias", DrvPath: "/nix/store/a.drv", Status: report.StatusBuilt},
		{Attr: "packages.x86_64-linux.c", DrvPath: "/nix/store/c.drv", Status: report.StatusFailed},
		{Attr: "checks.x86_64-linux.d", DrvPath: "/nix/store/d.drv", Status: report.StatusBuilt},
		{Attr: "packages.x86_64-linux.noeval", Status: report.StatusFailed},
	}}
	tests := []struct {
		name, glob string
		want       []string
		wantErr    string
	}{
		{"all", "", []string{"packages.x86_64-linux.a", "packages.x86_64-linux.b", "checks.x86_64-linux.d"}, ""},
		{"packages", "packages.*", []string{"packages.x86_64-linux.a", "packages.x86_64-linux.b"}, ""},
		{"one", "*.*.b", []string{"packages.x86_64-linux.b"}, ""},
		{"bad glob", "[", nil, "not a glob"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Select(rep, tt.glob)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			var attrs []string
			for _, o := range got {
				attrs = append(attrs, o.Attr)
			}
			assert.Equal(t, tt.want, attrs)
		})
	}
}

// NondeterministicFlake is a fixture with a deterministic output, one that
// writes a random number and one whose builder fails.
func nondeterministicFlake(nonce string) fixture.Flake {
	return fixture.Flake{
		Nonce: nonce,
		Drvs: map[string]fixture.Drv{
			"det":   {Script: "echo hello > $out"},
			"rnd":   {Script: "read -r x < /proc/sys/kernel/random/uuid; echo stamp $x > $out"},
			"pid":   {Script: "echo built by $$ > $out"},
			"fails": {Script: "echo no; exit 3"},
		},
		Packages: map[string]string{"det": "det", "rnd": "rnd", "pid": "pid", "fails": "fails"},
	}
}

// drvPaths evaluates the fixture's derivations.
func drvPaths(t *testing.T, dir string, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range names {
		b, err := exec.Command("nix", "--extra-experimental-features", "nix-command flakes", "eval", "--raw",
			dir+"#packages.x86_64-linux."+n+".drvPath").Output()
		require.NoError(t, err, "evaluate %s", n)
		out[n] = string(b)
	}
	return out
}

func TestCheckRealNix(t *testing.T) {
	testlib.OfflineNix(t)
	dir := t.TempDir()
	require.NoError(t, fixture.Write(dir, nondeterministicFlake(testlib.Nonce())))
	drvs := drvPaths(t, dir, "det", "rnd", "pid", "fails")
	eng, err := host.New(engine.Options{Source: dir})
	require.NoError(t, err)
	t.Cleanup(func() { eng.Close() })
	c := &Checker{Engine: eng, Diffoscope: "-"}

	det := c.Check(t.Context(), report.Output{Attr: "packages.x86_64-linux.det", DrvPath: drvs["det"]})
	assert.Equal(t, StatusReproducible, det.Status, det.Reason)
	require.Len(t, det.Outputs, 1)
	assert.Empty(t, det.Outputs[0].Differences)

	for _, name := range []string{"rnd", "pid"} {
		r := c.Check(t.Context(), report.Output{Attr: "packages.x86_64-linux." + name, DrvPath: drvs[name]})
		assert.Equal(t, StatusDiffers, r.Status, r.Reason)
		require.Len(t, r.Outputs, 1)
		o := r.Outputs[0]
		assert.Equal(t, o.Path+".check", o.Check)
		assert.Equal(t, []Difference{{".", DiffContent}}, o.Differences)
		assert.Equal(t, []string{o.Path}, r.Files())
		first, _ := os.ReadFile(o.Path)
		second, _ := os.ReadFile(o.Check)
		assert.NotEqual(t, string(first), string(second))
	}

	bad := c.Check(t.Context(), report.Output{Attr: "packages.x86_64-linux.fails", DrvPath: drvs["fails"]})
	assert.Equal(t, StatusFailed, bad.Status)
	assert.Contains(t, bad.Reason, "first build failed")

	data, err := json.Marshal(det)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"status":"reproducible"`)
}

// TestDiffoscopeSummary runs the real diffoscope (CI installs
// diffoscope-minimal) on an output that differs.
func TestDiffoscopeSummary(t *testing.T) {
	testlib.CheckPath(t, "diffoscope")
	testlib.OfflineNix(t)
	dir := t.TempDir()
	require.NoError(t, fixture.Write(dir, nondeterministicFlake(testlib.Nonce())))
	drvs := drvPaths(t, dir, "rnd")
	eng, err := host.New(engine.Options{Source: dir})
	require.NoError(t, err)
	t.Cleanup(func() { eng.Close() })
	c := &Checker{Engine: eng}
	r := c.Check(t.Context(), report.Output{Attr: "packages.x86_64-linux.rnd", DrvPath: drvs["rnd"]})
	require.Equal(t, StatusDiffers, r.Status, r.Reason)
	assert.Contains(t, r.Outputs[0].Diffoscope, "stamp")
	assert.NotContains(t, r.Outputs[0].Diffoscope, "diffoscope failed")
}

// TestUnpackNAR round-trips a tree through nix-store --dump.
func TestUnpackNAR(t *testing.T) {
	testlib.CheckPath(t, "nix-store")
	src := filepath.Join(t.TempDir(), "tree")
	require.NoError(t, os.MkdirAll(filepath.Join(src, "bin"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(src, "share", "empty"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src, "bin", "tool"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src, "share", "data"), make([]byte, 70001), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(src, "odd"), []byte("123"), 0o644))
	require.NoError(t, os.Symlink("bin/tool", filepath.Join(src, "link")))
	nar, err := exec.Command("nix-store", "--dump", src).Output()
	require.NoError(t, err)
	dst := filepath.Join(t.TempDir(), "out")
	require.NoError(t, UnpackNAR(bytes.NewReader(nar), dst))
	diffs, err := CompareTrees(src, dst)
	require.NoError(t, err)
	assert.Empty(t, diffs)
	st, err := os.Stat(filepath.Join(dst, "bin", "tool"))
	require.NoError(t, err)
	assert.NotZero(t, st.Mode()&0o100, "executable bit kept")

	require.ErrorContains(t, UnpackNAR(bytes.NewReader([]byte("garbage!")), filepath.Join(t.TempDir(), "x")), "not a NAR")
	require.Error(t, UnpackNAR(bytes.NewReader(nar[:len(nar)-16]), filepath.Join(t.TempDir(), "y")), "truncated")
}

// TestCheckOnBuilder rebuilds on a second machine: a loopback sshd whose
// nix store is a second store directory.
func TestCheckOnBuilder(t *testing.T) {
	testlib.OfflineNix(t)
	srv := testsshd.Start(t)
	dir := t.TempDir()
	require.NoError(t, fixture.Write(dir, nondeterministicFlake(testlib.Nonce())))
	drvs := drvPaths(t, dir, "det", "rnd", "fails")
	eng, err := host.New(engine.Options{Source: dir})
	require.NoError(t, err)
	t.Cleanup(func() { eng.Close() })
	keep := t.TempDir()
	hostKey, err := os.ReadFile(filepath.Join(srv.Dir, "host_key.pub"))
	require.NoError(t, err)
	uri := srv.URI() + "&ssh-key=" + filepath.Join(srv.Dir, "client_key") + "&base64-ssh-public-host-key=" + base64.StdEncoding.EncodeToString(hostKey)
	c := &Checker{Engine: eng, Diffoscope: "-", Builder: uri, BuilderEnv: map[string]string{"NIX_SSHOPTS": srv.SSHOpts()}, KeepDir: keep}

	det := c.Check(t.Context(), report.Output{Attr: "packages.x86_64-linux.det", DrvPath: drvs["det"]})
	assert.Equal(t, StatusReproducible, det.Status, det.Reason)

	rnd := c.Check(t.Context(), report.Output{Attr: "packages.x86_64-linux.rnd", DrvPath: drvs["rnd"]})
	require.Equal(t, StatusDiffers, rnd.Status, rnd.Reason)
	o := rnd.Outputs[0]
	assert.Equal(t, filepath.Join(keep, filepath.Base(o.Path)+".check"), o.Check)
	assert.Equal(t, []Difference{{".", DiffContent}}, o.Differences)
	second, err := os.ReadFile(o.Check)
	require.NoError(t, err)
	assert.Contains(t, string(second), "stamp ")

	bad := c.Check(t.Context(), report.Output{Attr: "packages.x86_64-linux.fails", DrvPath: drvs["fails"]})
	assert.Equal(t, StatusFailed, bad.Status)
}
