package cmd

import (
	"context"
	"fmt"

	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/push"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

// pushToHelp is the help of `ci build --push-to`.
const pushToHelp = "upload the closures of the outputs this build made, unsigned, to the staging cache `STORE_URI` (file://, http(s)://, s3://…), for later jobs to substitute and ci push to sign and copy to the release cache; without --cache it is also the cache asked for outputs it already has"

// checkBuildCaches runs before anything is built: it warns once when the
// file:// cache the build asks does not exist, and proves the staging
// cache takes writes (exit 2 when it does not).
func checkBuildCaches(ctx context.Context, io *IO, opts *BuildOptions) error {
	if w := cache.MissingDirWarning(opts.Cache); w != "" && opts.Cache != opts.PushTo {
		fmt.Fprintf(io.Err, "warning: %s\n", w)
	}
	if opts.PushTo == "" {
		return nil
	}
	return cache.CheckWritable(ctx, opts.PushTo)
}

// stageBuilt uploads what the build made to the staging cache and records
// the cache in the report.
func stageBuilt(ctx context.Context, io *IO, eng engine.Engine, opts *BuildOptions, rep *report.Report) error {
	if opts.PushTo == "" || rep == nil {
		return nil
	}
	rep.Staging = opts.PushTo
	_, err := push.Stage(ctx, push.StageOptions{Engine: eng, URI: opts.PushTo, Report: rep, Log: io.Err})
	return err
}
