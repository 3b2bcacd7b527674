package push

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
)

// NoNarinfoCache are the nix options that make nix ask a binary cache
// itself instead of its narinfo disk cache (~/.cache/nix), whose answers
// can be hours old: a narinfo deleted on the server would still count as
// there, and `nix copy` would skip the path.
var NoNarinfoCache = []string{
	"--option", "narinfo-cache-positive-ttl", "0",
	"--option", "narinfo-cache-negative-ttl", "0",
}

// nixFresh is nixcli.Nix with NoNarinfoCache.
func nixFresh(args ...string) []string {
	return nixcli.Nix(append(append([]string{}, NoNarinfoCache...), args...)...)
}

// Realise makes every path valid in the engine's store, substituting the
// ones it lacks from sources (tried in order) and never building: an
// output that is in none of them fails with the caches named. Signatures
// of the sources are not required (they hold unsigned staging uploads);
// nix still checks every NAR against its narinfo's hash.
func Realise(ctx context.Context, eng engine.Engine, paths, sources []string, log fmtWriter) error {
	invalid, err := invalidPaths(ctx, eng, paths)
	if err != nil {
		return err
	}
	if len(invalid) == 0 {
		return nil
	}
	var srcs []string
	for _, s := range sources {
		if s != "" && !contains(srcs, s) {
			srcs = append(srcs, s)
		}
	}
	if len(srcs) == 0 {
		return clierr.Failedf("%d outputs to push are not in the %s engine's store (e.g. %s) and the report names no cache to fetch them from: run `ci build` on this machine first, or pass --from CACHE", len(invalid), eng.Name(), invalid[0])
	}
	fmt.Fprintf(log, "fetching %d outputs this store lacks from %s (no builds)\n", len(invalid), strings.Join(srcs, ", "))
	for _, c := range chunks(invalid) {
		args := nixFresh(append([]string{"build", "--no-link", "--max-jobs", "0",
			"--option", "substituters", strings.Join(srcs, " "),
			"--option", "require-sigs", "false"}, c...)...)
		if err := run(ctx, eng, log, engine.Cmd{Args: args}, "fetching the outputs from "+strings.Join(srcs, ", ")); err != nil {
			return clierr.Failedf("%v; the outputs must be in the local store or in %s: run `ci build` (with --push-to for a staging cache) first", err, strings.Join(srcs, " or "))
		}
	}
	return nil
}

// fmtWriter is an io.Writer (named for the doc above).
type fmtWriter = interface{ Write([]byte) (int, error) }

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// invalidPaths returns the paths the engine's store lacks.
func invalidPaths(ctx context.Context, eng engine.Engine, paths []string) ([]string, error) {
	var invalid []string
	for _, c := range chunks(paths) {
		var out, errb bytes.Buffer
		res, err := eng.Run(ctx, engine.Cmd{
			Args:   append([]string{"nix-store", "--check-validity", "--print-invalid"}, c...),
			Stdout: &out, Stderr: &errb,
		})
		if err != nil {
			return nil, err
		}
		if res.ExitCode != 0 {
			return nil, clierr.Failedf("nix-store --check-validity: %s", lastLines(errb.String(), 3))
		}
		for _, l := range strings.Split(out.String(), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				invalid = append(invalid, l)
			}
		}
	}
	return invalid, nil
}

// pushOne brings one target up to date with the closure: what it lacks is
// uploaded, narinfos whose NAR is missing or damaged are repaired, paths
// signed by another key are named (or, with Resign, signed), and then
// every path is verified on the server.
func pushOne(ctx context.Context, o Options, t Target, infos []nixcli.PathInfo, nOut int) (Summary, error) {
	out, log := o.Out, o.Log
	start := time.Now()
	closure := make([]string, len(infos))
	local := make(map[string]nixcli.PathInfo, len(infos))
	for i, pi := range infos {
		closure[i] = pi.Path
		local[pi.Path] = pi
	}
	s := Summary{Target: t.URI, Closure: len(closure)}
	pub := t.PublicKey
	if pub == "" {
		pub = o.PublicKey
	}
	// We sign for this target (hosted caches sign themselves).
	ours := t.PublicKey == ""

	var phases []string
	mark := time.Now()
	phase := func(name string) {
		phases = append(phases, fmt.Sprintf("%s %v", name, time.Since(mark).Round(time.Millisecond)))
		mark = time.Now()
	}
	var missing, damaged, resign []string
	switch {
	case t.Files != nil:
		ents, err := inspect(ctx, t.Files, closure, o.CheckContents)
		if err != nil {
			return s, clierr.Failedf("cannot read cache %s: %v; check the URI and that the cache is up", t.URI, err)
		}
		var foreign []*entry
		for _, p := range closure {
			e := ents[p]
			switch {
			case e.Info == nil:
				missing = append(missing, p)
			case e.Damage != "":
				fmt.Fprintf(log, "repairing %s in %s: %s\n", p, t.URI, e.Damage)
				damaged = append(damaged, p)
			case ours && !e.Info.SignedBy(pub):
				if localFingerprint(local[p]) != e.Info.Fingerprint() {
					fmt.Fprintf(log, "repairing %s in %s: its narinfo differs from the local store's path (hash, size or references)\n", p, t.URI)
					damaged = append(damaged, p)
					continue
				}
				foreign = append(foreign, e)
			}
		}
		if len(foreign) > 0 && !o.Resign {
			return s, signedByOthers(t.URI, pub, foreign)
		}
		for _, e := range foreign {
			resign = append(resign, e.Path)
		}
		for _, p := range damaged {
			// nix uploads only paths whose narinfo is absent, and writes a
			// NAR only when no file has its name: a damaged NAR goes too.
			names := []string{cache.NarInfoName(p)}
			if e := ents[p]; e.BadNAR && e.Info.URL != "" {
				names = append(names, e.Info.URL)
			}
			for _, name := range names {
				if err := t.Files.Delete(ctx, name); err != nil {
					return s, clierr.Failedf("cannot repair %s in %s: removing %s failed: %v; allow DELETE for the push credentials, or delete %s on the server and run ci push again", p, t.URI, name, err, strings.Join(names, " and "))
				}
			}
		}
	case t.Lookup != nil:
		has, err := t.Lookup.Has(ctx, closure)
		if err != nil {
			return s, clierr.Failedf("cannot read cache %s: %v; check the URI and that the cache is up", t.URI, err)
		}
		for _, p := range closure {
			if !has[p] {
				missing = append(missing, p)
			}
		}
	default:
		missing = closure
	}
	phase("server check")
	upload := append(append([]string{}, missing...), damaged...)
	sort.Strings(upload)
	s.Present = len(closure) - len(upload)
	s.Repaired = len(damaged)

	if len(upload) == 0 && len(resign) == 0 {
		fmt.Fprintf(out, "nothing to push: %d paths already in %s\n", len(closure), t.URI)
	}
	if len(upload) > 0 {
		fmt.Fprintf(log, "pushing %d of %d paths (closures of %d outputs) to %s\n", len(upload), len(closure), nOut, t.URI)
		if o.Signer != nil {
			if err := o.Signer.Sign(ctx, upload); err != nil {
				return s, err
			}
			phase("sign")
		}
		if err := t.Uploader.Upload(ctx, upload); err != nil {
			return s, clierr.Failedf("push to %s failed: %v (paths already uploaded are complete; run ci push again to finish)", t.URI, err)
		}
		s.Pushed = len(upload)
		phase("upload")
	}
	if t.Files != nil && ours {
		// Only the target's key signs what this push uploaded: signatures
		// the local store holds from other keys (a local key, upstream)
		// are dropped from the narinfos.
		for _, p := range upload {
			if !hasOtherSigs(local[p].Signatures, keyName(pub)) {
				continue
			}
			if err := rewriteNarInfo(ctx, t.Files, p, func(ni *cache.NarInfo) bool { return ni.KeepSigsOf(pub) }); err != nil {
				return s, clierr.Failedf("removing other keys' signatures from %s in %s: %v", p, t.URI, err)
			}
		}
		if len(resign) > 0 {
			if o.Key == nil || o.Key.Public() != pub {
				return s, clierr.Usagef("--resign needs the secret key of %s", keyName(pub))
			}
			for _, p := range resign {
				if err := rewriteNarInfo(ctx, t.Files, p, func(ni *cache.NarInfo) bool {
					ni.AddSig(o.Key.Sign(ni.Fingerprint()))
					return true
				}); err != nil {
					return s, clierr.Failedf("re-signing %s in %s: %v", p, t.URI, err)
				}
			}
			s.Resigned = len(resign)
			fmt.Fprintf(log, "re-signed %d paths in %s with %s (narinfos only)\n", len(resign), t.URI, keyName(pub))
		}
	}

	if s.Pushed > 0 || s.Resigned > 0 {
		phase("signatures")
	}
	switch {
	case t.Verifier != nil:
		if err := t.Verifier.Verify(ctx, closure, pub); err != nil {
			return s, err
		}
		if t.Files != nil {
			if err := verifyFiles(ctx, t, append(upload, resign...), pub, ours); err != nil {
				return s, err
			}
		}
		fmt.Fprintf(log, "verified %d paths in %s against %s\n", len(closure), t.URI, pub)
	case t.SkipVerifyReason != "":
		fmt.Fprintf(log, "warning: %s not verified: %s\n", t.URI, t.SkipVerifyReason)
	default:
		return s, clierr.Failedf("%s cannot be verified: no verifier", t.URI)
	}
	phase("verify")
	s.Duration = time.Since(start)
	fmt.Fprintf(log, "%s: %v (%s)\n", t.URI, s.Duration.Round(time.Millisecond), strings.Join(phases, ", "))
	if s.Pushed > 0 || s.Resigned > 0 {
		var extra []string
		if s.Repaired > 0 {
			extra = append(extra, fmt.Sprintf("%d repaired", s.Repaired))
		}
		if s.Resigned > 0 {
			extra = append(extra, fmt.Sprintf("%d re-signed", s.Resigned))
		}
		note := ""
		if len(extra) > 0 {
			note = ", " + strings.Join(extra, ", ")
		}
		fmt.Fprintf(out, "pushed %d paths to %s (%d were already there%s), signed by %s, verified\n", s.Pushed, t.URI, s.Present, note, keyName(pub))
	}
	return s, nil
}

// verifyFiles reads what this push wrote back from the server: each
// narinfo there, its NAR complete with the narinfo's size and hash, and
// (for caches we sign) a valid signature by pub.
func verifyFiles(ctx context.Context, t Target, paths []string, pub string, ours bool) error {
	if len(paths) == 0 {
		return nil
	}
	ents, err := inspect(ctx, t.Files, paths, true)
	if err != nil {
		return clierr.Failedf("verifying %s: %v", t.URI, err)
	}
	for _, p := range sortedKeys(ents) {
		e := ents[p]
		switch {
		case e.Info == nil:
			return clierr.Failedf("verification of %s failed: %s has no narinfo after the push; run ci push again", t.URI, p)
		case e.Damage != "":
			return clierr.Failedf("verification of %s failed: %s: %s; run ci push again to repair it", t.URI, p, e.Damage)
		case ours && !e.Info.SignedBy(pub):
			return clierr.Failedf("verification of %s failed: %s is not signed by %s", t.URI, p, pub)
		}
	}
	return nil
}

// rewriteNarInfo reads p's narinfo from the server, lets change edit it,
// and writes it back when change reports a change.
func rewriteNarInfo(ctx context.Context, files cache.Files, p string, change func(*cache.NarInfo) bool) error {
	name := cache.NarInfoName(p)
	raw, err := files.Get(ctx, name)
	if err != nil {
		return err
	}
	ni, err := cache.ParseNarInfo(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if !change(ni) {
		return nil
	}
	return files.Put(ctx, name, ni.Bytes())
}

// signedByOthers is the error for paths in the cache that the current key
// has not signed: it names the keys that did, and the fix.
func signedByOthers(uri, pub string, es []*entry) error {
	byKey := map[string]int{}
	for _, e := range es {
		keys := e.Info.SigKeys()
		if len(keys) == 0 {
			keys = []string{"(no signature)"}
		}
		for _, k := range keys {
			byKey[k]++
		}
	}
	var parts []string
	for _, k := range sortedKeys(byKey) {
		parts = append(parts, fmt.Sprintf("%s (%d)", k, byKey[k]))
	}
	return clierr.Failedf("%d paths in %s are not signed by the current key %s: they were signed by %s, e.g. %s; run `ci push --resign` to add %s's signature to them (only their narinfos are uploaded again), or push with the key that signed them",
		len(es), uri, keyName(pub), strings.Join(parts, ", "), es[0].Path, keyName(pub))
}

// hasOtherSigs reports whether sigs holds a signature other than one by
// the key named name (at most one of those can be the current key's).
func hasOtherSigs(sigs []string, name string) bool {
	own := 0
	for _, s := range sigs {
		if n, _, _ := strings.Cut(s, ":"); n != name {
			return true
		}
		own++
	}
	return own > 1
}

// localFingerprint is the signature fingerprint of a path as the local
// store knows it, comparable with a narinfo's.
func localFingerprint(pi nixcli.PathInfo) string {
	refs := make([]string, len(pi.References))
	for i, r := range pi.References {
		refs[i] = path.Base(r)
	}
	ni := &cache.NarInfo{StorePath: pi.Path, NarHash: nix32Hash(pi.NarHash), NarSize: pi.NarSize, References: refs}
	return ni.Fingerprint()
}

// nix32Hash turns a hash as `nix path-info --json` prints it (SRI
// sha256-BASE64, or sha256:HEX/NIX32) into the sha256:NIX32 of narinfos.
func nix32Hash(h string) string {
	if b64, ok := strings.CutPrefix(h, "sha256-"); ok {
		if raw, err := base64.StdEncoding.DecodeString(b64); err == nil {
			return "sha256:" + cache.Nix32(raw)
		}
	}
	if v, ok := strings.CutPrefix(h, "sha256:"); ok && len(v) == 64 {
		if raw, err := hex.DecodeString(v); err == nil {
			return "sha256:" + cache.Nix32(raw)
		}
	}
	return h
}
