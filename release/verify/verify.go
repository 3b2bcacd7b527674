// Package verify checks a published release against what it claims: the
// provenance's signature, that the binary cache serves every out path of
// the manifest with the NAR hash the provenance records (signed by the same
// key), and that the stage results which gated it are still recorded so.
// `ci verify release TAG` runs it.
package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/ipex-flake/ipex-flake/internal/shorthash"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
	"github.com/ipex-flake/ipex-flake/release/promote"
	"github.com/ipex-flake/ipex-flake/release/provenance"
)

// Check names.
const (
	CheckSignature = "signature"
	CheckCache     = "cache"
	CheckGates     = "gates"
)

// Check is the outcome of one check; it passed when Problems is empty.
type Check struct {
	Name     string
	Detail   string
	Problems []string
}

// OK reports whether the check passed.
func (c Check) OK() bool { return len(c.Problems) == 0 }

// Input is one release to verify.
type Input struct {
	Manifest promote.Manifest
	// Envelope is the provenance asset.
	Envelope *provenance.Envelope
	// PublicKey verifies the provenance and the narinfos (default: the
	// manifest's publicKey).
	PublicKey string
	// Cache is the binary cache (default: the manifest's cache).
	Cache *Cache
	// Results is the store the gates read.
	Results results.Store
}

// Run runs every check; a check that cannot start (no statement) reports
// why. The checks after the signature use the statement only when its
// signature verified.
func Run(ctx context.Context, in Input) []Check {
	sig := Check{Name: CheckSignature}
	st, err := in.Envelope.Verify(in.PublicKey)
	if err != nil {
		sig.Problems = append(sig.Problems, fmt.Sprintf("the provenance does not verify with %s: %v", in.PublicKey, err))
		return []Check{sig,
			{Name: CheckCache, Problems: []string{"not checked: the provenance is not trusted"}},
			{Name: CheckGates, Problems: []string{"not checked: the provenance is not trusted"}}}
	}
	sig.Detail = fmt.Sprintf("signed by %s; %d subjects", in.PublicKey, len(st.Subject))
	m := in.Manifest
	ext := st.Predicate.BuildDefinition.ExternalParameters
	if ext.Rev != m.Rev {
		sig.Problems = append(sig.Problems, fmt.Sprintf("the manifest names commit %s but the provenance %s", m.Rev, ext.Rev))
	}
	if ext.Version != m.Version {
		sig.Problems = append(sig.Problems, fmt.Sprintf("the manifest is version %s but the provenance %s", m.Version, ext.Version))
	}
	subjects := st.Subjects()
	for _, attr := range sortedKeys(m.Outputs) {
		if _, ok := subjects[m.Outputs[attr]]; !ok {
			sig.Problems = append(sig.Problems, fmt.Sprintf("%s: the manifest's %s is not a subject of the provenance", attr, m.Outputs[attr]))
		}
	}
	return []Check{sig, checkCache(ctx, in, st), checkGates(ctx, in, st)}
}

func checkCache(ctx context.Context, in Input, st *provenance.Statement) Check {
	c := Check{Name: CheckCache}
	if in.Cache == nil || in.Cache.URI == "" {
		c.Problems = []string{"no cache to check: the manifest names none; pass --cache URI"}
		return c
	}
	name, _, err := provenance.ParsePublicKey(in.PublicKey)
	if err != nil {
		c.Problems = []string{err.Error()}
		return c
	}
	subjects := st.Subjects()
	n := 0
	for _, attr := range sortedKeys(in.Manifest.Outputs) {
		p := in.Manifest.Outputs[attr]
		ni, err := in.Cache.NarInfo(ctx, p)
		switch {
		case errors.Is(err, ErrNoNarInfo):
			c.Problems = append(c.Problems, fmt.Sprintf("%s: %s is not in %s", attr, p, in.Cache.URI))
			continue
		case err != nil:
			c.Problems = append(c.Problems, fmt.Sprintf("%s: reading the narinfo of %s: %v", attr, p, err))
			continue
		}
		if ni.StorePath != p {
			c.Problems = append(c.Problems, fmt.Sprintf("%s: the cache's narinfo is for %s, not %s", attr, ni.StorePath, p))
			continue
		}
		got, err := provenance.SHA256Hex(ni.NarHash)
		if err != nil {
			c.Problems = append(c.Problems, fmt.Sprintf("%s: %v", attr, err))
			continue
		}
		if want, ok := subjects[p]; ok && got != want {
			c.Problems = append(c.Problems, fmt.Sprintf("%s: the cache serves %s with NAR hash %s, the provenance records sha256:%s", attr, p, ni.NarHash, want))
			continue
		}
		if !ni.SignedBy(in.PublicKey) {
			c.Problems = append(c.Problems, fmt.Sprintf("%s: the cache's narinfo of %s has no valid signature by %s", attr, p, name))
			continue
		}
		n++
	}
	c.Detail = fmt.Sprintf("%d of %d out paths in %s with the recorded NAR hash and signature", n, len(in.Manifest.Outputs), in.Cache.URI)
	return c
}

func checkGates(ctx context.Context, in Input, st *provenance.Statement) Check {
	c := Check{Name: CheckGates}
	gates := st.Predicate.BuildDefinition.InternalParameters.Gates
	if len(gates) == 0 {
		c.Problems = []string{"the provenance records no gating stage results"}
		return c
	}
	if in.Results == nil {
		c.Problems = []string{"no results store to compare the gates with"}
		return c
	}
	byRev := map[string]map[string]results.Result{}
	var names []string
	for _, g := range gates {
		names = append(names, g.Stage)
		if g.Rev != in.Manifest.Rev {
			c.Problems = append(c.Problems, fmt.Sprintf("%s: the gate read a result of %s, the release is %s", g.Stage, g.Rev, in.Manifest.Rev))
			continue
		}
		rec, ok := byRev[g.Rev]
		if !ok {
			var err error
			if rec, err = in.Results.Get(ctx, g.Rev); err != nil {
				c.Problems = append(c.Problems, fmt.Sprintf("reading the results of %s: %v", g.Rev, err))
				return c
			}
			byRev[g.Rev] = rec
		}
		r, ok := rec[g.Stage]
		switch {
		case !ok:
			c.Problems = append(c.Problems, fmt.Sprintf("%s: the provenance says %s, but no result is recorded for %s", g.Stage, g.State, shorthash.Commit(g.Rev)))
		case r.State != g.State:
			c.Problems = append(c.Problems, fmt.Sprintf("%s: the provenance says %s, the recorded result is %s", g.Stage, g.State, r.State))
		case !r.Binding.Matches(results.Binding{Flake: g.Flake, NarHash: g.NarHash, Report: g.Report}):
			c.Problems = append(c.Problems, fmt.Sprintf("%s: the recorded result is bound to %s, the provenance's to flake %s (%s), report %s", g.Stage, r.Binding, g.Flake, g.NarHash, g.Report))
		case g.State != results.StatePassed:
			c.Problems = append(c.Problems, fmt.Sprintf("%s: the release was gated on a %s result", g.Stage, g.State))
		}
	}
	c.Detail = fmt.Sprintf("%v recorded as the provenance says", names)
	return c
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return slices.Clip(keys)
}
