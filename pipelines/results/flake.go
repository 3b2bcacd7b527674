package results

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ipex-flake/ipex-flake/internal/childenv"
	"github.com/ipex-flake/ipex-flake/internal/nixstr"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/host"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
)

// ResolveFlake returns the flake part of a binding (Flake and NarHash) for
// ref, with the host's nix. For a local flake, Flake is its directory in
// its git repository ("." for the root, so ./examples/offline and . differ
// even though they share a source) and NarHash the narHash of the
// repository's source as a flake sees it (tracked files, uncommitted
// changes included): the narHash `nix flake metadata` prints, read with
// builtins.fetchTree so that nothing needs the flake's inputs. A local
// directory outside git is hashed as a path. Other references (github:…)
// are read with `nix flake metadata`.
func ResolveFlake(ctx context.Context, ref string) (Binding, error) {
	if ref == "" {
		ref = "."
	}
	local := strings.TrimPrefix(ref, "path:")
	if st, err := os.Stat(local); err == nil && st.IsDir() {
		return resolveLocal(ctx, local)
	}
	out, err := nixOut(ctx, nixcli.Nix("flake", "metadata", "--json", ref))
	if err != nil {
		return Binding{}, err
	}
	var m struct {
		Locked struct {
			NarHash string `json:"narHash"`
		} `json:"locked"`
	}
	if err := json.Unmarshal(out, &m); err != nil || m.Locked.NarHash == "" {
		return Binding{}, fmt.Errorf("nix flake metadata %s gave no narHash", ref)
	}
	return Binding{Flake: ref, NarHash: m.Locked.NarHash}, nil
}

func resolveLocal(ctx context.Context, dir string) (Binding, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Binding{}, err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	var expr string
	flake := "."
	git := exec.CommandContext(ctx, "git", "-C", abs, "rev-parse", "--show-toplevel")
	git.Env = childenv.Environ()
	if top, err := git.Output(); err == nil {
		root := strings.TrimSpace(string(top))
		rel, err := filepath.Rel(root, abs)
		if err != nil || strings.HasPrefix(rel, "..") {
			return Binding{}, fmt.Errorf("%s is not inside its git repository %s", abs, root)
		}
		flake = filepath.ToSlash(rel)
		expr = `(builtins.fetchTree { type = "git"; url = ` + nixstr.Quote("file://"+root) + `; shallow = true; }).narHash`
	} else {
		expr = `(builtins.fetchTree { type = "path"; path = ` + nixstr.Quote(abs) + `; }).narHash`
	}
	out, err := nixOut(ctx, nixcli.Nix("eval", "--impure", "--raw", "--expr", expr))
	if err != nil {
		return Binding{}, err
	}
	nar := strings.TrimSpace(string(out))
	if !strings.HasPrefix(nar, "sha256-") {
		return Binding{}, fmt.Errorf("nix gave %q for the narHash of %s", nar, abs)
	}
	return Binding{Flake: flake, NarHash: nar}, nil
}

// nixOut runs a nix command on the host (allow-listed environment, own
// process group) and returns its stdout.
func nixOut(ctx context.Context, args []string) ([]byte, error) {
	eng, err := host.New(engine.Options{})
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	var stdout, stderr bytes.Buffer
	res, err := eng.Run(ctx, engine.Cmd{Args: args, Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("%s exited %d: %s", strings.Join(args[:1], " "), res.ExitCode, lastLine(stderr.String()))
	}
	return stdout.Bytes(), nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
