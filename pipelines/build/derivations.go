package build

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/ipex-flake/ipex-flake/pipelines/engine"
	"github.com/ipex-flake/ipex-flake/pipelines/nixcli"
)

// drvNode is one derivation of a closure as `nix derivation show -r` gives
// it: its input derivations, its output names, the output paths it names
// (a floating content-addressed output has none) and whether it is a
// fixed-output derivation (a download).
type drvNode struct {
	Inputs  []string
	Names   []string
	Outputs []string
	Fixed   bool
}

// showDerivations reads the closures of drvs with one
// `nix derivation show -r` (`nix show-derivation -r` before Nix 2.20).
func showDerivations(ctx context.Context, eng engine.Engine, v nixcli.Version, drvs []string) (map[string]drvNode, error) {
	sub := []string{"show-derivation", "-r"}
	if v.AtLeast(2, 20) {
		sub = []string{"derivation", "show", "-r"}
	}
	var out, errb bytes.Buffer
	res, err := eng.Run(ctx, engine.Cmd{Args: nixcli.Nix(append(sub, drvs...)...), Stdout: &out, Stderr: &errb})
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("nix %s: %s", strings.Join(sub, " "), CleanNixError(errb.String()))
	}
	return parseDrvNodes(out.Bytes())
}

// parseDrvNodes reads `nix derivation show` JSON; store paths are full or,
// in newer nix, base names.
func parseDrvNodes(data []byte) (map[string]drvNode, error) {
	var raw map[string]struct {
		InputDrvs map[string]json.RawMessage `json:"inputDrvs"`
		Outputs   map[string]struct {
			Path string `json:"path"`
			Hash string `json:"hash"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("reading the derivation graph: %w", err)
	}
	full := func(p string) string {
		if p == "" || strings.HasPrefix(p, "/") {
			return p
		}
		return "/nix/store/" + p
	}
	g := make(map[string]drvNode, len(raw))
	for d, v := range raw {
		var n drvNode
		for in := range v.InputDrvs {
			n.Inputs = append(n.Inputs, full(in))
		}
		sort.Strings(n.Inputs)
		for name, o := range v.Outputs {
			n.Names = append(n.Names, name)
			if p := full(o.Path); p != "" {
				n.Outputs = append(n.Outputs, p)
			}
			// A fixed output names its hash; a floating content-addressed
			// one only its algorithm, and is built.
			n.Fixed = n.Fixed || o.Hash != ""
		}
		sort.Strings(n.Names)
		sort.Strings(n.Outputs)
		g[full(d)] = n
	}
	return g, nil
}
