package quality

import (
	"context"
	"os"
	"path/filepath"

	"github.com/ipex-flake/ipex-flake/pipelines/stage"
)

// Integration is the integration stage: the flake's NixOS VM tests (checks
// that need kvm or nixos-test; skipped with the reason when /dev/kvm is not
// usable) and the Go suite tests/integration against the ollama-ipex and
// comfyui-ipex of the build, started for the suite (Env.StartServices), or
// against running services with ServiceOptions.External.
type Integration struct {
	Env *Env
	// Packages are the Go test packages (default ./tests/integration/...).
	Packages []string
	stage.Collector
}

var _ stage.Checker = (*Integration)(nil)

// Name implements stage.Stage.
func (s *Integration) Name() string { return "integration" }

// Default implements stage.Defaulter.
func (s *Integration) Default() error {
	if len(s.Packages) == 0 {
		s.Packages = []string{"./tests/integration/..."}
	}
	return nil
}

// Run implements stage.Stage.
func (s *Integration) Run(ctx context.Context) error {
	s.Collector.Out = s.Env.out()
	if err := s.vmTests(ctx); err != nil {
		return err
	}
	if err := s.goSuite(ctx); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.Err()
}

func (s *Integration) vmTests(ctx context.Context) error {
	eng, err := s.Env.Engine(ctx)
	if err != nil {
		return err
	}
	ref := s.Env.FlakeRef(eng)
	checks, err := ListChecks(ctx, eng, ref, s.Env.systems(), true)
	if err != nil {
		s.Fail("evaluate checks", err.Error(), 0)
		return nil
	}
	var vm []FlakeCheck
	for _, c := range checks {
		if c.NeedsVM() {
			vm = append(vm, c)
		}
	}
	if len(vm) == 0 {
		return nil
	}
	if ok, why := s.Env.Host.Has(stage.KVM); !ok {
		for _, c := range vm {
			s.SkipCheck(c.Attr(), "NixOS VM test needs kvm: "+why)
		}
		return nil
	}
	buildChecks(ctx, eng, ref, vm, &s.Collector)
	return nil
}

func (s *Integration) goSuite(ctx context.Context) error {
	root := ModuleRoot(s.Env.Dir())
	if root == "" {
		s.SkipCheck("tests/integration", "the flake is not in a Go module checkout")
		return nil
	}
	if _, err := os.Stat(filepath.Join(root, "tests", "integration")); err != nil {
		s.SkipCheck("tests/integration", "no tests/integration in "+root)
		return nil
	}
	svc, err := s.Env.StartServices(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.Fail("services", err.Error(), 0)
		return nil
	}
	defer func() {
		if err := svc.Stop(); err != nil {
			s.Fail("services", "stopping: "+err.Error(), 0)
		}
	}()
	env := svc.Env()
	env[LiveEnv] = "1"
	if err := runGoTests(ctx, root, s.Packages, env, &s.Collector); err != nil {
		return err
	}
	for _, c := range svc.Crashed() {
		s.Fail("services", c, 0)
	}
	return nil
}
