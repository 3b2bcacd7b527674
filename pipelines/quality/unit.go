package quality

import (
	"context"
	"strings"
	"time"

	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
	"github.com/ipex-flake/ipex-flake/pipelines/stage"
)

// Unit is the unit stage: `nix flake check` (evaluation of every output)
// and a build of every check that needs no VM, with a result per check.
type Unit struct {
	Env *Env
	stage.Collector
}

var (
	_ stage.Stage   = (*Unit)(nil)
	_ stage.Checker = (*Unit)(nil)
)

// Name implements stage.Stage.
func (u *Unit) Name() string { return "unit" }

// Run implements stage.Stage.
func (u *Unit) Run(ctx context.Context) error {
	u.Collector.Out = u.Env.out()
	eng, err := u.Env.Engine(ctx)
	if err != nil {
		return err
	}
	ref := u.Env.FlakeRef(eng)

	start := time.Now()
	if _, stderr, err := run(ctx, eng, nixcli.Nix("flake", "check", "--no-build", ref)); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if why, ok := u.Env.fetchFailure(stderr); ok {
			// Nothing else evaluates either: say so once, with the fix.
			u.Fail("nix flake check", why, time.Since(start))
			u.SkipCheck("checks", "not evaluated: the flake's inputs cannot be fetched")
			return u.Err()
		}
		u.Fail("nix flake check", tail(stderr, 6), time.Since(start))
	} else {
		u.Pass("nix flake check", "every output evaluates", time.Since(start))
	}

	checks, err := ListChecks(ctx, eng, ref, u.Env.systems(), false)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		u.Fail("evaluate checks", err.Error(), 0)
		return u.Err()
	}
	var fast []FlakeCheck
	for _, c := range checks {
		if !c.NeedsVM() {
			fast = append(fast, c)
		}
	}
	if len(fast) == 0 {
		u.SkipCheck("checks", "the flake has no checks for "+strings.Join(u.Env.systems(), ", ")+" that run without a VM")
	}
	buildChecks(ctx, eng, ref, fast, &u.Collector)
	if err := ctx.Err(); err != nil {
		return err
	}
	return u.Err()
}
