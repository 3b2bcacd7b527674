package push

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
)

func reportWith(paths ...string) *report.Report {
	return &report.Report{Rev: "abc123", Outputs: []report.Output{
		{Attr: "packages.x86_64-linux.a", OutPaths: paths, Status: report.StatusBuilt},
		{Attr: "packages.x86_64-linux.b", OutPaths: []string{"/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-cached"}, Status: report.StatusCached},
		{Attr: "packages.x86_64-linux.c", Status: report.StatusFailed},
	}}
}

// fakeLookup has the paths in has.
type fakeLookup map[string]bool

func (f fakeLookup) URI() string { return "fake://" }
func (f fakeLookup) Has(_ context.Context, paths []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, p := range paths {
		out[p] = f[p]
	}
	return out, nil
}

var _ cache.Lookup = fakeLookup(nil)

const (
	pA = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a"
	pD = "/nix/store/dddddddddddddddddddddddddddddddd-dep"
)

func closureEngine() *recordingEngine {
	return &recordingEngine{answer: func(c engine.Cmd) (string, int) {
		if c.Args[0] == "nix-store" {
			return "", 0 // every path is valid
		}
		return `[{"path":"` + pA + `","narHash":"x","narSize":1,"references":["` + pD + `"]},{"path":"` + pD + `","narHash":"x","narSize":1,"references":[]}]`, 0
	}}
}

type fakeSigner struct{ signed [][]string }

func (f *fakeSigner) Sign(_ context.Context, p []string) error {
	f.signed = append(f.signed, p)
	return nil
}

func TestBuiltPaths(t *testing.T) {
	rep := reportWith(pA, pA)
	rep.Outputs = append(rep.Outputs,
		report.Output{Attr: "packages.x86_64-linux.p", OutPaths: []string{pD}, Status: StatusPresent},
		report.Output{Attr: "packages.x86_64-linux.s", OutPaths: []string{"/nix/store/ssssssssssssssssssssssssssssssss-s"}, Status: report.StatusSkipped},
		report.Output{Attr: "packages.x86_64-linux.f", OutPaths: []string{"/nix/store/ffffffffffffffffffffffffffffffff-f"}, Status: report.StatusFailed})
	assert.Equal(t, []string{pA, "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-cached", pD}, PushablePaths(rep),
		"built, cached and present outputs are pushed; failed and skipped ones are not")
	assert.Equal(t, PushablePaths(rep), BuiltPaths(rep))
	assert.Empty(t, PushablePaths(&report.Report{}))
}

func TestCheckGate(t *testing.T) {
	store := &results.FileStore{Path: filepath.Join(t.TempDir(), "r.json")}
	ctx := t.Context()
	require.NoError(t, store.Record(ctx, results.Result{Stage: "unit", Rev: "passed", State: results.StatePassed}))
	require.NoError(t, store.Record(ctx, results.Result{Stage: "unit", Rev: "failed", State: results.StateFailed}))
	tests := []struct {
		name, rev string
		store     results.Store
		wantCode  int
		wantMsg   string
	}{
		{"passed", "passed", store, clierr.ExitOK, ""},
		{"failed", "failed", store, clierr.ExitFailed, "unit (failed)"},
		{"no result", "other", store, clierr.ExitFailed, "unit (no result)"},
		{"no rev", "", store, clierr.ExitUsage, "--force"},
		{"no store", "x", nil, clierr.ExitUsage, "--force"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckGate(ctx, tt.store, tt.rev, DevStages)
			assert.Equal(t, tt.wantCode, clierr.Code(err))
			if tt.wantMsg != "" {
				assert.ErrorContains(t, err, tt.wantMsg)
			}
		})
	}
}

func TestRun(t *testing.T) {
	failedStore := &results.FileStore{Path: filepath.Join(t.TempDir(), "r.json")}
	tests := []struct {
		name       string
		has        fakeLookup
		force      bool
		report     *report.Report
		uploadErr  error
		verifyErr  error
		wantCode   int
		wantPushed []string
		wantOut    string
		wantLog    string
	}{
		{name: "pushes only missing", has: fakeLookup{pD: true}, force: true, report: reportWith(pA),
			wantPushed: []string{pA}, wantOut: "pushed 1 paths to fake (1 were already there)", wantLog: "--force"},
		{name: "nothing missing", has: fakeLookup{pA: true, pD: true}, force: true, report: reportWith(pA),
			wantOut: "nothing to push: 2 paths already in fake"},
		{name: "gate closed", has: fakeLookup{}, report: reportWith(pA), wantCode: clierr.ExitFailed},
		{name: "nothing built", has: fakeLookup{}, report: &report.Report{}, wantOut: "nothing to push: no output"},
		{name: "upload fails", has: fakeLookup{}, force: true, report: reportWith(pA), uploadErr: errors.New("boom"),
			wantCode: clierr.ExitFailed, wantPushed: []string{pA, pD}},
		{name: "verify fails", has: fakeLookup{}, force: true, report: reportWith(pA), verifyErr: clierr.Failedf("untrusted"),
			wantCode: clierr.ExitFailed, wantPushed: []string{pA, pD}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &FakeUploader{Err: tt.uploadErr}
			ver := &FakeVerifier{Err: tt.verifyErr}
			sig := &fakeSigner{}
			var out, log bytes.Buffer
			_, err := Run(t.Context(), Options{
				Engine: closureEngine(), Report: tt.report, Rev: "abc123", Results: failedStore, Force: tt.force,
				Signer: sig, PublicKey: "k-1:pub",
				Targets: []Target{{URI: "fake", Lookup: tt.has, Uploader: up, Verifier: ver}},
				Out:     &out, Log: &log,
			})
			assert.Equal(t, tt.wantCode, clierr.Code(err), "err: %v", err)
			if tt.wantPushed == nil {
				assert.Empty(t, up.Uploaded)
				assert.Empty(t, sig.signed)
			} else {
				require.Len(t, up.Uploaded, 1)
				assert.ElementsMatch(t, tt.wantPushed, up.Uploaded[0])
				assert.Equal(t, up.Uploaded, sig.signed, "what is uploaded is signed first")
			}
			if tt.wantCode == clierr.ExitOK && len(tt.report.Outputs) > 0 {
				require.Len(t, ver.Verified, 1)
				assert.ElementsMatch(t, []string{pA, pD}, ver.Verified[0], "the whole closure is verified")
				assert.Equal(t, []string{"k-1:pub"}, ver.Keys)
			}
			assert.Contains(t, out.String(), tt.wantOut)
			assert.Contains(t, log.String(), tt.wantLog)
		})
	}
}

func TestTargets(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	pub := "c.cachix.org-1:" + "4A1CsGvdUB0PNL4oKxO2ZX6FCN8k9GY3DUWU0Xg5ob8="
	tests := []struct {
		name     string
		cfg      TargetConfig
		wantURIs []string
		wantCode int
	}{
		{"default", TargetConfig{}, []string{cache.DefaultURI()}, 0},
		{"http", TargetConfig{Cache: "https://cache.example.org"}, []string{"https://cache.example.org"}, 0},
		{"s3", TargetConfig{Cache: "s3://bucket?region=eu-west-1"}, []string{"s3://bucket?region=eu-west-1"}, 0},
		{"bad scheme", TargetConfig{Cache: "ftp://x"}, nil, clierr.ExitUsage},
		{"cachix without token", TargetConfig{Cachix: "c"}, nil, clierr.ExitUsage},
		{"cachix", TargetConfig{Cachix: "c", Getenv: env(map[string]string{EnvCachixToken: "t", EnvCachixPublicKey: pub})}, []string{"cachix:c"}, 0},
		{"cache and cachix", TargetConfig{Cache: "file:///tmp/c", Cachix: "c", Getenv: env(map[string]string{EnvCachixToken: "t", EnvCachixPublicKey: pub})}, []string{"file:///tmp/c", "cachix:c"}, 0},
		{"attic without env", TargetConfig{Cache: "attic://srv/main"}, nil, clierr.ExitUsage},
		{"attic", TargetConfig{Cache: "attic://srv/main", Getenv: env(map[string]string{EnvAtticURL: "https://attic.example.org/main", EnvAtticPublicKey: pub})}, []string{"attic://srv/main"}, 0},
		{"attic bad", TargetConfig{Cache: "attic://srv"}, nil, clierr.ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, err := Targets(tt.cfg)
			assert.Equal(t, tt.wantCode, clierr.Code(err), "err: %v", err)
			var uris []string
			for _, x := range ts {
				uris = append(uris, x.URI)
				assert.NotNil(t, x.Uploader)
				assert.NotNil(t, x.Verifier)
			}
			assert.Equal(t, tt.wantURIs, uris)
		})
	}
}

func TestHostedUploadersPassTokensAsSecrets(t *testing.T) {
	eng := &recordingEngine{}
	c := &HostedPush{Tool: "cachix", Engine: eng, Cache: "c", Secrets: map[string]string{EnvCachixToken: "tok"}}
	require.NoError(t, c.Upload(t.Context(), []string{pA}))
	a := &HostedPush{Tool: "attic", Engine: eng, Cache: "srv:main"}
	require.NoError(t, a.Upload(t.Context(), []string{pA}))
	require.Len(t, eng.cmds, 2)
	assert.Equal(t, []string{"cachix", "push", "c", pA}, eng.cmds[0].Args)
	assert.Equal(t, "tok", eng.cmds[0].Secrets[EnvCachixToken])
	assert.Empty(t, eng.cmds[0].Env)
	assert.Equal(t, []string{"attic", "push", "srv:main", pA}, eng.cmds[1].Args)

	failing := &recordingEngine{answer: func(engine.Cmd) (string, int) { return "", 3 }}
	err := (&HostedPush{Tool: "cachix", Engine: failing, Cache: "c"}).Upload(t.Context(), []string{pA})
	assert.Equal(t, clierr.ExitFailed, clierr.Code(err))
}

func TestChunks(t *testing.T) {
	paths := make([]string, 2*chunkSize+1)
	c := chunks(paths)
	require.Len(t, c, 3)
	assert.Len(t, c[2], 1)
	assert.Empty(t, chunks(nil))
}

// TestStoreURIPassesThrough checks that an s3:// URI with query parameters
// reaches every nix command (lookup, copy, verify) exactly as given.
func TestStoreURIPassesThrough(t *testing.T) {
	const uri = "s3://bucket/prefix?region=eu-west-1&endpoint=minio.example.org:9000&scheme=https&compression=zstd&parallel-compression=true"
	eng := &recordingEngine{answer: func(c engine.Cmd) (string, int) {
		args := strings.Join(c.Args, " ")
		switch {
		case strings.Contains(args, "path-info -r"):
			return `[{"path":"` + pA + `","narHash":"x","narSize":1,"references":[]}]`, 0
		case strings.Contains(args, "path-info --store"):
			return `[]`, 1 // nothing there yet
		}
		return "", 0
	}}
	targets, err := Targets(TargetConfig{Cache: uri, Engine: eng})
	require.NoError(t, err)
	require.Len(t, targets, 1)
	assert.Equal(t, uri, targets[0].URI)
	_, err = Run(t.Context(), Options{Engine: eng, Report: reportWith(pA), Force: true, PublicKey: "k-1:pub", Targets: targets})
	require.NoError(t, err)
	var saw []string
	for _, c := range eng.cmds {
		for i, a := range c.Args {
			if a == "--store" || a == "--to" {
				require.Less(t, i+1, len(c.Args))
				assert.Equal(t, uri, c.Args[i+1], "in %v", c.Args)
				saw = append(saw, c.Args[nixSubcommand(c.Args)])
			}
		}
	}
	assert.Equal(t, []string{"path-info", "copy", "store"}, saw, "lookup, copy and verify all name the store")
}

// nixSubcommand returns the index of the first argument after nix's
// global flags.
func nixSubcommand(args []string) int {
	for i := 1; i < len(args); i++ {
		if args[i] == "--option" {
			i += 2 // name and value
			continue
		}
		if strings.HasPrefix(args[i], "--") {
			i++ // the flag's value
			continue
		}
		return i
	}
	return 0
}

func TestStagePaths(t *testing.T) {
	rep := reportWith(pA)
	rep.Outputs = append(rep.Outputs, report.Output{Attr: "packages.x86_64-linux.p", OutPaths: []string{pD}, Status: StatusPresent})
	assert.Equal(t, []string{pA, pD}, StagePaths(rep), "built and present outputs go to the staging cache; cached ones are in a cache already")
	assert.Empty(t, StagePaths(&report.Report{}))
}
