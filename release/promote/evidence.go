package promote

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/ipex-flake/ipex-flake/release/forge"
)

// AttachFunc returns assets to attach to the release of plan, by name.
type AttachFunc func(ctx context.Context, plan *Plan) (map[string][]byte, error)

// attachEvidence attaches the assets of plan.attach that the release does
// not have yet. A rerun that finds them attached makes none again.
func (p *Promoter) attachEvidence(ctx context.Context, plan *Plan, rel *forge.Release, step func(string, bool, string, ...any)) error {
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
