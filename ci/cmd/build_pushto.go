package cmd

import (
	"context"
	"fmt"

	"github.com/ipex-flake/ipex-flake/pipelines/build"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/push"
	"github.com/ipex-flake/ipex-flake/pipelines/push/signing"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

// EnvStagingKey holds the staging cache's own secret signing key (not the
// release cache's), for the jobs that substitute from the staging cache
// with its public key trusted.
const EnvStagingKey = "NIX_STAGING_SIGNING_KEY"

// pushToHelp is the help of `ci build --push-to`.
const pushToHelp = "upload the closures of the outputs this build makes, as each finishes, to the staging cache `STORE_URI` (file://, http(s)://, s3://…), signed with $" + EnvStagingKey + " when set, for later jobs to substitute and ci push to sign and copy to the release cache; without --cache it is also the cache asked for outputs it already has"

// buildStaging is the staging side of one `ci build`: nil when there is no
// --push-to (its methods then do nothing).
type buildStaging struct {
	opts   push.StageOptions
	stager *push.Stager
}

// newStaging runs before anything is built: it warns once when the
// file:// cache given to the build does not exist, and, with --push-to, proves
// the staging cache takes writes and reads the staging key (exit 2 when
// either fails).
func newStaging(ctx context.Context, io *IO, opts *BuildOptions) (*buildStaging, error) {
	// The default cache is made by the first ci push; a cache given on
	// the command line that does not exist is probably a mistake.
	if w := cache.MissingDirWarning(opts.Cache); w != "" && opts.Cache != opts.PushTo && opts.Cache != cache.DefaultURI() {
		fmt.Fprintf(io.Err, "warning: %s\n", w)
	}
	if opts.PushTo == "" {
		return nil, nil
	}
	s := &buildStaging{opts: push.StageOptions{URI: opts.PushTo, Log: io.Err}}
	if v := io.Getenv(EnvStagingKey); v != "" {
		key, err := signing.Parse(v, EnvStagingKey)
		if err != nil {
			return nil, err
		}
		s.opts.Signer = &push.NixSigner{Key: key, Log: io.Err}
	}
	if err := cache.CheckWritable(ctx, opts.PushTo); err != nil {
		return nil, fmt.Errorf("--push-to: %w", err)
	}
	return s, nil
}

// wrap starts uploading outputs as they finish and returns the progress
// the build reports to.
func (s *buildStaging) wrap(ctx context.Context, eng engine.Engine, p build.Progress) build.Progress {
	if s == nil {
		return p
	}
	s.opts.Engine = eng
	if ns, ok := s.opts.Signer.(*push.NixSigner); ok {
		ns.Engine = eng
	}
	s.stager = push.NewStager(ctx, s.opts)
	return s.stager.Wrap(p)
}

// stop ends the upload while building, when the build ends early.
func (s *buildStaging) stop() {
	if s != nil && s.stager != nil {
		s.stager.Close()
		s.stager = nil
	}
}

// finish uploads what the build made and the upload while it ran missed,
// verifies it, and records the staging cache in the report.
func (s *buildStaging) finish(ctx context.Context, rep *report.Report) error {
	if s == nil {
		return nil
	}
	s.stop()
	if rep == nil || ctx.Err() != nil {
		// Interrupted: what was uploaded stays, a rerun uploads the rest.
		return nil
	}
	rep.Staging = s.opts.URI
	_, err := push.Stage(ctx, push.StageOptions{Engine: s.opts.Engine, URI: s.opts.URI, Report: rep, Signer: s.opts.Signer, Log: s.opts.Log})
	return err
}
