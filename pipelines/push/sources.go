package push

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/parallel"
	"github.com/ipex-flake/ipex-flake/pipelines/build"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

// EnvStagingPublicKey holds the public keys (space-separated, as nix's
// trusted-public-keys) the paths ci push fetches from its sources must be
// signed by: the staging cache's key.
const EnvStagingPublicKey = "NIX_STAGING_PUBLIC_KEY"

// SourceTrust says what the paths fetched from the sources must be
// signed by.
type SourceTrust struct {
	// Keys are public keys (name:base64); every fetched path needs a
	// valid signature by one of them, and nix trusts no other key for the
	// fetch.
	Keys []string
	// Unsigned fetches without checking signatures (--allow-unsigned-from).
	Unsigned bool
}

// keyNames lists the names of the trusted keys for messages.
func (tr SourceTrust) keyNames() string {
	names := make([]string, len(tr.Keys))
	for i, k := range tr.Keys {
		names[i] = keyName(k)
	}
	return strings.Join(names, ", ")
}

// requirement says, for an error, what the fetched paths had to be.
func (tr SourceTrust) requirement() string {
	if tr.Unsigned {
		return ""
	}
	return ", complete and signed by one of " + tr.keyNames()
}

// nixOptions are the options of the nix command that fetches: with keys,
// signatures required and only those keys trusted (not nix.conf's, not
// the public halves of its secret-key-files).
func (tr SourceTrust) nixOptions() []string {
	if tr.Unsigned {
		return []string{"--option", "require-sigs", "false"}
	}
	return []string{"--option", "require-sigs", "true",
		"--option", "trusted-public-keys", strings.Join(tr.Keys, " "),
		"--option", "secret-key-files", ""}
}

// fetchArgs is the nix command that substitutes paths from srcs, never
// building, with tr's signature options.
func fetchArgs(srcs []string, tr SourceTrust, paths []string) []string {
	return nixFresh(append(append([]string{"build", "--no-link", "--max-jobs", "0",
		"--option", "substituters", strings.Join(srcs, " ")}, tr.nixOptions()...), paths...)...)
}

// noSourceKeys is the usage error of a fetch from where without a key.
func noSourceKeys(where string) error {
	return clierr.Usagef("%s: ci push signs what it fetches with the release key, so it must check that these are the paths the stages tested: pass the staging cache's public key with --from-key NAME:BASE64 (repeatable) or %s (space-separated, as nix's trusted-public-keys), or --allow-unsigned-from to copy whatever the cache holds without checking", where, EnvStagingPublicKey)
}

// CheckSourceTrust refuses (exit 2), before anything changes, a push that
// would fetch from a staging cache with no key to check its signatures:
// --from without keys, or a report's staging cache the local store lacks
// outputs of. Keys together with --allow-unsigned-from contradict each
// other. When the store holds every output, nothing is fetched and no
// key is needed.
func CheckSourceTrust(ctx context.Context, eng engine.Engine, rep *report.Report, from []string, tr SourceTrust) error {
	if !tr.Unsigned {
		for _, src := range append(append([]string{}, from...), rep.Staging, rep.Cache) {
			if trustedURI(src) {
				return clierr.Usagef("source %s: its trusted= setting makes nix take the cache's paths without checking any signature, so ci push could not prove it copies what the stages tested: remove trusted= from the store URI (the keys of --from-key or %s check the paths), or pass --allow-unsigned-from", src, EnvStagingPublicKey)
			}
		}
	}
	switch {
	case tr.Unsigned && len(tr.Keys) > 0:
		return clierr.Usagef("--allow-unsigned-from turns off the signature check that --from-key or %s asks for: pass one or the other", EnvStagingPublicKey)
	case tr.Unsigned || len(tr.Keys) > 0:
		return nil
	case len(from) > 0:
		return noSourceKeys("--from " + strings.Join(from, " --from "))
	case rep.Staging == "":
		return nil
	}
	invalid, err := build.InvalidPaths(ctx, eng, PushablePaths(rep))
	if err != nil || len(invalid) == 0 {
		return err
	}
	return noSourceKeys(fmt.Sprintf("%d outputs to push are not in this store (e.g. %s) and would be fetched from the build report's staging cache %s", len(invalid), invalid[0], rep.Staging))
}

// sourceInfo is what the sources say about one path: the narinfo of the
// first source that holds it validly signed, or the sources whose
// narinfos are not.
type sourceInfo struct {
	signed   *cache.NarInfo
	unsigned []string
}

// checkSourceSigs proves, before nix fetches anything, that every path it
// will fetch (the paths and, level by level, the references they bring
// that the store lacks) is held validly signed by one of the keys in a
// source read directly (file://, http(s)://). A path such sources hold
// only without such a signature fails, naming the path, the sources and
// the keys; paths those sources lack are left to nix, which requires the
// same keys.
func checkSourceSigs(ctx context.Context, eng engine.Engine, paths, srcs []string, tr SourceTrust) error {
	var files []cache.Files
	for _, s := range srcs {
		if f := cache.NewFiles(s); f != nil {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		return nil
	}
	seen := map[string]bool{}
	for level := paths; len(level) > 0; {
		for _, p := range level {
			seen[p] = true
		}
		infos, err := parallel.Map(ctx, level, inspectConcurrency, func(ctx context.Context, p string) (sourceInfo, error) {
			return signedInfo(ctx, files, p, tr.Keys)
		})
		if err != nil {
			return clierr.Failedf("cannot read the sources %s: %v; check the URIs and that the caches are up", strings.Join(srcs, ", "), err)
		}
		var next []string
		for _, p := range level {
			si := infos[p]
			if si.signed == nil && len(si.unsigned) > 0 && len(files) == len(srcs) {
				return unsignedSource(p, si.unsigned, tr)
			}
			next = appendRefs(next, si.signed, seen)
		}
		sort.Strings(next)
		if level, err = build.InvalidPaths(ctx, eng, next); err != nil {
			return err
		}
	}
	return nil
}

// appendRefs appends to next the references of ni (when not nil) not yet
// seen, marking them seen.
func appendRefs(next []string, ni *cache.NarInfo, seen map[string]bool) []string {
	if ni == nil {
		return next
	}
	for _, r := range ni.References {
		full := path.Join(path.Dir(ni.StorePath), r)
		if !seen[full] {
			seen[full] = true
			next = append(next, full)
		}
	}
	return next
}

// signedInfo reads p's narinfo from each source in turn (as nix does)
// until one holds it validly signed by one of keys; the others that hold
// it are named, with the keys that signed their narinfo.
func signedInfo(ctx context.Context, files []cache.Files, p string, keys []string) (sourceInfo, error) {
	var si sourceInfo
	for _, f := range files {
		raw, err := f.Get(ctx, cache.NarInfoName(p))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return si, fmt.Errorf("reading %s from %s: %w", cache.NarInfoName(p), f.URI(), err)
		}
		ni, err := cache.ParseNarInfo(raw)
		if err != nil || ni.StorePath != p {
			si.unsigned = append(si.unsigned, f.URI()+" (its narinfo is not valid for this path)")
			continue
		}
		for _, k := range keys {
			if ni.SignedBy(k) {
				si.signed = ni
				return si, nil
			}
		}
		what := "no signature"
		if len(ni.Sigs) > 0 {
			what = "signatures by " + strings.Join(ni.SigKeys(), ", ") + " that do not match it"
		}
		if len(ni.Sigs) > 0 && !anyKeyNamed(ni.SigKeys(), keys) {
			what = "signatures by " + strings.Join(ni.SigKeys(), ", ") + " only"
		}
		si.unsigned = append(si.unsigned, f.URI()+" (its narinfo has "+what+")")
	}
	return si, nil
}

// anyKeyNamed reports whether one of keys is named in names.
func anyKeyNamed(names, keys []string) bool {
	return slices.ContainsFunc(keys, func(k string) bool { return slices.Contains(names, keyName(k)) })
}

// unsignedSource is the error for a path the sources hold without a valid
// signature by a trusted key.
func unsignedSource(p string, where []string, tr SourceTrust) error {
	return clierr.Failedf("not pushing: %s is not signed by any key trusted for the sources (%s) in %s; it was changed or replaced after it was uploaded there, or signed with another key. Nothing was signed or uploaded. Upload it again (`ci build --push-to`), or pass the key that cache signs with (--from-key or %s)",
		p, tr.keyNames(), strings.Join(where, "; "), EnvStagingPublicKey)
}

// trustedURI reports whether a store URI sets nix's store setting
// `trusted` (`?trusted=1`), under which nix substitutes the store's paths
// without checking their signatures.
func trustedURI(uri string) bool {
	_, query, ok := strings.Cut(uri, "?")
	if !ok {
		return false
	}
	v, err := url.ParseQuery(query)
	if err != nil {
		return false
	}
	switch v.Get("trusted") {
	case "1", "true", "yes":
		return true
	}
	return false
}
