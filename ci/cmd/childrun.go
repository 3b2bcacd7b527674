package cmd

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/childenv"
	"github.com/ipex-flake/ipex-flake/internal/procgroup"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
)

// childGrace is how long a cancelled command gets between SIGTERM and
// SIGKILL.
const childGrace = 5 * time.Second

// childRunner runs commands on the host with the allow-listed environment
// (internal/childenv): never the signing key or tokens of this process.
type childRunner struct{}

// Run runs c; a non-zero exit is in the result, not the error.
func (childRunner) Run(ctx context.Context, c engine.Cmd) (engine.Result, error) {
	if len(c.Args) == 0 {
		return engine.Result{}, errors.New("empty command")
	}
	cmd := exec.Command(c.Args[0], c.Args[1:]...)
	cmd.Env = childenv.Filter(os.Environ())
	for k, v := range c.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// A grandchild holding stdout open does not hold up the result.
	cmd.WaitDelay = childGrace
	cmd.Stdin = c.Stdin
	cmd.Stdout, cmd.Stderr = c.Stdout, c.Stderr
	if cmd.Stdout == nil {
		cmd.Stdout = &bytes.Buffer{}
	}
	// Cancelling stops the command and everything it started.
	err := procgroup.Run(ctx, cmd, childGrace)
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		return engine.Result{ExitCode: ee.ExitCode()}, nil
	}
	if err != nil {
		return engine.Result{ExitCode: -1}, err
	}
	return engine.Result{}, nil
}
