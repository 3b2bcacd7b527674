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
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/childenv"
	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/fixture"
	"github.com/ipex-flake/ipex-flake/internal/nginx"
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
	// Reps is the number of repetitions of each side (default 3, at least 3).
	Reps int
	// Target is the most push ÷ copy may be (default PushTargetRatio).
	Target float64
	// Dir holds the fixture flake and nginx ("" = a temporary directory).
	Dir string
}

// PushTargetRatio is the most `ci push` may cost relative to `nix copy`.
const PushTargetRatio = 1.05

// BenchResult is what RunPushBench measured.
type BenchResult struct {
	ClosurePaths int
	// Copies and Pushes are the times of each repetition of each side;
	// Ratios their quotients, repetition by repetition.
	Copies, Pushes []time.Duration
	Ratios         []float64
	// Ratio is the median of Ratios; Spread is max − min of Ratios.
	Ratio, Spread float64
	// CPURatios are push ÷ copy in CPU time (this process and the nix
	// processes it waited for), which load from other work on the machine
	// disturbs far less than wall time; CPURatio is their median.
	CPURatios        []float64
	CPURatio         float64
	Lookups          int
	LookupTime       time.Duration
	LookupsPerSecond float64
}

// RunPushBench builds a fresh fixture closure and, against a local nginx
// WebDAV cache, compares two sides doing the same work: `nix store sign`
// plus `nix copy --to` a fresh cache, and `ci push` (write check, lookups,
// sign, copy, verification) to another fresh cache, with the same key.
// The order alternates between repetitions so that load hits both sides
// alike. It prints every repetition, the median ratio and its spread, and
// returns an exit-1 error when the median is over the target.
func RunPushBench(ctx context.Context, w io.Writer, o BenchOptions) error {
	_, err := runPushBench(ctx, w, o)
	return err
}

// defaults fills in the benchmark's sizes, repetitions (at least 3) and
// target.
func (o *BenchOptions) defaults() {
	if o.Paths <= 0 {
		o.Paths = 20
	}
	if o.Lines <= 0 {
		o.Lines = 20000
	}
	if o.Lookups <= 0 {
		o.Lookups = 1000
	}
	if o.Reps < 3 {
		o.Reps = 3
	}
	if o.Target <= 0 {
		o.Target = PushTargetRatio
	}
}

func runPushBench(ctx context.Context, w io.Writer, o BenchOptions) (*BenchResult, error) {
	o.defaults()
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "ipex-push-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	b, err := startPushBench(ctx, w, dir, o)
	if err != nil {
		return nil, err
	}
	defer b.close()
	res := &BenchResult{ClosurePaths: len(b.closure)}
	fmt.Fprintf(w, "%-5s %-12s %-12s %s\n", "rep", "nix copy", "ci push", "push ÷ copy")
	for i := 0; i < o.Reps; i++ {
		if err := b.repetition(ctx, w, i, res); err != nil {
			return nil, err
		}
	}
	res.Ratio, res.Spread = medianSpread(res.Ratios)
	var cpuSpread float64
	res.CPURatio, cpuSpread = medianSpread(res.CPURatios)

	if err := benchLookups(ctx, b.ng, o.Lookups, res); err != nil {
		return nil, err
	}
	printPushBench(w, res, o, cpuSpread)
	if res.Ratio > o.Target {
		return res, clierr.Failedf("ci push took %.3f× nix copy (median of %d), over the target of %.2f×", res.Ratio, o.Reps, o.Target)
	}
	return res, nil
}

// pushBench is what both sides of the benchmark share: a fixture closure
// built in the host store, the key that signs it, and the nginx WebDAV
// server whose fresh caches it is uploaded to.
type pushBench struct {
	ng      *nginx.Server
	eng     engine.Engine
	top     string   // the closure's top path, the one output
	closure []string // every path of the closure
	key     *signing.Key
	rep     *report.Report // a build report with top built
	// cpuCopy and cpuPush are the CPU times of the latest run of each side.
	cpuCopy, cpuPush time.Duration
	// phases is the ci push timing line of each repetition.
	phases []string
}

// startPushBench checks for nix and nginx, starts nginx and builds the
// fixture closure under dir. close stops what it started.
func startPushBench(ctx context.Context, w io.Writer, dir string, o BenchOptions) (_ *pushBench, err error) {
	for _, tool := range []string{"nix", "nginx"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("the push benchmark needs %s on PATH", tool)
		}
	}
	b := &pushBench{}
	if b.ng, err = nginx.Start(filepath.Join(dir, "nginx"), ""); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	flakeDir := filepath.Join(dir, "flake")
	fmt.Fprintf(w, "building a fixture closure of %d paths…\n", o.Paths+1)
	if b.top, err = buildBenchFixture(ctx, flakeDir, o.Paths, o.Lines); err != nil {
		return nil, err
	}
	if b.eng, err = host.New(engine.Options{Source: flakeDir}); err != nil {
		return nil, err
	}
	if b.closure, err = Closure(ctx, b.eng, []string{b.top}); err != nil {
		return nil, err
	}
	if b.key, err = signing.Generate("ipex-bench-1"); err != nil {
		return nil, err
	}
	b.rep = &report.Report{Outputs: []report.Output{{Attr: "top", OutPaths: []string{b.top}, Status: report.StatusBuilt}}}
	return b, nil
}

// close closes the engine and stops nginx.
func (b *pushBench) close() {
	if b.eng != nil {
		b.eng.Close()
	}
	b.ng.Stop()
}

// repetition runs both sides once, copy first in even repetitions and
// push first in odd ones, adds the times and ratios to res and prints them.
func (b *pushBench) repetition(ctx context.Context, w io.Writer, i int, res *BenchResult) error {
	var c, p time.Duration
	var err error
	first := "copy first"
	if i%2 == 0 {
		if c, err = b.copySide(ctx, i); err == nil {
			p, err = b.pushSide(ctx, i)
		}
	} else {
		first = "push first"
		if p, err = b.pushSide(ctx, i); err == nil {
			c, err = b.copySide(ctx, i)
		}
	}
	if err != nil {
		return err
	}
	res.Copies = append(res.Copies, c)
	res.Pushes = append(res.Pushes, p)
	res.Ratios = append(res.Ratios, p.Seconds()/c.Seconds())
	res.CPURatios = append(res.CPURatios, b.cpuPush.Seconds()/b.cpuCopy.Seconds())
	fmt.Fprintf(w, "%-5d %-12v %-12v %.3f (%s; CPU %v ÷ %v = %.3f)\n", i+1, c.Round(time.Millisecond), p.Round(time.Millisecond), res.Ratios[i], first,
		b.cpuPush.Round(time.Millisecond), b.cpuCopy.Round(time.Millisecond), res.CPURatios[i])
	if len(b.phases) > i {
		fmt.Fprintf(w, "      ci push: %s\n", b.phases[i])
	}
	return nil
}

// copySide is the nix side of repetition i: sign the closure, copy it to
// a fresh cache.
func (b *pushBench) copySide(ctx context.Context, i int) (time.Duration, error) {
	cpu0 := cpuTime()
	defer func() { b.cpuCopy = cpuTime() - cpu0 }()
	start := time.Now()
	if err := (&NixSigner{Engine: b.eng, Key: b.key}).Sign(ctx, b.closure); err != nil {
		return 0, err
	}
	if err := run(ctx, b.eng, nil, engine.Cmd{Args: nixcli.Nix("copy", "--to", fmt.Sprintf("%s/copy-%d", b.ng.URL(), i), b.top)}, "nix copy"); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// pushSide is the ci push side of repetition i: the same closure, key
// and kind of cache.
func (b *pushBench) pushSide(ctx context.Context, i int) (time.Duration, error) {
	uri := fmt.Sprintf("%s/push-%d", b.ng.URL(), i)
	targets, err := Targets(TargetConfig{Cache: uri, Engine: b.eng})
	if err != nil {
		return 0, err
	}
	var log bytes.Buffer
	cpu0 := cpuTime()
	defer func() { b.cpuPush = cpuTime() - cpu0 }()
	start := time.Now()
	sums, err := Run(ctx, Options{Engine: b.eng, Report: b.rep, Force: true, Signer: &NixSigner{Engine: b.eng, Key: b.key},
		PublicKey: b.key.Public(), Key: b.key, Targets: targets, Log: &log})
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.HasPrefix(l, uri+": ") {
			b.phases = append(b.phases, strings.TrimPrefix(l, uri+": "))
		}
	}
	if len(sums) != 1 || sums[0].Pushed != len(b.closure) {
		return 0, fmt.Errorf("ci push uploaded %v, not the %d paths of the closure", sums, len(b.closure))
	}
	return time.Since(start), nil
}

// benchLookups times n narinfo lookups against nginx, half of which exist,
// into res.
func benchLookups(ctx context.Context, ng *nginx.Server, n int, res *BenchResult) error {
	paths, err := lookupFixture(filepath.Join(ng.Root, "lookups"), n)
	if err != nil {
		return err
	}
	lk := &cache.HTTP{Base: ng.URL() + "/lookups", Client: &http.Client{Timeout: 30 * time.Second}}
	start := time.Now()
	has, err := lk.Has(ctx, paths)
	if err != nil {
		return err
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
		return fmt.Errorf("lookups found %d of the %d narinfos written", found, len(paths)/2)
	}
	return nil
}

// printPushBench prints the medians, spreads and the verdict.
func printPushBench(w io.Writer, res *BenchResult, o BenchOptions, cpuSpread float64) {
	verdict := "within target"
	if res.Ratio > o.Target {
		verdict = "OVER target"
	}
	fmt.Fprintf(w, "closure:              %d paths, signed and uploaded by both sides to fresh caches\n", res.ClosurePaths)
	fmt.Fprintf(w, "nix copy (median):    %v\n", medianDuration(res.Copies).Round(time.Millisecond))
	fmt.Fprintf(w, "ci push (median):     %v (write check, lookups, sign, copy, verify)\n", medianDuration(res.Pushes).Round(time.Millisecond))
	fmt.Fprintf(w, "push ÷ copy:          median %.3f, spread %.3f over %d repetitions (target ≤ %.2f: %s)\n", res.Ratio, res.Spread, o.Reps, o.Target, verdict)
	fmt.Fprintf(w, "push ÷ copy, CPU:     median %.3f, spread %.3f (for reading a loaded machine; the target is on wall time)\n", res.CPURatio, cpuSpread)
	fmt.Fprintf(w, "narinfo lookups:      %d in %v = %.0f/s against nginx\n", res.Lookups, res.LookupTime.Round(time.Millisecond), res.LookupsPerSecond)
}

// cpuTime is the CPU time of this process and of the children it has
// waited for (the nix processes of both sides).
func cpuTime() time.Duration {
	var self, children syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(children.Utime) + tv(children.Stime)
}

// medianSpread returns the median of xs and max − min.
func medianSpread(xs []float64) (median, spread float64) {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n == 0 {
		return 0, 0
	}
	median = s[n/2]
	if n%2 == 0 {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return median, s[n-1] - s[0]
}

func medianDuration(ds []time.Duration) time.Duration {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d)
	}
	m, _ := medianSpread(xs)
	return time.Duration(m)
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
	cmd.Env = childenv.Environ()
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
