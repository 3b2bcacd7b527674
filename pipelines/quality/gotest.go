package quality

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/host"
	"github.com/ipex-flake/ipex-flake/pipelines/stage"
)

// LiveEnv is set to 1 when the test suites run from a stage: they then
// drive the real services (OLLAMA_HOST, COMFYUI_URL or their default
// local addresses) instead of the recorded fakes.
const LiveEnv = "IPEX_LIVE"

// ModuleRoot finds the Go module root at or above dir ("" when none).
func ModuleRoot(dir string) string {
	for d := dir; d != ""; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return ""
		}
		d = parent
	}
	return ""
}

// goTestEvent is one line of `go test -json`.
type goTestEvent struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

// runGoTests runs `go test -json -count=1 pkgs` in root on the host (the
// suites drive services on this machine) and records one check per
// top-level test. env is added to the environment.
func runGoTests(ctx context.Context, root string, pkgs []string, env map[string]string, c *stage.Collector) error {
	if _, err := exec.LookPath("go"); err != nil {
		c.Fail("go test", "go is not on PATH: install Go to run "+strings.Join(pkgs, " "), 0)
		return nil
	}
	eng, err := host.New(engine.Options{Source: root})
	if err != nil {
		return err
	}
	defer eng.Close()
	var stdout, stderr bytes.Buffer
	args := append([]string{"go", "test", "-json", "-count=1"}, pkgs...)
	start := time.Now()
	res, err := eng.Run(ctx, engine.Cmd{Args: args, Env: env, Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		return err
	}
	n := recordGoTests(&stdout, c)
	if res.ExitCode != 0 && n.failed == 0 {
		// A build failure or a panic outside a test.
		c.Fail("go test "+strings.Join(pkgs, " "), tail(stderr.String()+stdout.String(), 6), time.Since(start))
	}
	return nil
}

type goCounts struct{ failed int }

// recordGoTests turns `go test -json` output into checks, one per
// top-level test, with the failing test's output as detail.
func recordGoTests(r io.Reader, c *stage.Collector) goCounts {
	var counts goCounts
	output := map[string]*strings.Builder{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev goTestEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		if ev.Test == "" || strings.Contains(ev.Test, "/") {
			continue
		}
		key := ev.Package + "." + ev.Test
		name := filepath.Base(ev.Package) + "." + ev.Test
		d := time.Duration(ev.Elapsed * float64(time.Second))
		switch ev.Action {
		case "output":
			if output[key] == nil {
				output[key] = &strings.Builder{}
			}
			output[key].WriteString(ev.Output)
		case "pass":
			c.Pass(name, "", d)
		case "fail":
			counts.failed++
			c.Fail(name, tail(text(output[key]), 6), d)
		case "skip":
			c.SkipCheck(name, skipReason(text(output[key])))
		}
	}
	return counts
}

func text(b *strings.Builder) string {
	if b == nil {
		return ""
	}
	return b.String()
}

// skipReason picks the t.Skip message out of a skipped test's output.
func skipReason(out string) string {
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		if i := strings.Index(l, ": "); i > 0 && strings.Contains(l[:i], ".go:") {
			return l[i+2:]
		}
		return l
	}
	return "skipped"
}
