// Package exporter checks the output of pkgs/ipex-exporter (Python, on
// prometheus_client) with the real promtool; its unit tests run in
// tests/modules.
package exporter

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/testlib"
)

const dir = "../../pkgs/ipex-exporter"

// run runs cmd in the exporter's directory without writing bytecode there.
func run(t *testing.T, cmd *exec.Cmd) []byte {
	t.Helper()
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s\n%s", out, stderr.String())
	return append(out, stderr.Bytes()...)
}

// TestExporterOutputPassesPromtool scrapes a fake Intel GPU once and lets
// promtool lint the text.
func TestExporterOutputPassesPromtool(t *testing.T) {
	py := testlib.Python(t, "prometheus_client")
	testlib.CheckPath(t, "promtool")
	sys := t.TempDir()
	for rel, v := range map[string]string{
		"class/drm/card0/device/vendor":                     "0x8086\n",
		"class/drm/card0/gt_act_freq_mhz":                   "600\n",
		"class/drm/card0/gt_max_freq_mhz":                   "2400\n",
		"class/drm/card0/device/hwmon/hwmon1/temp1_input":   "48000\n",
		"class/drm/card0/device/hwmon/hwmon1/energy1_input": "5000000\n",
	} {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(sys, rel)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(sys, rel), []byte(v), 0o644))
	}
	text := run(t, exec.CommandContext(t.Context(), py, "ipex_exporter.py", "--once", "--sysfs", sys))
	require.Contains(t, string(text), `ipex_gpu_frequency_ratio{card="card0"} 0.25`)
	lint := exec.CommandContext(t.Context(), "promtool", "check", "metrics")
	lint.Stdin = bytes.NewReader(text)
	out, err := lint.CombinedOutput()
	require.NoError(t, err, "promtool check metrics:\n%s\n%s", out, text)
}
