package promote

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/ipex-flake/ipex-flake/pipelines/gpuclass"
	"github.com/ipex-flake/ipex-flake/release/forge"
	"github.com/ipex-flake/ipex-flake/release/notes"
	"github.com/ipex-flake/ipex-flake/release/version"
)

// AttachFunc returns assets to attach to the release of plan, by name.
type AttachFunc func(ctx context.Context, plan *Plan) (map[string][]byte, error)

// attachEvidence attaches the assets of plan.attach that the release does
// not have yet. A rerun that finds them attached makes none again.
func (p *Promoter) attachEvidence(ctx context.Context, plan *Plan, rel *forge.Release, step stepFunc) error {
	if plan.attach == nil {
		return nil
	}
	assets, err := plan.attach(ctx, plan)
	if err != nil {
		return fmt.Errorf("provenance of %s: %w", plan.Tag, err)
	}
	for _, name := range slices.Sorted(maps.Keys(assets)) {
		if rel.HasAsset(name) {
			step("evidence", false, "%s already attached", name)
			continue
		}
		err := p.Forge.UploadAsset(ctx, rel, name, assets[name])
		switch {
		case errors.Is(err, forge.ErrExists):
			step("evidence", false, "%s attached concurrently", name)
		case err != nil:
			return fmt.Errorf("upload %s to %s: %w", name, plan.Tag, err)
		default:
			step("evidence", true, "attached %s", name)
		}
	}
	return nil
}

// gateStages are the stages whose results a channel's gate requires. When
// the GPU classes file names classes for the channel, their STAGE@CLASS
// results take the place of the plain per-class stages (integration for
// beta; integration and performance for stable).
func (p *Promoter) gateStages(c version.Channel) []string {
	extra := p.GPU.RequiredStages(string(c))
	if len(extra) == 0 {
		return c.Stages()
	}
	var out []string
	for _, s := range c.Stages() {
		replaced := false
		for _, e := range extra {
			if st, _ := gpuclass.SplitStageName(e); st == s {
				replaced = true
			}
		}
		if !replaced {
			out = append(out, s)
		}
	}
	return append(out, extra...)
}

// testCommand is the command that records a stage's result.
func testCommand(name string) string {
	stage, class := gpuclass.SplitStageName(name)
	if class != "" {
		return "ci test --stage " + stage + " --gpu-class " + class + " on a runner of that class"
	}
	return "ci test --stage " + stage
}

// compat is the GPU compatibility table of rev for the release notes (nil
// without classes). A result that cannot be read leaves its cells empty.
func (p *Promoter) compat(ctx context.Context, c version.Channel, rev string) *notes.Compat {
	if p.GPU == nil || len(p.GPU.Classes) == 0 {
		return nil
	}
	recorded, _ := p.Results.Get(ctx, rev)
	t := &notes.Compat{Stages: gpuclass.Stages, Required: map[string]bool{}, Cells: map[string]map[string]notes.Cell{}}
	for _, cl := range p.GPU.Required[string(c)] {
		t.Required[cl] = true
	}
	for _, cl := range p.GPU.Classes {
		t.Classes = append(t.Classes, cl.Name)
		t.Cells[cl.Name] = map[string]notes.Cell{}
		for _, s := range gpuclass.Stages {
			if r, ok := recorded[gpuclass.StageName(s, cl.Name)]; ok {
				t.Cells[cl.Name][s] = notes.Cell{State: r.State, Description: r.Description, URL: r.URL}
			}
		}
	}
	return t
}
