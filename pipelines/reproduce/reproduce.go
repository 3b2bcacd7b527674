// Package reproduce rebuilds the outputs of a build report a second time and
// compares the results bit for bit: `ci verify reproducible`.
//
// Each selected derivation is realised (substituted or built when it is not
// in the store yet), then rebuilt with `nix-store --realise --check
// --keep-failed`. Nix keeps an output that came out differently as
// `<out>.check`; the two trees are compared file by file here, and
// diffoscope, when it is on PATH, summarises the difference.
package reproduce

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

// Statuses of a check.
const (
	StatusReproducible = "reproducible"
	StatusDiffers      = "differs"
	StatusFailed       = "failed"
)

// Result is the check of one output of the report.
type Result struct {
	Attr    string   `json:"attr"`
	DrvPath string   `json:"drvPath"`
	Status  string   `json:"status"`
	Outputs []Output `json:"outputs,omitempty"`
	// Reason says why a check failed.
	Reason     string `json:"reason,omitempty"`
	DurationMs int64  `json:"durationMs"`
}

// Output is one store path of a checked derivation.
type Output struct {
	Path string `json:"path"`
	// Check is the second build kept by nix when it differs ("" otherwise).
	Check string `json:"check,omitempty"`
	// Differences name the files that differ, relative to the output.
	Differences []Difference `json:"differences,omitempty"`
	// Diffoscope is the head of diffoscope's report ("" when it is not on PATH).
	Diffoscope string `json:"diffoscope,omitempty"`
}

// Runner runs a command; engine.Engine is one.
type Runner interface {
	Run(ctx context.Context, cmd engine.Cmd) (engine.Result, error)
}

// Checker runs the checks.
type Checker struct {
	// Engine runs nix; it must see the same store as this process (the
	// host), since the two trees are compared here.
	Engine Runner
	// Log receives nix's output; nil discards it.
	Log io.Writer
	// Diffoscope is the diffoscope binary ("" looks it up on PATH; "-"
	// disables it).
	Diffoscope string
	// DiffoscopeLines bounds the summary kept per output (default 40).
	DiffoscopeLines int
	// Builder is the store URI of a second machine (ssh-ng://host) that
	// rebuilds the outputs instead of this one ("" = rebuild here).
	Builder string
	// BuilderEnv is the environment nix needs to reach it (NIX_SSHOPTS).
	BuilderEnv map[string]string
	// KeepDir receives the builder's output of a differing rebuild
	// (default: a new directory under the system's temporary directory).
	KeepDir string
}

// Select returns the outputs of rep that have a derivation and were built
// or found in a cache, whose attribute matches glob ("" = all). The glob is
// path.Match syntax against the attribute, e.g. packages.x86_64-linux.*.
func Select(rep *report.Report, glob string) ([]report.Output, error) {
	if glob != "" {
		if _, err := path.Match(glob, ""); err != nil {
			return nil, fmt.Errorf("--attr %q is not a glob: %v", glob, err)
		}
	}
	var out []report.Output
	seen := map[string]bool{}
	for _, o := range rep.Outputs {
		if o.DrvPath == "" || o.Status == report.StatusFailed || o.Status == report.StatusSkipped {
			continue
		}
		if glob != "" {
			if ok, _ := path.Match(glob, o.Attr); !ok {
				continue
			}
		}
		if seen[o.DrvPath] {
			continue
		}
		seen[o.DrvPath] = true
		out = append(out, o)
	}
	return out, nil
}

var keptDirRe = regexp.MustCompile(`keeping build directory '([^']+)'`)

// Check rebuilds one output and compares.
func (c *Checker) Check(ctx context.Context, o report.Output) Result {
	start := time.Now()
	r := Result{Attr: o.Attr, DrvPath: o.DrvPath}
	defer func() { r.DurationMs = time.Since(start).Milliseconds() }()
	fail := func(format string, args ...any) Result {
		r.Status, r.Reason = StatusFailed, fmt.Sprintf(format, args...)
		r.DurationMs = time.Since(start).Milliseconds()
		return r
	}

	// The first build: present already, or realised now.
	// One writer for both streams: os/exec then writes from one goroutine
	// at a time, never into the buffer from two.
	var first bytes.Buffer
	both := c.tee(&first)
	res, err := c.Engine.Run(ctx, engine.Cmd{Args: []string{"nix-store", "--realise", o.DrvPath},
		Stdout: both, Stderr: both})
	if err != nil {
		return fail("nix-store --realise: %v", err)
	}
	if res.ExitCode != 0 {
		return fail("the first build failed (nix-store --realise exit %d): %s", res.ExitCode, lastLine(first.String()))
	}
	outs := nonEmptyLines(first.String())
	outs = filterStorePaths(outs)
	if len(outs) == 0 {
		outs = o.OutPaths
	}

	if c.Builder != "" {
		return c.checkOnBuilder(ctx, r, outs, start)
	}

	// The second build.
	var second bytes.Buffer
	res, err = c.Engine.Run(ctx, engine.Cmd{Args: []string{"nix-store", "--realise", "--check", "--keep-failed", o.DrvPath},
		Stdout: io.Discard, Stderr: c.tee(&second)})
	if err != nil {
		return fail("nix-store --realise --check: %v", err)
	}
	// --keep-failed keeps the build directory too; only <out>.check is needed.
	for _, m := range keptDirRe.FindAllStringSubmatch(second.String(), -1) {
		if strings.Contains(filepath.Base(m[1]), "nix-build-") {
			_ = os.RemoveAll(m[1])
		}
	}
	if res.ExitCode == 0 {
		r.Status = StatusReproducible
		for _, p := range outs {
			r.Outputs = append(r.Outputs, Output{Path: p})
		}
		return r
	}
	// nix says "may not be deterministic" for a rebuild that differs (exit
	// 104 from 2.8 on); any other failure is the rebuild failing.
	if !strings.Contains(second.String(), "may not be deterministic") {
		return fail("the rebuild failed (nix-store --check exit %d): %s", res.ExitCode, lastLine(second.String()))
	}
	r.Status = StatusDiffers
	for _, p := range outs {
		out := Output{Path: p}
		if _, err := os.Lstat(p + ".check"); err == nil {
			out.Check = p + ".check"
			diffs, err := CompareTrees(p, out.Check)
			if err != nil {
				return fail("compare %s with %s: %v", p, out.Check, err)
			}
			out.Differences = diffs
			if len(diffs) > 0 {
				out.Diffoscope = c.diffoscope(ctx, p, out.Check)
			}
		}
		r.Outputs = append(r.Outputs, out)
	}
	return r
}

// Files lists the differing files of r, each as its store path.
func (r Result) Files() []string {
	var out []string
	for _, o := range r.Outputs {
		for _, d := range o.Differences {
			if d.Path == "." {
				out = append(out, o.Path)
			} else {
				out = append(out, o.Path+"/"+d.Path)
			}
		}
	}
	return out
}

func (c *Checker) tee(buf *bytes.Buffer) io.Writer {
	if c.Log == nil {
		return buf
	}
	return io.MultiWriter(buf, c.Log)
}

// diffoscope runs diffoscope on the two trees and returns the head of its
// text report ("" when diffoscope is not available).
func (c *Checker) diffoscope(ctx context.Context, a, b string) string {
	bin := c.Diffoscope
	if bin == "-" {
		return ""
	}
	if bin == "" {
		p, err := exec.LookPath("diffoscope")
		if err != nil {
			return ""
		}
		bin = p
	}
	n := c.DiffoscopeLines
	if n <= 0 {
		n = 40
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--no-progress", "--text", "-", a, b)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir(), "LC_ALL=C.UTF-8"}
	// diffoscope exits 1 when the inputs differ.
	if err := cmd.Run(); err != nil && (cmd.ProcessState == nil || cmd.ProcessState.ExitCode() > 1) {
		return fmt.Sprintf("diffoscope failed: %v: %s", err, lastLine(out.String()))
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) > n {
		lines = append(lines[:n], fmt.Sprintf("… (%d more lines: run diffoscope %s %s)", len(lines)-n, a, b))
	}
	return strings.Join(lines, "\n")
}

func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func filterStorePaths(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, "/") && !strings.HasSuffix(l, ".drv") {
			out = append(out, l)
		}
	}
	return out
}

func lastLine(s string) string {
	lines := nonEmptyLines(s)
	if len(lines) == 0 {
		return "(no output)"
	}
	return lines[len(lines)-1]
}
