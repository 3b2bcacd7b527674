package modules

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/testlib"
)

// detectEnv is a fake machine for ipex-hardware-detect: sysfs, /dev, the
// output file, and a systemctl that records its arguments.
type detectEnv struct {
	sysfs, dev, out, calls, bin string
}

func newDetectEnv(t *testing.T) detectEnv {
	t.Helper()
	root := t.TempDir()
	e := detectEnv{
		sysfs: filepath.Join(root, "sys"),
		dev:   filepath.Join(root, "dev"),
		out:   filepath.Join(root, "run", "hardware.env"),
		calls: filepath.Join(root, "systemctl.calls"),
		bin:   filepath.Join(root, "bin"),
	}
	require.NoError(t, os.MkdirAll(filepath.Dir(e.out), 0o755))
	require.NoError(t, os.MkdirAll(e.bin, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(e.bin, "systemctl"),
		[]byte("#!/bin/sh\necho \"$*\" >> \""+e.calls+"\"\n"), 0o755))
	return e
}

func (e detectEnv) addCard(t *testing.T, name, vendor string, render bool) {
	writeTree(t, e.sysfs, map[string]string{
		"class/drm/" + name + "/device/vendor": vendor + "\n",
		"class/drm/" + name + "/device/device": "0x56a0\n",
		"class/drm/" + name + "-DP-1/status":   "connected\n",
	})
	if render {
		writeTree(t, e.dev, map[string]string{"dri/renderD128": ""})
	}
}

func (e detectEnv) run(t *testing.T, args ...string) string {
	t.Helper()
	testlib.CheckPath(t, "bash")
	script := filepath.Join(testlib.RepoRoot(t), "modules", "nixos", "scripts", "ipex-hardware-detect.sh")
	cmd := exec.CommandContext(t.Context(), "bash", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), "IPEX_SYSFS="+e.sysfs, "IPEX_DEV="+e.dev, "IPEX_HARDWARE_ENV="+e.out,
		"PATH="+e.bin+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	b, err := os.ReadFile(e.out)
	require.NoError(t, err)
	return string(b)
}

func (e detectEnv) restarts(t *testing.T) string {
	b, err := os.ReadFile(e.calls)
	if os.IsNotExist(err) {
		return ""
	}
	require.NoError(t, err)
	return string(b)
}

var detectArgs = []string{"--selector", "level_zero:gpu", "--fallback-selector", "!level_zero:*;!opencl:*",
	"--restart", "ollama-ipex.service", "--restart", "comfyui-ipex.service"}

func TestHardwareDetect(t *testing.T) {
	tests := []struct {
		name     string
		vendor   string
		render   bool
		wantGPU  bool
		want     string
		fallback bool
	}{
		{name: "intel gpu with render node", vendor: "0x8086", render: true, wantGPU: true, want: "ONEAPI_DEVICE_SELECTOR=level_zero:gpu"},
		{name: "intel gpu without render node", vendor: "0x8086", wantGPU: true, want: "ONEAPI_DEVICE_SELECTOR=!level_zero:*;!opencl:*", fallback: true},
		{name: "virtio gpu", vendor: "0x1af4", render: true, wantGPU: true, want: "ONEAPI_DEVICE_SELECTOR=!level_zero:*;!opencl:*", fallback: true},
		{name: "gpu not wanted", vendor: "0x8086", render: true, want: "ONEAPI_DEVICE_SELECTOR=!level_zero:*;!opencl:*", fallback: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newDetectEnv(t)
			e.addCard(t, "card0", tt.vendor, tt.render)
			args := detectArgs
			if tt.wantGPU {
				args = append(append([]string{}, args...), "--want-gpu")
			}
			got := e.run(t, args...)
			assert.Contains(t, got, tt.want+"\n")
			assert.Equal(t, tt.fallback, strings.Contains(got, "IPEX_CPU_FALLBACK=1"), got)
			assert.NotContains(t, got, "card0-DP-1", "connectors are not GPUs")
			assert.Empty(t, e.restarts(t), "the first run restarts nothing")
		})
	}
}

// TestHardwareDetectLateDevice: the boot run finds no render node (CPU
// fallback); udev runs the detection again when the render node appears,
// which switches to the GPU and restarts the services, without waiting.
func TestHardwareDetectLateDevice(t *testing.T) {
	e := newDetectEnv(t)
	e.addCard(t, "card0", "0x8086", false)
	args := append(append([]string{}, detectArgs...), "--want-gpu")
	first := e.run(t, args...)
	require.Contains(t, first, "IPEX_CPU_FALLBACK=1")

	again := e.run(t, args...)
	assert.Equal(t, first, again)
	assert.Empty(t, e.restarts(t), "nothing changed: nothing restarted")

	writeTree(t, e.dev, map[string]string{"dri/renderD128": ""})
	late := e.run(t, args...)
	assert.Contains(t, late, "ONEAPI_DEVICE_SELECTOR=level_zero:gpu\n")
	assert.NotContains(t, late, "IPEX_CPU_FALLBACK")
	assert.Equal(t, "--no-block try-restart ollama-ipex.service comfyui-ipex.service\n", e.restarts(t))
}

func TestHardwareDetectUsage(t *testing.T) {
	testlib.CheckPath(t, "bash")
	script := filepath.Join(testlib.RepoRoot(t), "modules", "nixos", "scripts", "ipex-hardware-detect.sh")
	for _, args := range [][]string{{}, {"--selector"}, {"--selector", "x"}, {"--selector", "x", "--fallback-selector", "y", "--bogus"}} {
		cmd := exec.CommandContext(t.Context(), "bash", append([]string{script}, args...)...)
		cmd.Env = append(os.Environ(), "IPEX_HARDWARE_ENV="+filepath.Join(t.TempDir(), "never"))
		err := cmd.Run()
		var code int
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		}
		assert.Equal(t, 2, code, "%v", args)
	}
}

func TestHardwareDetectShellcheck(t *testing.T) {
	testlib.CheckPath(t, "shellcheck")
	script := filepath.Join(testlib.RepoRoot(t), "modules", "nixos", "scripts", "ipex-hardware-detect.sh")
	out, err := exec.CommandContext(t.Context(), "shellcheck", "--shell=bash", script).CombinedOutput()
	assert.NoError(t, err, "%s", out)
}
