// Package daggerengine runs pipeline commands in Dagger containers.
package daggerengine

import (
	"context"
	"errors"

	"github.com/ipex-flake/ipex-flake/pipelines/engine"
)

// Available reports whether a Dagger engine can be reached, and why not.
func Available(getenv func(string) string) (bool, string) {
	return false, "no Dagger engine configured"
}

// New connects to the Dagger engine.
func New(ctx context.Context, opts engine.Options) (engine.Engine, error) {
	return nil, errors.New("dagger engine not implemented")
}
