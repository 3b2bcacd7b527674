package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engines"
	"github.com/ipex-flake/ipex-flake/pipelines/push"
	"github.com/ipex-flake/ipex-flake/pipelines/push/signing"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
)

func init() { register(newPushCmd) }

// PushOptions are the flags of `ci push`.
type PushOptions struct {
	Cache          string
	SigningKeyFile string
	Report         string
	Force          bool
	Cachix         string
}

func newPushCmd(io *IO) *cobra.Command { return newPushCmdWith(io, runPush) }

func newPushCmdWith(io *IO, runF func(context.Context, *IO, *PushOptions) error) *cobra.Command {
	opts := &PushOptions{}
	c := &cobra.Command{
		Use:   "push",
		Short: "Push what passed to the binary cache, signed and verified",
		Long: `push uploads the runtime closures of the outputs the build report marks built,
once the stages the dev channel needs (unit) have passed for the commit.
Only paths the cache lacks are signed and uploaded; afterwards every path must
verify against the cache with the public key, or the push fails.

The signing key comes from --signing-key-file, NIX_SIGNING_KEY_FILE or
NIX_SIGNING_KEY; without any, a local key is generated on first use.
Without --cache and --cachix, the cache is a file:// cache under the user
cache directory. --cachix needs CACHIX_AUTH_TOKEN and CACHIX_PUBLIC_KEY;
--cache attic://SERVER/CACHE needs ATTIC_CACHE_URL and ATTIC_PUBLIC_KEY.`,
		Example: `  ci push
  ci push --cache 'https://cache.example.org' --signing-key-file /run/secrets/cache.sec
  ci push --cache 's3://bucket?region=eu-west-1' --report out/build-report.json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runF(c.Context(), io, opts) },
	}
	f := c.Flags()
	f.StringVar(&opts.Cache, "cache", "", "Nix store URI to push to: file://, http(s)://, s3://…, or attic://SERVER/CACHE (default: "+cache.DefaultURI()+")")
	f.StringVar(&opts.SigningKeyFile, "signing-key-file", "", "file holding the Nix secret signing key (default: $NIX_SIGNING_KEY_FILE, $NIX_SIGNING_KEY, or a generated local key)")
	f.StringVar(&opts.Report, "report", report.DefaultReportPath, "build report to read")
	f.BoolVar(&opts.Force, "force", false, "push even when the stages have not passed for this commit")
	f.StringVar(&opts.Cachix, "cachix", "", "also push to this Cachix cache (needs CACHIX_AUTH_TOKEN)")
	return c
}

func runPush(ctx context.Context, io *IO, opts *PushOptions) error {
	rep, err := report.Read(opts.Report)
	if errors.Is(err, os.ErrNotExist) {
		return clierr.Usagef("no build report at %s: run `ci build` first, or pass --report FILE", opts.Report)
	}
	if err != nil {
		return clierr.Usage(err)
	}
	if opts.Cache != "" && !strings.HasPrefix(opts.Cache, "attic://") {
		if err := cache.Validate(opts.Cache); err != nil {
			return err
		}
	}
	key, generated, err := signing.Resolve(signing.Source{File: opts.SigningKeyFile, Getenv: io.Getenv})
	if err != nil {
		return err
	}
	if generated {
		fmt.Fprintf(io.Err, "generated signing key %s in %s (mode 0600)\n", key.Name(), key.Source)
	}

	kind := rep.Engine
	if kind == "" {
		kind = engine.KindHost
	}
	eng, err := engines.Open(ctx, kind, io.Getenv, engine.Options{Source: ".", Log: io.Err})
	if err != nil {
		return err
	}
	defer eng.Close()

	targets, err := push.Targets(push.TargetConfig{Cache: opts.Cache, Cachix: opts.Cachix, Getenv: io.Getenv, Engine: eng, Log: io.Err})
	if err != nil {
		return err
	}
	rev := rep.Rev
	var store results.Store
	if gitDir, err := pushGitOutput(ctx, "rev-parse", "--absolute-git-dir"); err == nil {
		store = &results.FileStore{Path: results.DefaultPath(gitDir)}
		if rev == "" {
			rev, _ = pushGitOutput(ctx, "rev-parse", "HEAD")
		}
	}
	_, err = push.Run(ctx, push.Options{
		Engine:    eng,
		Report:    rep,
		Rev:       rev,
		Results:   store,
		Force:     opts.Force,
		Signer:    &push.NixSigner{Engine: eng, Key: key, Log: io.Err},
		PublicKey: key.Public(),
		Targets:   targets,
		Out:       io.Out,
		Log:       io.Err,
	})
	if err == nil && opts.SigningKeyFile == "" && io.Getenv(signing.EnvKeyFile) == "" && io.Getenv(signing.EnvKey) == "" {
		printTrust(io, key, targets)
	}
	return err
}

// printTrust shows the public key of the local key and the nix.conf lines
// that make a machine use the cache.
func printTrust(io *IO, key *signing.Key, targets []push.Target) {
	fmt.Fprintf(io.Out, "\npublic key: %s\nto use this cache, add to nix.conf:\n", key.Public())
	for _, t := range targets {
		if t.PublicKey == "" {
			fmt.Fprint(io.Out, pushIndent(signing.NixConfLines(t.URI, key.Public())))
		}
	}
}

func pushIndent(s string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "  " + l
		}
	}
	return strings.Join(lines, "")
}

func pushGitOutput(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "git", args...).Output()
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(out))
	if s == "" {
		return "", errors.New("git printed nothing")
	}
	return filepath.Clean(s), nil
}
