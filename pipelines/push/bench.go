package push

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/internal/testnginx"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/host"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
	"github.com/ipex-flake/ipex-flake/pipelines/push/signing"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

// BenchOptions configure RunPushBench.
type BenchOptions struct {
	// Paths is the number of store paths in the pushed closure (default 20).
	Paths int
	// Lines per path, about 100 bytes each (default 20000: ~2 MB).
	Lines int
	// Lookups is the number of narinfo lookups timed (default 1000).
	Lookups int
	// Dir holds the fixture flake and nginx ("" = a temporary directory).
	Dir string
}

// PushTargetRatio is the most `ci push` may cost relative to `nix copy`.
const PushTargetRatio = 1.05

// BenchResult is what RunPushBench measured.
type BenchResult struct {
	ClosurePaths     int
	Copy, Push       time.Duration
	Ratio            float64
	Lookups          int
	LookupTime       time.Duration
	LookupsPerSecond float64
}

// RunPushBench builds a fresh fixture closure and, against a local nginx
// WebDAV cache, times a plain `nix copy --to` of it and a `ci push` of the
// same closure to an empty prefix, then times narinfo lookups; it prints
// the ratios to w.
func RunPushBench(ctx context.Context, w io.Writer, o BenchOptions) error {
	_, err := runPushBench(ctx, w, o)
	return err
}

func runPushBench(ctx context.Context, w io.Writer, o BenchOptions) (*BenchResult, error) {
	if o.Paths <= 0 {
		o.Paths = 20
	}
	if o.Lines <= 0 {
		o.Lines = 20000
	}
	if o.Lookups <= 0 {
		o.Lookups = 1000
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "ipex-push-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	for _, tool := range []string{"nix", "nginx"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("the push benchmark needs %s on PATH", tool)
		}
	}
	ng, err := testnginx.Start(filepath.Join(dir, "nginx"), "")
	if err != nil {
		return nil, err
	}
	defer ng.Stop()

	flakeDir := filepath.Join(dir, "flake")
	fmt.Fprintf(w, "building a fixture closure of %d paths…\n", o.Paths+1)
	top, err := buildBenchFixture(ctx, flakeDir, o.Paths, o.Lines)
	if err != nil {
		return nil, err
	}
	eng, err := host.New(engine.Options{Source: flakeDir})
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	closure, err := Closure(ctx, eng, []string{top})
	if err != nil {
		return nil, err
	}
	res := &BenchResult{ClosurePaths: len(closure)}

	// Plain nix copy of the closure to one prefix…
	start := time.Now()
	if err := (&NixCopy{Engine: eng, URI: ng.URL() + "/plain"}).Upload(ctx, []string{top}); err != nil {
		return nil, err
	}
	res.Copy = time.Since(start)

	// …and ci push of the same closure to another.
	key, err := signing.Generate("ipex-bench-1")
	if err != nil {
		return nil, err
	}
	targets, err := Targets(TargetConfig{Cache: ng.URL() + "/push", Engine: eng})
	if err != nil {
		return nil, err
	}
	rep := &report.Report{Outputs: []report.Output{{Attr: "top", OutPaths: []string{top}, Status: report.StatusBuilt}}}
	start = time.Now()
	if _, err := Run(ctx, Options{Engine: eng, Report: rep, Force: true, Signer: &NixSigner{Engine: eng, Key: key},
		PublicKey: key.Public(), Targets: targets}); err != nil {
		return nil, err
	}
	res.Push = time.Since(start)
	res.Ratio = res.Push.Seconds() / res.Copy.Seconds()

	// Narinfo lookups: half of the paths exist.
	paths, err := lookupFixture(filepath.Join(ng.Root, "lookups"), o.Lookups)
	if err != nil {
		return nil, err
	}
	lk := &cache.HTTP{Base: ng.URL() + "/lookups", Client: &http.Client{Timeout: 30 * time.Second}}
	start = time.Now()
	has, err := lk.Has(ctx, paths)
	if err != nil {
		return nil, err
	}
	res.LookupTime = time.Since(start)
	res.Lookups = len(paths)
	res.LookupsPerSecond = float64(len(paths)) / res.LookupTime.Seconds()
	found := 0
	for _, ok := range has {
		if ok {
			found++
		}
	}
	if found != len(paths)/2 {
		return nil, fmt.Errorf("lookups found %d of the %d narinfos written", found, len(paths)/2)
	}

	verdict := "within target"
	if res.Ratio > PushTargetRatio {
		verdict = "OVER target"
	}
	fmt.Fprintf(w, "closure:              %d paths\n", res.ClosurePaths)
	fmt.Fprintf(w, "nix copy --to:        %v\n", res.Copy.Round(time.Millisecond))
	fmt.Fprintf(w, "ci push:              %v (lookups, sign, copy, verify)\n", res.Push.Round(time.Millisecond))
	fmt.Fprintf(w, "push ÷ copy:          %.3f (target ≤ %.2f: %s)\n", res.Ratio, PushTargetRatio, verdict)
	fmt.Fprintf(w, "narinfo lookups:      %d in %v = %.0f/s against nginx\n", res.Lookups, res.LookupTime.Round(time.Millisecond), res.LookupsPerSecond)
	return res, nil
}

func buildBenchFixture(ctx context.Context, dir string, n, lines int) (string, error) {
	f := fixture.Flake{Nonce: fmt.Sprintf("%d", time.Now().UnixNano()), Drvs: map[string]fixture.Drv{}, Packages: map[string]string{}}
	var deps []string
	refs := ""
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("p%03d", i)
		f.Drvs[name] = fixture.Drv{Script: fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "%d $i $$ abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789 $i$i"; i=$((i+1)); done > $out`, lines, i)}
		deps = append(deps, name)
		refs += " $dep_" + name
	}
	f.Drvs["top"] = fixture.Drv{Script: "echo" + refs + " > $out", Deps: deps}
	f.Packages["top"] = "top"
	if err := fixture.Write(dir, f); err != nil {
		return "", err
	}
	args := nixcli.Nix("--option", "substituters", "", "build", "--no-link", "--json", dir+"#top")
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the benchmark fixture: %v: %s", err, lastLines(errb.String(), 5))
	}
	var res []struct {
		Outputs map[string]string `json:"outputs"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || len(res) != 1 {
		return "", fmt.Errorf("nix build --json: unexpected output %.200q", out.String())
	}
	return res[0].Outputs["out"], nil
}

// lookupFixture returns n store paths and writes a narinfo for every other
// one into dir.
func lookupFixture(dir string, n int) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	const alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
	paths := make([]string, n)
	buf := make([]byte, 32)
	for i := range paths {
		if _, err := rand.Read(buf); err != nil {
			return nil, err
		}
		for j := range buf {
			buf[j] = alphabet[int(buf[j])%len(alphabet)]
		}
		paths[i] = "/nix/store/" + string(buf) + "-bench"
		if i%2 == 0 {
			if err := os.WriteFile(filepath.Join(dir, string(buf)+".narinfo"), []byte("StorePath: "+paths[i]+"\n"), 0o644); err != nil {
				return nil, err
			}
		}
	}
	return paths, nil
}
