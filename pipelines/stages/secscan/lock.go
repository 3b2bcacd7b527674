package secscan

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"
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
// inputs that bring their own nixpkgs instead of following the flake's,
// and inputs resolved through the registry or tracking a default branch.
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
	rootName := lf.Root
	if rootName == "" {
		rootName = "root"
	}
	root := lf.Nodes[rootName]
	rootNixpkgs := ""
	if raw, ok := root.Inputs["nixpkgs"]; ok {
		_ = json.Unmarshal(raw, &rootNixpkgs)
	}
	names := make([]string, 0, len(lf.Nodes))
	for n := range lf.Nodes {
		if n != rootName {
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
		if name == rootNixpkgs {
			continue
		}
		// An input with its own nixpkgs node (a string, not a follows
		// path) evaluates a second nixpkgs.
		if raw, ok := n.Inputs["nixpkgs"]; ok && rootNixpkgs != "" {
			var target string
			if json.Unmarshal(raw, &target) == nil && target != rootNixpkgs {
				add(Medium, "nixpkgs-not-followed", name,
					fmt.Sprintf("brings its own nixpkgs (%s): add inputs.%s.inputs.nixpkgs.follows = \"nixpkgs\"", target, name))
			}
		}
	}
	return out, nil
}
