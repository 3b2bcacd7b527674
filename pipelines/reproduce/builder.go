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
	run := func(args []string, stdout io.Writer) (string, error) {
		var errb bytes.Buffer
		res, err := c.Engine.Run(ctx, engine.Cmd{Args: args, Env: c.BuilderEnv, Stdout: stdout, Stderr: c.tee(&errb)})
		if err == nil && res.ExitCode != 0 {
			err = fmt.Errorf("exit %d: %s", res.ExitCode, lastLine(errb.String()))
		}
		return errb.String(), err
	}
	if _, err := run(nixcli.Nix("copy", "--derivation", "--to", c.Builder, r.DrvPath), io.Discard); err != nil {
		return fail("copy %s to the builder %s: %v", r.DrvPath, c.Builder, err)
	}
	if _, err := run([]string{"nix-store", "--store", c.Builder, "--realise", r.DrvPath}, io.Discard); err != nil {
		return fail("the rebuild on %s failed: %v", c.Builder, err)
	}
	hashes := func(store string) (map[string]string, error) {
		args := []string{"path-info", "--json"}
		if store != "" {
			args = append(args, "--store", store)
		}
		var out bytes.Buffer
		if _, err := run(nixcli.Nix(append(args, outs...)...), &out); err != nil {
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
	local, err := hashes("")
	if err != nil {
		return fail("nix path-info: %v", err)
	}
	remote, err := hashes(c.Builder)
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
			dir := c.KeepDir
			if dir == "" {
				if dir, err = os.MkdirTemp("", "ipex-reproducible-"); err != nil {
					return fail("%v", err)
				}
			}
			out.Check = filepath.Join(dir, filepath.Base(p)+".check")
			pr, pw := io.Pipe()
			done := make(chan error, 1)
			go func() { done <- UnpackNAR(pr, out.Check); _, _ = io.Copy(io.Discard, pr) }()
			_, err := run(nixcli.Nix("store", "dump-path", "--store", c.Builder, p), pw)
			pw.CloseWithError(err)
			if uerr := <-done; err == nil && uerr != nil {
				err = uerr
			}
			if err != nil {
				return fail("copy %s back from %s: %v", p, c.Builder, err)
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
