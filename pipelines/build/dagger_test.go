package build

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/fakedagger"
	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/internal/nixstr"
	"github.com/ipex-flake/ipex-flake/internal/testlib"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/daggerengine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/host"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

var recordDagger = flag.Bool("record-dagger", false, "re-record "+daggerRecDir+" from the host's nix")

// daggerRecDir holds the nix session the fake Dagger engine replays: every
// command the build pipeline sent to the host's nix (2.8) for fixture.EveryStatus,
// with what it printed. `go test ./pipelines/build -run TestRecordDaggerSession
// -record-dagger` records it again.
const daggerRecDir = "testdata/dagger-nix"

// daggerSystems are the systems of the recorded session.
var daggerSystems = []string{"x86_64-linux"}

// warmLookup is a binary cache that has the outputs of "warm" only.
type warmLookup struct{}

func (warmLookup) URI() string { return "file:///fake-cache" }
func (warmLookup) Has(_ context.Context, paths []string) (map[string]bool, error) {
	has := map[string]bool{}
	for _, p := range paths {
		has[p] = strings.HasSuffix(p, "-warm")
	}
	return has, nil
}

func assertDaggerReport(t *testing.T, rep *report.Report) {
	t.Helper()
	require.NotNil(t, rep)
	got := map[string]report.Output{}
	statuses := map[string]string{}
	for _, o := range rep.Outputs {
		got[o.Attr] = o
		statuses[o.Attr] = o.Status
	}
	assert.Equal(t, fixture.EveryStatusWant(), statuses)
	assert.Contains(t, got["packages.x86_64-linux.bad"].Reason, "builder for")
	assert.Contains(t, strings.Join(got["packages.x86_64-linux.bad"].Log, "\n"), "the compiler says no")
	assert.Contains(t, got["packages.x86_64-linux.after-bad"].Reason, "bad.drv failed: builder for", "the dependent names the dependency that failed")
	assert.Contains(t, got["packages.x86_64-linux.broken"].Reason, "evaluation failed")
	assert.Contains(t, got["packages.x86_64-linux.broken"].Reason, "broken on purpose")
	assert.Contains(t, got["checks.x86_64-linux.vm"].Reason, "kvm-that-no-machine-has")
	assert.NotEmpty(t, got["packages.x86_64-linux.ok"].OutPaths)
}

// recordingEngine runs commands on another engine and records them under
// fakedagger.NixCommandKey, with the flake directory written as the Dagger
// engine's source mount.
type recordingEngine struct {
	engine.Engine
	t   *testing.T
	src string

	mu   sync.Mutex
	rec  fakedagger.Recording
	keys fakedagger.SessionKeys
}

func (r *recordingEngine) Run(ctx context.Context, c engine.Cmd) (engine.Result, error) {
	var out, errb bytes.Buffer
	rc := c
	rc.Stdout = teeTo(&out, c.Stdout)
	rc.Stderr = teeTo(&errb, c.Stderr)
	res, err := r.Engine.Run(ctx, rc)
	if err != nil {
		return res, err
	}
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		args[i] = strings.ReplaceAll(a, r.src, daggerengine.SourceMount)
	}
	key := r.keys.Key(c.Args)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.rec[key]; dup {
		r.t.Errorf("command %s ran twice: the replay cannot tell the runs apart", key)
	}
	r.rec[key] = fakedagger.Recorded{Args: args, ExecResult: fakedagger.ExecResult{
		ExitCode: res.ExitCode, Stdout: out.String(), Stderr: errb.String(),
	}}
	res.Buffered = true // as the Dagger engine hands output over
	return res, nil
}

// Name is the Dagger engine's: the session is recorded as the pipeline
// runs it there (with buffered output, see Run).
func (r *recordingEngine) Name() string { return engine.KindDagger }

func teeTo(buf *bytes.Buffer, w io.Writer) io.Writer {
	if w == nil {
		return buf
	}
	return io.MultiWriter(buf, w)
}

// TestRecordDaggerSession records the nix session the Dagger tests replay,
// running the pipeline on the host's nix.
func TestRecordDaggerSession(t *testing.T) {
	if !*recordDagger {
		t.Skip("replayed from " + daggerRecDir + "; pass -record-dagger to record it again from the host's nix")
	}
	testlib.OfflineNix(t)
	nonce := "dagger-" + testlib.Nonce()
	dir := t.TempDir()
	require.NoError(t, fixture.Write(dir, fixture.EveryStatus(nonce)))
	h, err := host.New(engine.Options{Source: dir})
	require.NoError(t, err)
	defer h.Close()
	rec := &recordingEngine{Engine: h, t: t, src: dir, rec: fakedagger.Recording{}}

	rep, _, err := Run(t.Context(), Options{Engine: rec, Flake: dir, Systems: daggerSystems, Jobs: 2, Cache: warmLookup{}})
	require.NoError(t, err)
	assertDaggerReport(t, rep)
	require.NoError(t, os.RemoveAll(daggerRecDir))
	require.NoError(t, rec.rec.Save(daggerRecDir))
	require.NoError(t, os.WriteFile(filepath.Join(daggerRecDir, "nonce"), []byte(nonce+"\n"), 0o644))
}

// loadDaggerSession reads the recorded session and its fixture's nonce.
func loadDaggerSession(t *testing.T) (fakedagger.Recording, string) {
	t.Helper()
	rec, err := fakedagger.LoadRecording(daggerRecDir)
	require.NoError(t, err)
	nonce, err := os.ReadFile(filepath.Join(daggerRecDir, "nonce"))
	require.NoError(t, err)
	return rec, strings.TrimSpace(string(nonce))
}

// replay answers each exec of the fake from the recording and fails the
// test on a command that was not recorded.
func replay(t *testing.T, rec fakedagger.Recording) func(*fakedagger.Obj) fakedagger.ExecResult {
	keys := &fakedagger.SessionKeys{}
	return func(exec *fakedagger.Obj) fakedagger.ExecResult {
		args := exec.Strings("args")
		r, ok := rec[keys.Key(args)]
		if !ok {
			t.Errorf("the pipeline sent a command that was not recorded: %q", args)
			return fakedagger.ExecResult{ExitCode: 127, Stderr: "not recorded\n"}
		}
		return r.ExecResult
	}
}

// daggerProgress keeps the events the pipeline reports.
type daggerProgress struct {
	mu     sync.Mutex
	events []Event
}

func (p *daggerProgress) Phase(string) {}
func (p *daggerProgress) Event(e Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, e)
}

func TestRunOnDaggerEngine(t *testing.T) {
	rec, nonce := loadDaggerSession(t)
	var discovered []Output
	require.NoError(t, json.Unmarshal([]byte(rec["discover"].Stdout), &discovered))
	drvOf := map[string]string{}
	for _, o := range discovered {
		drvOf[o.Attr] = o.DrvPath
	}

	tarball := filepath.Join(t.TempDir(), "nix-image.tar")
	require.NoError(t, os.WriteFile(tarball, []byte("oci archive"), 0o644))
	tests := []struct {
		name  string
		image string
	}{
		{"registry image", "docker.io/nixos/nix:2.8.0"},
		{"OCI tarball", tarball},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := fakedagger.New(t)
			fake.Setenv(t)
			fake.ExecResult = replay(t, rec)
			src := t.TempDir()
			require.NoError(t, fixture.Write(src, fixture.EveryStatus(nonce)))

			eng, err := daggerengine.Open(t.Context(), engine.Options{Source: src, Image: tt.image, Log: io.Discard})
			require.NoError(t, err)
			defer eng.Close()
			prog := &daggerProgress{}
			rep, st, err := Run(t.Context(), Options{
				Engine: eng, Flake: eng.SourcePath(), Systems: daggerSystems, Jobs: 2, Cache: warmLookup{}, Progress: prog,
			})
			require.NoError(t, err)
			assert.Equal(t, engine.KindDagger, rep.Engine)
			assert.Equal(t, "/src", rep.Flake)
			assertDaggerReport(t, rep)
			for _, o := range rep.Outputs {
				assert.Nil(t, o.DurationMs, "%s: nix's log arrives after the exec, so no duration is measured", o.Attr)
			}
			assert.Equal(t, 2, st.EvalProcesses, "one evaluation of every output, one more for the message of the output that throws")
			assert.Equal(t, 3, st.Derivations, "ok, bad and after-bad: not the cached, skipped or unevaluated ones")

			// Live events come from the replayed internal-json log.
			started := map[string]bool{}
			var logs []string
			for _, e := range prog.events {
				switch e.Kind {
				case BuildStarted:
					started[e.DrvPath] = true
				case BuildLog:
					logs = append(logs, e.Line)
				}
			}
			assert.True(t, started[drvOf["packages.x86_64-linux.ok"]])
			assert.True(t, started[drvOf["packages.x86_64-linux.bad"]])
			assert.Contains(t, logs, "the compiler says no")

			execs := map[string]*fakedagger.Obj{}
			keys := &fakedagger.SessionKeys{}
			for _, x := range fake.Execs() {
				key := keys.Key(x.Strings("args"))
				assert.NotContains(t, execs, key, "%s ran once", key)
				execs[key] = x
				assertDaggerContainer(t, fake, x, eng, src, tt.image)
			}
			assert.ElementsMatch(t, slices.Collect(maps.Keys(rec)), slices.Collect(maps.Keys(execs)),
				"every recorded command, and no other, ran in a container")

			// The discovery evaluates discover.nix on the flake at /src.
			disc := execs["discover"]
			require.NotNil(t, disc)
			argsJSON, err := json.Marshal(discoverArgs{Flake: "/src", Systems: daggerSystems})
			require.NoError(t, err)
			assert.Equal(t, nixcli.Nix("eval", "--json", "--impure", "--expr", "("+discoverNix+") "+nixstr.Quote(string(argsJSON))),
				disc.Strings("args"))
			assert.Contains(t, disc.Strings("args")[len(disc.Strings("args"))-1], `\"flake\":\"/src\"`)

			// One nix build of the three derivations to build, all at once.
			b := execs["build"]
			require.NotNil(t, b)
			bargs := b.Strings("args")
			assert.Equal(t, nixcli.Nix("build"), bargs[:len(nixcli.Nix("build"))])
			for _, f := range []string{"--keep-going", "--no-link", "-v"} {
				assert.Contains(t, bargs, f)
			}
			assert.Equal(t, "internal-json", valueOf(bargs, "--log-format"))
			assert.Equal(t, "2", valueOf(bargs, "--max-jobs"))
			var installables []string
			for _, a := range bargs {
				if strings.HasPrefix(a, "/nix/store/") {
					installables = append(installables, a)
				}
			}
			want := []string{drvOf["packages.x86_64-linux.ok"], drvOf["packages.x86_64-linux.bad"], drvOf["packages.x86_64-linux.after-bad"]}
			sort.Strings(want)
			assert.Equal(t, want, installables, "nix 2.8 takes bare .drv paths; cached and skipped outputs are not built")
			for _, a := range bargs {
				assert.NotContains(t, a, "/src", "the build names derivations, not the flake")
			}

			// Before the build the store is asked for present outputs,
			// after a failed build for the outputs that exist.
			require.NotNil(t, execs["check-validity"])
			v := execs["check-validity-2"]
			require.NotNil(t, v)
			assert.Equal(t, []string{"nix-store", "--check-validity", "--print-invalid"}, v.Strings("args")[:3])
			var okOut string
			for _, o := range rep.Outputs {
				if o.Attr == "packages.x86_64-linux.ok" {
					okOut = o.OutPaths[0]
				}
			}
			assert.Contains(t, v.Strings("args"), okOut)
		})
	}
}

// assertDaggerContainer checks the container an exec ran in: the image,
// /nix on the LOCKED cache volume and the source at /src without .git and
// result links.
func assertDaggerContainer(t *testing.T, fake *fakedagger.Server, x *fakedagger.Obj, eng *daggerengine.Engine, src, image string) {
	t.Helper()
	want := fakedagger.Container{
		Pulled: image,
		Caches: []fakedagger.CacheMount{{Path: "/nix", Key: daggerengine.VolumeName(eng.Image()), Sharing: "LOCKED"}},
		Dirs:   []fakedagger.HostDir{{Path: "/src", Host: src, Exclude: []string{".git", "result*"}}},
		Expect: "ANY", // a failing nix is a result, not an engine error
	}
	if eng.Image().Tarball {
		want.Pulled, want.Imported = "", image // a tarball is imported, not pulled
	}
	assert.Equal(t, want, fake.Container(x), x.String())
}

// valueOf returns the argument after flag ("" when absent).
func valueOf(args []string, flag string) string {
	i := slices.Index(args, flag)
	if i < 0 || i+1 >= len(args) {
		return ""
	}
	return args[i+1]
}

// TestRunOnRealDaggerEngine runs the same pipeline on a real Dagger engine,
// when one is configured. The image is IPEX_FLAKE_DAGGER_IMAGE (a reference
// or an OCI tarball), else the default nix image.
func TestRunOnRealDaggerEngine(t *testing.T) {
	fakedagger.SkipUnlessRealEngine(t)
	src := t.TempDir()
	require.NoError(t, fixture.Write(src, fixture.EveryStatus(testlib.Nonce())))
	var log bytes.Buffer
	eng, err := daggerengine.New(t.Context(), engine.Options{Source: src, Image: os.Getenv("IPEX_FLAKE_DAGGER_IMAGE"), Log: &log})
	require.NoError(t, err, log.String())
	t.Cleanup(func() { eng.Close() })
	rep, st, err := Run(t.Context(), Options{Engine: eng, Flake: eng.SourcePath(), Systems: daggerSystems, Jobs: 2, Cache: warmLookup{}})
	require.NoError(t, err, log.String())
	assertDaggerReport(t, rep)
	assert.Equal(t, 3, st.Derivations)
}
