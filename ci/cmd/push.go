package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/engine/pick"
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
	Resign         bool
	From           []string
	FromKeys       []string
	AllowUnsigned  bool
	CheckContents  bool
}

func newPushCmd(io *IO) *cobra.Command { return newPushCmdWith(io, runPush) }

func newPushCmdWith(io *IO, runF func(context.Context, *IO, *PushOptions) error) *cobra.Command {
	opts := &PushOptions{}
	c := &cobra.Command{
		Use:   "push",
		Short: "Push what passed to the binary cache, signed and verified",
		Long: `push uploads the runtime closures of the outputs the build report marks built,
cached or present, once the stages the dev channel needs (unit) have passed
for the commit. What to push is decided against the cache itself: every path
of those closures that the cache lacks is signed and uploaded, whichever cache
the build consulted. file:// and http(s):// caches are read directly (never
through nix's narinfo disk cache): a narinfo whose NAR is missing or has the
wrong size (with --check-contents: the wrong hash) is repaired by uploading
the path again. Afterwards every path must verify against the cache with the
public key, or the push fails. A cache that cannot be written fails the push
before anything is signed (exit 2).

Outputs the local store lacks are substituted, never built, from --from, the
report's staging cache (ci build --push-to) and the cache the build consulted.
Every path fetched must carry a valid signature by a key of --from-key (or
NIX_STAGING_PUBLIC_KEY, space-separated) or by the release key, the only keys
trusted for the fetch: a path without one fails the push (exit 1) before
anything is signed or uploaded, naming the path, the cache and the keys.
--from, or a staging cache the store lacks outputs of, without a key is a
usage error (exit 2); --allow-unsigned-from fetches without the check.
Paths already in the cache but signed only by another key are an error that
names the key; --resign adds the current key's signature to them (their
narinfos are uploaded again, their NARs are not). Only the current key's
signature goes onto the paths this push uploads.

The signing key comes from --signing-key-file, NIX_SIGNING_KEY_FILE or
NIX_SIGNING_KEY; without any, a local key is generated on first use.
Without --cache and --cachix, the cache is a file:// cache under the user
cache directory. --cachix needs CACHIX_AUTH_TOKEN and CACHIX_PUBLIC_KEY;
--cache attic://SERVER/CACHE needs ATTIC_CACHE_URL and ATTIC_PUBLIC_KEY.`,
		Example: `  ci push
  ci push --cache 'https://cache.example.org' --signing-key-file /run/secrets/cache.sec
  ci push --cache 's3://bucket?region=eu-west-1' --report out/build-report.json
  ci push --from "$NIX_STAGING_CACHE" --from-key "$NIX_STAGING_PUBLIC_KEY" --cache 'https://cache.example.org'   # fresh runner: fetch, check, sign, copy
  ci push --cache 'https://cache.example.org' --resign                      # after a key rotation`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runF(c.Context(), io, opts) },
	}
	f := c.Flags()
	f.StringVar(&opts.Cache, "cache", "", "Nix store URI to push to: file://, http(s)://, s3://…, or attic://SERVER/CACHE (default: "+cache.DefaultURI()+")")
	f.StringVar(&opts.SigningKeyFile, "signing-key-file", "", "file holding the Nix secret signing key (default: $NIX_SIGNING_KEY_FILE, $NIX_SIGNING_KEY, or a generated local key)")
	f.StringVar(&opts.Report, "report", report.DefaultReportPath, "build report to read")
	f.BoolVar(&opts.Force, "force", false, "push even when the stages the dev channel needs have not passed for this commit (prints a warning)")
	f.StringVar(&opts.Cachix, "cachix", "", "also push to this Cachix cache (needs CACHIX_AUTH_TOKEN and CACHIX_PUBLIC_KEY)")
	f.BoolVar(&opts.Resign, "resign", false, "add the current key's signature to paths in the cache signed only by other keys (re-uploads their narinfos only)")
	f.BoolVar(&opts.CheckContents, "check-contents", false, "read every NAR of the closure on the cache and check its hash, not only its size (what is uploaded is always read back in full)")
	f.StringArrayVar(&opts.From, "from", nil, "substitute outputs the local store lacks from this cache `STORE_URI` (repeatable; the report's staging cache and build cache are tried after it); nothing is built")
	f.StringArrayVar(&opts.FromKeys, "from-key", nil, "public key `NAME:BASE64` the paths fetched from the sources must be signed by (repeatable; default: $"+push.EnvStagingPublicKey+", space-separated); the release key is trusted too, no other")
	f.BoolVar(&opts.AllowUnsigned, "allow-unsigned-from", false, "fetch from the sources without checking signatures (prints a warning): the release key then signs whatever they hold")
	return c
}

func runPush(ctx context.Context, io *IO, opts *PushOptions) error {
	rep, err := readPushReport(opts)
	if err != nil {
		return err
	}
	trust, err := pushSourceTrust(io, opts)
	if err != nil {
		return err
	}
	key, err := newPushKey(io, opts)
	if err != nil {
		return err
	}
	eng, err := openReportEngine(ctx, io, rep)
	if err != nil {
		return err
	}
	defer eng.Close()
	if err := push.CheckSourceTrust(ctx, eng, rep, opts.From, trust); err != nil {
		return err
	}

	targets, err := push.Targets(push.TargetConfig{Cache: opts.Cache, Cachix: opts.Cachix, Getenv: io.Getenv, Engine: eng, Log: io.Err})
	if err != nil {
		return err
	}
	rev, store, err := checkPushGate(ctx, io, opts, rep)
	if err != nil {
		return err
	}
	if err := push.CheckTargets(ctx, targets); err != nil {
		return err
	}
	k, err := key.get(io)
	if err != nil {
		return err
	}
	_, err = push.Run(ctx, push.Options{
		Engine:    eng,
		Report:    rep,
		Rev:       rev,
		Results:   store, // only results bound to this report
		Force:     opts.Force,
		Signer:    &push.NixSigner{Engine: eng, Key: k, Log: io.Err},
		PublicKey: k.Public(),
		Targets:   targets,
		Out:       io.Out,
		Log:       io.Err,

		WriteChecked:         true,
		Sources:              append(append([]string{}, opts.From...), rep.Staging, rep.Cache),
		SourceKeys:           trust.Keys,
		AllowUnsignedSources: trust.Unsigned,
		Key:                  k,
		Resign:               opts.Resign,

		CheckContents: opts.CheckContents,
	})
	if err == nil && !key.configured {
		printTrust(io, k, targets)
	}
	return err
}

// readPushReport reads the build report and checks --cache; what is wrong
// with either is a usage error (exit 2).
func readPushReport(opts *PushOptions) (*report.Report, error) {
	rep, err := report.Read(opts.Report)
	if errors.Is(err, os.ErrNotExist) {
		return nil, clierr.Usagef("no build report at %s: run `ci build` first, or pass --report FILE", opts.Report)
	}
	if err != nil {
		return nil, clierr.Usage(err)
	}
	if opts.Cache != "" && !strings.HasPrefix(opts.Cache, "attic://") {
		if err := cache.Validate(opts.Cache); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// pushSourceTrust reads the keys the sources' paths must be signed by:
// --from-key, else NIX_STAGING_PUBLIC_KEY. A key that is not one is a
// usage error naming the fix.
func pushSourceTrust(io *IO, opts *PushOptions) (push.SourceTrust, error) {
	tr := push.SourceTrust{Unsigned: opts.AllowUnsigned}
	text, source := strings.Join(opts.FromKeys, " "), "--from-key"
	if len(opts.FromKeys) == 0 {
		text, source = io.Getenv(push.EnvStagingPublicKey), push.EnvStagingPublicKey
	}
	keys, err := signing.ParsePublicKeys(text, source)
	tr.Keys = keys
	return tr, err
}

// pushKey is the signing key of a push. A configured key
// (--signing-key-file, NIX_SIGNING_KEY_FILE or NIX_SIGNING_KEY) is read
// before anything else happens; the local key is generated only once the
// push is sure to go ahead.
type pushKey struct {
	src        signing.Source
	configured bool
	key        *signing.Key
}

// newPushKey reads the configured key, if there is one.
func newPushKey(io *IO, opts *PushOptions) (*pushKey, error) {
	k := &pushKey{
		src:        signing.Source{File: opts.SigningKeyFile, Getenv: io.Getenv},
		configured: opts.SigningKeyFile != "" || io.Getenv(signing.EnvKeyFile) != "" || io.Getenv(signing.EnvKey) != "",
	}
	if k.configured {
		var err error
		if k.key, _, err = signing.Resolve(k.src); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// get returns the key: the configured one, or the local key, generated
// (and said so) on first use.
func (k *pushKey) get(io *IO) (*signing.Key, error) {
	if k.key != nil {
		return k.key, nil
	}
	key, generated, err := signing.Resolve(k.src)
	if err != nil {
		return nil, err
	}
	if generated {
		fmt.Fprintf(io.Err, "generated signing key %s in %s (mode 0600)\n", key.Name(), key.Source)
	}
	k.key = key
	return key, nil
}

// openReportEngine opens the engine the report was built with (host when
// it names none): its store holds the outputs.
func openReportEngine(ctx context.Context, io *IO, rep *report.Report) (engine.Engine, error) {
	kind := rep.Engine
	if kind == "" {
		kind = engine.KindHost
	}
	return pick.Open(ctx, kind, io.Getenv, engine.Options{Source: ".", Log: io.Err})
}

// checkPushGate finds the commit and its stage results (pushResults) and,
// unless --force is given or nothing is to be pushed, requires the dev
// stages to have passed with results bound to this report's flake and out
// paths. It returns the commit and the results that count.
func checkPushGate(ctx context.Context, io *IO, opts *PushOptions, rep *report.Report) (string, results.Store, error) {
	rev, store, where := pushResults(ctx, io, rep)
	if opts.Force || len(push.BuiltPaths(rep)) == 0 {
		return rev, store, nil
	}
	if store != nil && rev != "" {
		fmt.Fprintf(io.Err, "checking stage results for %.12s in %s\n", rev, where)
		want, err := bindingGate(ctx, store, rev, rep)
		if err != nil {
			return "", nil, err
		}
		store = results.Filtered{Store: store, Want: want}
	}
	if err := push.CheckGate(ctx, store, rev, push.DevStages); err != nil {
		return "", nil, err
	}
	return rev, store, nil
}

// bindingGate refuses (exit 2) results of the dev stages that were
// recorded for another flake or build report than the one being pushed,
// naming both. It returns what results must be bound to.
func bindingGate(ctx context.Context, store results.Store, rev string, rep *report.Report) (results.Binding, error) {
	got, err := store.Get(ctx, rev)
	if err != nil {
		return results.Binding{}, fmt.Errorf("reading stage results for %s: %w", rev, err)
	}
	any := false
	for _, s := range push.DevStages {
		_, ok := got[s]
		any = any || ok
	}
	if !any {
		// Nothing to compare: the stage gate says what is missing.
		return results.Binding{Report: rep.Digest()}, nil
	}
	want, err := reportBinding(ctx, rep)
	if err != nil {
		return want, err
	}
	v := results.Gate{Stages: push.DevStages, Want: want}.Check(got)
	if len(v.Mismatched) > 0 {
		return want, clierr.Usagef("not pushing %.12s: the stage results are for something else:\n  - %s\nrun `ci test --stage %s --flake FLAKE --report REPORT` with the flake and build report being pushed",
			rev, strings.Join(v.Mismatched, "\n  - "), push.DevStages[0])
	}
	return want, nil
}

// pushResults finds the commit the report was built from and the stage
// results recorded for it: GitHub commit statuses when GITHUB_TOKEN and
// GITHUB_REPOSITORY are set (as `ci test` records them there), else the
// results file in the git directory of the report's flake, or of the
// current directory. where describes the store for messages.
func pushResults(ctx context.Context, io *IO, rep *report.Report) (rev string, store results.Store, where string) {
	dir := "."
	if rep.Flake != "" {
		if st, err := os.Stat(strings.TrimPrefix(rep.Flake, "path:")); err == nil && st.IsDir() {
			dir = strings.TrimPrefix(rep.Flake, "path:")
		}
	}
	rev = rep.Rev
	if rev == "" {
		rev = io.Getenv("GITHUB_SHA")
	}
	if rev == "" {
		rev = gitOut(ctx, dir, "rev-parse", "HEAD")
	}
	if tok, repo := io.Getenv("GITHUB_TOKEN"), io.Getenv("GITHUB_REPOSITORY"); tok != "" && repo != "" {
		s, err := results.NewGitHubStore(repo, tok, io.Getenv("GITHUB_API_URL"), nil)
		if err == nil {
			return rev, s, "the commit statuses of " + repo
		}
		fmt.Fprintf(io.Err, "warning: %v: reading the local results file instead\n", err)
	}
	gitDir := gitOut(ctx, dir, "rev-parse", "--absolute-git-dir")
	if gitDir == "" && dir != "." {
		gitDir = gitOut(ctx, ".", "rev-parse", "--absolute-git-dir")
	}
	if gitDir == "" {
		return rev, nil, ""
	}
	path := results.DefaultPath(gitDir)
	return rev, &results.FileStore{Path: path}, filepath.Clean(path)
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
