package secscan

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The testdata locks have the shape of this flake's lock on top of
// github:MordragT/nixos at 6442b7e0 (its flake.lock's node names and
// inputs, our root with nixpkgs, mordrag-nixos and home-manager; locked
// hashes replaced by fixture values). Without nested follows, vaultix's
// nixpkgs, nixos-anywhere's nixos-stable and nix-templates' implicit
// nixpkgs are three more copies. upstream-with-follows.lock is what
// flake.nix produces (those inputs follow top-level mordrag-* inputs whose
// nixpkgs follows ours); upstream-with-deep-follows.lock is what
// inputs.mordrag-nixos.inputs.vaultix.inputs.nixpkgs.follows & co. produce
// on a Nix that supports deep overrides.
func TestLockNixpkgsUpstreamShape(t *testing.T) {
	tests := []struct {
		file  string
		nodes []string
		paths []string
	}{
		{
			file:  "upstream-without-follows.lock",
			nodes: []string{"nixpkgs", "nixos-stable", "nixpkgs_2", "nixpkgs_3"},
			paths: []string{"nixpkgs", "mordrag-nixos/nixos-anywhere/nixos-stable", "mordrag-nixos/templates/nixpkgs", "mordrag-nixos/vaultix/nixpkgs"},
		},
		{
			file:  "upstream-with-follows.lock",
			nodes: []string{"nixpkgs"},
			paths: []string{"nixpkgs"},
		},
		{
			file:  "upstream-with-deep-follows.lock",
			nodes: []string{"nixpkgs"},
			paths: []string{"nixpkgs"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			require.NoError(t, err)
			got, err := LockNixpkgs(data)
			require.NoError(t, err)
			var nodes, paths []string
			for _, n := range got {
				nodes = append(nodes, n.Node)
				paths = append(paths, strings.Join(n.Path, "/"))
			}
			assert.Equal(t, tt.nodes, nodes)
			assert.Equal(t, tt.paths, paths)

			// The audit over the same lock: one finding per extra nixpkgs,
			// each naming the follows line that removes it.
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"flake.nix": "{\n  inputs.nixpkgs.url = \"github:NixOS/nixpkgs\";\n}\n", "flake.lock": string(data)})
			fs, err := AuditLock(dir, 0, time.Unix(1782700000, 0))
			require.NoError(t, err)
			var msgs []string
			for _, f := range fs {
				if f.Rule == "nixpkgs-not-followed" {
					msgs = append(msgs, f.Message)
				}
			}
			require.Len(t, msgs, len(tt.nodes)-1)
			for i, m := range msgs {
				path := got[i+1].Path
				assert.Contains(t, m, followsLine(path))
				assert.True(t, strings.HasPrefix(m, got[i+1].Node+": "), m)
			}
		})
	}
	assert.Equal(t, `inputs.mordrag-nixos.inputs.vaultix.inputs.nixpkgs.follows = "nixpkgs"`,
		followsLine([]string{"mordrag-nixos", "vaultix", "nixpkgs"}))
}

// lockJSON builds a flake.lock from node name → inputs; every node is a
// github input named like itself unless listed in nixpkgs.
func lockJSON(t *testing.T, inputs map[string]map[string]any, nixpkgs ...string) []byte {
	t.Helper()
	nodes := map[string]any{}
	for name, in := range inputs {
		n := map[string]any{"inputs": in}
		if name != "root" {
			repo := name
			for _, np := range nixpkgs {
				if np == name {
					repo = "nixpkgs"
				}
			}
			n["original"] = map[string]any{"type": "github", "owner": "o", "repo": repo, "ref": "main"}
			n["locked"] = map[string]any{"type": "github", "owner": "o", "repo": repo, "rev": "r", "narHash": "sha256-x"}
		}
		nodes[name] = n
	}
	data, err := json.Marshal(map[string]any{"version": 7, "root": "root", "nodes": nodes})
	require.NoError(t, err)
	return data
}

func TestLockNixpkgsGraph(t *testing.T) {
	tests := []struct {
		name   string
		inputs map[string]map[string]any
		np     []string
		want   []string // node names, the flake's own first
	}{
		{
			name: "unreachable nixpkgs node is not counted",
			inputs: map[string]map[string]any{
				"root":      {"nixpkgs": "nixpkgs", "a": "a"},
				"nixpkgs":   {},
				"a":         {"nixpkgs": []string{"nixpkgs"}},
				"nixpkgs_2": {},
				"orphan":    {"nixpkgs": "nixpkgs_2"},
			},
			np:   []string{"nixpkgs", "nixpkgs_2"},
			want: []string{"nixpkgs"},
		},
		{
			name: "follows through another follows",
			inputs: map[string]map[string]any{
				"root":      {"nixpkgs": "nixpkgs", "a": "a", "b": "b"},
				"nixpkgs":   {},
				"a":         {"nixpkgs": []string{"nixpkgs"}},
				"b":         {"nixpkgs": []string{"a", "nixpkgs"}, "c": "c"},
				"c":         {"nixpkgs": []string{"b", "nixpkgs"}},
				"nixpkgs_2": {},
			},
			np:   []string{"nixpkgs", "nixpkgs_2"},
			want: []string{"nixpkgs"},
		},
		{
			name: "an input not named nixpkgs that is one",
			inputs: map[string]map[string]any{
				"root":         {"nixpkgs": "nixpkgs", "a": "a"},
				"nixpkgs":      {},
				"a":            {"nixpkgs": []string{"nixpkgs"}, "nixos-stable": "nixos-stable", "images": "images"},
				"images":       {"nixos-stable": []string{"a", "nixos-stable"}},
				"nixos-stable": {},
			},
			np:   []string{"nixpkgs", "nixos-stable"},
			want: []string{"nixpkgs", "nixos-stable"},
		},
		{
			name: "follows cycle ends",
			inputs: map[string]map[string]any{
				"root":    {"nixpkgs": "nixpkgs", "a": "a"},
				"nixpkgs": {},
				"a":       {"x": []string{"a", "y"}, "y": []string{"a", "x"}},
			},
			np:   []string{"nixpkgs"},
			want: []string{"nixpkgs"},
		},
		{
			name: "no nixpkgs of its own: the nearest is the flake's",
			inputs: map[string]map[string]any{
				"root":      {"a": "a"},
				"a":         {"nixpkgs": "nixpkgs", "b": "b"},
				"b":         {"nixpkgs": "nixpkgs_2"},
				"nixpkgs":   {},
				"nixpkgs_2": {},
			},
			np:   []string{"nixpkgs", "nixpkgs_2"},
			want: []string{"nixpkgs_2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LockNixpkgs(lockJSON(t, tt.inputs, tt.np...))
			require.NoError(t, err)
			var names []string
			for _, n := range got {
				names = append(names, n.Node)
			}
			assert.Equal(t, tt.want, names)
		})
	}
	_, err := LockNixpkgs([]byte("{"))
	require.Error(t, err)
}

func TestIsNixpkgs(t *testing.T) {
	tests := []struct {
		original map[string]any
		want     bool
	}{
		{map[string]any{"type": "github", "owner": "NixOS", "repo": "nixpkgs"}, true},
		{map[string]any{"type": "indirect", "id": "nixpkgs", "ref": "nixos-unstable"}, true},
		{map[string]any{"type": "git", "url": "https://github.com/NixOS/nixpkgs.git"}, true},
		{map[string]any{"type": "tarball", "url": "https://releases.nixos.org/nixos/unstable/nixos-26.11pre1024265.b5aa0fbd5389/nixexprs.tar.xz"}, true},
		{map[string]any{"type": "tarball", "url": "https://github.com/NixOS/nixpkgs/archive/0123.tar.gz"}, true},
		{map[string]any{"type": "github", "owner": "nix-community", "repo": "nixpkgs.lib"}, false},
		{map[string]any{"type": "github", "owner": "nix-community", "repo": "home-manager"}, false},
		{map[string]any{"type": "indirect", "id": "flake-utils"}, false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, isNixpkgs(lockNode{Original: tt.original}), "%v", tt.original)
	}
}
