package cmd

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/build"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

// sharedDepsFlake has three groups of packages, each group sharing a chain
// of dependencies.
func sharedDepsFlake(nonce string) fixture.Flake {
	f := fixture.Flake{Nonce: nonce, Drvs: map[string]fixture.Drv{}, Packages: map[string]string{}}
	for g, size := range []int{4, 3, 2} {
		prev := ""
		for l := 0; l < size; l++ {
			name := fmt.Sprintf("g%d-lib%d", g, l)
			d := fixture.Drv{Script: "echo " + name + " > $out"}
			if prev != "" {
				d.Deps = []string{prev}
			}
			f.Drvs[name] = d
			prev = name
		}
		for a := 0; a < 3; a++ {
			name := fmt.Sprintf("g%d-app%d", g, a)
			f.Drvs[name] = fixture.Drv{Script: "echo " + name + " > $out", Deps: []string{prev}}
			f.Packages[name] = name
		}
	}
	return f
}

var planLine = regexp.MustCompile(`shard (\d+/\d+) of plan ([0-9a-f]{12})`)

// runShardJob runs `ci build --shard` for a matrix entry, checks that the
// job computes the matrix's plan, and returns its report and the report's
// path.
func runShardJob(t *testing.T, e ShardEntry, common []string) (*report.Report, string) {
	t.Helper()
	rep := filepath.Join(t.TempDir(), "r.json")
	io, _, errb := testIO(map[string]string{})
	code := Run(t.Context(), io, append([]string{"build", "--shard", e.Shard, "--shard-plan", e.Plan, "--report", rep}, common...))
	require.Equal(t, clierr.ExitOK, code, errb.String())
	got := planLine.FindStringSubmatch(errb.String())
	require.NotNil(t, got, errb.String())
	assert.Equal(t, []string{e.Shard, e.Plan}, got[1:], "the job computes the matrix's plan")
	r, err := report.Read(rep)
	require.NoError(t, err)
	return r, rep
}

// TestShardMatrixAndBuild: the jobs of `ci matrix --shards 3` each run
// `ci build --shard I/3`; together they build every output exactly once,
// and every job computes the plan the matrix printed.
func TestShardMatrixAndBuild(t *testing.T) {
	testlib.OfflineNix(t)
	dir := t.TempDir()
	require.NoError(t, fixture.Write(dir, sharedDepsFlake(testlib.Nonce())))
	cacheURI := "file://" + t.TempDir()
	common := []string{"--engine", "host", "--flake", dir, "--systems", "x86_64-linux"}

	io, out, errb := testIO(map[string]string{})
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, append([]string{"matrix", "--shards", "3"}, common...)), errb.String())
	common = append(common, "--cache", cacheURI)
	var m ShardMatrix
	require.NoError(t, json.Unmarshal(out.Bytes(), &m), out.String())
	require.Len(t, m.Include, 3)
	for i, e := range m.Include {
		assert.Equal(t, i+1, e.Index)
		assert.Equal(t, fmt.Sprintf("%d/3", i+1), e.Shard)
	}

	var built, paths []string
	for _, e := range m.Include {
		r, _ := runShardJob(t, e, common)
		assert.Len(t, r.Outputs, e.Outputs)
		for _, o := range r.Outputs {
			assert.Equal(t, report.StatusBuilt, o.Status, o.Attr)
			built = append(built, o.Attr)
			paths = append(paths, o.OutPaths...)
		}
	}
	slices.Sort(built)
	var all []string
	for name := range sharedDepsFlake("").Packages {
		all = append(all, "packages.x86_64-linux."+name)
	}
	slices.Sort(all)
	assert.Equal(t, all, built, "every output exactly once")

	// The cache gains a shard's outputs (as the staging cache does while
	// shards run): a job started later still computes the matrix's plan,
	// and reports those outputs cached.
	cp, err := exec.Command("nix", append([]string{"--extra-experimental-features", "nix-command", "copy", "--to", cacheURI}, paths...)...).CombinedOutput()
	require.NoError(t, err, string(cp))
	io, _, errb = testIO(map[string]string{})
	rep := filepath.Join(t.TempDir(), "r.json")
	code := Run(t.Context(), io, append([]string{"build", "--shard", m.Include[0].Shard, "--shard-plan", m.Include[0].Plan, "--report", rep}, common...))
	require.Equal(t, clierr.ExitOK, code, errb.String())
	r, err := report.Read(rep)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{report.StatusCached: m.Include[0].Outputs}, r.Counts())

	// A job that evaluates other outputs than the plan job (here: another
	// --attr) refuses to build from its own plan.
	io, _, errb = testIO(map[string]string{})
	rep = filepath.Join(t.TempDir(), "r.json")
	code = Run(t.Context(), io, append([]string{"build", "--shard", "1/3", "--shard-plan", m.Include[0].Plan, "--report", rep, "--attr", "packages.*.g0-*"}, common...))
	assert.Equal(t, clierr.ExitUsage, code, errb.String())
	assert.Contains(t, errb.String(), "rerun ci matrix --shards")
	assert.NoFileExists(t, rep)
}

// TestShardMatrixSkipsEmptyShards: more shards than outputs gives one job
// per shard that has outputs, never an empty matrix.
func TestShardMatrixSkipsEmptyShards(t *testing.T) {
	testlib.OfflineNix(t)
	tests := []struct {
		name     string
		packages int
		shards   int
		want     int
	}{
		{"more shards than outputs", 2, 5, 2},
		{"no outputs", 0, 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			f := fixture.Generated(tt.packages, testlib.Nonce())
			if tt.packages == 0 {
				f = fixture.Flake{Nonce: testlib.Nonce()}
			}
			require.NoError(t, fixture.Write(dir, f))
			io, out, errb := testIO(map[string]string{})
			code := Run(t.Context(), io, []string{"matrix", "--shards", fmt.Sprint(tt.shards), "--engine", "host", "--flake", dir})
			require.Equal(t, clierr.ExitOK, code, errb.String())
			var m ShardMatrix
			require.NoError(t, json.Unmarshal(out.Bytes(), &m))
			require.Len(t, m.Include, tt.want)
			total := 0
			for _, e := range m.Include {
				total += e.Outputs
			}
			assert.Equal(t, tt.packages, total)
		})
	}
}

// TestShardMatrixSelectedSystems: configurations of a system not selected
// (their system is known only after evaluation) are in no shard. The jobs
// of `ci matrix --shards 2 --systems x86_64-linux` agree on the plan, build
// exactly the x86_64-linux configurations once between them, and each
// reports the others skipped; the merged report has every output once.
func TestShardMatrixSelectedSystems(t *testing.T) {
	testlib.OfflineNix(t)
	dir := t.TempDir()
	hosts := map[string]fixture.Host{
		"x86-0": {Libs: 1}, "x86-1": {Libs: 1}, "x86-2": {Libs: 1}, "x86-3": {Libs: 1},
		"arm-0": {System: "aarch64-linux", Libs: 6}, "arm-1": {System: "aarch64-linux", Libs: 6},
	}
	require.NoError(t, fixture.Write(dir, fixture.Hosts(testlib.Nonce(), hosts)))
	common := []string{"--engine", "host", "--flake", dir, "--systems", "x86_64-linux"}
	attr := func(host string) string { return "nixosConfigurations." + host + ".config.system.build.toplevel" }

	io, out, errb := testIO(map[string]string{})
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, append([]string{"matrix", "--shards", "2"}, common...)), errb.String())
	var m ShardMatrix
	require.NoError(t, json.Unmarshal(out.Bytes(), &m), out.String())
	require.Len(t, m.Include, 2)
	for _, e := range m.Include {
		assert.Equal(t, 2, e.Outputs, "%s: two of the four selected configurations", e.Shard)
		assert.Equal(t, 4, e.Cost, "%s: two toplevels and their libraries", e.Shard)
	}

	var built, reports []string
	for _, e := range m.Include {
		r, rep := runShardJob(t, e, common)
		for _, o := range r.Outputs {
			if o.Status == report.StatusBuilt {
				built = append(built, o.Attr)
				continue
			}
			assert.Contains(t, []string{attr("arm-0"), attr("arm-1")}, o.Attr)
			assert.Equal(t, report.StatusSkipped, o.Status, o.Attr)
			assert.Equal(t, build.NotSelectedReason, o.Reason, o.Attr)
		}
		assert.Len(t, r.Outputs, e.Outputs+2, "the shard's outputs and the two not selected")
		reports = append(reports, rep)
	}
	slices.Sort(built)
	assert.Equal(t, []string{attr("x86-0"), attr("x86-1"), attr("x86-2"), attr("x86-3")}, built, "every selected output exactly once")

	merged := filepath.Join(t.TempDir(), "merged.json")
	io, _, errb = testIO(map[string]string{})
	require.Equal(t, clierr.ExitOK, Run(t.Context(), io, append([]string{"report", "merge", "--out", merged}, reports...)), errb.String())
	r, err := report.Read(merged)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{report.StatusBuilt: 4, report.StatusSkipped: 2}, r.Counts())
}
