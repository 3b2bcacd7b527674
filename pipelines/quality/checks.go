package quality

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/nixstr"
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
	// DrvPath and OutPath are the check's derivation and output ("" when
	// not evaluated, or when it does not evaluate).
	DrvPath, OutPath string
	// EvalError is why the check does not evaluate ("" when it does).
	EvalError string
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

// ListChecks evaluates checks.<system> for every system in one nix
// evaluation: each check's requiredSystemFeatures, and the derivation of
// the checks of one kind (VM tests when vm is set, the others when not),
// so the other stage's checks are never instantiated. A check that throws
// is returned with its EvalError.
func ListChecks(ctx context.Context, eng engine.Engine, flakeRef string, systems []string, vm bool) ([]FlakeCheck, error) {
	sys, _ := json.Marshal(systems)
	expr := fmt.Sprintf(`let
  f = builtins.getFlake %s;
  checks = f.checks or { };
  wantVM = %t;
  entry = c:
    let
      fs = c.requiredSystemFeatures or [ ];
      vm = builtins.elem "kvm" fs || builtins.elem "nixos-test" fs;
      drv = builtins.tryEval c.drvPath;
    in {
      features = fs;
      drv = if vm != wantVM then "" else if drv.success then drv.value else null;
      out = if vm == wantVM && drv.success then c.outPath else "";
    };
  safe = c: let t = builtins.tryEval (builtins.seq (c.requiredSystemFeatures or [ ]) c); in
    if t.success then entry t.value else { features = [ ]; drv = null; out = ""; };
in builtins.listToAttrs (map (s: {
  name = s;
  value = builtins.mapAttrs (n: safe) (checks.${s} or { });
}) (builtins.fromJSON %s))`, nixstr.Quote(flakeRef), vm, nixstr.Quote(string(sys)))
	stdout, stderr, err := run(ctx, eng, nixcli.Nix("eval", "--impure", "--json", "--expr", expr))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("evaluating the checks of %s: %s", flakeRef, tail(stderr, 4))
	}
	var m map[string]map[string]struct {
		Features []string `json:"features"`
		Drv      *string  `json:"drv"`
		Out      string   `json:"out"`
	}
	if err := json.Unmarshal([]byte(stdout), &m); err != nil {
		return nil, fmt.Errorf("evaluating the checks of %s: %w", flakeRef, err)
	}
	var out []FlakeCheck
	for s, cs := range m {
		for n, c := range cs {
			fc := FlakeCheck{System: s, Name: n, Features: c.Features}
			if c.Drv == nil {
				fc.EvalError = "does not evaluate: nix eval " + flakeRef + "#" + fc.Attr() + " shows why"
			} else {
				fc.DrvPath, fc.OutPath = *c.Drv, c.Out
			}
			out = append(out, fc)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Attr() < out[j].Attr() })
	return out, nil
}

// buildChecks builds the checks on eng in one `nix build --keep-going`
// (one evaluation of the flake, independent checks built in parallel) and
// records a result per check in c: nix names the derivation of each
// failed build; a check it does not name passed only if its output is now
// in the store (its own build may not have started because a dependency
// failed).
func buildChecks(ctx context.Context, eng engine.Engine, flakeRef string, checks []FlakeCheck, c *stage.Collector) {
	var build []FlakeCheck
	for _, ch := range checks {
		if ch.EvalError != "" || ch.DrvPath == "" {
			c.Fail(ch.Attr(), ch.EvalError, 0)
			continue
		}
		build = append(build, ch)
	}
	if len(build) == 0 {
		return
	}
	args := nixcli.Nix("build", "--keep-going", "--no-link")
	for _, ch := range build {
		args = append(args, flakeRef+"#"+ch.Attr())
	}
	start := time.Now()
	_, stderr, err := run(ctx, eng, args)
	took := time.Since(start)
	if err == nil {
		for _, ch := range build {
			c.Pass(ch.Attr(), "", took)
		}
		return
	}
	if ctx.Err() != nil {
		for _, ch := range build {
			c.Fail(ch.Attr(), "not finished: "+ctx.Err().Error(), took)
		}
		return
	}
	failed := failedDrvs(stderr)
	var named int
	for _, ch := range build {
		if _, ok := failed[ch.DrvPath]; ok {
			named++
		}
	}
	for _, ch := range build {
		detail, ok := failed[ch.DrvPath]
		switch {
		case ok:
			c.Fail(ch.Attr(), detail, took)
		case named == 0:
			// nix failed before or beside the builds: no check can be
			// said to have passed.
			c.Fail(ch.Attr(), "nix build failed: "+tail(stderr, 4), took)
		case ch.OutPath != "" && valid(ctx, eng, ch.OutPath):
			c.Pass(ch.Attr(), "", took)
		default:
			c.Fail(ch.Attr(), "not built: a dependency failed (see the failed checks above)", took)
		}
	}
}

// valid reports whether path is in the store of eng.
func valid(ctx context.Context, eng engine.Engine, path string) bool {
	_, _, err := run(ctx, eng, nixcli.Nix("path-info", path))
	return err == nil
}

var quotedDrv = regexp.MustCompile(`'(/[^']+\.drv)'`)

// failedDrvs reads the stderr of `nix build --keep-going` and returns, per
// derivation nix reports as failed (its builder failed, or one of its
// dependencies did), the lines of that error: the builder's exit code and
// the last log lines. It reads both the older ("builder for '…' failed",
// "dependencies of derivation '…' failed to build") and the newer
// ("Cannot build '…'") wording.
func failedDrvs(stderr string) map[string]string {
	out := map[string]string{}
	var cur string
	var block []string
	flush := func() {
		if cur != "" {
			out[cur] = tail(strings.Join(block, "\n"), 6)
		}
		cur, block = "", nil
	}
	for _, l := range strings.Split(stderr, "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "error:") {
			flush()
			m := quotedDrv.FindStringSubmatch(t)
			// "build of '…', '…' failed" sums up the others: skip it.
			if m != nil && !strings.HasPrefix(t, "error: build of") && out[m[1]] == "" &&
				(strings.Contains(t, "failed") || strings.Contains(t, "Cannot build")) {
				cur = m[1]
			}
		}
		if cur != "" && t != "" && !strings.HasPrefix(t, "For full logs") {
			block = append(block, strings.TrimPrefix(strings.TrimPrefix(t, "error: "), "> "))
		}
	}
	flush()
	return out
}
