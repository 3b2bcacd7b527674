package push

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/logtail"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
)

// Uploader puts store paths (already signed in the local store) into one
// binary cache. The paths are what the cache lacks; an uploader may upload
// their closure, but must not upload a narinfo before its NAR.
type Uploader interface {
	// Name describes the destination for messages.
	Name() string
	// Upload uploads paths. Errors are exit-1 failures that say what broke.
	Upload(ctx context.Context, paths []string) error
}

// chunkSize bounds the store paths on one command line.
const chunkSize = 1000

func chunks(paths []string) [][]string {
	var out [][]string
	for len(paths) > chunkSize {
		out = append(out, paths[:chunkSize])
		paths = paths[chunkSize:]
	}
	if len(paths) > 0 {
		out = append(out, paths)
	}
	return out
}

// run runs a command on eng, streams its stderr to log, and returns an error
// with the tail of stderr when it exits non-zero.
func run(ctx context.Context, eng engine.Engine, log io.Writer, c engine.Cmd, what string) error {
	var tail bytes.Buffer
	var errw io.Writer = &tail
	if log != nil {
		errw = io.MultiWriter(log, &tail)
	}
	c.Stderr = errw
	if c.Stdout == nil {
		c.Stdout = errw
	}
	res, err := eng.Run(ctx, c)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if res.ExitCode != 0 {
		return clierr.Failedf("%s failed (exit %d): %s", what, res.ExitCode, lastLines(tail.String(), 5))
	}
	return nil
}

// lastLines returns the last n non-empty lines of s, joined with " | ",
// or "no output".
func lastLines(s string, n int) string {
	if t := logtail.Lines(s, n); t != "" {
		return t
	}
	return "no output"
}

// NixCopy uploads with `nix copy --to URI` to any store nix knows: file://,
// http(s):// (HTTP PUT, retried by nix on transient errors), s3://?….
// nix writes each NAR before its narinfo, so an interrupted copy leaves no
// narinfo without its NAR.
type NixCopy struct {
	Engine engine.Engine
	URI    string
	Log    io.Writer
}

var _ Uploader = (*NixCopy)(nil)

// Name implements Uploader.
func (n *NixCopy) Name() string { return n.URI }

// Upload implements Uploader.
func (n *NixCopy) Upload(ctx context.Context, paths []string) error {
	for _, c := range chunks(paths) {
		args := nixFresh(append([]string{"copy", "--to", n.URI}, c...)...)
		if err := run(ctx, n.Engine, n.Log, engine.Cmd{Args: args}, "nix copy --to "+n.URI); err != nil {
			return err
		}
	}
	return nil
}

// Cachix uploads with `cachix push NAME`, authenticated by
// CACHIX_AUTH_TOKEN (and CACHIX_SIGNING_KEY for self-signed caches), both
// passed as engine secrets.
type Cachix struct {
	Engine engine.Engine
	Cache  string
	// Secrets are CACHIX_AUTH_TOKEN and, when set, CACHIX_SIGNING_KEY.
	Secrets map[string]string
	Log     io.Writer
}

var _ Uploader = (*Cachix)(nil)

// Name implements Uploader.
func (c *Cachix) Name() string { return "cachix:" + c.Cache }

// Upload implements Uploader.
func (c *Cachix) Upload(ctx context.Context, paths []string) error {
	for _, ch := range chunks(paths) {
		args := append([]string{"cachix", "push", c.Cache}, ch...)
		if err := run(ctx, c.Engine, c.Log, engine.Cmd{Args: args, Secrets: c.Secrets}, "cachix push "+c.Cache); err != nil {
			return err
		}
	}
	return nil
}

// Attic uploads with `attic push SERVER:CACHE`; the server is one the
// engine's attic has been logged in to (`attic login`), or ATTIC_TOKEN is
// passed as a secret for attic's own use.
type Attic struct {
	Engine engine.Engine
	// Cache is "SERVER:CACHE" as attic push takes it.
	Cache   string
	Secrets map[string]string
	Log     io.Writer
}

var _ Uploader = (*Attic)(nil)

// Name implements Uploader.
func (a *Attic) Name() string { return "attic:" + a.Cache }

// Upload implements Uploader.
func (a *Attic) Upload(ctx context.Context, paths []string) error {
	for _, ch := range chunks(paths) {
		args := append([]string{"attic", "push", a.Cache}, ch...)
		if err := run(ctx, a.Engine, a.Log, engine.Cmd{Args: args, Secrets: a.Secrets}, "attic push "+a.Cache); err != nil {
			return err
		}
	}
	return nil
}
