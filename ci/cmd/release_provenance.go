package cmd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/childenv"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
	"github.com/ipex-flake/ipex-flake/pipelines/push/signing"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
	"github.com/ipex-flake/ipex-flake/release/promote"
	"github.com/ipex-flake/ipex-flake/release/provenance"
)

// provenanceSource is what the provenance of a promotion is made from.
type provenanceSource struct {
	io  *IO
	dir string // the repository
	// report is the build report (nil without --report).
	report  *report.Report
	key     *signing.Key
	results results.Store
}

// attach returns the promotion hook that signs and attaches the provenance.
func (s *provenanceSource) attach() promote.AttachFunc {
	return func(ctx context.Context, plan *promote.Plan) (map[string][]byte, error) {
		st, err := s.statement(ctx, plan, time.Now())
		if err != nil {
			return nil, err
		}
		env, err := provenance.Sign(st, keySigner{s.key})
		if err != nil {
			return nil, err
		}
		return map[string][]byte{provenance.AssetName: env.Marshal()}, nil
	}
}

func (s *provenanceSource) statement(ctx context.Context, plan *promote.Plan, now time.Time) (*provenance.Statement, error) {
	in := provenance.Input{Rev: plan.Rev, Channel: string(plan.Channel), Version: plan.Tag,
		Cache: plan.Manifest.Cache, NarHashes: map[string]string{}, RepoURL: repoURL(s.io.Getenv),
		BuilderID: provenance.DefaultBuilder, FinishedOn: now, StartedOn: now}
	if s.report != nil {
		in.Flake, in.Engine = s.report.Flake, s.report.Engine
	}
	var paths []string
	if s.report != nil {
		for _, o := range s.report.Outputs {
			if _, released := plan.Manifest.Outputs[o.Attr]; !released {
				continue
			}
			in.Outputs = append(in.Outputs, provenance.Output{Attr: o.Attr, System: o.System, DrvPath: o.DrvPath,
				OutPaths: o.OutPaths, Builder: o.Builder, Status: o.Status})
			for _, op := range o.OutPaths {
				if !slices.Contains(paths, op) {
					paths = append(paths, op)
				}
			}
		}
	}
	if len(paths) > 0 {
		// The local store first, then the cache for what it lacks.
		infos, _ := pathInfo(ctx, paths, "")
		for _, pi := range infos {
			in.NarHashes[pi.Path] = pi.NarHash
		}
		var rest []string
		for _, p := range paths {
			if _, ok := in.NarHashes[p]; !ok {
				rest = append(rest, p)
			}
		}
		if len(rest) > 0 && plan.Manifest.Cache != "" {
			infos, _ = pathInfo(ctx, rest, plan.Manifest.Cache)
			for _, pi := range infos {
				in.NarHashes[pi.Path] = pi.NarHash
			}
		}
	}
	if lock := gitOut(ctx, s.dir, "show", plan.Rev+":flake.lock"); lock != "" {
		in.Lock = []byte(lock)
	}
	recorded, err := s.results.Get(ctx, plan.Rev)
	if err != nil {
		return nil, err
	}
	for _, g := range plan.Stages {
		r := recorded[g.Name]
		in.Gates = append(in.Gates, provenance.Gate{Stage: g.Name, State: r.State, Rev: plan.Rev,
			Description: r.Description, URL: r.URL, Time: r.Time,
			Flake: r.Flake, NarHash: r.NarHash, Report: r.Report, External: r.External})
		if !r.Time.IsZero() && r.Time.Before(in.StartedOn) {
			in.StartedOn = r.Time
		}
	}
	if u := runURL(s.io.Getenv); u != "" {
		in.BuilderID = u
		in.InvocationID = u + "/attempts/" + firstNonEmpty(s.io.Getenv("GITHUB_RUN_ATTEMPT"), "1")
	} else {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		in.InvocationID = "urn:uuid:" + hex.EncodeToString(b)
	}
	st, missing, err := provenance.Build(in)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		fmt.Fprintf(s.io.Err, "warning: %d released paths are in neither the store nor the cache, so the provenance cannot record their NAR hash (ci verify release will fail on them), e.g. %s: run ci push first\n", len(missing), missing[0])
	}
	return st, nil
}

// repoURL is the repository's web URL in GitHub Actions ("" elsewhere).
func repoURL(getenv func(string) string) string {
	server, repo := getenv("GITHUB_SERVER_URL"), getenv("GITHUB_REPOSITORY")
	if server == "" || repo == "" {
		return ""
	}
	return server + "/" + repo
}

// pathInfo runs nix path-info --json on the local store, or on store when
// given.
func pathInfo(ctx context.Context, paths []string, store string) ([]nixcli.PathInfo, error) {
	args := []string{"path-info", "--json"}
	if store != "" {
		args = append(args, "--store", store)
	}
	argv := nixcli.Nix(append(args, paths...)...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = childenv.Filter(os.Environ())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("nix path-info: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	infos, err := nixcli.ParsePathInfo(stdout.Bytes())
	if err != nil {
		return nil, err
	}
	return infos, nil
}

// withProvenance makes a promotion (not a dry run) sign and attach its
// provenance next to the manifest, and records the key's public half in
// the manifest when --public-key is not given.
func withProvenance(ctx context.Context, o *ReleasePromoteOptions, opts *promote.Options, p *promote.Promoter) error {
	if o.DryRun {
		return nil
	}
	key, generated, err := signing.Resolve(signing.Source{File: o.SigningKeyFile, Getenv: o.IO.Getenv})
	if err != nil {
		return err
	}
	if generated {
		fmt.Fprintf(o.IO.Err, "generated signing key %s in %s (mode 0600)\n", key.Name(), key.Source)
	}
	if opts.PublicKey == "" {
		opts.PublicKey = key.Public()
	}
	src := &provenanceSource{io: o.IO, dir: p.Repo.Dir, report: opts.Report, key: key, results: p.Results}
	opts.Attach = src.attach()
	return nil
}

// keySigner signs provenance with a Nix signing key: the same ed25519
// signature nix makes over a narinfo fingerprint, here over DSSE's
// pre-authentication encoding.
type keySigner struct{ k *signing.Key }

// Name is the key name (the DSSE keyid).
func (s keySigner) Name() string { return s.k.Name() }

// Sign returns the raw signature of msg.
func (s keySigner) Sign(msg []byte) []byte {
	_, b64, _ := strings.Cut(s.k.Sign(string(msg)), ":")
	sig, _ := base64.StdEncoding.DecodeString(b64)
	return sig
}
