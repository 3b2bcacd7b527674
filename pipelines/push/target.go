package push

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
	"github.com/ipex-flake/ipex-flake/pipelines/push/signing"
)

// Environment variables read for hosted caches.
const (
	EnvCachixToken     = "CACHIX_AUTH_TOKEN"
	EnvCachixSigning   = "CACHIX_SIGNING_KEY"
	EnvCachixPublicKey = "CACHIX_PUBLIC_KEY"
	EnvAtticURL        = "ATTIC_CACHE_URL"
	EnvAtticPublicKey  = "ATTIC_PUBLIC_KEY"
)

// TargetConfig describes where to push, as the flags and environment say.
type TargetConfig struct {
	// Cache is a Nix store URI (file://, http(s)://, s3://…) or
	// attic://SERVER/CACHE. Empty with no Cachix means cache.DefaultURI().
	Cache string
	// Cachix is a Cachix cache name ("" = none).
	Cachix string
	Getenv func(string) string
	Engine engine.Engine
	Log    io.Writer
}

// Targets turns the configuration into push targets, checking everything
// that can be checked before work starts.
func Targets(c TargetConfig) ([]Target, error) {
	getenv := c.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	var ts []Target
	uri := c.Cache
	if uri == "" && c.Cachix == "" {
		uri = cache.DefaultURI()
	}
	if uri != "" {
		t, err := storeTarget(c, uri, getenv)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	if c.Cachix != "" {
		t, err := cachixTarget(c, getenv)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	return ts, nil
}

func storeTarget(c TargetConfig, uri string, getenv func(string) string) (Target, error) {
	if strings.HasPrefix(uri, "attic://") {
		return atticTarget(c, uri, getenv)
	}
	t, err := nixStoreTarget(c, uri, uri, &NixCopy{Engine: c.Engine, URI: uri, Log: c.Log}, "")
	if err != nil {
		return Target{}, err
	}
	t.Files = cache.NewFiles(uri)
	return t, nil
}

// nixStoreTarget is the target uri that up uploads to and that nix reads
// as the store sub: lookups and verification go there. pub is the key the
// cache signs with ("" = ours).
func nixStoreTarget(c TargetConfig, uri, sub string, up Uploader, pub string) (Target, error) {
	lookup, err := cache.New(sub, PathInfoLookup(c.Engine))
	if err != nil {
		return Target{}, err
	}
	return Target{
		URI:       uri,
		Lookup:    lookup,
		Uploader:  up,
		Verifier:  &NixVerifier{Engine: c.Engine, URI: sub, Log: c.Log},
		PublicKey: pub,
	}, nil
}

func cachixTarget(c TargetConfig, getenv func(string) string) (Target, error) {
	name := c.Cachix
	if strings.ContainsAny(name, "/:. ") {
		return Target{}, clierr.Usagef("--cachix %q: give the cache name only, e.g. --cachix ipex-flake", name)
	}
	tok := getenv(EnvCachixToken)
	if tok == "" {
		return Target{}, clierr.Usagef("--cachix %s needs %s in the environment (a write token from app.cachix.org)", name, EnvCachixToken)
	}
	pub := getenv(EnvCachixPublicKey)
	if pub == "" {
		return Target{}, clierr.Usagef("--cachix %s needs %s (the cache's public key, NAME.cachix.org-1:…) to verify the push", name, EnvCachixPublicKey)
	}
	if err := signing.ParsePublic(pub); err != nil {
		return Target{}, clierr.Usagef("%s: %v", EnvCachixPublicKey, err)
	}
	secrets := map[string]string{EnvCachixToken: tok}
	if sk := getenv(EnvCachixSigning); sk != "" {
		secrets[EnvCachixSigning] = sk
	}
	base := "https://" + name + ".cachix.org"
	return Target{
		URI:       "cachix:" + name,
		Lookup:    &cache.HTTP{Base: base, Client: &http.Client{Timeout: 30 * time.Second}},
		Uploader:  &HostedPush{Tool: "cachix", Engine: c.Engine, Cache: name, Secrets: secrets, Log: c.Log},
		Verifier:  &NixVerifier{Engine: c.Engine, URI: base, Log: c.Log},
		PublicKey: pub,
	}, nil
}

// atticTarget handles attic://SERVER/CACHE: `attic push SERVER:CACHE`, with
// lookups and verification against ATTIC_CACHE_URL (the cache's substituter
// URL) and ATTIC_PUBLIC_KEY (attic signs with the server's key).
func atticTarget(c TargetConfig, uri string, getenv func(string) string) (Target, error) {
	u, err := url.Parse(uri)
	cacheName := ""
	if err == nil {
		cacheName = strings.Trim(u.Path, "/")
	}
	if err != nil || u.Host == "" || cacheName == "" || strings.Contains(cacheName, "/") {
		return Target{}, clierr.Usagef("cache %q: write attic://SERVER/CACHE, where SERVER is a server configured with `attic login`", uri)
	}
	sub := getenv(EnvAtticURL)
	pub := getenv(EnvAtticPublicKey)
	if sub == "" || pub == "" {
		return Target{}, clierr.Usagef("cache %s needs %s (the cache's substituter URL) and %s (its public key), both shown by `attic cache info %s:%s`", uri, EnvAtticURL, EnvAtticPublicKey, u.Host, cacheName)
	}
	if err := signing.ParsePublic(pub); err != nil {
		return Target{}, clierr.Usagef("%s: %v", EnvAtticPublicKey, err)
	}
	up := &HostedPush{Tool: "attic", Engine: c.Engine, Cache: u.Host + ":" + cacheName, Log: c.Log}
	return nixStoreTarget(c, uri, sub, up, pub)
}

// PathInfoLookup answers lookups for stores cache cannot read itself
// (s3://, ssh://) with `nix path-info --store URI --json` on eng.
func PathInfoLookup(eng engine.Engine) cache.FallbackFunc {
	return func(ctx context.Context, uri string, paths []string) (map[string]bool, error) {
		has := make(map[string]bool, len(paths))
		for _, c := range chunks(paths) {
			var out, errb bytes.Buffer
			args := nixFresh(append([]string{"path-info", "--store", uri, "--json"}, c...)...)
			res, err := eng.Run(ctx, engine.Cmd{Args: args, Stdout: &out, Stderr: &errb})
			if err != nil {
				return nil, err
			}
			// nix exits non-zero when some paths are missing; the JSON still lists them.
			infos, perr := nixcli.ParsePathInfo(out.Bytes())
			if perr != nil {
				if res.ExitCode != 0 {
					return nil, clierr.Failedf("cache %s unreachable: %s", uri, lastLines(errb.String(), 3))
				}
				return nil, perr
			}
			for _, pi := range infos {
				has[pi.Path] = true
			}
		}
		return has, nil
	}
}
