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
	"sort"
	"strings"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
	"github.com/ipex-flake/ipex-flake/release/version"
)

// DevStages are the stages the dev channel needs: a commit is pushed only
// once all of them have passed for it.
var DevStages = version.Dev.Stages()

// Target is one binary cache a push goes to.
type Target struct {
	// URI names the cache in messages.
	URI string
	// Lookup finds the paths the cache has; nil treats every path as missing.
	Lookup cache.Lookup
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
	// Out receives the summary; Log receives progress, nix's output and warnings.
	Out, Log io.Writer
}

// Summary is what a push did to one target.
type Summary struct {
	Target   string
	Closure  int
	Present  int
	Pushed   int
	Duration time.Duration
}

// BuiltPaths returns the output paths of the report's built outputs.
func BuiltPaths(r *report.Report) []string {
	seen := map[string]bool{}
	var out []string
	for _, o := range r.Outputs {
		if o.Status != report.StatusBuilt {
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
		return clierr.Usagef("no stage results to check %s against: this is not a git checkout (`ci test` records results in .git/ipex-ci/results.json) and GITHUB_TOKEN and GITHUB_REPOSITORY are not set; run ci push in the repository that ran ci test, or pass --force", short(rev))
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
			short(rev), strings.Join(stages, ", "), strings.Join(notPassed, ", "), stages[0])
	}
	return nil
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// Closure returns the runtime closure of paths (`nix path-info -r`).
func Closure(ctx context.Context, eng engine.Engine, paths []string) ([]string, error) {
	var all []string
	seen := map[string]bool{}
	for _, c := range chunks(paths) {
		var out, errb bytes.Buffer
		args := nixcli.Nix(append([]string{"path-info", "-r", "--json"}, c...)...)
		res, err := eng.Run(ctx, engine.Cmd{Args: args, Stdout: &out, Stderr: &errb})
		if err != nil {
			return nil, err
		}
		if res.ExitCode != 0 {
			return nil, clierr.Failedf("the built outputs are not in the %s engine's store (%s): run `ci build` first", eng.Name(), lastLines(errb.String(), 3))
		}
		infos, err := nixcli.ParsePathInfo(out.Bytes())
		if err != nil {
			return nil, err
		}
		for _, pi := range infos {
			if !seen[pi.Path] {
				seen[pi.Path] = true
				all = append(all, pi.Path)
			}
		}
	}
	sort.Strings(all)
	return all, nil
}

// Run pushes the report's built outputs to every target.
func Run(ctx context.Context, o Options) ([]Summary, error) {
	out, log := o.Out, o.Log
	if out == nil {
		out = io.Discard
	}
	if log == nil {
		log = io.Discard
	}
	stages := o.Stages
	if stages == nil {
		stages = DevStages
	}
	if len(o.Targets) == 0 {
		return nil, clierr.Usagef("no cache to push to: pass --cache STORE_URI or --cachix NAME")
	}
	outPaths := BuiltPaths(o.Report)
	if len(outPaths) == 0 {
		fmt.Fprintf(out, "nothing to push: no output of the build report was built (%s)\n", countsLine(o.Report))
		return nil, nil
	}
	if o.Force {
		fmt.Fprintf(log, "\n!!! --force: pushing %s WITHOUT checking that %s passed for it !!!\n\n", orUnknown(o.Rev), strings.Join(stages, ", "))
	} else if err := CheckGate(ctx, o.Results, o.Rev, stages); err != nil {
		return nil, err
	}
	closure, err := Closure(ctx, o.Engine, outPaths)
	if err != nil {
		return nil, err
	}
	var sums []Summary
	for _, t := range o.Targets {
		s, err := pushOne(ctx, o, t, closure, len(outPaths), out, log)
		if err != nil {
			return sums, err
		}
		sums = append(sums, s)
	}
	return sums, nil
}

func pushOne(ctx context.Context, o Options, t Target, closure []string, nOut int, out, log io.Writer) (Summary, error) {
	start := time.Now()
	s := Summary{Target: t.URI, Closure: len(closure)}
	missing := closure
	if t.Lookup != nil {
		has, err := t.Lookup.Has(ctx, closure)
		if err != nil {
			return s, clierr.Failedf("cannot read cache %s: %v; check the URI and that the cache is up", t.URI, err)
		}
		missing = nil
		for _, p := range closure {
			if !has[p] {
				missing = append(missing, p)
			}
		}
	}
	s.Present = len(closure) - len(missing)
	if len(missing) == 0 {
		fmt.Fprintf(out, "nothing to push: %d paths already in %s\n", len(closure), t.URI)
	} else {
		fmt.Fprintf(log, "pushing %d of %d paths (closure of %d built outputs) to %s\n", len(missing), len(closure), nOut, t.URI)
		if o.Signer != nil {
			if err := o.Signer.Sign(ctx, missing); err != nil {
				return s, err
			}
		}
		if err := t.Uploader.Upload(ctx, missing); err != nil {
			return s, clierr.Failedf("push to %s failed: %v (paths already uploaded are complete; run ci push again to finish)", t.URI, err)
		}
		s.Pushed = len(missing)
	}
	pub := t.PublicKey
	if pub == "" {
		pub = o.PublicKey
	}
	switch {
	case t.Verifier != nil:
		if err := t.Verifier.Verify(ctx, closure, pub); err != nil {
			return s, err
		}
		fmt.Fprintf(log, "verified %d paths in %s against %s\n", len(closure), t.URI, pub)
	case t.SkipVerifyReason != "":
		fmt.Fprintf(log, "warning: %s not verified: %s\n", t.URI, t.SkipVerifyReason)
	default:
		return s, clierr.Failedf("%s cannot be verified: no verifier", t.URI)
	}
	s.Duration = time.Since(start)
	if s.Pushed > 0 {
		fmt.Fprintf(out, "pushed %d paths to %s (%d were already there), signed by %s, verified\n", s.Pushed, t.URI, s.Present, keyName(pub))
	}
	return s, nil
}

func keyName(pub string) string {
	name, _, _ := strings.Cut(pub, ":")
	return name
}

func orUnknown(rev string) string {
	if rev == "" {
		return "this build (commit unknown)"
	}
	return short(rev)
}

func countsLine(r *report.Report) string {
	c := r.Counts()
	var parts []string
	for _, st := range []string{report.StatusBuilt, report.StatusCached, report.StatusFailed, report.StatusSkipped} {
		if c[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c[st], st))
		}
	}
	if len(parts) == 0 {
		return "no outputs"
	}
	return strings.Join(parts, ", ")
}
