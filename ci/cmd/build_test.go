package cmd

import (
	"bufio"
	"context"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/daggerengine"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

func TestBuildFlags(t *testing.T) {
	defaults := BuildOptions{Flake: ".", Engine: "auto", Report: report.DefaultReportPath, Image: daggerengine.DefaultImage,
		DaggerConnectTimeout: daggerengine.DefaultConnectTimeout}
	remote := defaults
	remote.Builders, remote.LocalJobs = "ssh://b x86_64-linux", OptionalInt{N: 0, Given: true}
	tests := []struct {
		name    string
		args    []string
		want    BuildOptions
		wantErr string
	}{
		{"defaults", nil, defaults, ""},
		{"all", []string{"--flake", "github:o/r", "--engine", "host", "--systems", "x86_64-linux,aarch64-linux", "--jobs", "4",
			"--cache", "https://c.example", "--attr", "packages.*.a", "--attr", "checks.**", "--report", "r.json", "--junit", "j.xml", "--image", "img.tar", "--dagger-connect-timeout", "90s", "--dry-run"},
			BuildOptions{Flake: "github:o/r", Engine: "host", Systems: []string{"x86_64-linux", "aarch64-linux"}, Jobs: 4,
				Cache: "https://c.example", Attrs: []string{"packages.*.a", "checks.**"}, Report: "r.json", JUnit: "j.xml", Image: "img.tar",
				DaggerConnectTimeout: 90 * time.Second, DryRun: true, reportSet: true}, ""},
		{"no local slots", []string{"--builders", "ssh://b x86_64-linux", "--local-jobs", "0"}, remote, ""},
		{"local jobs not a number", []string{"--local-jobs", "many"}, BuildOptions{}, "not a number"},
		{"unknown flag", []string{"--offline"}, BuildOptions{}, "unknown flag"},
		{"positional", []string{"extra"}, BuildOptions{}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBuildFlags(tt.args)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, *got)
		})
	}
}

func TestBuildHelpExplainsEveryFlag(t *testing.T) {
	io, out, _ := testIO(nil)
	require.Equal(t, 0, Run(t.Context(), io, []string{"build", "--help"}))
	for _, f := range []string{"--flake", "--engine", "--systems", "--jobs", "--cache", "--attr", "--report", "--junit", "--image", "--dry-run", "Exit codes"} {
		assert.Contains(t, out.String(), f)
	}
}

// TestBuildUsageErrors: bad input to ci build (and to ci matrix --shards,
// which plans its shards) exits 2 with a message naming the fix, prints
// nothing on stdout, and builds or writes nothing.
func TestBuildUsageErrors(t *testing.T) {
	testlib.OfflineNix(t)
	good := writeFlake(t, fixture.Generated(1, testlib.Nonce()))
	broken := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(broken, "flake.nix"), []byte("{ outputs = { self }: { packages = ; }; }"), 0o644))
	onHost := func(args ...string) []string {
		return append([]string{"build", "--engine", "host", "--flake", good}, args...)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown engine", []string{"build", "--flake", good, "--engine", "podman"}, "use --engine auto, dagger or host"},
		{"no flake", []string{"build", "--flake", t.TempDir()}, "no flake.nix"},
		{"missing dir", []string{"build", "--flake", "./does-not-exist"}, "no flake.nix"},
		{"attr in flake", []string{"build", "--flake", good + "#x"}, "--attr"},
		{"bad cache", []string{"build", "--flake", good, "--cache", "ftp://host/x"}, "store type"},
		{"cache without scheme", []string{"build", "--flake", good, "--cache", "/tmp/cache"}, "not a Nix store URI"},
		{"bad system", []string{"build", "--flake", good, "--systems", "linux"}, "not a nix system name"},
		{"bad jobs", []string{"build", "--flake", good, "--jobs", "-1"}, "--jobs"},
		{"negative connect timeout", []string{"build", "--flake", good, "--dagger-connect-timeout", "-1s"}, "--dagger-connect-timeout -1s: give a positive duration"},
		{"dry run uploads nothing", []string{"build", "--flake", good, "--dry-run", "--push-to", "file:///tmp/staging"}, "--dry-run builds and uploads nothing"},
		{"does not evaluate", []string{"build", "--flake", broken, "--engine", "host"}, "does not evaluate"},
		{"dagger without engine", []string{"build", "--flake", good, "--engine", "dagger"}, "no Dagger engine"},
		{"negative local jobs", onHost("--local-jobs", "-1"), "--local-jobs -1"},
		{"no machine", onHost("--builders", "# only a comment"), "names no machine"},
		{"missing machines file", onHost("--builders", "@/does/not/exist"), "readable machines file"},
		{"no builders anywhere", onHost("--local-jobs", "0"), "pass --builders"},
		{"builders in a container", []string{"build", "--flake", good, "--engine", "dagger", "--builders", "ssh://b x86_64-linux"}, "needs --engine host"},
		{"shard out of range", onHost("--shard", "4/3"), "give I/N"},
		{"shard without count", onHost("--shard", "2"), "give I/N"},
		{"plan without shard", onHost("--shard-plan", "0123456789ab"), "needs --shard"},
		{"no shards", []string{"matrix", "--shards", "0", "--engine", "host", "--flake", good}, "--shards 0"},
		{"matrix without flake", []string{"matrix", "--shards", "2", "--engine", "host", "--flake", t.TempDir()}, "no flake.nix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST", "")
			t.Setenv("DAGGER_SESSION_PORT", "")
			t.Setenv("PATH", os.Getenv("PATH")) // dagger CLI absent here
			t.Chdir(t.TempDir())
			io, out, errb := testIO(map[string]string{})
			assert.Equal(t, clierr.ExitUsage, Run(t.Context(), io, tt.args), errb.String())
			assert.Contains(t, errb.String(), tt.want)
			assert.Empty(t, out.String())
			assert.NoFileExists(t, report.DefaultReportPath, "nothing written on bad input")
		})
	}
}

func TestBuildEndToEnd(t *testing.T) {
	testlib.OfflineNix(t)
	f := fixture.Packages(testlib.Nonce(), map[string]fixture.Drv{
		"ok":  {Script: "echo ok > $out"},
		"bad": {Script: "echo the compiler says no; exit 2"},
		"vm":  {Script: "echo > $out", Features: []string{"kvm-that-no-machine-has"}},
	}, "ok", "bad")
	f.Checks = map[string]string{"vm": "vm"}
	dir := writeFlake(t, f)
	out := t.TempDir()
	summary := filepath.Join(out, "summary.md")
	io, _, errb := testIO(map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": summary})
	rep, junit := filepath.Join(out, "r.json"), filepath.Join(out, "j.xml")
	code := Run(t.Context(), io, []string{"build", "--engine", "host", "--flake", dir, "--cache", "file://" + filepath.Join(out, "cache"),
		"--report", rep, "--junit", junit, "--jobs", "2"})
	assert.Equal(t, clierr.ExitFailed, code, errb.String())
	assert.Contains(t, errb.String(), "1 of 3 outputs failed")
	assert.Contains(t, errb.String(), "::group::packages.x86_64-linux.bad")
	assert.Contains(t, errb.String(), "the compiler says no")

	r, err := report.Read(rep)
	require.NoError(t, err)
	assert.Equal(t, dir, r.Flake)
	assert.Equal(t, engine.KindHost, r.Engine)
	assert.Equal(t, map[string]int{report.StatusBuilt: 1, report.StatusFailed: 1, report.StatusSkipped: 1}, r.Counts())

	suites := readJUnit(t, junit)
	assert.Equal(t, 3, suites[0].Tests)
	assert.Equal(t, 1, suites[0].Failures)
	assertJUnitTimes(t, r, suites[0])
	vm := slices.IndexFunc(suites[0].Cases, func(c junitCase) bool { return c.Name == "checks.x86_64-linux.vm" })
	require.GreaterOrEqual(t, vm, 0)
	assert.Nil(t, suites[0].Cases[vm].Time, "a skipped output has no time")

	md, err := os.ReadFile(summary)
	require.NoError(t, err)
	assert.Contains(t, string(md), "| `packages.x86_64-linux.ok` | ✅ built |")

	// Only the good output: exit 0.
	io, _, errb = testIO(map[string]string{})
	code = Run(t.Context(), io, []string{"build", "--engine", "host", "--flake", dir, "--cache", "file://" + filepath.Join(out, "cache"),
		"--report", rep, "--attr", "packages.*.ok"})
	assert.Equal(t, clierr.ExitOK, code, errb.String())
}

// TestBuildSIGINT sends SIGINT to a real `ci build` process while a build
// runs: every nix process stops, the report says what finished, the exit
// code is 1, and a rerun completes.
func TestBuildSIGINT(t *testing.T) {
	testlib.OfflineNix(t)
	testlib.CheckPath(t, "go")
	bin := filepath.Join(t.TempDir(), "ci")
	build := exec.Command("go", "build", "-o", bin, "..")
	build.Env = os.Environ()
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))

	gate := testlib.Gate(t, "go")
	marker := "sigint-" + testlib.Nonce()
	dir := writeFlake(t, fixture.Packages(marker, map[string]fixture.Drv{
		"quick": {Script: "echo quick > $out"},
		"slow":  {Script: "echo slow-started; while [ ! -e " + gate + " ]; do :; done; echo > $out", Deps: []string{"quick"}},
	}, "quick", "slow"))
	rep := filepath.Join(t.TempDir(), "r.json")
	args := []string{"build", "--engine", "host", "--flake", dir, "--report", rep, "--cache", "file://" + t.TempDir()}

	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "CI=true")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(stderr)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.HasPrefix(sc.Text(), "building slow") {
			require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
		}
	}
	err = cmd.Wait()
	var xe *exec.ExitError
	require.ErrorAs(t, err, &xe, strings.Join(lines, "\n"))
	assert.Equal(t, clierr.ExitFailed, xe.ExitCode())
	assert.Contains(t, strings.Join(lines, "\n"), "interrupted")

	r, err := report.Read(rep)
	require.NoError(t, err)
	st := map[string]string{}
	for _, o := range r.Outputs {
		st[o.Attr] = o.Status
	}
	assert.Equal(t, report.StatusBuilt, st["packages.x86_64-linux.quick"])
	assert.Equal(t, report.StatusFailed, st["packages.x86_64-linux.slow"])
	assert.Empty(t, testlib.PidsWith(marker), "every nix process and builder stopped")

	require.NoError(t, os.WriteFile(gate, nil, 0o644))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	rerun := exec.CommandContext(ctx, bin, args...)
	out, err = rerun.CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "2 outputs: 1 built, 1 present", "quick was built before the interruption")
}

// TestBuildDryRun is the evaluation gate on a fixture flake: an output
// that throws, one that aborts, a cached one and one to build. It reports
// each with its drvPath, builds nothing, and exits 1.
func TestBuildDryRun(t *testing.T) {
	testlib.OfflineNix(t)
	dir := writeFlake(t, fixture.Packages(testlib.Nonce(), map[string]fixture.Drv{
		"ok":      {Script: "echo ok > $out"},
		"warm":    {Script: "echo warm > $out"},
		"thrown":  {Throw: "thrown on purpose"},
		"aborted": {Abort: "aborted on purpose"},
	}, "ok", "warm", "thrown", "aborted"))
	out := t.TempDir()
	cacheDir := filepath.Join(out, "cache")
	require.NoError(t, os.MkdirAll(cacheDir, 0o755))
	warmOut := evalOutPath(t, dir, "packages.x86_64-linux.warm")
	require.NoError(t, os.WriteFile(filepath.Join(cacheDir, strings.TrimPrefix(filepath.Base(warmOut), "")[:32]+".narinfo"),
		[]byte("StorePath: "+warmOut+"\n"), 0o644))

	rep := filepath.Join(out, "r.json")
	io, stdout, errb := testIO(map[string]string{})
	code := Run(t.Context(), io, []string{"build", "--dry-run", "--engine", "host", "--flake", dir, "--cache", "file://" + cacheDir, "--report", rep})
	assert.Equal(t, clierr.ExitFailed, code, errb.String())
	assert.Contains(t, errb.String(), "2 of 4 outputs failed to evaluate")

	r, err := report.Read(rep)
	require.NoError(t, err)
	got := map[string]report.Output{}
	for _, o := range r.Outputs {
		got[o.Attr] = o
	}
	assert.Equal(t, report.StatusWouldBuild, got["packages.x86_64-linux.ok"].Status)
	assert.Equal(t, report.StatusCached, got["packages.x86_64-linux.warm"].Status)
	assert.Equal(t, report.StatusFailed, got["packages.x86_64-linux.thrown"].Status)
	assert.Contains(t, got["packages.x86_64-linux.thrown"].Reason, "thrown on purpose")
	assert.Equal(t, report.StatusFailed, got["packages.x86_64-linux.aborted"].Status)
	assert.Contains(t, got["packages.x86_64-linux.aborted"].Reason, "aborted on purpose")
	for _, a := range []string{"packages.x86_64-linux.ok", "packages.x86_64-linux.warm"} {
		assert.True(t, strings.HasSuffix(got[a].DrvPath, ".drv"), a)
		assert.Contains(t, stdout.String(), got[a].DrvPath, "stdout lists the drvPath of %s", a)
		require.NotEmpty(t, got[a].OutPaths)
		assert.NoFileExists(t, got[a].OutPaths[0], "nothing is built")
	}
	assert.Contains(t, stdout.String(), "would build")
	assert.Contains(t, stdout.String(), "aborted on purpose")

	// What evaluates passes the gate; without --report no report is written.
	t.Chdir(out)
	io, _, errb = testIO(map[string]string{})
	code = Run(t.Context(), io, []string{"build", "--dry-run", "--engine", "host", "--flake", dir, "--cache", "file://" + cacheDir,
		"--attr", "packages.*.ok", "--attr", "packages.*.warm"})
	assert.Equal(t, clierr.ExitOK, code, errb.String())
	assert.NoFileExists(t, filepath.Join(out, report.DefaultReportPath))
}

// evalOutPath evaluates the out path of one attribute of a fixture flake.
func evalOutPath(t *testing.T, dir, attr string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "nix", "--extra-experimental-features", "nix-command flakes",
		"eval", "--raw", dir+"#"+attr+".outPath").Output()
	require.NoError(t, err)
	return string(out)
}

// TestBuildSelectsNothing: patterns or systems that select nothing exit 2,
// name them, list the prefixes that exist, and leave the report alone.
func TestBuildSelectsNothing(t *testing.T) {
	testlib.OfflineNix(t)
	dir := writeFlake(t, fixture.Generated(2, testlib.Nonce()))
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"typo", []string{"--attr", "packages.*.typo"}, []string{`--attr "packages.*.typo" matches no output`, "packages.x86_64-linux"}},
		{"system", []string{"--systems", "riscv64-linux"}, []string{"--systems riscv64-linux", "x86_64-linux"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := filepath.Join(t.TempDir(), "r.json")
			before := []byte(`{"flake":"earlier","engine":"host","outputs":[]}` + "\n")
			require.NoError(t, os.WriteFile(rep, before, 0o644))
			io, _, errb := testIO(map[string]string{})
			code := Run(t.Context(), io, append([]string{"build", "--engine", "host", "--flake", dir, "--report", rep,
				"--cache", "file://" + t.TempDir()}, tt.args...))
			assert.Equal(t, clierr.ExitUsage, code, errb.String())
			for _, w := range tt.want {
				assert.Contains(t, errb.String(), w)
			}
			after, err := os.ReadFile(rep)
			require.NoError(t, err)
			assert.Equal(t, string(before), string(after), "the report is untouched")
		})
	}
}

func TestNixSecrets(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want map[string]string
	}{
		{"no token", map[string]string{}, nil},
		{"github.com", map[string]string{"GITHUB_TOKEN": "t0k"}, map[string]string{"NIX_CONFIG": "access-tokens = github.com=t0k"}},
		{"enterprise", map[string]string{"GITHUB_TOKEN": "t0k", "GITHUB_SERVER_URL": "https://git.example.com"},
			map[string]string{"NIX_CONFIG": "access-tokens = git.example.com=t0k"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, nixSecrets(func(k string) string { return tt.env[k] }))
		})
	}
}

// TestBuildNeverPrintsTheToken: with GITHUB_TOKEN set, a build that fails
// prints and reports nothing of it.
func TestBuildNeverPrintsTheToken(t *testing.T) {
	testlib.OfflineNix(t)
	const token = "ghp_neverPrinted0123456789"
	dir := writeFlake(t, fixture.Packages(testlib.Nonce(), map[string]fixture.Drv{
		"ok":  {Script: "echo ok > $out"},
		"bad": {Script: "echo failing; exit 1"},
		"thr": {Throw: "thrown"},
	}, "ok", "bad", "thr"))
	out := t.TempDir()
	rep, junit := filepath.Join(out, "r.json"), filepath.Join(out, "j.xml")
	sio, stdout, stderr := testIO(map[string]string{"GITHUB_TOKEN": token, "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": filepath.Join(out, "s.md")})
	code := Run(t.Context(), sio, []string{"build", "--engine", "host", "--flake", dir, "--report", rep, "--junit", junit, "--cache", "file://" + filepath.Join(out, "c")})
	assert.Equal(t, clierr.ExitFailed, code, stderr.String())
	assert.NotContains(t, stdout.String()+stderr.String(), token)
	for _, f := range []string{rep, junit, filepath.Join(out, "s.md")} {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		assert.NotContains(t, string(data), token, f)
	}
}

// parseBuildFlags runs `ci build` flag parsing on args and returns the
// options the run function would get.
func parseBuildFlags(args []string) (*BuildOptions, error) {
	io, _, _ := testIO(nil)
	var got *BuildOptions
	c := newBuildCmdWith(io, func(_ context.Context, _ *IO, o *BuildOptions) error { got = o; return nil })
	c.SetArgs(args)
	c.SilenceErrors, c.SilenceUsage = true, true
	err := c.Execute()
	return got, err
}

// writeFlake writes f to a new directory and returns it.
func writeFlake(t *testing.T, f fixture.Flake) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, fixture.Write(dir, f))
	return dir
}

// junitSuite is what the tests read of a JUnit test suite.
type junitSuite struct {
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Time     *float64    `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name string   `xml:"name,attr"`
	Time *float64 `xml:"time,attr"`
}

// assertJUnitTimes checks that a testcase has a time exactly when the
// report knows the output's duration, and the suite's time is their sum.
func assertJUnitTimes(t *testing.T, r *report.Report, s junitSuite) {
	t.Helper()
	known := map[string]int64{}
	for _, o := range r.Outputs {
		if o.DurationMs != nil {
			known[o.Attr] = *o.DurationMs
		}
	}
	var sum float64
	for _, c := range s.Cases {
		ms, ok := known[c.Name]
		if assert.Equal(t, ok, c.Time != nil, "%s: a time exactly when durationMs is known", c.Name) && ok {
			assert.InDelta(t, float64(ms)/1000, *c.Time, 0.0005, c.Name)
			sum += *c.Time
		}
	}
	assert.Len(t, s.Cases, len(r.Outputs))
	if len(known) == 0 {
		assert.Nil(t, s.Time, "no duration known: no suite time")
		return
	}
	if assert.NotNil(t, s.Time) {
		assert.InDelta(t, sum, *s.Time, 0.001*float64(len(known)))
	}
}

// readJUnit reads the test suites of a JUnit file; there is at least one.
func readJUnit(t *testing.T, path string) []junitSuite {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var doc struct {
		Suites []junitSuite `xml:"testsuite"`
	}
	require.NoError(t, xml.Unmarshal(data, &doc))
	require.NotEmpty(t, doc.Suites)
	return doc.Suites
}
