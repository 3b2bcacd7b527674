package push

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/build"
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
// output that is in none of them fails with the caches named. Every path
// fetched must carry a valid signature by one of tr.Keys, the only keys
// nix trusts for the fetch; the sources read directly are checked first,
// so that a path without one fails naming the path, the source and the
// keys. With tr.Unsigned signatures are not required (one warning line);
// nix still checks every NAR against its narinfo's hash.
func Realise(ctx context.Context, eng engine.Engine, paths, sources []string, tr SourceTrust, log fmtWriter) error {
	invalid, err := build.InvalidPaths(ctx, eng, paths)
	if err != nil {
		return err
	}
	if len(invalid) == 0 {
		return nil
	}
	var srcs []string
	for _, s := range sources {
		if s != "" && !slices.Contains(srcs, s) {
			srcs = append(srcs, s)
		}
	}
	if len(srcs) == 0 {
		return clierr.Failedf("%d outputs to push are not in the %s engine's store (e.g. %s) and the report names no cache to fetch them from: run `ci build` on this machine first, or pass --from CACHE", len(invalid), eng.Name(), invalid[0])
	}
	from := strings.Join(srcs, ", ")
	switch {
	case tr.Unsigned:
		fmt.Fprintf(log, "warning: --allow-unsigned-from: fetching %d outputs from %s without checking their signatures; the release key signs whatever these caches hold\n", len(invalid), from)
	case len(tr.Keys) == 0:
		return noSourceKeys("fetching " + strconv.Itoa(len(invalid)) + " outputs from " + from)
	default:
		if err := checkSourceSigs(ctx, eng, invalid, srcs, tr); err != nil {
			return err
		}
	}
	fmt.Fprintf(log, "fetching %d outputs this store lacks from %s (no builds)\n", len(invalid), from)
	for _, c := range chunks(invalid) {
		if err := run(ctx, eng, log, engine.Cmd{Args: fetchArgs(srcs, tr, c)}, "fetching the outputs from "+from); err != nil {
			return clierr.Failedf("%v; the outputs must be in the local store or in %s%s: run `ci build` (with --push-to for a staging cache) first", err, strings.Join(srcs, " or "), tr.requirement())
		}
	}
	return nil
}

// fmtWriter is an io.Writer (named for the doc above).
type fmtWriter = interface{ Write([]byte) (int, error) }

// pushOne brings one target up to date with the closure: what it lacks is
// uploaded, narinfos whose NAR is missing or damaged are repaired, paths
// signed by another key are named (or, with Resign, signed), and then
// every path is verified on the server.
func pushOne(ctx context.Context, o Options, t Target, infos []nixcli.PathInfo, nOut int) (Summary, error) {
	p := newTargetPush(o, t, infos, nOut)
	err := p.run(ctx)
	return p.s, err
}

// targetPush is one push of a closure to one target, step by step: the
// server check, the upload of what the target lacks, the signatures and
// the verification.
type targetPush struct {
	o Options
	t Target
	// closure are the closure's paths, sorted; local the local store's
	// path info of each.
	closure []string
	local   map[string]nixcli.PathInfo
	// pub is the key the target's signatures verify against; ours says
	// that we sign for the target (hosted caches sign themselves).
	pub  string
	ours bool
	// nOut counts the outputs whose closures these are.
	nOut int
	// upload are the paths the server check found missing or damaged,
	// sorted; resign those that --resign gives the key's signature.
	upload, resign []string
	s              Summary
	timer          phaseTimer
}

// newTargetPush prepares the push of the closure infos to t.
func newTargetPush(o Options, t Target, infos []nixcli.PathInfo, nOut int) *targetPush {
	p := &targetPush{o: o, t: t, nOut: nOut, pub: t.PublicKey, ours: t.PublicKey == "", timer: newPhaseTimer()}
	if p.pub == "" {
		p.pub = o.PublicKey
	}
	p.closure = make([]string, len(infos))
	p.local = make(map[string]nixcli.PathInfo, len(infos))
	for i, pi := range infos {
		p.closure[i] = pi.Path
		p.local[pi.Path] = pi
	}
	p.s = Summary{Target: t.URI, Closure: len(p.closure)}
	return p
}

// run takes the push through its steps and reports it.
func (p *targetPush) run(ctx context.Context) error {
	start := time.Now()
	if err := p.checkServer(ctx); err != nil {
		return err
	}
	p.timer.done("server check")
	if len(p.upload) == 0 && len(p.resign) == 0 {
		fmt.Fprintf(p.o.Out, "nothing to push: %d paths already in %s\n", len(p.closure), p.t.URI)
	}
	if err := p.uploadLacking(ctx); err != nil {
		return err
	}
	if p.t.Files != nil && p.ours {
		if err := p.keepOnlyOurSigs(ctx); err != nil {
			return err
		}
		if err := p.resignForeign(ctx); err != nil {
			return err
		}
	}
	if p.s.Pushed > 0 || p.s.Resigned > 0 {
		p.timer.done("signatures")
	}
	if err := p.verify(ctx); err != nil {
		return err
	}
	p.timer.done("verify")
	p.s.Duration = time.Since(start)
	fmt.Fprintf(p.o.Log, "%s: %v (%s)\n", p.t.URI, p.s.Duration.Round(time.Millisecond), p.timer)
	if p.s.Pushed > 0 || p.s.Resigned > 0 {
		p.printPushed()
	}
	return nil
}

// checkServer finds what the target lacks: with Files, from the narinfos
// and NARs on the server (removing damaged entries, so that nix uploads
// them again); with Lookup, from its answers; else everything.
func (p *targetPush) checkServer(ctx context.Context) error {
	var missing, damaged []string
	switch {
	case p.t.Files != nil:
		var err error
		if missing, damaged, err = p.checkFiles(ctx); err != nil {
			return err
		}
	case p.t.Lookup != nil:
		var err error
		if missing, err = lacking(ctx, p.t.Lookup, p.closure); err != nil {
			return clierr.Failedf("cannot read cache %s: %v; check the URI and that the cache is up", p.t.URI, err)
		}
	default:
		missing = p.closure
	}
	p.upload = sortedUnion(missing, damaged)
	p.s.Present = len(p.closure) - len(p.upload)
	p.s.Repaired = len(damaged)
	return nil
}

// checkFiles reads the closure's entries on the server. Besides missing
// and damaged entries, a cache we sign may hold paths signed only by other
// keys: an error that names them, or (with Resign) paths to re-sign; or
// narinfos that differ from the local store's path, repaired too. Damaged
// entries are removed from the server, and only once nothing can fail the
// check any more.
func (p *targetPush) checkFiles(ctx context.Context) (missing, damaged []string, err error) {
	ents, err := inspect(ctx, p.t.Files, p.closure, p.o.CheckContents)
	if err != nil {
		return nil, nil, clierr.Failedf("cannot read cache %s: %v; check the URI and that the cache is up", p.t.URI, err)
	}
	missing, damaged, intact := sortEntries(ents, p.closure, p.o.Log, p.t.URI)
	var foreign []*entry
	for _, e := range intact {
		switch {
		case !p.ours || e.Info.SignedBy(p.pub):
		case localFingerprint(p.local[e.Path]) != e.Info.Fingerprint():
			fmt.Fprintf(p.o.Log, "repairing %s in %s: its narinfo differs from the local store's path (hash, size or references)\n", e.Path, p.t.URI)
			damaged = append(damaged, e.Path)
		default:
			foreign = append(foreign, e)
		}
	}
	if len(foreign) > 0 && !p.o.Resign {
		return nil, nil, signedByOthers(p.t.URI, p.pub, foreign)
	}
	for _, e := range foreign {
		p.resign = append(p.resign, e.Path)
	}
	sort.Strings(damaged)
	for _, path := range damaged {
		if names, err := removeDamaged(ctx, p.t.Files, ents[path]); err != nil {
			return nil, nil, clierr.Failedf("cannot repair %s in %s: %v; allow DELETE for the push credentials, or delete %s on the server and run ci push again", path, p.t.URI, err, strings.Join(names, " and "))
		}
	}
	return missing, damaged, nil
}

// uploadLacking signs (with Signer) and uploads the paths the target lacks.
func (p *targetPush) uploadLacking(ctx context.Context) error {
	if len(p.upload) == 0 {
		return nil
	}
	fmt.Fprintf(p.o.Log, "pushing %d of %d paths (closures of %d outputs) to %s\n", len(p.upload), len(p.closure), p.nOut, p.t.URI)
	if p.o.Signer != nil {
		if err := p.o.Signer.Sign(ctx, p.upload); err != nil {
			return err
		}
		p.timer.done("sign")
	}
	if err := p.t.Uploader.Upload(ctx, p.upload); err != nil {
		return clierr.Failedf("push to %s failed: %v (paths already uploaded are complete; run ci push again to finish)", p.t.URI, err)
	}
	p.s.Pushed = len(p.upload)
	p.timer.done("upload")
	return nil
}

// keepOnlyOurSigs drops from the narinfos this push uploaded the
// signatures the local store holds from other keys (a local key,
// upstream): only the target's key signs them.
func (p *targetPush) keepOnlyOurSigs(ctx context.Context) error {
	for _, path := range p.upload {
		if !hasOtherSigs(p.local[path].Signatures, keyName(p.pub)) {
			continue
		}
		if err := rewriteNarInfo(ctx, p.t.Files, path, func(ni *cache.NarInfo) bool { return ni.KeepSigsOf(p.pub) }); err != nil {
			return clierr.Failedf("removing other keys' signatures from %s in %s: %v", path, p.t.URI, err)
		}
	}
	return nil
}

// resignForeign adds the key's signature to the narinfos of the paths
// signed only by other keys (--resign).
func (p *targetPush) resignForeign(ctx context.Context) error {
	if len(p.resign) == 0 {
		return nil
	}
	key := p.o.Key
	if key == nil || key.Public() != p.pub {
		return clierr.Usagef("--resign needs the secret key of %s", keyName(p.pub))
	}
	for _, path := range p.resign {
		if err := rewriteNarInfo(ctx, p.t.Files, path, func(ni *cache.NarInfo) bool {
			ni.AddSig(key.Sign(ni.Fingerprint()))
			return true
		}); err != nil {
			return clierr.Failedf("re-signing %s in %s: %v", path, p.t.URI, err)
		}
	}
	p.s.Resigned = len(p.resign)
	fmt.Fprintf(p.o.Log, "re-signed %d paths in %s with %s (narinfos only)\n", len(p.resign), p.t.URI, keyName(p.pub))
	return nil
}

// verify checks the closure against the target with its Verifier and
// reads back what this push wrote; a target that cannot be verified must
// say why.
func (p *targetPush) verify(ctx context.Context) error {
	t := p.t
	switch {
	case t.Verifier != nil:
		if err := t.Verifier.Verify(ctx, p.closure, p.pub); err != nil {
			return err
		}
		if t.Files != nil {
			if err := verifyFiles(ctx, t, append(p.upload, p.resign...), p.pub, p.ours); err != nil {
				return err
			}
		}
		fmt.Fprintf(p.o.Log, "verified %d paths in %s against %s\n", len(p.closure), t.URI, p.pub)
	case t.SkipVerifyReason != "":
		fmt.Fprintf(p.o.Log, "warning: %s not verified: %s\n", t.URI, t.SkipVerifyReason)
	default:
		return clierr.Failedf("%s cannot be verified: no verifier", t.URI)
	}
	return nil
}

// printPushed prints the summary line of a push that changed the target.
func (p *targetPush) printPushed() {
	var extra []string
	if p.s.Repaired > 0 {
		extra = append(extra, fmt.Sprintf("%d repaired", p.s.Repaired))
	}
	if p.s.Resigned > 0 {
		extra = append(extra, fmt.Sprintf("%d re-signed", p.s.Resigned))
	}
	note := ""
	if len(extra) > 0 {
		note = ", " + strings.Join(extra, ", ")
	}
	fmt.Fprintf(p.o.Out, "pushed %d paths to %s (%d were already there%s), signed by %s, verified\n", p.s.Pushed, p.t.URI, p.s.Present, note, keyName(p.pub))
}

// phaseTimer records how long each phase of a push took.
type phaseTimer struct {
	mark   time.Time
	phases []string
}

func newPhaseTimer() phaseTimer { return phaseTimer{mark: time.Now()} }

// done ends the phase called name and starts the next.
func (pt *phaseTimer) done(name string) {
	pt.phases = append(pt.phases, fmt.Sprintf("%s %v", name, time.Since(pt.mark).Round(time.Millisecond)))
	pt.mark = time.Now()
}

// String lists the phases with their times.
func (pt phaseTimer) String() string { return strings.Join(pt.phases, ", ") }

// sortEntries sorts the server's entries of closure, in its order, into
// the paths the server has no narinfo for, those it holds damaged (each
// logged as repaired) and the intact entries.
func sortEntries(ents map[string]*entry, closure []string, log io.Writer, uri string) (missing, damaged []string, intact []*entry) {
	for _, p := range closure {
		e := ents[p]
		switch {
		case e.Info == nil:
			missing = append(missing, p)
		case e.Damage != "":
			fmt.Fprintf(log, "repairing %s in %s: %s\n", p, uri, e.Damage)
			damaged = append(damaged, p)
		default:
			intact = append(intact, e)
		}
	}
	return missing, damaged, intact
}

// removeDamaged deletes a damaged entry's files from the server so that
// the next upload writes it again: nix uploads only paths whose narinfo is
// absent, and writes a NAR only when no file has its name, so a damaged
// NAR goes too. It returns the names of the files it removes.
func removeDamaged(ctx context.Context, files cache.Files, e *entry) ([]string, error) {
	names := []string{cache.NarInfoName(e.Path)}
	if e.BadNAR && e.Info.URL != "" {
		names = append(names, e.Info.URL)
	}
	for _, name := range names {
		if err := files.Delete(ctx, name); err != nil {
			return names, fmt.Errorf("removing %s failed: %w", name, err)
		}
	}
	return names, nil
}

// lacking returns the paths of closure, in its order, that lookup does
// not find.
func lacking(ctx context.Context, lookup cache.Lookup, closure []string) ([]string, error) {
	has, err := lookup.Has(ctx, closure)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, p := range closure {
		if !has[p] {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

// sortedUnion returns a new sorted slice of the paths of a and b.
func sortedUnion(a, b []string) []string {
	out := append(append([]string{}, a...), b...)
	sort.Strings(out)
	return out
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
	for _, p := range slices.Sorted(maps.Keys(ents)) {
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
	for _, k := range slices.Sorted(maps.Keys(byKey)) {
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
