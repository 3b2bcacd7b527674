// Package pick opens the engine chosen by --engine: dagger, host, or
// auto (Dagger when an engine is reachable, else the host's nix).
package pick

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/daggerengine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/host"
)

// Resolve turns an --engine value into "dagger" or "host" without opening
// anything. auto picks Dagger when an engine is reachable, else the host
// when nix is on PATH, else fails with what to install.
func Resolve(kind string, getenv func(string) string) (string, error) {
	k, _, err := choose(kind, getenv)
	return k, err
}

// choose is Resolve that also says why auto chose the host.
func choose(kind string, getenv func(string) string) (string, string, error) {
	switch kind {
	case engine.KindDagger:
		if ok, why := daggerengine.Available(getenv); !ok {
			return "", "", clierr.Usagef("--engine dagger: %s; or use --engine host. Install the dagger CLI from https://docs.dagger.io/install", why)
		}
		return kind, "", nil
	case engine.KindHost:
		if engine.FindExecutable("nix", getenv("PATH")) == "" {
			return "", "", clierr.Usagef("--engine host: nix is not on PATH. Install Nix (https://nixos.org/download, or `apt-get install nix-bin` on Debian), or use --engine dagger")
		}
		return kind, "", nil
	case engine.KindAuto, "":
		ok, why := daggerengine.Available(getenv)
		if ok {
			return engine.KindDagger, "", nil
		}
		if engine.FindExecutable("nix", getenv("PATH")) != "" {
			return engine.KindHost, why, nil
		}
		return "", "", clierr.Usagef("--engine auto: %s and nix is not on PATH. Install Nix (https://nixos.org/download) or the dagger CLI (https://docs.dagger.io/install)", why)
	default:
		return "", "", clierr.Usagef("unknown engine %q: use --engine auto, dagger or host", kind)
	}
}

// Open resolves kind and opens that engine. With auto it says in one line
// on opts.Log why it uses the host: no Dagger engine is configured, or the
// one configured could not be reached. A Dagger engine that cannot be
// reached with --engine dagger is a configuration error (exit 2).
func Open(ctx context.Context, kind string, getenv func(string) string, opts engine.Options) (engine.Engine, error) {
	k, why, err := choose(kind, getenv)
	if err != nil {
		return nil, err
	}
	if opts.Getenv == nil {
		opts.Getenv = getenv
	}
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	if k == engine.KindHost {
		if why != "" {
			fmt.Fprintf(log, "--engine auto: using the host's nix: %s\n", why)
		}
		return host.New(opts)
	}
	e, err := daggerengine.New(ctx, opts)
	var ce *daggerengine.ConnectError
	switch {
	case err == nil:
		return e, nil
	case !errors.As(err, &ce):
		return nil, err
	case kind == engine.KindDagger:
		return nil, clierr.Usage(err)
	}
	if engine.FindExecutable("nix", getenv("PATH")) == "" {
		return nil, clierr.Usagef("--engine auto: %v, and nix is not on PATH for the host engine", err)
	}
	fmt.Fprintf(log, "--engine auto: using the host's nix: %v\n", err)
	return host.New(opts)
}
