// Package quality holds the four test stages (unit, integration,
// performance, security). Each is a stage.Stage; the wrapper in package
// stage applies their time limits, requirements and skips.
package quality

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/ipex-flake/ipex-flake/internal/logtail"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/pick"
	"github.com/ipex-flake/ipex-flake/pipelines/stage"
)

// Env is what the stages share: the flake, the engine, the machine, where
// to print.
type Env struct {
	// Flake is a local directory or a flake reference (default ".").
	Flake string
	// EngineKind is the --engine value (auto, dagger, host).
	EngineKind string
	// Getenv reads the environment (engine selection, service endpoints).
	Getenv func(string) string
	// Systems are the systems whose checks run (default: this machine's).
	Systems []string
	// Host is the machine's feature detection.
	Host stage.Host
	// Out receives progress and per-check lines.
	Out io.Writer
	// Services says how the integration and performance stages get the
	// services they test: started from the build report (the default),
	// or already running (External).
	Services *ServiceOptions

	// Open opens the engine (default pick.Open); tests replace it.
	Open func(ctx context.Context, kind string, getenv func(string) string, opts engine.Options) (engine.Engine, error)

	once   sync.Once
	eng    engine.Engine
	engErr error
}

// CurrentSystem is the Nix system of this process's machine.
func CurrentSystem() string {
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "riscv64": "riscv64"}[runtime.GOARCH]
	if arch == "" {
		arch = runtime.GOARCH
	}
	return arch + "-" + runtime.GOOS
}

// IsLocal reports whether Flake names a local directory rather than a
// flake reference such as github:owner/repo.
func (e *Env) IsLocal() bool {
	f := e.flake()
	return !strings.Contains(f, ":") || strings.HasPrefix(f, "/") || strings.HasPrefix(f, ".")
}

func (e *Env) flake() string {
	if e.Flake == "" {
		return "."
	}
	return e.Flake
}

// Dir is the local directory of the flake ("" for a remote reference).
func (e *Env) Dir() string {
	if !e.IsLocal() {
		return ""
	}
	abs, err := filepath.Abs(e.flake())
	if err != nil {
		return e.flake()
	}
	return abs
}

// Engine opens the engine on first use (a stage that is skipped never
// opens one) and returns the same one afterwards.
func (e *Env) Engine(ctx context.Context) (engine.Engine, error) {
	e.once.Do(func() {
		open := e.Open
		if open == nil {
			open = pick.Open
		}
		src := e.Dir()
		if src == "" {
			src = "."
		}
		getenv := e.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		e.eng, e.engErr = open(ctx, e.EngineKind, getenv, engine.Options{Source: src, Log: e.Out})
	})
	return e.eng, e.engErr
}

// Close closes the engine if one was opened.
func (e *Env) Close() error {
	if e.eng != nil {
		return e.eng.Close()
	}
	return nil
}

// FlakeRef is the flake reference as seen by commands on eng.
func (e *Env) FlakeRef(eng engine.Engine) string {
	if e.IsLocal() {
		return eng.SourcePath()
	}
	return e.flake()
}

// systems returns the selected systems.
func (e *Env) systems() []string {
	if len(e.Systems) == 0 {
		return []string{CurrentSystem()}
	}
	return e.Systems
}

func (e *Env) out() io.Writer {
	if e.Out == nil {
		return io.Discard
	}
	return e.Out
}

func (e *Env) getenv(k string) string {
	if e.Getenv == nil {
		return os.Getenv(k)
	}
	return e.Getenv(k)
}

// noise reports lines of nix's stderr that say nothing about the failure:
// dirty-tree warnings, download retries, the --show-trace hint.
func noise(l string) bool {
	return strings.HasPrefix(l, "warning: Git tree") ||
		(strings.HasPrefix(l, "warning: ") && strings.Contains(l, "retrying in")) ||
		strings.HasPrefix(l, "(use '--show-trace'")
}

// tail returns the last n non-empty lines of s that are not noise, joined
// by " | ".
func tail(s string, n int) string { return logtail.LinesExcept(s, n, noise) }

// run runs args on eng and returns stdout, stderr and an error for a
// non-zero exit.
func run(ctx context.Context, eng engine.Engine, args []string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	res, err := eng.Run(ctx, engine.Cmd{Args: args, Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		return stdout.String(), stderr.String(), err
	}
	if res.ExitCode != 0 {
		return stdout.String(), stderr.String(), fmt.Errorf("%s exited %d: %s", args[0], res.ExitCode, tail(stderr.String(), 3))
	}
	return stdout.String(), stderr.String(), nil
}

// fetchErrors are the messages of nix when it cannot reach a flake input.
var fetchErrors = []string{"unable to download", "Couldn't resolve host", "Could not resolve host",
	"unable to fetch", "Connection refused", "Network is unreachable", "Failed to connect"}

// fetchFailure tells, from nix's stderr, whether the flake could not be
// evaluated because its inputs cannot be fetched from here. The reason
// names the failing download and the fix.
func (e *Env) fetchFailure(stderr string) (string, bool) {
	var first string
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(l)
		for _, m := range fetchErrors {
			if strings.Contains(l, m) {
				first = strings.TrimPrefix(strings.TrimPrefix(l, "warning: "), "error: ")
				if i := strings.Index(first, "; retrying"); i > 0 {
					first = first[:i]
				}
				break
			}
		}
		if first != "" {
			break
		}
	}
	if first == "" {
		return "", false
	}
	fix := "fetch them once where the network reaches them (nix flake archive) or run on a runner that can"
	if dir := e.Dir(); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "flake.lock")); err != nil {
			fix = "there is no flake.lock, so every input is resolved over the network: " +
				"run `nix flake lock` where the network reaches them and commit flake.lock"
		}
	}
	return "the flake's inputs cannot be fetched from here (" + first + "); " + fix, true
}
