package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/release/forge"
	"github.com/ipex-flake/ipex-flake/release/gitrepo"
	"github.com/ipex-flake/ipex-flake/release/promote"
	"github.com/ipex-flake/ipex-flake/release/provenance"
	"github.com/ipex-flake/ipex-flake/release/verify"
)

// VerifyReleaseOptions are the flags of `ci verify release`.
type VerifyReleaseOptions struct {
	IO  *IO
	Tag string
	// PublicKey overrides the manifest's key.
	PublicKey string
	// Cache overrides the manifest's cache.
	Cache string
	// Assets is a directory holding the release's assets (default: the
	// local forge's .git/ipex-ci/releases/<tag>/).
	Assets string
}

func newVerifyReleaseCmd(io *IO, runF func(context.Context, *VerifyReleaseOptions) error) *cobra.Command {
	o := &VerifyReleaseOptions{IO: io}
	c := &cobra.Command{
		Use:   "release TAG",
		Short: "Check a release's provenance, its cache and its gates",
		Long: `Check a release against what it claims, from its channel manifest
(` + forge.ManifestAsset + `) and its signed provenance (` + provenance.AssetName + `):

  signature  the provenance (in-toto statement, SLSA provenance v1, DSSE
             envelope) verifies with the public key, and names the
             manifest's commit, version and every out path
  cache      every out path of the manifest is in the binary cache, its
             narinfo read from the cache itself (file:// or http(s)://), with
             the NAR hash the provenance records and a valid signature by
             the same key
  gates      the stage results that gated the release are recorded so for
             its commit (GitHub commit statuses with GITHUB_TOKEN and
             GITHUB_REPOSITORY, else .git/ipex-ci/results.json)

The public key defaults to the manifest's: pass --public-key with the key
you trust (your nix.conf's trusted-public-keys), since a manifest that was
replaced would carry its own key. Assets are read from the local release
(.git/ipex-ci/releases/TAG/) or from --assets DIR (for a GitHub release:
gh release download TAG --dir DIR).

Exit codes: 0 every check passed, 1 a check failed, 2 the release or its
assets cannot be found or read.`,
		Example: `  ci verify release v0.4.0 --public-key "$(cat cache.pub)"
  gh release download v0.4.0 --dir rel && ci verify release v0.4.0 --assets rel`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error { o.Tag = args[0]; return runF(c.Context(), o) },
	}
	f := c.Flags()
	f.StringVar(&o.PublicKey, "public-key", "", "Nix public key (NAME:BASE64) to verify with (default: the manifest's)")
	f.StringVar(&o.Cache, "cache", "", "binary cache URI to check (default: the manifest's)")
	f.StringVar(&o.Assets, "assets", "", "directory with the release's assets (default: the local release)")
	return c
}

func runVerifyRelease(ctx context.Context, o *VerifyReleaseOptions) error {
	dir := o.Assets
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		repo, err := gitrepo.Open(ctx, wd)
		if err != nil {
			return clierr.Usagef("%v: run in the repository of the release, or pass --assets DIR", err)
		}
		local, err := gitrepo.NewForge(ctx, repo)
		if err != nil {
			return err
		}
		dir = filepath.Dir(local.AssetPath(o.Tag, forge.ManifestAsset))
	}
	read := func(name string) ([]byte, error) {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			return nil, clierr.Usagef("release %s has no %s in %s: is %s released (ci release status), or download its assets with --assets DIR", o.Tag, name, dir, o.Tag)
		}
		if err != nil {
			return nil, clierr.Usagef("read %s: %v", name, err)
		}
		return data, nil
	}
	mdata, err := read(forge.ManifestAsset)
	if err != nil {
		return err
	}
	var m promote.Manifest
	if err := json.Unmarshal(mdata, &m); err != nil {
		return clierr.Usagef("%s of %s is not a channel manifest: %v", forge.ManifestAsset, o.Tag, err)
	}
	pdata, err := read(provenance.AssetName)
	if err != nil {
		return err
	}
	env, err := provenance.ParseEnvelope(pdata)
	if err != nil {
		return clierr.Usagef("%s of %s: %v", provenance.AssetName, o.Tag, err)
	}
	key := firstNonEmpty(o.PublicKey, m.PublicKey)
	if key == "" {
		return clierr.Usagef("the manifest of %s names no public key: pass --public-key NAME:BASE64", o.Tag)
	}
	if _, _, err := provenance.ParsePublicKey(key); err != nil {
		return clierr.Usagef("--public-key: %v", err)
	}
	uri := firstNonEmpty(o.Cache, m.Cache)
	if uri != "" {
		if err := cache.Validate(uri); err != nil {
			return err
		}
	}
	if m.Version != "" && m.Version != o.Tag {
		return clierr.Usagef("the manifest in %s is for %s, not %s", dir, m.Version, o.Tag)
	}
	store := evidenceStore(ctx, o.IO, ".")
	checks := verify.Run(ctx, verify.Input{Manifest: m, Envelope: env, PublicKey: key, Cache: &verify.Cache{URI: uri}, Results: store})
	var failed []string
	for _, c := range checks {
		if c.OK() {
			fmt.Fprintf(o.IO.Out, "ok      %-9s %s\n", c.Name, c.Detail)
			continue
		}
		failed = append(failed, c.Name)
		fmt.Fprintf(o.IO.Out, "FAILED  %-9s %s\n", c.Name, c.Detail)
		for _, p := range c.Problems {
			fmt.Fprintf(o.IO.Out, "          - %s\n", p)
		}
	}
	if len(failed) > 0 {
		return clierr.Failedf("release %s does not verify: %s", o.Tag, strings.Join(failed, ", "))
	}
	fmt.Fprintf(o.IO.Out, "release %s verifies: commit %s, %d outputs\n", o.Tag, m.Rev, len(m.Outputs))
	return nil
}
