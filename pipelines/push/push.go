// Package push puts what passed into a Nix binary cache: the runtime
// closures of the outputs a build report marks built, once the stages the
// dev channel needs have passed for the commit. Only paths the cache lacks
// are signed and uploaded; afterwards every path of the closure must verify
// against the cache with the public key, or the push fails.
package push

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/shorthash"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
	"github.com/ipex-flake/ipex-flake/pipelines/push/signing"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
	"github.com/ipex-flake/ipex-flake/pipelines/stage"
)

// DevStages are the stages the dev channel needs: a commit is pushed only
// once all of them have passed for it.
var DevStages = stage.Gate("dev")

// Target is one binary cache a push goes to.
type Target struct {
	// URI names the cache in messages.
	URI string
	// Lookup finds the paths the cache has; nil treats every path as missing.
	Lookup cache.Lookup
	// Files reads and writes the cache's files directly (file://,
	// http(s)://): then the push decides from the narinfos and NARs on the
	// server, repairs, re-signs and verifies them; nil = Lookup only.
	Files cache.Files
	// Uploader puts the missing paths there.
	Uploader Uploader
	// Verifier checks the closure after the upload; nil fails the push
	// unless SkipVerifyReason says why it cannot be verified.
	Verifier Verifier
	// PublicKey is the key the cache's signatures must verify against
	// ("" = Options.PublicKey, the signing key's).
	PublicKey string
	// SkipVerifyReason, when set, explains a target that cannot be verified.
	SkipVerifyReason string
}

// Options configure one push.
type Options struct {
	// Engine runs nix (path-info, store sign, copy, store verify).
	Engine engine.Engine
	// Report is the build report whose built outputs are pushed.
	Report *report.Report
	// Rev is the commit whose stage results gate the push.
	Rev string
	// Results holds the recorded stage results.
	Results results.Store
	// Stages must all have passed (DevStages when nil).
	Stages []string
	// Force skips the gate (and says so loudly).
	Force bool
	// Signer signs the missing paths in the local store before upload.
	Signer Signer
	// PublicKey is the public half of the signing key.
	PublicKey string
	// Targets are the caches to push to.
	Targets []Target
	// WriteChecked says CheckTargets already ran for Targets.
	WriteChecked bool
	// Sources are caches the outputs the local store lacks are substituted
	// from (the staging cache, the cache the build consulted), never built.
	Sources []string
	// SourceKeys are the public keys the paths fetched from Sources must
	// be signed by (the staging key); PublicKey, the release key, is
	// trusted too. Nothing else is: not nix.conf's keys.
	SourceKeys []string
	// AllowUnsignedSources fetches from Sources without checking
	// signatures (--allow-unsigned-from).
	AllowUnsignedSources bool
	// Key signs narinfos that --resign gives the key's signature; nil
	// leaves paths signed by another key as an error that names the fix.
	Key *signing.Key
	// CheckContents reads every NAR of the closure on the server and checks
	// its hash, not only its size (what this push uploads is always read
	// back in full).
	CheckContents bool
	// Resign adds Key's signature to paths in the cache signed only by
	// other keys (their narinfos are uploaded again, their NARs are not).
	Resign bool
	// Out receives the summary; Log receives progress, nix's output and warnings.
	Out, Log io.Writer
}

// Summary is what a push did to one target.
type Summary struct {
	Target  string
	Closure int
	Present int
	Pushed  int
	// Repaired counts paths whose narinfo was there but whose NAR was
	// missing or damaged, uploaded again; Resigned those given the key's
	// signature by --resign.
	Repaired, Resigned int
	Duration           time.Duration
}

// StatusPresent is the report status of an output that was already in
// the local store ("present").
const StatusPresent = report.StatusPresent

// pushable reports whether outputs of status st are pushed: everything
// that has out paths and did not fail or get skipped.
func pushable(st string) bool {
	return st == report.StatusBuilt || st == report.StatusCached || st == StatusPresent
}

// BuiltPaths returns the out paths a push uploads the closures of: those
// of the report's built, cached and present outputs (PushablePaths).
func BuiltPaths(r *report.Report) []string { return PushablePaths(r) }

// PushablePaths returns the out paths of the report's built, cached and
// present outputs. Whether the target has them is decided against the
// target itself, whichever cache the build consulted.
func PushablePaths(r *report.Report) []string { return pathsWithStatus(r, pushable) }

// pathsWithStatus returns the distinct out paths, sorted, of the report's
// outputs whose status keep accepts.
func pathsWithStatus(r *report.Report, keep func(status string) bool) []string {
	seen := map[string]bool{}
	var out []string
	for _, o := range r.Outputs {
		if !keep(o.Status) {
			continue
		}
		for _, p := range o.OutPaths {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	sort.Strings(out)
	return out
}

// CheckGate returns nil when every stage has passed for rev in store, else
// an exit-1 error naming the stages that have not and how to proceed.
func CheckGate(ctx context.Context, store results.Store, rev string, stages []string) error {
	if rev == "" {
		return clierr.Usagef("no commit to check stage results against: the build report has no rev and this is not a git checkout; run in the repository, or pass --force")
	}
	if store == nil {
		return clierr.Usagef("no stage results to check %s against: this is not a git checkout (`ci test` records results in .git/ipex-ci/results.json) and GITHUB_TOKEN and GITHUB_REPOSITORY are not set; run ci push in the repository that ran ci test, or pass --force", shorthash.Long(rev))
	}
	got, err := store.Get(ctx, rev)
	if err != nil {
		return fmt.Errorf("reading stage results for %s: %w", rev, err)
	}
	var notPassed []string
	for _, s := range stages {
		r, ok := got[s]
		switch {
		case !ok:
			notPassed = append(notPassed, s+" (no result)")
		case r.State != results.StatePassed:
			notPassed = append(notPassed, s+" ("+r.State+")")
		}
	}
	if len(notPassed) > 0 {
		return clierr.Failedf("not pushing %s: the dev channel needs %s passed, but %s; run `ci test --stage %s` first, or pass --force",
			shorthash.Long(rev), strings.Join(stages, ", "), strings.Join(notPassed, ", "), stages[0])
	}
	return nil
}

// Closure returns the runtime closure of paths (`nix path-info -r`).
func Closure(ctx context.Context, eng engine.Engine, paths []string) ([]string, error) {
	infos, err := closureInfos(ctx, eng, paths)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(infos))
	for i, pi := range infos {
		out[i] = pi.Path
	}
	return out, nil
}

// closureInfos returns the local store's path info of every path in the
// runtime closure of paths, sorted by path.
func closureInfos(ctx context.Context, eng engine.Engine, paths []string) ([]nixcli.PathInfo, error) {
	var all []nixcli.PathInfo
	seen := map[string]bool{}
	for _, c := range chunks(paths) {
		var out, errb bytes.Buffer
		args := nixcli.Nix(append([]string{"path-info", "-r", "--json"}, c...)...)
		res, err := eng.Run(ctx, engine.Cmd{Args: args, Stdout: &out, Stderr: &errb})
		if err != nil {
			return nil, err
		}
		if res.ExitCode != 0 {
			return nil, clierr.Failedf("the outputs to push are not in the %s engine's store (%s): run `ci build` first", eng.Name(), lastLines(errb.String(), 3))
		}
		infos, err := nixcli.ParsePathInfo(out.Bytes())
		if err != nil {
			return nil, err
		}
		for _, pi := range infos {
			if !seen[pi.Path] {
				seen[pi.Path] = true
				all = append(all, pi)
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Path < all[j].Path })
	return all, nil
}

// Run pushes the closures of the report's outputs to every target.
func Run(ctx context.Context, o Options) ([]Summary, error) {
	out, log := o.Out, o.Log
	if out == nil {
		out = io.Discard
	}
	if log == nil {
		log = io.Discard
	}
	o.Out, o.Log = out, log
	stages := o.Stages
	if stages == nil {
		stages = DevStages
	}
	if len(o.Targets) == 0 {
		return nil, clierr.Usagef("no cache to push to: pass --cache STORE_URI or --cachix NAME")
	}
	outPaths := PushablePaths(o.Report)
	if len(outPaths) == 0 {
		fmt.Fprintf(out, "nothing to push: no output of the build report has out paths to push (%s)\n", countsLine(o.Report))
		return nil, nil
	}
	if !o.WriteChecked {
		if err := CheckTargets(ctx, o.Targets); err != nil {
			return nil, err
		}
	}
	if o.Force {
		fmt.Fprintf(log, "\n!!! --force: pushing %s WITHOUT checking that %s passed for it !!!\n\n", orUnknown(o.Rev), strings.Join(stages, ", "))
	} else if err := CheckGate(ctx, o.Results, o.Rev, stages); err != nil {
		return nil, err
	}
	if err := Realise(ctx, o.Engine, outPaths, o.Sources, o.sourceTrust(), log); err != nil {
		return nil, err
	}
	infos, err := closureInfos(ctx, o.Engine, outPaths)
	if err != nil {
		return nil, err
	}
	var sums []Summary
	for _, t := range o.Targets {
		s, err := pushOne(ctx, o, t, infos, len(outPaths))
		if err != nil {
			return sums, err
		}
		sums = append(sums, s)
	}
	return sums, nil
}

// sourceTrust is what the paths fetched from the sources must be signed
// by: the source keys, or the release key, which signed the paths of the
// release cache when it is a source (signing them again vouches for
// nothing new).
func (o Options) sourceTrust() SourceTrust {
	keys := append([]string{}, o.SourceKeys...)
	if o.PublicKey != "" && !slices.Contains(keys, o.PublicKey) {
		keys = append(keys, o.PublicKey)
	}
	return SourceTrust{Keys: keys, Unsigned: o.AllowUnsignedSources}
}

// CheckTargets proves that every target takes writes (cache.CheckWritable)
// before anything is signed.
func CheckTargets(ctx context.Context, targets []Target) error {
	for _, t := range targets {
		if t.Files == nil {
			continue
		}
		if err := cache.CheckWritable(ctx, t.Files.URI()); err != nil {
			return err
		}
	}
	return nil
}

func keyName(pub string) string {
	name, _, _ := strings.Cut(pub, ":")
	return name
}

func orUnknown(rev string) string {
	if rev == "" {
		return "this build (commit unknown)"
	}
	return shorthash.Long(rev)
}

func countsLine(r *report.Report) string {
	c := r.Counts()
	var parts []string
	for _, st := range []string{report.StatusBuilt, report.StatusCached, StatusPresent, report.StatusFailed, report.StatusSkipped} {
		if c[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c[st], st))
		}
	}
	if len(parts) == 0 {
		return "no outputs"
	}
	return strings.Join(parts, ", ")
}
