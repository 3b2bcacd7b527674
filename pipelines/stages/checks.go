package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
	"github.com/ipex-flake/ipex-flake/pipelines/stage"
)

// FlakeCheck is one entry of a flake's checks.<system>.
type FlakeCheck struct {
	System string
	Name   string
	// Features are the derivation's requiredSystemFeatures.
	Features []string
}

// Attr is the check's attribute path.
func (c FlakeCheck) Attr() string { return "checks." + c.System + "." + c.Name }

// NeedsVM reports whether the check is a NixOS VM test: it needs kvm or
// nixos-test, so it belongs to the integration stage.
func (c FlakeCheck) NeedsVM() bool {
	for _, f := range c.Features {
		if f == "kvm" || f == "nixos-test" {
			return true
		}
	}
	return false
}

// ListChecks evaluates the names and requiredSystemFeatures of
// checks.<system> for every system in one nix evaluation.
func ListChecks(ctx context.Context, eng engine.Engine, flakeRef string, systems []string) ([]FlakeCheck, error) {
	sys, _ := json.Marshal(systems)
	expr := fmt.Sprintf(`let
  f = builtins.getFlake %s;
  checks = f.checks or { };
in builtins.listToAttrs (map (s: {
  name = s;
  value = builtins.mapAttrs (n: c: c.requiredSystemFeatures or [ ]) (checks.${s} or { });
}) (builtins.fromJSON %s))`, strconv.Quote(flakeRef), strconv.Quote(string(sys)))
	stdout, stderr, err := run(ctx, eng, nixcli.Nix("eval", "--impure", "--json", "--expr", expr))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("evaluating the checks of %s: %s", flakeRef, tail(stderr, 4))
	}
	var m map[string]map[string][]string
	if err := json.Unmarshal([]byte(stdout), &m); err != nil {
		return nil, fmt.Errorf("evaluating the checks of %s: %w", flakeRef, err)
	}
	var out []FlakeCheck
	for s, cs := range m {
		for n, fs := range cs {
			out = append(out, FlakeCheck{System: s, Name: n, Features: fs})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Attr() < out[j].Attr() })
	return out, nil
}

// buildChecks builds each check on eng, one at a time, and records a
// result per check in c.
func buildChecks(ctx context.Context, eng engine.Engine, flakeRef string, checks []FlakeCheck, c *stage.Collector) {
	for _, ch := range checks {
		if ctx.Err() != nil {
			c.SkipCheck(ch.Attr(), "not started: "+ctx.Err().Error())
			continue
		}
		start := time.Now()
		_, stderr, err := run(ctx, eng, nixcli.Nix("build", "--no-link", flakeRef+"#"+ch.Attr()))
		if err != nil {
			detail := tail(stderr, 6)
			if ctx.Err() != nil || detail == "" {
				detail = err.Error()
			}
			c.Fail(ch.Attr(), detail, time.Since(start))
			continue
		}
		c.Pass(ch.Attr(), "", time.Since(start))
	}
}
