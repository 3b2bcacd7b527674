package build

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/pipelines/engine"
)

// BuilderLocal is the report's builder of an output built on the machine
// that ran nix itself.
const BuilderLocal = "local"

// Remote sends builds to Nix remote builders. Nix does the scheduling: it
// routes each derivation by system and requiredSystemFeatures to a machine
// from its `builders` setting (nix.conf, NIX_CONFIG or Builders here).
type Remote struct {
	// Builders is nix's machine specification (one machine per line or
	// per ';', or "@FILE"); "" keeps nix's own setting.
	Builders string
	// LocalJobs is the number of builds nix runs on this machine (nix
	// --max-jobs); 0 sends every build to the remote builders; nil leaves
	// it to Options.Jobs.
	LocalJobs *int
	// Env is given to nix build, e.g. NIX_SSHOPTS with the builders' ssh
	// port or config file.
	Env map[string]string
}

// remoteArgs are the options added to `nix build`; they come after
// --max-jobs from Options.Jobs, and nix keeps the last value.
func (r Remote) remoteArgs() []string {
	var args []string
	if r.Builders != "" {
		args = append(args, "--builders", r.Builders)
	}
	if r.LocalJobs != nil {
		args = append(args, "--max-jobs", strconv.Itoa(*r.LocalJobs))
	}
	return args
}

// applyRemote makes the machine's view match the remote options: builders
// given here replace those of nix's configuration, and with no local jobs
// only the builders count. It fails when nothing could build anything.
func applyRemote(ctx context.Context, eng engine.Engine, m *Machine, r Remote) error {
	if spec := strings.TrimSpace(r.Builders); spec != "" {
		if file, ok := strings.CutPrefix(spec, "@"); ok {
			var out, errb bytes.Buffer
			res, err := eng.Run(ctx, engine.Cmd{Args: []string{"cat", file}, Stdout: &out, Stderr: &errb})
			if err != nil {
				return err
			}
			if res.ExitCode != 0 {
				return clierr.Usagef("--builders @%s: cannot read the machines file: %s", file, strings.TrimSpace(errb.String()))
			}
			spec = out.String()
		}
		m.Builders = ParseBuilders(spec)
		if len(m.Builders) == 0 {
			return clierr.Usagef("--builders %q names no machine: give nix's machine syntax, e.g. 'ssh-ng://builder x86_64-linux /root/.ssh/id_ed25519 8 1 big-parallel', or @FILE", r.Builders)
		}
	}
	if r.LocalJobs != nil && *r.LocalJobs == 0 {
		m.NoLocal = true
		if len(m.Builders) == 0 {
			return clierr.Usagef("--local-jobs 0 builds nothing on this machine, and nix has no remote builders: pass --builders SPEC (or @FILE), or set builders in nix.conf or NIX_CONFIG")
		}
	}
	return nil
}

// noteBuilder records which machine builds a derivation, from the fields of
// nix's build activity: [drvPath, machine, round, rounds]. Nix names the
// remote machine in its own activity, and the remote side's activity for
// the same derivation comes with an empty machine: the first name wins.
func (p *eventParser) noteBuilder(drv string, fields []json.RawMessage) {
	if p.Builders == nil {
		p.Builders = map[string]string{}
	}
	var machine string
	if len(fields) > 1 {
		_ = json.Unmarshal(fields[1], &machine)
	}
	if machine == "" {
		if _, seen := p.Builders[drv]; !seen {
			p.Builders[drv] = BuilderLocal
		}
		return
	}
	if cur := p.Builders[drv]; cur == "" || cur == BuilderLocal {
		p.Builders[drv] = machine
	}
}

// explainRemote rewrites the failures of derivations that were being built
// on a remote builder when nix lost it. Nix then reports the build hook's
// exit ("builder for 'X' failed with exit code 1") and, apart, the
// connection's error ("unexpected end-of-file"); a failure on the builder
// itself reads "build of 'X' on 'URI' failed: …" and is kept.
func (p *eventParser) explainRemote() {
	for drv, msg := range p.Failed {
		machine := p.Builders[drv]
		if machine == "" || machine == BuilderLocal || strings.Contains(msg, "' on '") {
			continue
		}
		cause := "the connection ended"
		if len(p.Other) > 0 {
			cause = strings.Join(p.Other, "; ")
		}
		p.Failed[drv] = "lost remote builder " + machine + " during the build (" + cause + "): " + msg + "; rerun when the builder is reachable"
	}
}

// noBuilderReason says why an output is skipped when nothing builds on this
// machine and no remote builder takes it.
func noBuilderReason(system string, features []string) string {
	want := system
	if len(features) > 0 {
		want += " with system features " + strings.Join(features, ", ")
	}
	return "no remote builder takes " + want + ", and --local-jobs 0 builds nothing on this machine: add a builder for it (--builders) or allow local builds"
}
