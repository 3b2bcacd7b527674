// Package engines opens the engine chosen by --engine: dagger, host, or
// auto (Dagger when an engine is reachable, else the host's nix).
package engines

import (
	"context"
	"os/exec"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/daggerengine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/host"
)

// LookPath finds programs on PATH (tests replace it).
var LookPath = exec.LookPath

// Resolve turns an --engine value into "dagger" or "host" without opening
// anything. auto picks Dagger when an engine is reachable, else the host
// when nix is on PATH, else fails with what to install.
func Resolve(kind string, getenv func(string) string) (string, error) {
	switch kind {
	case engine.KindDagger:
		if ok, why := daggerengine.Available(getenv); !ok {
			return "", clierr.Usagef("--engine dagger: %s. Install the dagger CLI (https://docs.dagger.io/install) or set _EXPERIMENTAL_DAGGER_RUNNER_HOST, or use --engine host", why)
		}
		return kind, nil
	case engine.KindHost:
		if _, err := LookPath("nix"); err != nil {
			return "", clierr.Usagef("--engine host: nix is not on PATH. Install Nix (https://nixos.org/download, or `apt-get install nix-bin` on Debian), or use --engine dagger")
		}
		return kind, nil
	case engine.KindAuto, "":
		if ok, _ := daggerengine.Available(getenv); ok {
			return engine.KindDagger, nil
		}
		if _, err := LookPath("nix"); err == nil {
			return engine.KindHost, nil
		}
		_, why := daggerengine.Available(getenv)
		return "", clierr.Usagef("--engine auto: %s and nix is not on PATH. Install Nix (https://nixos.org/download) or the dagger CLI (https://docs.dagger.io/install)", why)
	default:
		return "", clierr.Usagef("unknown engine %q: use --engine auto, dagger or host", kind)
	}
}

// Open resolves kind and opens that engine.
func Open(ctx context.Context, kind string, getenv func(string) string, opts engine.Options) (engine.Engine, error) {
	k, err := Resolve(kind, getenv)
	if err != nil {
		return nil, err
	}
	if k == engine.KindDagger {
		return daggerengine.New(ctx, opts)
	}
	return host.New(opts)
}
