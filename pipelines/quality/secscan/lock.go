package secscan

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/ipex-flake/ipex-flake/internal/nixstr"
)

// lockFile is the part of flake.lock (version 7) the audit reads.
type lockFile struct {
	Version int                 `json:"version"`
	Root    string              `json:"root"`
	Nodes   map[string]lockNode `json:"nodes"`
}

type lockNode struct {
	// Inputs map an input name to a node name, or to a follows path.
	Inputs   map[string]json.RawMessage `json:"inputs"`
	Locked   map[string]any             `json:"locked"`
	Original map[string]any             `json:"original"`
}

var inputsRe = regexp.MustCompile(`(?m)^\s*inputs\b`)

// AuditLock audits dir/flake.lock: a missing lock (when flake.nix has
// inputs), inputs not locked to a hash, inputs older than maxAge,
// inputs resolved through the registry or tracking a default branch, and
// every nixpkgs beyond the flake's own (one finding per extra nixpkgs
// node, naming the input path and the `follows` line that removes it).
// Only nodes the root really reaches count: follows paths are resolved,
// and nodes nothing points at are ignored.
func AuditLock(dir string, maxAge time.Duration, now time.Time) ([]Finding, error) {
	nixText, err := os.ReadFile(filepath.Join(dir, "flake.nix"))
	if err != nil {
		return nil, fmt.Errorf("no flake.nix in %s", dir)
	}
	data, err := os.ReadFile(filepath.Join(dir, "flake.lock"))
	if errors.Is(err, os.ErrNotExist) {
		if inputsRe.Match(nixText) {
			return []Finding{{Scanner: "flake-lock", Rule: "missing-lock", Severity: High, File: "flake.lock",
				Message: "flake.nix has inputs but there is no flake.lock: run `nix flake lock` and commit it"}}, nil
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var lf lockFile
	if err := json.Unmarshal(data, &lf); err != nil {
		return []Finding{{Scanner: "flake-lock", Rule: "corrupt-lock", Severity: High, File: "flake.lock",
			Message: "flake.lock is not valid JSON: run `nix flake lock`"}}, nil
	}
	g := newLockGraph(lf)
	reach := g.reachable()
	names := make([]string, 0, len(reach))
	for n := range reach {
		if n != g.root {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var out []Finding
	add := func(sev Severity, rule, node, msg string) {
		out = append(out, Finding{Scanner: "flake-lock", Rule: rule, Severity: sev, File: "flake.lock", Message: node + ": " + msg})
	}
	for _, name := range names {
		n := lf.Nodes[name]
		if _, ok := n.Locked["narHash"]; !ok {
			add(High, "unlocked-input", name, "not locked to a narHash: run `nix flake lock`")
		}
		if lm, ok := n.Locked["lastModified"].(float64); ok && maxAge > 0 {
			age := now.Sub(time.Unix(int64(lm), 0))
			if age > maxAge {
				add(Medium, "stale-input", name, fmt.Sprintf("locked revision is %d days old (limit %d): run `nix flake update %s`",
					int(age.Hours()/24), int(maxAge.Hours()/24), name))
			}
		}
		switch n.Original["type"] {
		case "indirect":
			add(Medium, "registry-input", name, "resolved through the flake registry: give a full URL such as github:owner/repo")
		case "github", "gitlab", "sourcehut", "git", "mercurial":
			_, ref := n.Original["ref"]
			_, rev := n.Original["rev"]
			if !ref && !rev {
				add(Low, "unpinned-ref", name, "tracks the default branch: name a branch or tag (ref) in flake.nix")
			}
		}
	}
	for _, np := range g.extraNixpkgs(reach) {
		msg := fmt.Sprintf("a second nixpkgs, reached as input %s: add %s to flake.nix", strings.Join(np.Path, "/"), followsLine(np.Path))
		if len(np.Path) > 2 {
			msg += fmt.Sprintf(" (a Nix without deep overrides, before NixOS/nix#13400, needs %s declared as a top-level input whose nixpkgs follows and %s.follows pointing at it)",
				np.Path[len(np.Path)-2], strings.TrimSuffix(followsLine(np.Path[:len(np.Path)-1]), `.follows = "nixpkgs"`))
		}
		add(Medium, "nixpkgs-not-followed", np.Node, msg)
	}
	return out, nil
}

// NixpkgsNode is a nixpkgs node of a flake.lock that the root reaches.
type NixpkgsNode struct {
	// Node is the node's name in flake.lock.
	Node string
	// Path is the shortest input path from the root that reaches it, e.g.
	// [mordrag-nixos vaultix nixpkgs].
	Path []string
}

// LockNixpkgs returns the nixpkgs nodes of a flake.lock that are really
// used: reachable from the root through the inputs, with every follows
// path resolved as nix resolves it (from the root, one input name at a
// time). Nodes nothing reaches are not counted. The node the root's own
// `nixpkgs` input resolves to comes first.
func LockNixpkgs(data []byte) ([]NixpkgsNode, error) {
	var lf lockFile
	if err := json.Unmarshal(data, &lf); err != nil {
		return nil, fmt.Errorf("flake.lock is not valid JSON: %w", err)
	}
	g := newLockGraph(lf)
	reach := g.reachable()
	var out []NixpkgsNode
	if own := g.rootNixpkgs(); own != "" {
		out = append(out, NixpkgsNode{Node: own, Path: reach[own]})
	}
	return append(out, g.extraNixpkgs(reach)...), nil
}

// lockGraph resolves the inputs of a flake.lock.
type lockGraph struct {
	nodes map[string]lockNode
	root  string
}

func newLockGraph(lf lockFile) lockGraph {
	root := lf.Root
	if root == "" {
		root = "root"
	}
	return lockGraph{nodes: lf.Nodes, root: root}
}

// maxFollowsDepth bounds follows chains, so a corrupt lock with a cycle
// ends.
const maxFollowsDepth = 64

// resolve returns the node an input edge points at: a node name, or a
// follows path walked from the root. "" when it leads nowhere.
func (g lockGraph) resolve(edge json.RawMessage, depth int) string {
	if depth > maxFollowsDepth {
		return ""
	}
	var name string
	if json.Unmarshal(edge, &name) == nil {
		if _, ok := g.nodes[name]; ok {
			return name
		}
		return ""
	}
	var path []string
	if json.Unmarshal(edge, &path) != nil {
		return ""
	}
	cur := g.root
	for _, in := range path {
		next, ok := g.nodes[cur].Inputs[in]
		if !ok {
			return ""
		}
		if cur = g.resolve(next, depth+1); cur == "" {
			return ""
		}
	}
	return cur
}

// reachable maps every node the root reaches to the shortest input path
// that reaches it (breadth first, inputs in name order).
func (g lockGraph) reachable() map[string][]string {
	seen := map[string][]string{g.root: nil}
	queue := []string{g.root}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		ins := make([]string, 0, len(g.nodes[cur].Inputs))
		for in := range g.nodes[cur].Inputs {
			ins = append(ins, in)
		}
		sort.Strings(ins)
		for _, in := range ins {
			next := g.resolve(g.nodes[cur].Inputs[in], 0)
			if next == "" {
				continue
			}
			if _, ok := seen[next]; ok {
				continue
			}
			seen[next] = append(append([]string{}, seen[cur]...), in)
			queue = append(queue, next)
		}
	}
	return seen
}

// rootNixpkgs is the node the root's `nixpkgs` input resolves to.
func (g lockGraph) rootNixpkgs() string {
	edge, ok := g.nodes[g.root].Inputs["nixpkgs"]
	if !ok {
		return ""
	}
	return g.resolve(edge, 0)
}

// extraNixpkgs returns the reachable nixpkgs nodes beyond the one the
// flake itself uses (the root's nixpkgs, or without one the nearest),
// nearest first.
func (g lockGraph) extraNixpkgs(reach map[string][]string) []NixpkgsNode {
	var all []NixpkgsNode
	for name, path := range reach {
		if name != g.root && isNixpkgs(g.nodes[name]) {
			all = append(all, NixpkgsNode{Node: name, Path: path})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if len(all[i].Path) != len(all[j].Path) {
			return len(all[i].Path) < len(all[j].Path)
		}
		return strings.Join(all[i].Path, "/") < strings.Join(all[j].Path, "/")
	})
	own := g.rootNixpkgs()
	if own == "" && len(all) > 0 {
		own = all[0].Node
	}
	var out []NixpkgsNode
	for _, n := range all {
		if n.Node != own {
			out = append(out, n)
		}
	}
	return out
}

// isNixpkgs reports whether a node is a copy of nixpkgs: a forge
// repository named nixpkgs, the registry's nixpkgs, a git URL ending in
// /nixpkgs, or a nixos.org channel tarball. nixpkgs.lib (the library only)
// is not one.
func isNixpkgs(n lockNode) bool {
	for _, m := range []map[string]any{n.Original, n.Locked} {
		str := func(k string) string { s, _ := m[k].(string); return s }
		switch str("type") {
		case "github", "gitlab", "sourcehut":
			if strings.EqualFold(str("repo"), "nixpkgs") {
				return true
			}
		case "indirect":
			if str("id") == "nixpkgs" {
				return true
			}
		case "git":
			u := strings.TrimSuffix(strings.TrimSuffix(str("url"), "/"), ".git")
			if strings.HasSuffix(strings.ToLower(u), "/nixpkgs") {
				return true
			}
		case "tarball", "file":
			u := strings.ToLower(str("url"))
			if strings.Contains(u, "/nixpkgs/archive/") || strings.Contains(u, "nixos.org/") && strings.Contains(u, "nixexprs") {
				return true
			}
		}
	}
	return false
}

// followsLine is the flake.nix line that makes the input at path follow
// the root's nixpkgs.
func followsLine(path []string) string {
	parts := make([]string, len(path))
	for i, p := range path {
		parts[i] = "inputs." + nixstr.Attr(p)
	}
	return strings.Join(parts, ".") + `.follows = "nixpkgs"`
}
