package build

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
)

func TestParseShard(t *testing.T) {
	tests := []struct {
		in      string
		want    Shard
		wantErr bool
	}{
		{"1/1", Shard{1, 1}, false},
		{"2/4", Shard{2, 4}, false},
		{" 4/4 ", Shard{4, 4}, false},
		{"0/4", Shard{}, true},
		{"5/4", Shard{}, true},
		{"2", Shard{}, true},
		{"a/b", Shard{}, true},
		{"1/0", Shard{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseShard(tt.in)
			if tt.wantErr {
				require.ErrorContains(t, err, "give I/N")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, strings.TrimSpace(tt.in), got.String())
		})
	}
}

// family is a chain of libraries shared by its apps, like the torch and
// IPEX builds shared by the Python applications of the real flake.
type family struct{ libs, apps int }

// familiesFlake generates a flake whose outputs come in families: each
// family's apps share its library chain, and every derivation depends on
// one common base.
func familiesFlake(nonce string, fams []family) (fixture.Flake, map[string]string) {
	f := fixture.Flake{Nonce: nonce, Drvs: map[string]fixture.Drv{"base": {Script: "echo base > $out"}}, Packages: map[string]string{}}
	famOf := map[string]string{}
	for i, fm := range fams {
		prev := "base"
		for l := 0; l < fm.libs; l++ {
			name := fmt.Sprintf("f%d-lib%d", i, l)
			f.Drvs[name] = fixture.Drv{Script: "echo " + name + " $dep_" + strings.ReplaceAll(prev, "-", "_") + " > $out", Deps: []string{prev}}
			prev = name
		}
		for a := 0; a < fm.apps; a++ {
			name := fmt.Sprintf("f%d-app%d", i, a)
			f.Drvs[name] = fixture.Drv{Script: "echo " + name + " > $out", Deps: []string{prev}}
			f.Packages[name] = name
			famOf["packages.x86_64-linux."+name] = strconv.Itoa(i)
		}
	}
	return f, famOf
}

var dryRunRe = regexp.MustCompile(`these (\d+) derivations will be built|(this) derivation will be built`)

// nixWouldBuild asks nix how many derivations building drvs takes.
func nixWouldBuild(t *testing.T, eng engine.Engine, drvs []string) int {
	t.Helper()
	m, err := ProbeMachine(t.Context(), eng)
	require.NoError(t, err)
	args := []string{"nix", "--extra-experimental-features", "nix-command flakes", "build", "--dry-run"}
	for _, d := range drvs {
		args = append(args, m.Version.DrvInstallable(d))
	}
	var errb bytes.Buffer
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = &errb
	require.NoError(t, cmd.Run(), errb.String())
	mm := dryRunRe.FindStringSubmatch(errb.String())
	if mm == nil {
		return 0
	}
	if mm[2] == "this" {
		return 1
	}
	n, _ := strconv.Atoi(mm[1])
	return n
}

// TestPlanShardsGenerated: on a generated flake with shared dependencies the
// shards hold every output exactly once, keep each family together, and the
// largest shard's cost (checked against nix's own dry run) is within 1.5× of
// the mean. The plan does not depend on the order of the outputs.
func TestPlanShardsGenerated(t *testing.T) {
	fams := []family{{8, 3}, {6, 2}, {5, 4}, {4, 1}, {3, 2}, {3, 3}, {2, 2}}
	f, famOf := familiesFlake(testlib.Nonce(), fams)
	_, eng := setup(t, f)
	m, err := ProbeMachine(t.Context(), eng)
	require.NoError(t, err)
	disc, err := Discover(t.Context(), eng, eng.SourcePath(), []string{"x86_64-linux"}, nil, 2)
	require.NoError(t, err)
	drvOf := map[string]string{}
	for _, o := range disc.Outputs {
		drvOf[o.Attr] = o.DrvPath
	}

	for _, n := range []int{1, 2, 3, 4} {
		t.Run(fmt.Sprintf("%d shards", n), func(t *testing.T) {
			plan, err := PlanShards(t.Context(), eng, m.Version, disc.Outputs, n)
			require.NoError(t, err)
			require.Len(t, plan.Shards, n)
			var union []string
			sum, peak := 0, 0
			for i, s := range plan.Shards {
				union = append(union, s.Attrs...)
				var drvs []string
				fam := map[string]bool{}
				for _, a := range s.Attrs {
					drvs = append(drvs, drvOf[a])
					fam[famOf[a]] = true
				}
				assert.Equal(t, nixWouldBuild(t, eng, drvs), s.Cost, "shard %d's cost is what nix would build", i+1)
				sum += s.Cost
				peak = max(peak, s.Cost)
				t.Logf("shard %d: cost %d, %d outputs, families %v", i+1, s.Cost, len(s.Attrs), slices.Sorted(func(yield func(string) bool) {
					for k := range fam {
						if !yield(k) {
							return
						}
					}
				}))
			}
			slices.Sort(union)
			var all []string
			for a := range famOf {
				all = append(all, a)
			}
			slices.Sort(all)
			assert.Equal(t, all, union, "every output exactly once")
			mean := float64(sum) / float64(n)
			assert.LessOrEqual(t, float64(peak), 1.5*mean, "largest shard %d, mean %.1f", peak, mean)

			// Families stay together: shared libraries build once.
			shardOf := map[string]int{}
			for i, s := range plan.Shards {
				for _, a := range s.Attrs {
					shardOf[a] = i
				}
			}
			for a, fa := range famOf {
				for b, fb := range famOf {
					if fa == fb {
						assert.Equal(t, shardOf[a], shardOf[b], "%s and %s share their libraries", a, b)
					}
				}
			}

			// Another job, outputs in another order: the same plan.
			shuffled := slices.Clone(disc.Outputs)
			rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			again, err := PlanShards(t.Context(), eng, m.Version, shuffled, n)
			require.NoError(t, err)
			assert.Equal(t, plan, again)
		})
	}

	// Another runner may hold some outputs already, and the caches may
	// have gained some (other shards push as they finish): the plan is the
	// same, so every job agrees.
	t.Run("store and caches", func(t *testing.T) {
		before, err := PlanShards(t.Context(), eng, m.Version, disc.Outputs, 3)
		require.NoError(t, err)
		graph, err := showDerivations(t.Context(), eng, m.Version, []string{drvOf["packages.x86_64-linux.f0-app0"]})
		require.NoError(t, err)
		var libDrvs, libOuts []string
		for d, node := range graph {
			if strings.Contains(d, "-f0-lib") {
				libDrvs = append(libDrvs, m.Version.DrvInstallable(d))
				libOuts = append(libOuts, node.Outputs...)
			}
		}
		require.Len(t, libDrvs, fams[0].libs)
		dir := t.TempDir()
		nix := func(args ...string) {
			out, err := exec.Command("nix", append([]string{"--extra-experimental-features", "nix-command flakes"}, args...)...).CombinedOutput()
			require.NoError(t, err, string(out))
		}
		nix(append([]string{"build", "--no-link"}, libDrvs...)...)
		nix(append([]string{"copy", "--to", "file://" + dir}, libOuts...)...)
		t.Setenv("NIX_CONFIG", os.Getenv("NIX_CONFIG")+"\nsubstituters = file://"+dir)
		after, err := PlanShards(t.Context(), eng, m.Version, disc.Outputs, 3)
		require.NoError(t, err)
		assert.Equal(t, before, after)
	})
}

// hostsOfTwoSystems has six light x86_64-linux configurations and two
// heavy aarch64-linux ones: a build for x86_64-linux skips the heavy ones.
func hostsOfTwoSystems(nonce string) fixture.Flake {
	hosts := map[string]fixture.Host{}
	for i := range 6 {
		hosts[fmt.Sprintf("x86-%d", i)] = fixture.Host{System: "x86_64-linux", Libs: 2}
	}
	for i := range 2 {
		hosts[fmt.Sprintf("arm-%d", i)] = fixture.Host{System: "aarch64-linux", Libs: 8}
	}
	return fixture.Hosts(nonce, hosts)
}

// TestPlanShardsSelectedSystems: configurations, whose system is known only
// after evaluation, of a system not selected are in no shard and weigh
// nothing; the shards hold exactly the selected outputs, and the work each
// shard really does (nix's dry run of its outputs) is balanced.
func TestPlanShardsSelectedSystems(t *testing.T) {
	_, eng := setup(t, hostsOfTwoSystems(testlib.Nonce()))
	m, err := ProbeMachine(t.Context(), eng)
	require.NoError(t, err)
	disc, err := Discover(t.Context(), eng, eng.SourcePath(), []string{"x86_64-linux"}, nil, 2)
	require.NoError(t, err)
	drvOf := map[string]string{}
	var selected, all []string
	for _, o := range disc.Outputs {
		require.True(t, o.OK, o.Attr)
		drvOf[o.Attr] = o.DrvPath
		if strings.HasPrefix(o.Attr, "nixosConfigurations.x86-") {
			selected = append(selected, o.Attr)
			all = append(all, o.DrvPath)
		}
		assert.Equal(t, strings.HasPrefix(o.Attr, "nixosConfigurations.x86-"), o.Selected(), o.Attr)
	}
	require.Len(t, selected, 6)
	require.Len(t, disc.Outputs, 8, "the aarch64-linux configurations are discovered, marked not selected")

	for _, n := range []int{2, 3, 4} {
		t.Run(fmt.Sprintf("%d shards", n), func(t *testing.T) {
			plan, err := PlanShards(t.Context(), eng, m.Version, disc.Outputs, n)
			require.NoError(t, err)
			var union []string
			sum, peak := 0, 0
			for i, s := range plan.Shards {
				union = append(union, s.Attrs...)
				var drvs []string
				for _, a := range s.Attrs {
					if slices.Contains(selected, a) {
						drvs = append(drvs, drvOf[a])
					}
				}
				work := 0 // what the shard's job builds
				if len(drvs) > 0 {
					work = nixWouldBuild(t, eng, drvs)
				}
				assert.Equal(t, work, s.Cost, "shard %d's cost is what nix would build", i+1)
				sum += work
				peak = max(peak, work)
			}
			slices.Sort(union)
			assert.Equal(t, selected, union, "exactly the selected outputs, each once")
			assert.Equal(t, nixWouldBuild(t, eng, all), plan.Derivations)
			mean := float64(sum) / float64(n)
			t.Logf("%d shards: largest %d, mean %.1f, ratio %.2f", n, peak, mean, float64(peak)/mean)
			assert.LessOrEqual(t, float64(peak), 1.5*mean, "largest shard %d, mean %.1f", peak, mean)

			// A runner that could build aarch64-linux too plans the same:
			// the plan reads the selection, not the machine.
			t.Setenv("NIX_CONFIG", os.Getenv("NIX_CONFIG")+"\nextra-platforms = aarch64-linux")
			again, err := PlanShards(t.Context(), eng, m.Version, disc.Outputs, n)
			require.NoError(t, err)
			assert.Equal(t, plan, again)
		})
	}
}
