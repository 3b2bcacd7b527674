package reproduce

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
)

// checkOnBuilder rebuilds the derivation in the builder's store and
// compares the NAR hashes of the two builds; a differing output is copied
// from the builder (nix store dump-path) and compared file by file.
//
// nix-store --check cannot be sent to a remote builder: it builds in the
// builder's store, where the first build is absent, and compares nothing.
func (c *Checker) checkOnBuilder(ctx context.Context, r Result, outs []string, start time.Time) Result {
	fail := func(format string, args ...any) Result {
		r.Status, r.Reason = StatusFailed, fmt.Sprintf(format, args...)
		r.DurationMs = time.Since(start).Milliseconds()
		return r
	}
	if err := c.runOnBuilder(ctx, nixcli.Nix("copy", "--derivation", "--to", c.Builder, r.DrvPath), io.Discard); err != nil {
		return fail("copy %s to the builder %s: %v", r.DrvPath, c.Builder, err)
	}
	if err := c.runOnBuilder(ctx, []string{"nix-store", "--store", c.Builder, "--realise", r.DrvPath}, io.Discard); err != nil {
		return fail("the rebuild on %s failed: %v", c.Builder, err)
	}
	local, err := c.narHashes(ctx, "", outs)
	if err != nil {
		return fail("nix path-info: %v", err)
	}
	remote, err := c.narHashes(ctx, c.Builder, outs)
	if err != nil {
		return fail("nix path-info --store %s: %v", c.Builder, err)
	}
	r.Status = StatusReproducible
	for _, p := range outs {
		out := Output{Path: p}
		if local[p] == "" || remote[p] == "" {
			return fail("%s has no NAR hash here or on %s", p, c.Builder)
		}
		if local[p] != remote[p] {
			r.Status = StatusDiffers
			if out.Check, err = c.copyBack(ctx, p); err != nil {
				return fail("%v", err)
			}
			if out.Differences, err = CompareTrees(p, out.Check); err != nil {
				return fail("compare %s with %s: %v", p, out.Check, err)
			}
			out.Diffoscope = c.diffoscope(ctx, p, out.Check)
		}
		r.Outputs = append(r.Outputs, out)
	}
	r.DurationMs = time.Since(start).Milliseconds()
	return r
}

// runOnBuilder runs a nix command with the builder's environment; a
// non-zero exit is an error that ends with the last line of its stderr.
func (c *Checker) runOnBuilder(ctx context.Context, args []string, stdout io.Writer) error {
	var errb bytes.Buffer
	res, err := c.Engine.Run(ctx, engine.Cmd{Args: args, Env: c.BuilderEnv, Stdout: stdout, Stderr: c.tee(&errb)})
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("exit %d: %s", res.ExitCode, lastLine(errb.String()))
	}
	return err
}

// narHashes maps each of outs to its NAR hash in store ("" for this
// machine's).
func (c *Checker) narHashes(ctx context.Context, store string, outs []string) (map[string]string, error) {
	args := []string{"path-info", "--json"}
	if store != "" {
		args = append(args, "--store", store)
	}
	var out bytes.Buffer
	if err := c.runOnBuilder(ctx, nixcli.Nix(append(args, outs...)...), &out); err != nil {
		return nil, err
	}
	infos, err := nixcli.ParsePathInfo(out.Bytes())
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, pi := range infos {
		m[pi.Path] = pi.NarHash
	}
	return m, nil
}

// copyBack unpacks the builder's build of p (nix store dump-path) next to
// it as <base>.check, in KeepDir or a new temporary directory, and returns
// that path.
func (c *Checker) copyBack(ctx context.Context, p string) (string, error) {
	dir := c.KeepDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "ipex-reproducible-"); err != nil {
			return "", err
		}
	}
	check := filepath.Join(dir, filepath.Base(p)+".check")
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- UnpackNAR(pr, check); _, _ = io.Copy(io.Discard, pr) }()
	err := c.runOnBuilder(ctx, nixcli.Nix("store", "dump-path", "--store", c.Builder, p), pw)
	pw.CloseWithError(err)
	if uerr := <-done; err == nil && uerr != nil {
		err = uerr
	}
	if err != nil {
		return "", fmt.Errorf("copy %s back from %s: %w", p, c.Builder, err)
	}
	return check, nil
}
