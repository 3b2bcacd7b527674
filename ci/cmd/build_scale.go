package cmd

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/build"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
)

// OptionalInt is an int flag that knows whether it was given.
type OptionalInt struct {
	N     int
	Given bool
}

var _ pflag.Value = (*OptionalInt)(nil)

func (o *OptionalInt) String() string {
	if !o.Given {
		return ""
	}
	return strconv.Itoa(o.N)
}

// Set parses the flag's value.
func (o *OptionalInt) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("%q is not a number", s)
	}
	o.N, o.Given = n, true
	return nil
}

// Type names the value in --help.
func (o *OptionalInt) Type() string { return "N" }

// addScaleFlags registers --builders, --local-jobs and --shard.
func addScaleFlags(f *pflag.FlagSet, o *BuildOptions) {
	f.StringVar(&o.ShardPlan, "shard-plan", "", "with --shard: fail (exit 2) unless this job computes the plan `DIGEST` that ci matrix --shards printed (its \"plan\"), so no output is missed or built twice when the flake or the caches changed in between")
	f.StringVar(&o.Shard, "shard", "", "build shard `I/N` of the outputs: N closure-aware shards balanced by derivations to build, every selected output in exactly one; outputs of systems not selected are in none, and every shard reports them skipped (ci matrix --shards N lists the shards)")
	f.StringVar(&o.Builders, "builders", "", "send builds to Nix remote builders, nix's machine `SPEC` ('ssh-ng://host x86_64-linux /key 8 1 big-parallel', machines separated by ';') or @FILE (default: builders from nix.conf or NIX_CONFIG); ssh options such as the port come from NIX_SSHOPTS")
	f.Var(&o.LocalJobs, "local-jobs", "build at most `N` derivations on this machine (nix --max-jobs, overrides --jobs for builds); 0 sends every build to the remote builders")
}

var errBuildersInContainer = clierr.Usagef("--builders needs --engine host: the builders' ssh keys and known hosts are on this machine, not in the Dagger container")

// validateScale checks --builders, --local-jobs and --shard before
// anything runs.
func (o *BuildOptions) validateScale() error {
	if o.Shard != "" {
		if _, err := build.ParseShard(o.Shard); err != nil {
			return err
		}
	}
	if o.ShardPlan != "" && o.Shard == "" {
		return clierr.Usagef("--shard-plan needs --shard I/N")
	}
	if o.LocalJobs.Given && o.LocalJobs.N < 0 {
		return clierr.Usagef("--local-jobs %d: give 0 (every build on remote builders) or more", o.LocalJobs.N)
	}
	spec := strings.TrimSpace(o.Builders)
	if spec == "" {
		return nil
	}
	if o.Engine == engine.KindDagger {
		return errBuildersInContainer
	}
	if file, ok := strings.CutPrefix(spec, "@"); ok {
		data, err := os.ReadFile(file)
		if err != nil {
			return clierr.Usagef("--builders @%s: %v: give a readable machines file in nix's machine syntax", file, err)
		}
		spec = string(data)
	}
	if len(build.ParseBuilders(spec)) == 0 {
		return clierr.Usagef("--builders %q names no machine: give nix's machine syntax, e.g. 'ssh-ng://builder x86_64-linux /root/.ssh/id_ed25519 8 1 big-parallel', or @FILE", o.Builders)
	}
	return nil
}

// remote turns the flags into the build's remote options. NIX_SSHOPTS is
// handed to nix explicitly: it carries the builders' ssh port and options.
func (o *BuildOptions) remote(eng engine.Engine, io *IO) (build.Remote, error) {
	r := build.Remote{Builders: strings.TrimSpace(o.Builders)}
	if o.LocalJobs.Given {
		n := o.LocalJobs.N
		r.LocalJobs = &n
	}
	if r.Builders != "" && eng.Name() == engine.KindDagger {
		return r, errBuildersInContainer
	}
	if v := io.Getenv("NIX_SSHOPTS"); v != "" {
		r.Env = map[string]string{"NIX_SSHOPTS": v}
	}
	// Name where builds go, never the machines themselves (the list may
	// come from a secret).
	if r.Builders != "" || r.LocalJobs != nil {
		where := "nix's configured builders"
		switch {
		case strings.HasPrefix(r.Builders, "@"):
			where = "the machines file " + strings.TrimPrefix(r.Builders, "@")
		case r.Builders != "":
			where = fmt.Sprintf("%d machines of --builders", len(build.ParseBuilders(r.Builders)))
		}
		local := "up to nix's max-jobs"
		if r.LocalJobs != nil {
			local = strconv.Itoa(*r.LocalJobs)
		}
		fmt.Fprintf(io.Err, "ci build: remote builders: %s; builds on this machine: %s\n", where, local)
	}
	return r, nil
}

// shard is the validated --shard (zero: every output).
func (o *BuildOptions) shard() build.Shard {
	s, _ := build.ParseShard(o.Shard)
	return s
}
