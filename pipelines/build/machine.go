package build

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
)

// Machine is what the engine's nix can build: its systems and features,
// including those of its remote builders.
type Machine struct {
	Version        nixcli.Version
	System         string
	ExtraPlatforms []string
	Features       []string
	Builders       []Builder
	// MaxJobsSet is true when nix.conf sets max-jobs (not nix's default).
	MaxJobsSet bool
	// NoLocal is true when nothing builds on this machine (--local-jobs 0).
	NoLocal bool
}

// Builder is one remote build machine from nix's `builders` setting.
type Builder struct {
	URI      string
	Systems  []string
	Features []string
}

// ProbeMachine asks the engine's nix for its version and configuration.
func ProbeMachine(ctx context.Context, eng engine.Engine) (*Machine, error) {
	var out, errb bytes.Buffer
	res, err := eng.Run(ctx, engine.Cmd{Args: []string{"nix", "--version"}, Stdout: &out, Stderr: &errb})
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("nix --version failed: %s", CleanNixError(errb.String()))
	}
	v, err := nixcli.ParseVersion(out.String())
	if err != nil {
		return nil, err
	}
	sub := []string{"show-config", "--json"}
	if v.AtLeast(2, 20) {
		sub = []string{"config", "show", "--json"}
	}
	out.Reset()
	errb.Reset()
	res, err = eng.Run(ctx, engine.Cmd{Args: nixcli.Nix(sub...), Stdout: &out, Stderr: &errb})
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("nix %s failed: %s", strings.Join(sub, " "), CleanNixError(errb.String()))
	}
	m, err := parseConfig(out.Bytes())
	if err != nil {
		return nil, err
	}
	m.Version = v
	if spec, ok := strings.CutPrefix(builderSpec(out.Bytes()), "@"); ok {
		var file bytes.Buffer
		if r, err := eng.Run(ctx, engine.Cmd{Args: []string{"cat", spec}, Stdout: &file, Stderr: &bytes.Buffer{}}); err == nil && r.ExitCode == 0 {
			m.Builders = ParseBuilders(file.String())
		}
	} else {
		m.Builders = ParseBuilders(spec)
	}
	return m, nil
}

// setting reads one value of `nix show-config --json`, which is either the
// value itself (old nix) or {"value": …}.
func setting(raw json.RawMessage, into any) {
	var wrapped struct {
		Value json.RawMessage `json:"value"`
	}
	if json.Unmarshal(raw, &wrapped) == nil && wrapped.Value != nil {
		raw = wrapped.Value
	}
	if json.Unmarshal(raw, into) != nil {
		// Lists are sometimes printed as one space-separated string.
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if l, ok := into.(*[]string); ok {
				*l = strings.Fields(s)
			}
		}
	}
}

func parseConfig(data []byte) (*Machine, error) {
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("reading nix configuration: %w", err)
	}
	m := &Machine{}
	setting(cfg["system"], &m.System)
	setting(cfg["extra-platforms"], &m.ExtraPlatforms)
	setting(cfg["system-features"], &m.Features)
	m.MaxJobsSet = isSet(cfg["max-jobs"])
	if m.System == "" {
		return nil, fmt.Errorf("nix configuration has no system")
	}
	return m, nil
}

// isSet reports whether a setting's value differs from its default; old nix
// prints no defaults, and then the value counts as set.
func isSet(raw json.RawMessage) bool {
	var v struct {
		Value        json.RawMessage `json:"value"`
		DefaultValue json.RawMessage `json:"defaultValue"`
	}
	if json.Unmarshal(raw, &v) != nil || v.Value == nil || v.DefaultValue == nil {
		return raw != nil
	}
	return string(v.Value) != string(v.DefaultValue)
}

func builderSpec(data []byte) string {
	var cfg map[string]json.RawMessage
	if json.Unmarshal(data, &cfg) != nil {
		return ""
	}
	var s string
	setting(cfg["builders"], &s)
	return strings.TrimSpace(s)
}

// ParseBuilders reads nix's machine specification: one machine per line or
// per ';', fields URI, systems, key, max-jobs, speed, supported features,
// mandatory features, host key ("-" for none).
func ParseBuilders(spec string) []Builder {
	var out []Builder
	for _, line := range strings.FieldsFunc(spec, func(r rune) bool { return r == '\n' || r == ';' }) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		b := Builder{URI: f[0]}
		if len(f) > 1 && f[1] != "-" {
			b.Systems = strings.Split(f[1], ",")
		}
		for _, i := range []int{5, 6} {
			if len(f) > i && f[i] != "-" {
				b.Features = append(b.Features, strings.Split(f[i], ",")...)
			}
		}
		out = append(out, b)
	}
	return out
}

// CanBuild says whether a derivation for system with the required features
// can be built here or on a remote builder, and if not, why.
func (m *Machine) CanBuild(system string, features []string) (bool, string) {
	local := system == m.System || slices.Contains(m.ExtraPlatforms, system)
	if local && !m.NoLocal && hasAll(m.Features, features) {
		return true, ""
	}
	for _, b := range m.Builders {
		if (len(b.Systems) == 0 && system == m.System || slices.Contains(b.Systems, system)) && hasAll(b.Features, features) {
			return true, ""
		}
	}
	if m.NoLocal {
		return false, noBuilderReason(system, features)
	}
	if !local && !m.anyBuilderFor(system) {
		return false, fmt.Sprintf("system %s cannot be built on this machine (%s); add a remote builder for it (nix --builders) or build on a %s machine", system, m.platforms(), system)
	}
	var missing []string
	for _, f := range features {
		if !slices.Contains(m.Features, f) {
			missing = append(missing, f)
		}
	}
	return false, fmt.Sprintf("requires system features %s that this machine lacks (system-features: %s)", strings.Join(missing, ", "), strings.Join(m.Features, " "))
}

func (m *Machine) anyBuilderFor(system string) bool {
	for _, b := range m.Builders {
		if slices.Contains(b.Systems, system) {
			return true
		}
	}
	return false
}

func (m *Machine) platforms() string {
	return strings.Join(append([]string{m.System}, m.ExtraPlatforms...), ", ")
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
