package modules

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/testlib"
)

// evalLib evaluates expr with `lib` bound to nix/lib.nix's helpers (which use
// only builtins, so no nixpkgs is needed) and decodes the JSON result.
func evalLib(t *testing.T, expr string, out any) {
	t.Helper()
	testlib.CheckPath(t, "nix-instantiate")
	libPath := filepath.Join(testlib.RepoRoot(t), "nix", "lib.nix")
	full := "let ipex = import " + strconv.Quote(libPath) + " { lib = { }; }; in " + expr
	cmd := exec.CommandContext(t.Context(), "nix-instantiate", "--eval", "--strict", "--json", "-E", full)
	cmd.Env = append(os.Environ(), "NIX_STATE_DIR="+t.TempDir(), "NIX_REMOTE=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "nix-instantiate -E %s: %s", expr, stderr.String())
	require.NoError(t, json.Unmarshal(stdout.Bytes(), out), stdout.String())
}

func nixList(items ...string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return "[ " + strings.Join(q, " ") + " ]"
}

func TestDeviceSelectorFollowsOrder(t *testing.T) {
	tests := []struct {
		name      string
		devices   []string
		openclCPU bool
		want      string
	}{
		{name: "gpu then cpu with a CPU runtime", devices: []string{"gpu", "cpu"}, openclCPU: true, want: "level_zero:gpu;opencl:cpu"},
		{name: "cpu then gpu with a CPU runtime", devices: []string{"cpu", "gpu"}, openclCPU: true, want: "opencl:cpu;level_zero:gpu"},
		{name: "no CPU runtime: cpu selects no SYCL device", devices: []string{"cpu", "gpu"}, want: "level_zero:gpu"},
		{name: "gpu only", devices: []string{"gpu"}, want: "level_zero:gpu"},
		{name: "cpu only without runtime discards SYCL devices", devices: []string{"cpu"}, want: "!level_zero:*;!opencl:*"},
		{name: "cpu only with runtime", devices: []string{"cpu"}, openclCPU: true, want: "opencl:cpu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			evalLib(t, "ipex.deviceSelector { devices = "+nixList(tt.devices...)+"; openclCpu = "+strconv.FormatBool(tt.openclCPU)+"; }", &got)
			assert.Equal(t, tt.want, got)
			if !tt.openclCPU {
				assert.NotContains(t, strings.Split(got, ";"), "opencl:cpu", "opencl:cpu only with an installed CPU runtime")
			}
		})
	}
}

func TestIsPathInsideComparesComponents(t *testing.T) {
	tests := []struct {
		dir, path string
		want      bool
	}{
		{"/var/lib/ollama-ipex", "/var/lib/ollama-ipex/models", true},
		{"/var/lib/ollama-ipex", "/var/lib/ollama-ipex", true},
		{"/var/lib/ollama-ipex/", "/var/lib//ollama-ipex/models/", true},
		{"/var/lib/ollama-ipex", "/var/lib/ollama-ipex2", false},
		{"/var/lib/ollama-ipex", "/var/lib/ollama-ipex2/models", false},
		{"/var/lib/ollama-ipex", "/var/lib", false},
		{"/var/lib/comfyui-ipex", "/srv/models", false},
		{"/nix/store", "/nix/store-models", false},
	}
	for _, tt := range tests {
		t.Run(tt.dir+" "+tt.path, func(t *testing.T) {
			var got bool
			evalLib(t, "ipex.isPathInside "+strconv.Quote(tt.dir)+" "+strconv.Quote(tt.path), &got)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestRelativePath(t *testing.T) {
	var got []string
	evalLib(t, `[ (ipex.relativePath "/var/lib/ollama-ipex" "/var/lib/ollama-ipex/models")
	              (ipex.relativePath "/var/lib/comfyui-ipex/" "/var/lib/comfyui-ipex//a/b/")
	              (ipex.relativePath "/var/lib/ollama-ipex" "/var/lib/ollama-ipex") ]`, &got)
	assert.Equal(t, []string{"models", "a/b", ""}, got)
}

func TestWildcardAndLocalAddress(t *testing.T) {
	tests := []struct {
		host      string
		wildcard  bool
		localAddr string
	}{
		{"0.0.0.0", true, "127.0.0.1"},
		{"::", true, "[::1]"},
		{"[::]", true, "[::1]"},
		{"0:0:0:0:0:0:0:0", true, "[::1]"},
		{"", true, "127.0.0.1"},
		{"127.0.0.1", false, "127.0.0.1"},
		{"::1", false, "[::1]"},
		{"[::1]", false, "[::1]"},
		{"10.0.0.5", false, "10.0.0.5"},
		{"fd00::5", false, "[fd00::5]"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			var got struct {
				Wildcard bool   `json:"wildcard"`
				Local    string `json:"local"`
			}
			h := strconv.Quote(tt.host)
			evalLib(t, "{ wildcard = ipex.isWildcardAddress "+h+"; local = ipex.localAddress "+h+"; }", &got)
			assert.Equal(t, tt.wildcard, got.Wildcard, "isWildcardAddress")
			assert.Equal(t, tt.localAddr, got.Local, "localAddress")
		})
	}
}

func TestWorldWritable(t *testing.T) {
	tests := []struct {
		mode string
		want bool
	}{
		{"1777", true}, {"0777", true}, {"0666", true}, {"0002", true}, {"0003", true},
		{"2770", false}, {"0755", false}, {"0700", false}, {"0644", false}, {"-", false},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			var got bool
			evalLib(t, "ipex.worldWritable "+strconv.Quote(tt.mode), &got)
			assert.Equal(t, tt.want, got)
		})
	}
}
