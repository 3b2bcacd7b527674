// Package daggerengine runs pipeline commands in Dagger containers: a nix
// base image (a registry reference or a local OCI tarball), /nix on a
// persistent Dagger cache volume, and the source tree mounted at /src.
package daggerengine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"dagger.io/dagger"

	"github.com/ipex-flake/ipex-flake/internal/shorthash"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
)

// DefaultImage is the base image used when engine.Options.Image is empty.
const DefaultImage = "nixos/nix:2.24.9"

// SourceMount is where the source tree is mounted in every container.
const SourceMount = "/src"

// NixMount is where the persistent nix cache volume is mounted.
const NixMount = "/nix"

// SourceExcludes are the patterns left out when the source tree is uploaded:
// git metadata, and the result links of earlier `nix build`s.
var SourceExcludes = []string{".git", "result*"}

// NixConfig is given to every command as NIX_CONFIG. Containers run nix as
// root without a daemon; the build sandbox and seccomp filters need
// privileges an unprivileged container does not have, and root builds run
// without build users (`build-users-group =`), so an image need not have a
// nixbld group.
const NixConfig = "experimental-features = nix-command flakes\nsandbox = false\nfilter-syscalls = false\nbuild-users-group =\n"

// BustEnv is the variable set to a fresh value before every exec, so that
// Dagger never answers a command from its own cache: nix's effects land in
// the /nix cache volume, which Dagger's cache keys do not see.
const BustEnv = "IPEX_FLAKE_EXEC"

// Environment variables that point the SDK at an engine.
const (
	envRunnerHost   = "_EXPERIMENTAL_DAGGER_RUNNER_HOST"
	envSessionPort  = "DAGGER_SESSION_PORT"
	envSessionToken = "DAGGER_SESSION_TOKEN"
	envCLIBin       = "_EXPERIMENTAL_DAGGER_CLI_BIN"
)

// Available reports whether a Dagger engine can be reached without
// downloading anything, and how (or why not). An engine is reached through
// an existing session (DAGGER_SESSION_PORT and DAGGER_SESSION_TOKEN, as
// under `dagger run`) or through a dagger CLI this process starts
// (_EXPERIMENTAL_DAGGER_CLI_BIN, else `dagger` on PATH), which connects to
// _EXPERIMENTAL_DAGGER_RUNNER_HOST when that is set and to its own engine
// otherwise. A runner host without a CLI is not enough: the SDK would
// download the CLI, which this package never lets it do.
func Available(getenv func(string) string) (bool, string) {
	r, err := findRoute(getenv)
	if err != nil {
		return false, err.Error()
	}
	return true, r.String()
}

// Engine runs each command in a fresh container on a Dagger engine. All
// containers share one base: the image, /nix on the cache volume and the
// source snapshot taken when the engine was opened.
type Engine struct {
	client *dagger.Client
	base   *dagger.Container
	image  Image
	volume string

	nonce string
	seq   atomic.Uint64

	closeOnce sync.Once
	closeErr  error
}

var _ engine.Engine = (*Engine)(nil)

// Image is a resolved --image value.
type Image struct {
	// Ref is the registry reference, or the absolute path of the tarball.
	Ref string
	// Tarball is true for a local OCI tarball (Container.Import), false for a
	// registry reference (Container.From).
	Tarball bool
	// Key identifies the image's content for naming the cache volume: the
	// reference, or the sha256 of the tarball.
	Key string
}

// ResolveImage decides whether ref is a local OCI tarball (an existing file,
// or a name ending in .tar) or a registry reference. The empty ref is
// DefaultImage.
func ResolveImage(ref string) (Image, error) {
	if ref == "" {
		ref = DefaultImage
	}
	fi, err := os.Stat(ref)
	switch {
	case err == nil && fi.Mode().IsRegular():
		abs, err := filepath.Abs(ref)
		if err != nil {
			return Image{}, err
		}
		sum, err := fileSHA256(abs)
		if err != nil {
			return Image{}, fmt.Errorf("image tarball %s: %w", ref, err)
		}
		return Image{Ref: abs, Tarball: true, Key: "sha256:" + sum}, nil
	case err == nil:
		return Image{}, fmt.Errorf("--image %s is a directory: give a registry reference or an OCI tarball (e.g. from `docker save` or `skopeo copy ... oci-archive:nix.tar`)", ref)
	case strings.HasSuffix(ref, ".tar") || strings.HasSuffix(ref, ".tar.gz") || strings.HasPrefix(ref, "./") || strings.HasPrefix(ref, "/"):
		return Image{}, fmt.Errorf("--image %s: no such OCI tarball: check the path, or give a registry reference such as %s", ref, DefaultImage)
	}
	return Image{Ref: ref, Key: ref}, nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// VolumeName is the name of the persistent /nix cache volume for an image.
// Each image gets its own volume, seeded from that image's /nix, so the
// store and its database always agree.
func VolumeName(img Image) string {
	sum := sha256.Sum256([]byte(img.Key))
	return "ipex-flake-nix-" + shorthash.Long(hex.EncodeToString(sum[:]))
}

// New connects to the Dagger engine and prepares the base container: the
// image is pulled (or imported) and the source uploaded once, so a bad
// --image fails here, before any command. It fails with the reason of
// Available when no engine is reachable, and with a *ConnectError when the
// engine does not answer within opts.ConnectTimeout (default 60 s).
func New(ctx context.Context, opts engine.Options) (engine.Engine, error) {
	e, err := Open(ctx, opts)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// Open is New returning the concrete type.
func Open(ctx context.Context, opts engine.Options) (*Engine, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	r, err := findRoute(getenv)
	if err != nil {
		return nil, err
	}
	img, err := ResolveImage(opts.Image)
	if err != nil {
		return nil, err
	}
	src := opts.Source
	if src == "" {
		src = "."
	}
	src, err = filepath.Abs(src)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(src); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("source %s is not a directory", src)
	}

	client, err := connect(ctx, r, getenv, opts.ConnectTimeout, opts.Log)
	if err != nil {
		return nil, err
	}

	e := &Engine{client: client, image: img, volume: VolumeName(img), nonce: newNonce()}
	base := e.baseContainer(src)
	// Pull the image and upload the source once: every command reuses this
	// container by its ID.
	synced, err := base.Sync(ctx)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("dagger: prepare base container from %s: %w", img.Ref, err)
	}
	e.base = synced
	return e, nil
}

// baseContainer is the image with /nix on the cache volume (seeded from the
// image's own /nix) and the source at /src.
//
// The volume is mounted LOCKED: nix without a daemon keeps its database
// (SQLite) and path locks under /nix/var, and containers of concurrent
// builds on the same engine must not write them at the same time. Commands
// on one engine therefore run one at a time; the build itself runs in
// parallel inside nix (one `nix build` with many derivations).
func (e *Engine) baseContainer(src string) *dagger.Container {
	ctr := e.client.Container()
	if e.image.Tarball {
		ctr = ctr.Import(e.client.Host().File(e.image.Ref))
	} else {
		ctr = ctr.From(e.image.Ref)
	}
	return ctr.
		WithMountedCache(NixMount, e.client.CacheVolume(e.volume), dagger.ContainerWithMountedCacheOpts{
			Source:  ctr.Directory(NixMount),
			Sharing: dagger.CacheSharingModeLocked,
		}).
		WithMountedDirectory(SourceMount, e.client.Host().Directory(src, dagger.HostDirectoryOpts{
			Exclude: SourceExcludes,
		})).
		WithEnvVariable("NIX_CONFIG", NixConfig).
		WithWorkdir(SourceMount)
}

func newNonce() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Name implements engine.Engine.
func (e *Engine) Name() string { return engine.KindDagger }

// SourcePath implements engine.Engine: the mount point of the source tree.
func (e *Engine) SourcePath() string { return SourceMount }

// Image is the base image the engine runs.
func (e *Engine) Image() Image { return e.image }

// Volume is the name of the /nix cache volume.
func (e *Engine) Volume() string { return e.volume }

// Run implements engine.Engine. Env becomes container variables, Secrets
// become *dagger.Secret variables, Stdin is passed whole. Stdout and Stderr
// are written when the command has finished (Result.Buffered): the engine's
// API reports no times of its own.
func (e *Engine) Run(ctx context.Context, c engine.Cmd) (engine.Result, error) {
	if len(c.Args) == 0 {
		return engine.Result{}, errors.New("dagger engine: empty command")
	}
	if err := ctx.Err(); err != nil {
		return engine.Result{}, err
	}
	seq := e.seq.Add(1)

	ctr := e.base
	if c.Dir != "" {
		ctr = ctr.WithWorkdir(path.Join(SourceMount, filepath.ToSlash(c.Dir)))
	}
	for _, k := range slices.Sorted(maps.Keys(c.Env)) {
		v := c.Env[k]
		if k == "NIX_CONFIG" {
			v = NixConfig + v
		}
		ctr = ctr.WithEnvVariable(k, v)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Secrets)) {
		// The name identifies the secret in this session; it never holds
		// (or hashes) the value.
		name := fmt.Sprintf("%s-%s-%d", k, e.nonce, seq)
		v := c.Secrets[k]
		if k == "NIX_CONFIG" {
			// Secret nix settings join the defaults (and the command's own
			// NIX_CONFIG) in one secret; the plain variable goes.
			conf := NixConfig
			if env, ok := c.Env["NIX_CONFIG"]; ok {
				conf += env
			}
			v = conf + "\n" + v
			ctr = ctr.WithoutEnvVariable("NIX_CONFIG")
		}
		ctr = ctr.WithSecretVariable(k, e.client.SetSecret(name, v))
	}
	ctr = ctr.WithEnvVariable(BustEnv, e.nonce+"-"+strconv.FormatUint(seq, 10))

	execOpts := dagger.ContainerWithExecOpts{Expect: dagger.ReturnTypeAny}
	if c.Stdin != nil {
		in, err := io.ReadAll(c.Stdin)
		if err != nil {
			return engine.Result{}, fmt.Errorf("dagger engine: read stdin: %w", err)
		}
		execOpts.Stdin = string(in)
	}
	ctr = ctr.WithExec(c.Args, execOpts)

	done, err := ctr.Sync(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return engine.Result{ExitCode: -1}, ctx.Err()
		}
		var xe *dagger.ExecError
		if errors.As(err, &xe) {
			writeOut(c, xe.Stdout, xe.Stderr)
			return engine.Result{ExitCode: xe.ExitCode, Buffered: true}, nil
		}
		return engine.Result{}, fmt.Errorf("dagger: %s: %w", c.Args[0], err)
	}
	code, err := done.ExitCode(ctx)
	if err != nil {
		return engine.Result{}, e.fieldErr(ctx, "exit code", err)
	}
	stdout, err := done.Stdout(ctx)
	if err != nil {
		return engine.Result{}, e.fieldErr(ctx, "stdout", err)
	}
	stderr, err := done.Stderr(ctx)
	if err != nil {
		return engine.Result{}, e.fieldErr(ctx, "stderr", err)
	}
	writeOut(c, stdout, stderr)
	return engine.Result{ExitCode: code, Buffered: true}, nil
}

func (e *Engine) fieldErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("dagger: read %s: %w", what, err)
}

func writeOut(c engine.Cmd, stdout, stderr string) {
	if c.Stdout != nil && stdout != "" {
		_, _ = io.WriteString(c.Stdout, stdout)
	}
	if c.Stderr != nil && stderr != "" {
		_, _ = io.WriteString(c.Stderr, stderr)
	}
}

// Close ends the Dagger session; commands still running are cancelled by
// the engine.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() { e.closeErr = e.client.Close() })
	return e.closeErr
}
