package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/host"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

// recorder is a Progress that keeps everything it is told.
type recorder struct {
	mu     sync.Mutex
	phases []string
	events []Event
	onEv   func(Event)
}

func (r *recorder) Phase(m string) { r.mu.Lock(); r.phases = append(r.phases, m); r.mu.Unlock() }
func (r *recorder) Event(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	f := r.onEv
	r.mu.Unlock()
	if f != nil {
		f(e)
	}
}

func (r *recorder) started() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]int{}
	for _, e := range r.events {
		if e.Kind == BuildStarted {
			m[strings.TrimSuffix(filepath.Base(e.DrvPath)[33:], ".drv")]++
		}
	}
	return m
}

func setup(t *testing.T, f fixture.Flake) (string, engine.Engine) {
	t.Helper()
	testlib.OfflineNix(t)
	dir := t.TempDir()
	require.NoError(t, fixture.Write(dir, f))
	eng, err := host.New(engine.Options{Source: dir})
	require.NoError(t, err)
	t.Cleanup(func() { eng.Close() })
	return dir, eng
}

func byAttr(r *report.Report) map[string]report.Output {
	m := map[string]report.Output{}
	for _, o := range r.Outputs {
		m[o.Attr] = o
	}
	return m
}

func TestRunEveryStatus(t *testing.T) {
	nonce := testlib.Nonce()
	f := fixture.Flake{
		Nonce: nonce,
		Drvs: map[string]fixture.Drv{
			"shared":   {Script: "echo building shared; echo shared > $out"},
			"a":        {Script: "echo a $dep_shared > $out", Deps: []string{"shared"}},
			"b":        {Script: "echo b $dep_shared > $out", Deps: []string{"shared"}},
			"bad":      {Script: "echo this build fails on purpose; exit 3"},
			"needsbad": {Script: "echo $dep_bad > $out", Deps: []string{"bad"}},
			"thrown":   {Throw: "thrown on purpose"},
			"aborted":  {Abort: "aborted on purpose"},
			"arm":      {Script: "echo > $out", System: "aarch64-linux"},
			"gpu":      {Script: "echo > $out", Features: []string{"intel-gpu"}},
			"cached":   {Script: "echo cached > $out"},
			"fmt":      {Script: "echo fmt > $out"},
			"tool":     {Script: "echo tool > $out"},
		},
		Packages: map[string]string{
			"a": "a", "b": "b", "bad": "bad", "needsbad": "needsbad", "thrown": "thrown",
			"aborted": "aborted", "arm": "arm", "gpu": "gpu", "cached": "cached",
			"also-a": "a", // same derivation as packages.a: built once
		},
		Checks:    map[string]string{"a": "a"},
		DevShells: map[string]string{"default": "b"},
		Formatter: "fmt",
		Apps:      map[string]string{"tool": "tool"},
	}
	_, eng := setup(t, f)

	// Pre-seed a file:// cache with the "cached" output's narinfo.
	cacheDir := t.TempDir()
	disc, err := Discover(t.Context(), eng, eng.SourcePath(), []string{"x86_64-linux"}, []string{"packages.*.cached"}, 2)
	require.NoError(t, err)
	require.Len(t, disc.Outputs, 1)
	require.Equal(t, 1, disc.EvalProcesses, "one evaluation without failures")
	for _, p := range disc.Outputs[0].OutPaths() {
		require.NoError(t, os.WriteFile(filepath.Join(cacheDir, cache.HashPart(p)+".narinfo"), []byte("StorePath: "+p+"\n"), 0o644))
	}
	lookup, err := cache.New("file://"+cacheDir, nil)
	require.NoError(t, err)

	rec := &recorder{}
	rep, st, err := Run(t.Context(), Options{Engine: eng, Flake: eng.SourcePath(), Systems: []string{"x86_64-linux"}, Jobs: 2, Cache: lookup, Progress: rec})
	require.NoError(t, err)
	got := byAttr(rep)

	want := map[string]string{
		"packages.x86_64-linux.a":        report.StatusBuilt,
		"packages.x86_64-linux.also-a":   report.StatusBuilt,
		"packages.x86_64-linux.b":        report.StatusBuilt,
		"packages.x86_64-linux.bad":      report.StatusFailed,
		"packages.x86_64-linux.needsbad": report.StatusFailed,
		"packages.x86_64-linux.thrown":   report.StatusFailed,
		"packages.x86_64-linux.aborted":  report.StatusFailed,
		"packages.x86_64-linux.arm":      report.StatusSkipped,
		"packages.x86_64-linux.gpu":      report.StatusSkipped,
		"packages.x86_64-linux.cached":   report.StatusCached,
		"checks.x86_64-linux.a":          report.StatusBuilt,
		"devShells.x86_64-linux.default": report.StatusBuilt,
		"formatter.x86_64-linux":         report.StatusBuilt,
		"apps.x86_64-linux.tool":         report.StatusBuilt,
	}
	require.Len(t, got, len(want))
	for attr, status := range want {
		assert.Equal(t, status, got[attr].Status, "%s: %s", attr, got[attr].Reason)
	}

	assert.Contains(t, got["packages.x86_64-linux.bad"].Reason, "exit code 3")
	assert.Contains(t, strings.Join(got["packages.x86_64-linux.bad"].Log, "\n"), "this build fails on purpose")
	assert.Contains(t, got["packages.x86_64-linux.needsbad"].Reason, "dependency")
	assert.Contains(t, got["packages.x86_64-linux.needsbad"].Reason, "bad.drv failed: builder for")
	assert.Contains(t, strings.Join(got["packages.x86_64-linux.needsbad"].Log, "\n"), "this build fails on purpose", "the failed dependency's log")
	assert.Contains(t, got["packages.x86_64-linux.thrown"].Reason, "thrown on purpose")
	assert.Contains(t, got["packages.x86_64-linux.aborted"].Reason, "aborted on purpose")
	assert.Contains(t, got["packages.x86_64-linux.arm"].Reason, "aarch64-linux cannot be built")
	assert.Contains(t, got["packages.x86_64-linux.gpu"].Reason, "intel-gpu")
	assert.Equal(t, got["packages.x86_64-linux.a"].DrvPath, got["packages.x86_64-linux.also-a"].DrvPath)
	for _, o := range rep.Outputs {
		if o.Status == report.StatusBuilt {
			require.NotEmpty(t, o.OutPaths, o.Attr)
			_, err := os.Stat(o.OutPaths[0])
			assert.NoError(t, err, "%s output exists", o.Attr)
		}
	}

	// The shared dependency and the doubly-exported derivation built once;
	// the cached output was not built at all.
	started := rec.started()
	assert.Equal(t, 1, started["shared"])
	assert.Equal(t, 1, started["a"])
	assert.Zero(t, started["cached"])
	assert.Zero(t, started["arm"])
	// tryEval caught the throw; abort needed isolation, one process per output.
	assert.Greater(t, st.EvalProcesses, 1)
}

// TestRunNamesFailedDependency: when only the dependent is requested, nix
// names the dependent, not the dependency; the report names the dependency
// whose builder failed, with its log.
func TestRunNamesFailedDependency(t *testing.T) {
	_, eng := setup(t, fixture.Flake{
		Nonce: testlib.Nonce(),
		Drvs: map[string]fixture.Drv{
			"inner": {Script: "echo inner breaks; exit 5"},
			"outer": {Script: "echo $dep_inner > $out", Deps: []string{"inner"}},
		},
		Packages: map[string]string{"outer": "outer"},
	})
	rep, _, err := Run(t.Context(), Options{Engine: eng, Flake: eng.SourcePath(), Systems: []string{"x86_64-linux"}})
	require.NoError(t, err)
	require.Len(t, rep.Outputs, 1)
	o := rep.Outputs[0]
	assert.Equal(t, report.StatusFailed, o.Status)
	assert.Contains(t, o.Reason, "inner.drv failed: builder for")
	assert.Contains(t, o.Reason, "exit code 5")
	assert.Equal(t, []string{"inner breaks"}, o.Log)
}

func TestRunOneEvaluation(t *testing.T) {
	_, eng := setup(t, fixture.Generated(20, testlib.Nonce()))
	rep, st, err := Run(t.Context(), Options{Engine: eng, Flake: eng.SourcePath(), Systems: []string{"x86_64-linux"}})
	require.NoError(t, err)
	assert.Equal(t, 1, st.EvalProcesses)
	assert.Equal(t, 21, st.Derivations+1, "20 outputs share one dependency: 20 top-level derivations")
	assert.Equal(t, map[string]int{report.StatusBuilt: 20}, rep.Counts())

	// A rerun whose outputs are in a cache builds nothing.
	cacheDir := t.TempDir()
	for _, o := range rep.Outputs {
		require.NoError(t, os.WriteFile(filepath.Join(cacheDir, cache.HashPart(o.OutPaths[0])+".narinfo"), nil, 0o644))
	}
	lookup, err := cache.New("file://"+cacheDir, nil)
	require.NoError(t, err)
	rep2, st2, err := Run(t.Context(), Options{Engine: eng, Flake: eng.SourcePath(), Systems: []string{"x86_64-linux"}, Cache: lookup})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{report.StatusCached: 20}, rep2.Counts())
	assert.Zero(t, st2.Derivations)

	// Without the cache the outputs are present in the store: nothing is
	// built, and no duration is invented.
	rec := &recorder{}
	rep3, st3, err := Run(t.Context(), Options{Engine: eng, Flake: eng.SourcePath(), Systems: []string{"x86_64-linux"}, Progress: rec})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{report.StatusPresent: 20}, rep3.Counts())
	assert.Zero(t, st3.Derivations)
	assert.Empty(t, rec.started())
	for _, o := range rep3.Outputs {
		assert.Nil(t, o.DurationMs, o.Attr)
	}
}

func TestRunAttrFilter(t *testing.T) {
	_, eng := setup(t, fixture.Generated(5, testlib.Nonce()))
	rep, _, err := Run(t.Context(), Options{Engine: eng, Flake: eng.SourcePath(), Systems: []string{"x86_64-linux"},
		Attrs: []string{"packages.*.pkg-0001", "**pkg-0003"}})
	require.NoError(t, err)
	var attrs []string
	for _, o := range rep.Outputs {
		attrs = append(attrs, o.Attr)
	}
	assert.Equal(t, []string{"packages.x86_64-linux.pkg-0001", "packages.x86_64-linux.pkg-0003"}, attrs)
}

func TestRunFlakeDoesNotEvaluate(t *testing.T) {
	testlib.OfflineNix(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "flake.nix"), []byte("{ outputs = { self }: { packages = 1 +; }; }"), 0o644))
	eng, err := host.New(engine.Options{Source: dir})
	require.NoError(t, err)
	_, _, err = Run(t.Context(), Options{Engine: eng, Flake: dir, Systems: []string{"x86_64-linux"}})
	var ee *EvalError
	require.ErrorAs(t, err, &ee)
	assert.Contains(t, ee.Error(), "syntax error")
}

// TestRunInterrupted cancels a build while a derivation is running: the nix
// processes stop, what finished is reported, and a rerun completes.
func TestRunInterrupted(t *testing.T) {
	gate := testlib.Gate(t, "release")
	marker := "ipex-flake-interrupt-" + testlib.Nonce()
	_, eng := setup(t, fixture.Packages(marker, map[string]fixture.Drv{
		"quick": {Script: "echo quick > $out"},
		// Waits until the test creates the gate file.
		"slow": {Script: "echo waiting; while [ ! -e " + gate + " ]; do :; done; echo slow > $out", Deps: []string{"quick"}},
	}, "quick", "slow"))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rec := &recorder{}
	rec.onEv = func(e Event) {
		if e.Kind == BuildLog && e.Line == "waiting" {
			cancel()
		}
	}
	rep, _, err := Run(ctx, Options{Engine: eng, Flake: eng.SourcePath(), Systems: []string{"x86_64-linux"}, Jobs: 1, Progress: rec})
	require.ErrorIs(t, err, ErrInterrupted)
	got := byAttr(rep)
	assert.Equal(t, report.StatusBuilt, got["packages.x86_64-linux.quick"].Status)
	assert.Equal(t, report.StatusFailed, got["packages.x86_64-linux.slow"].Status)
	assert.Contains(t, got["packages.x86_64-linux.slow"].Reason, "interrupted")
	assert.Empty(t, testlib.PidsWith(marker), "no builder left running")

	require.NoError(t, os.WriteFile(gate, nil, 0o644))
	rep, _, err = Run(t.Context(), Options{Engine: eng, Flake: eng.SourcePath(), Systems: []string{"x86_64-linux"}})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{report.StatusBuilt: 1, report.StatusPresent: 1}, rep.Counts(), "quick was built before the interruption")
}

// spyEngine records the commands it runs on another engine.
type spyEngine struct {
	engine.Engine
	mu   sync.Mutex
	cmds []engine.Cmd
}

func (s *spyEngine) Run(ctx context.Context, c engine.Cmd) (engine.Result, error) {
	s.mu.Lock()
	s.cmds = append(s.cmds, c)
	s.mu.Unlock()
	return s.Engine.Run(ctx, c)
}

// TestRunSecrets: evaluation and build commands get the secrets (as
// secrets, never arguments); the configuration probe, which prints nix's
// settings, does not.
func TestRunSecrets(t *testing.T) {
	_, eng := setup(t, fixture.Generated(2, testlib.Nonce()))
	spy := &spyEngine{Engine: eng}
	const token = "ghp_spy0123456789"
	secrets := map[string]string{"NIX_CONFIG": "access-tokens = github.com=" + token}
	rep, _, err := Run(t.Context(), Options{Engine: spy, Flake: eng.SourcePath(), Systems: []string{"x86_64-linux"}, Secrets: secrets})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{report.StatusBuilt: 2}, rep.Counts())
	var sawEval, sawBuild bool
	for _, c := range spy.cmds {
		args := strings.Join(c.Args, " ")
		assert.NotContains(t, args, token)
		switch {
		case strings.Contains(args, " eval "):
			sawEval = true
			assert.Equal(t, secrets, c.Secrets, args)
		case strings.Contains(args, " build "):
			sawBuild = true
			assert.Equal(t, secrets, c.Secrets, args)
		case strings.Contains(args, "show-config"), strings.Contains(args, "config show"), strings.Contains(args, "--version"):
			assert.Empty(t, c.Secrets, args)
		}
	}
	assert.True(t, sawEval && sawBuild)
}

// evalCounter counts the nix evaluation processes the pipeline starts.
type evalCounter struct {
	engine.Engine
	mu    sync.Mutex
	evals int
}

func (c *evalCounter) Run(ctx context.Context, cmd engine.Cmd) (engine.Result, error) {
	if len(cmd.Args) > 0 && cmd.Args[0] == "nix" && slices.Contains(cmd.Args, "eval") {
		c.mu.Lock()
		c.evals++
		c.mu.Unlock()
	}
	return c.Engine.Run(ctx, cmd)
}

// TestDiscoverBisectsAnAbort: one abort among 64 outputs costs at most
// 2·log2(64) evaluations beyond the first and the listing, and every
// other output still evaluates.
func TestDiscoverBisectsAnAbort(t *testing.T) {
	f := fixture.Independent(64, testlib.Nonce())
	f.Drvs["pkg-0041"] = fixture.Drv{Abort: "aborted on purpose"}
	_, eng := setup(t, f)
	spy := &evalCounter{Engine: eng}
	d, err := Discover(t.Context(), spy, eng.SourcePath(), []string{"x86_64-linux"}, nil, 2)
	require.NoError(t, err)
	require.Len(t, d.Outputs, 64)
	failed := 0
	for _, o := range d.Outputs {
		if !o.OK {
			failed++
			assert.Equal(t, "packages.x86_64-linux.pkg-0041", o.Attr)
			assert.Contains(t, o.Error, "aborted on purpose")
		}
	}
	assert.Equal(t, 1, failed)
	assert.Equal(t, spy.evals, d.EvalProcesses, "the count is of real nix processes")
	assert.LessOrEqual(t, spy.evals, 2+2*6, "first evaluation, listing, two halves per bisection step")
	assert.Greater(t, spy.evals, 2)
}

func configurationsFlake(nonce string) fixture.Flake {
	f := fixture.Packages(nonce, map[string]fixture.Drv{
		"a": {Script: "echo a > $out"},
		"b": {Script: "echo b > $out"},
	}, "a")
	f.Extra = `      packages.aarch64-linux.a = d."a";
      nixosConfigurations.foo = { config.system.build.toplevel = d."a"; };
      homeConfigurations.bar = { activationPackage = d."b"; };
`
	return f
}

func TestRunSelection(t *testing.T) {
	_, eng := setup(t, configurationsFlake(testlib.Nonce()))
	tests := []struct {
		name     string
		attrs    []string
		systems  []string
		want     map[string]string
		wantErr  []string
		notInErr []string
	}{
		{
			name:  "configuration shorthand",
			attrs: []string{"nixosConfigurations.foo", "homeConfigurations.bar"},
			want: map[string]string{
				"nixosConfigurations.foo.config.system.build.toplevel": report.StatusBuilt,
				"homeConfigurations.bar.activationPackage":             report.StatusBuilt,
			},
		},
		{
			name: "unselected systems are skipped",
			want: map[string]string{
				"packages.x86_64-linux.a":                              report.StatusBuilt,
				"packages.aarch64-linux.a":                             report.StatusSkipped,
				"nixosConfigurations.foo.config.system.build.toplevel": report.StatusBuilt,
				"homeConfigurations.bar.activationPackage":             report.StatusBuilt,
			},
		},
		{
			name:     "a pattern that matches nothing",
			attrs:    []string{"packages.*.a", "packages.*.typo"},
			wantErr:  []string{`"packages.*.typo" matches no output`, "packages.x86_64-linux", "packages.aarch64-linux", "nixosConfigurations.foo", "homeConfigurations.bar"},
			notInErr: []string{`"packages.*.a"`},
		},
		{
			name:    "a system the flake lacks",
			systems: []string{"riscv64-linux"},
			wantErr: []string{"--systems riscv64-linux", "aarch64-linux, x86_64-linux", "packages.x86_64-linux"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			systems := tt.systems
			if systems == nil {
				systems = []string{"x86_64-linux"}
			}
			rep, _, err := Run(t.Context(), Options{Engine: eng, Flake: eng.SourcePath(), Systems: systems, Attrs: tt.attrs})
			if tt.wantErr != nil {
				var se *SelectionError
				require.ErrorAs(t, err, &se)
				assert.Nil(t, rep)
				for _, w := range tt.wantErr {
					assert.Contains(t, err.Error(), w)
				}
				for _, w := range tt.notInErr {
					assert.NotContains(t, err.Error(), w)
				}
				return
			}
			require.NoError(t, err)
			got := map[string]string{}
			for _, o := range rep.Outputs {
				got[o.Attr] = o.Status
				if o.Status == report.StatusSkipped {
					assert.Equal(t, "system not selected (--systems)", o.Reason)
				}
			}
			for attr, st := range tt.want {
				if st == report.StatusBuilt && got[attr] == report.StatusPresent {
					got[attr] = report.StatusBuilt // built by an earlier case
				}
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestRunSharedDependencyFails: with more outputs than one batch, a shared
// dependency builds first, once; when it fails, its dependents are not
// handed to nix again, and each names it, with its log.
func TestRunSharedDependencyFails(t *testing.T) {
	f := fixture.Flake{Nonce: testlib.Nonce(), Drvs: map[string]fixture.Drv{
		"base":   {Script: "echo base breaks; exit 4"},
		"common": {Script: "echo common > $out"},
	}, Packages: map[string]string{}}
	for i := 0; i < 30; i++ {
		n := fmt.Sprintf("dep-%02d", i)
		f.Drvs[n] = fixture.Drv{Script: "echo $dep_base > $out", Deps: []string{"base"}}
		f.Packages[n] = n
		m := fmt.Sprintf("ok-%02d", i)
		f.Drvs[m] = fixture.Drv{Script: "echo " + m + " $dep_common > $out", Deps: []string{"common"}}
		f.Packages[m] = m
	}
	_, eng := setup(t, f)
	rec := &recorder{}
	spy := &spyEngine{Engine: eng}
	rep, _, err := Run(t.Context(), Options{Engine: spy, Flake: eng.SourcePath(), Systems: []string{"x86_64-linux"},
		Jobs: 2, Processes: 2, BatchSize: 20, Progress: rec})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{report.StatusBuilt: 30, report.StatusFailed: 30}, rep.Counts())
	var baseDrv string
	for _, o := range rep.Outputs {
		if strings.Contains(o.Attr, ".dep-") {
			require.Equal(t, report.StatusFailed, o.Status)
			assert.True(t, strings.HasSuffix(o.FailedDependency, "-base.drv"), o.FailedDependency)
			assert.Contains(t, o.Reason, "base.drv failed: builder for")
			assert.Equal(t, []string{"base breaks"}, o.Log)
			baseDrv = o.FailedDependency
		} else {
			assert.Equal(t, report.StatusBuilt, o.Status, o.Attr)
		}
	}
	started := rec.started()
	assert.Equal(t, 1, started["base"], "the shared dependency is built once")
	assert.Equal(t, 1, started["common"])
	for n, c := range started {
		assert.False(t, strings.HasPrefix(n, "dep-"), "%s (a dependent of the failed base) was started %d times", n, c)
	}
	builds := 0
	for _, c := range spy.cmds {
		if slices.Contains(c.Args, "build") {
			builds++
			drvs := 0
			for _, a := range c.Args {
				assert.NotContains(t, a, "-dep-", "no nix build is asked for a dependent of the failed base")
				if strings.HasSuffix(a, ".drv") || strings.HasSuffix(a, ".drv^*") {
					drvs++
				}
			}
			assert.LessOrEqual(t, drvs, 20, "batches of at most BatchSize")
		}
	}
	assert.GreaterOrEqual(t, builds, 3, "shared dependencies first, then batches of at most 20")
	assert.NotEmpty(t, baseDrv)
}

// TestRunDurations: a build's duration is its own, not the time until nix
// exits: a quick output built beside one that waits takes under a second,
// the waiting one longer than its wait.
func TestRunDurations(t *testing.T) {
	gate := testlib.Gate(t, "release")
	_, eng := setup(t, fixture.Packages(testlib.Nonce(), map[string]fixture.Drv{
		"quick": {Script: "echo > $out"},
		"slow":  {Script: "echo waiting; while [ ! -e " + gate + " ]; do :; done; echo > $out"},
	}, "quick", "slow"))
	const wait = 2500 * time.Millisecond
	rec := &recorder{}
	var once sync.Once
	rec.onEv = func(e Event) {
		if e.Kind == BuildLog && e.Line == "waiting" {
			// A deliberate delay that the slow build's duration must show.
			once.Do(func() { time.AfterFunc(wait, func() { _ = os.WriteFile(gate, nil, 0o644) }) })
		}
	}
	rep, _, err := Run(t.Context(), Options{Engine: eng, Flake: eng.SourcePath(), Systems: []string{"x86_64-linux"}, Jobs: 2, Progress: rec})
	require.NoError(t, err)
	got := byAttr(rep)
	quick, slow := got["packages.x86_64-linux.quick"], got["packages.x86_64-linux.slow"]
	require.NotNil(t, quick.DurationMs)
	require.NotNil(t, slow.DurationMs)
	assert.GreaterOrEqual(t, *slow.DurationMs, wait.Milliseconds())
	assert.Less(t, *quick.DurationMs, int64(1500), "the quick build's own time (to a second), not nix's exit")
}
