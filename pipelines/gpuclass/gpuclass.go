// Package gpuclass reads the GPU compatibility matrix: the classes of Intel
// GPU that maintainers run self-hosted runners for (ci/gpu-classes.json),
// the runner labels of each, and which classes the beta and stable gates
// require. `ci matrix` emits one integration and one performance job per
// class, `ci test --gpu-class` records their results as STAGE@CLASS, the
// gates require the classes named here, and the release notes show the
// class × stage table.
package gpuclass

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
)

// DefaultPath is the file, relative to the repository root.
const DefaultPath = "ci/gpu-classes.json"

// Stages are the stages that run once per GPU class.
var Stages = []string{"integration", "performance"}

// Class is one registered GPU class.
type Class struct {
	// Name is the class and its runner label, e.g. intel-gpu-arc-a.
	Name string `json:"name"`
	// Description says which GPUs belong to it.
	Description string `json:"description,omitempty"`
	// Labels are extra runner labels (besides self-hosted, linux, the
	// architecture, intel-gpu and Name).
	Labels []string `json:"labels,omitempty"`
}

// Config is the content of the file.
type Config struct {
	Classes []Class `json:"classes"`
	// Required maps a channel (beta, stable) to the classes whose
	// integration (beta) or integration and performance (stable) results
	// must have passed.
	Required map[string][]string `json:"required,omitempty"`
}

var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Load reads and checks the file at path. A missing file is (nil, nil)
// when optional is true.
func Load(path string, optional bool) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && optional {
		return nil, nil
	}
	if err != nil {
		return nil, clierr.Usagef("GPU classes: %v: pass the file that registers them (default %s)", err, DefaultPath)
	}
	return Parse(data, path)
}

// Parse reads and checks the file's content; errors name the fix.
func Parse(data []byte, source string) (*Config, error) {
	var c Config
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, clierr.Usagef("%s: %v: write {\"classes\":[{\"name\":\"intel-gpu-arc-a\"}],\"required\":{\"beta\":[\"intel-gpu-arc-a\"]}}", source, err)
	}
	seen := map[string]bool{}
	for i, cl := range c.Classes {
		if !nameRe.MatchString(cl.Name) {
			return nil, clierr.Usagef("%s: class %d: name %q must be a runner label: lowercase letters, digits and dashes, e.g. intel-gpu-arc-a", source, i+1, cl.Name)
		}
		if seen[cl.Name] {
			return nil, clierr.Usagef("%s: class %s is registered twice: remove one", source, cl.Name)
		}
		seen[cl.Name] = true
		for _, l := range cl.Labels {
			if strings.TrimSpace(l) == "" || strings.ContainsAny(l, ", ") {
				return nil, clierr.Usagef("%s: class %s: label %q must be one runner label without spaces or commas", source, cl.Name, l)
			}
		}
	}
	for ch, names := range c.Required {
		if ch != "beta" && ch != "stable" {
			return nil, clierr.Usagef("%s: required.%s: only the beta and stable gates take GPU classes", source, ch)
		}
		for _, n := range names {
			if !seen[n] {
				return nil, clierr.Usagef("%s: required.%s names %q, which is not a registered class (%s): add it to classes or remove it", source, ch, n, strings.Join(c.Names(), ", "))
			}
		}
	}
	return &c, nil
}

// Names returns the class names in file order.
func (c *Config) Names() []string {
	if c == nil {
		return nil
	}
	out := make([]string, len(c.Classes))
	for i, cl := range c.Classes {
		out[i] = cl.Name
	}
	return out
}

// Lookup returns the class named name.
func (c *Config) Lookup(name string) (Class, bool) {
	if c != nil {
		for _, cl := range c.Classes {
			if cl.Name == name {
				return cl, true
			}
		}
	}
	return Class{}, false
}

// RunsOn returns the runner labels of a class's jobs on a runner
// architecture label (x64, ARM64).
func (cl Class) RunsOn(arch string) []string {
	labels := []string{"self-hosted", "linux", arch, "intel-gpu", cl.Name}
	for _, l := range cl.Labels {
		if !slices.Contains(labels, l) {
			labels = append(labels, l)
		}
	}
	return labels
}

// StageName is the name a stage's result is recorded under for a class:
// integration@intel-gpu-arc-a.
func StageName(stage, class string) string {
	if class == "" {
		return stage
	}
	return stage + "@" + class
}

// SplitStageName splits integration@intel-gpu-arc-a into its stage and
// class (class "" for a plain stage).
func SplitStageName(name string) (stage, class string) {
	stage, class, _ = strings.Cut(name, "@")
	return stage, class
}

// RequiredStages returns the per-class stage results a channel's gate
// needs: beta needs integration on each of its classes, stable integration
// and performance on each of its.
func (c *Config) RequiredStages(channel string) []string {
	if c == nil {
		return nil
	}
	var stages []string
	switch channel {
	case "beta":
		stages = []string{"integration"}
	case "stable":
		stages = Stages
	default:
		return nil
	}
	var out []string
	for _, cl := range c.Required[channel] {
		for _, s := range stages {
			out = append(out, StageName(s, cl))
		}
	}
	return out
}

// Validate checks a --gpu-class value against the file.
func (c *Config) Validate(class string) error {
	if class == "" {
		return nil
	}
	if c == nil {
		return clierr.Usagef("--gpu-class %s: no GPU classes are registered: add %s", class, DefaultPath)
	}
	if _, ok := c.Lookup(class); !ok {
		return clierr.Usagef("--gpu-class %q is not registered in %s: use one of %s", class, DefaultPath, strings.Join(c.Names(), ", "))
	}
	return nil
}

// String renders a class list for messages.
func (c *Config) String() string { return fmt.Sprintf("GPU classes %s", strings.Join(c.Names(), ", ")) }
