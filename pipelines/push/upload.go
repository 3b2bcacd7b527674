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

// HostedPush uploads with a hosted cache's own client, `TOOL push CACHE
// PATH…`, credentials passed as engine secrets: `cachix push NAME`,
// authenticated by CACHIX_AUTH_TOKEN (and CACHIX_SIGNING_KEY for
// self-signed caches), or `attic push SERVER:CACHE` to a server the
// engine's attic has been logged in to (`attic login`), or with
// ATTIC_TOKEN for attic's own use.
type HostedPush struct {
	// Tool is the client: "cachix" or "attic".
	Tool   string
	Engine engine.Engine
	// Cache is the cache as the tool's push takes it: NAME for cachix,
	// SERVER:CACHE for attic.
	Cache string
	// Secrets are the tool's credentials from the environment.
	Secrets map[string]string
	Log     io.Writer
}

var _ Uploader = (*HostedPush)(nil)

// Name implements Uploader.
func (h *HostedPush) Name() string { return h.Tool + ":" + h.Cache }

// Upload implements Uploader.
func (h *HostedPush) Upload(ctx context.Context, paths []string) error {
	for _, ch := range chunks(paths) {
		args := append([]string{h.Tool, "push", h.Cache}, ch...)
		if err := run(ctx, h.Engine, h.Log, engine.Cmd{Args: args, Secrets: h.Secrets}, h.Tool+" push "+h.Cache); err != nil {
			return err
		}
	}
	return nil
}
