// Package engine defines where pipeline commands run. A stage or the build
// plan says what to run (a Cmd); an Engine (host or dagger) says where.
package engine

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Engine kinds accepted by --engine.
const (
	KindAuto   = "auto"
	KindDagger = "dagger"
	KindHost   = "host"
)

// Cmd is one command to run on an engine.
type Cmd struct {
	// Args is the argument vector; Args[0] is the program (nix, nix-store, sh…).
	Args []string
	// Env holds extra environment variables (not secret).
	Env map[string]string
	// Secrets holds environment variables whose values must never be logged,
	// written to a store path or baked into an image. The dagger engine passes
	// them as *dagger.Secret.
	//
	// NIX_CONFIG, in Env or Secrets, adds its lines to the nix configuration
	// the engine already gives commands (the process's NIX_CONFIG on the host,
	// the container defaults on Dagger) instead of replacing it; as a secret
	// it carries settings such as access-tokens.
	Secrets map[string]string
	// Dir is the working directory relative to the source root ("" = root).
	Dir string
	// Stdin is fed to the command when non-nil.
	Stdin io.Reader
	// Stdout and Stderr receive the command's output. The host engine streams;
	// the dagger engine writes them once the exec has finished.
	Stdout, Stderr io.Writer
}

// Result is the outcome of a command that ran.
type Result struct {
	ExitCode int
	// Buffered is true when Stdout and Stderr were written only after the
	// command ended (the dagger engine): the times their lines arrive say
	// nothing about when the command printed them.
	Buffered bool
}

// Engine runs commands against a source tree that holds the flake.
type Engine interface {
	// Name is "host" or "dagger".
	Name() string
	// SourcePath is where the source tree is seen by commands on this engine
	// (an absolute host path, or the mount point inside a container).
	SourcePath() string
	// Run runs cmd. A non-zero exit is reported in Result.ExitCode with a nil
	// error; the error is for failures of the engine itself or a cancelled ctx.
	Run(ctx context.Context, cmd Cmd) (Result, error)
	// Close releases the engine (stops child processes, closes sessions).
	Close() error
}

// Options configure an engine when it is opened.
type Options struct {
	// Source is the host directory mounted as the source tree ("" = none).
	Source string
	// Image is the dagger base image: a registry reference or a path to an
	// OCI tarball. Ignored by the host engine.
	Image string
	// Log receives engine progress (dagger's own log output).
	Log io.Writer
	// Getenv reads the variables that say how to reach a Dagger engine
	// (DAGGER_SESSION_PORT, _EXPERIMENTAL_DAGGER_RUNNER_HOST, PATH…) and
	// the environment given to the dagger CLI; nil reads the process's.
	Getenv func(string) string
	// ConnectTimeout bounds connecting to the Dagger engine (0: the dagger
	// engine's default, 60 s). Ignored by the host engine.
	ConnectTimeout time.Duration
}

// FindExecutable finds an executable file name in the directories of
// pathList (a PATH value), "" when there is none; unlike exec.LookPath it
// reads no process state.
func FindExecutable(name, pathList string) string {
	for _, dir := range filepath.SplitList(pathList) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}
