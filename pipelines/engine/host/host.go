// Package host runs pipeline commands on the host, with the host's nix. It
// is the engine of self-hosted Intel runners and of machines without a
// container runtime.
package host

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/childenv"
	"github.com/ipex-flake/ipex-flake/internal/procgroup"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
)

// Engine runs commands as child processes of this one, each in its own
// process group so that cancellation stops the command and everything it
// started.
type Engine struct {
	// GracePeriod is how long a cancelled command gets between SIGTERM
	// and SIGKILL (DefaultGracePeriod from New).
	GracePeriod time.Duration

	source string

	mu    sync.Mutex
	procs map[*procgroup.Process]struct{}
}

var _ engine.Engine = (*Engine)(nil)

// New returns a host engine whose source root is opts.Source (default: the
// working directory).
func New(opts engine.Options) (*Engine, error) {
	src := opts.Source
	if src == "" {
		src = "."
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return nil, err
	}
	return &Engine{GracePeriod: DefaultGracePeriod, source: abs, procs: map[*procgroup.Process]struct{}{}}, nil
}

// Name implements engine.Engine.
func (e *Engine) Name() string { return engine.KindHost }

// SourcePath implements engine.Engine.
func (e *Engine) SourcePath() string { return e.source }

// DefaultGracePeriod is how long a cancelled command gets between SIGTERM
// and SIGKILL.
const DefaultGracePeriod = 5 * time.Second

// Run implements engine.Engine.
func (e *Engine) Run(ctx context.Context, c engine.Cmd) (engine.Result, error) {
	if len(c.Args) == 0 {
		return engine.Result{}, errors.New("host engine: empty command")
	}
	if err := ctx.Err(); err != nil {
		return engine.Result{}, err
	}
	cmd := exec.Command(c.Args[0], c.Args[1:]...)
	cmd.Dir = filepath.Join(e.source, c.Dir)
	// The child sees the allow-listed environment (childenv) plus what
	// the command passes on purpose: never the parent's credentials.
	cmd.Env = mergeEnv(childenv.Filter(os.Environ()), c.Env, c.Secrets)
	cmd.Stdin = c.Stdin
	cmd.Stdout = c.Stdout
	cmd.Stderr = c.Stderr
	// A grandchild that keeps our stdout/stderr open must not make Wait
	// hang once the command itself has exited.
	cmd.WaitDelay = e.GracePeriod
	p, err := procgroup.Start(cmd)
	if err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) {
			return engine.Result{}, fmt.Errorf("%s not found on PATH: install it (for nix: https://nixos.org/download, or `apt-get install nix-bin`) or use --engine dagger", c.Args[0])
		}
		return engine.Result{}, err
	}
	e.track(p, true)
	defer e.track(p, false)

	err = p.Wait(ctx, e.GracePeriod)
	if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
		return engine.Result{ExitCode: -1}, err
	}
	return result(err)
}

func result(err error) (engine.Result, error) {
	if err == nil {
		return engine.Result{}, nil
	}
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		code := xe.ExitCode()
		if code < 0 { // killed by a signal
			code = 128
			if ws, ok := xe.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code += int(ws.Signal())
			}
		}
		return engine.Result{ExitCode: code}, nil
	}
	return engine.Result{}, err
}

func (e *Engine) track(p *procgroup.Process, add bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if add {
		e.procs[p] = struct{}{}
	} else {
		delete(e.procs, p)
	}
}

// Close kills the process groups of commands still running.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for p := range e.procs {
		_ = p.Signal(syscall.SIGKILL)
	}
	return nil
}

// mergeEnv appends the extra variables to base (later entries win, as
// exec.Cmd keeps the last of duplicate keys), except NIX_CONFIG, whose lines
// are added to those already there.
func mergeEnv(base []string, extra ...map[string]string) []string {
	env := append([]string(nil), base...)
	nixConfig, hasNixConfig := "", false
	for _, kv := range base {
		if v, ok := strings.CutPrefix(kv, "NIX_CONFIG="); ok {
			nixConfig, hasNixConfig = v, true
		}
	}
	for _, m := range extra {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			v := m[k]
			if k == "NIX_CONFIG" {
				if hasNixConfig && nixConfig != "" {
					v = nixConfig + "\n" + v
				}
				nixConfig, hasNixConfig = v, true
			}
			env = append(env, k+"="+v)
		}
	}
	return env
}
