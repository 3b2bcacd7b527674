package push

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/cache"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
)

// StageOptions configure Stage.
type StageOptions struct {
	// Engine runs nix; its store holds what the build made.
	Engine engine.Engine
	// URI is the staging cache (file://, http(s)://, s3://…).
	URI string
	// Report is the build's report: the closures of its built and present
	// outputs are uploaded.
	Report *report.Report
	// Signer signs the paths before upload, with the staging cache's own
	// key (nil: uploaded unsigned).
	Signer Signer
	// Log receives progress and nix's output.
	Log io.Writer
}

// StagePaths returns the out paths a build uploads to its staging cache:
// those of its built and present outputs (cached ones are in a cache
// already, and later jobs substitute them from there).
func StagePaths(r *report.Report) []string {
	return pathsWithStatus(r, func(st string) bool { return st == report.StatusBuilt || st == StatusPresent })
}

// Stage uploads (signed with the staging key when there is one) the closures of the report's built and present
// outputs that the staging cache lacks, so that later jobs (stages, ci
// push) substitute them instead of building; ci push signs them on the
// way to the release cache. The staging cache is asked directly; a damaged
// entry is uploaded again; every uploaded path is read back.
func Stage(ctx context.Context, o StageOptions) (pushed int, err error) {
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	outPaths := StagePaths(o.Report)
	if len(outPaths) == 0 {
		return 0, nil
	}
	closure, err := Closure(ctx, o.Engine, outPaths)
	if err != nil {
		return 0, err
	}
	files := cache.NewFiles(o.URI)
	upload, err := stagingLacks(ctx, o, files, closure, log)
	if err != nil {
		return 0, err
	}
	if len(upload) == 0 {
		fmt.Fprintf(log, "staging: %d paths already in %s\n", len(closure), o.URI)
		return 0, nil
	}
	fmt.Fprintf(log, "staging: uploading %d of %d paths (closures of %d outputs) to %s\n", len(upload), len(closure), len(outPaths), o.URI)
	if o.Signer != nil {
		if err := o.Signer.Sign(ctx, upload); err != nil {
			return 0, err
		}
	}
	if err := (&NixCopy{Engine: o.Engine, URI: o.URI, Log: log}).Upload(ctx, upload); err != nil {
		return 0, clierr.Failedf("upload to the staging cache %s failed: %v; the build's outputs are in the local store, run ci build --push-to again to finish", o.URI, err)
	}
	if files != nil {
		if err := verifyFiles(ctx, Target{URI: o.URI, Files: files}, upload, "", false); err != nil {
			return 0, err
		}
	}
	fmt.Fprintf(log, "staging: uploaded %d paths to %s (%s)\n", len(upload), o.URI, strings.TrimSuffix(plural(len(closure)-len(upload), "path was", "paths were")+" already there", " "))
	return len(upload), nil
}

// stagingLacks returns the paths of closure the staging cache lacks,
// sorted: asked of its files when it has them (damaged entries are
// removed there and count as lacking), else through a lookup.
func stagingLacks(ctx context.Context, o StageOptions, files cache.Files, closure []string, log io.Writer) ([]string, error) {
	if files == nil {
		lookup, err := cache.New(o.URI, PathInfoLookup(o.Engine))
		if err != nil {
			return nil, err
		}
		missing, err := lacking(ctx, lookup, closure)
		if err != nil {
			return nil, clierr.Failedf("cannot read staging cache %s: %v", o.URI, err)
		}
		return missing, nil
	}
	ents, err := inspect(ctx, files, closure, false)
	if err != nil {
		return nil, clierr.Failedf("cannot read staging cache %s: %v; check the URI and that the cache is up", o.URI, err)
	}
	missing, damaged, _ := sortEntries(ents, closure, log, o.URI)
	for _, p := range damaged {
		if _, err := removeDamaged(ctx, files, ents[p]); err != nil {
			return nil, clierr.Failedf("cannot repair %s in %s: %v", p, o.URI, err)
		}
	}
	return sortedUnion(missing, damaged), nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
