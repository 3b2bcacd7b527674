package modules

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/testlib"
)

// alertFiles are the rule files of services.ipex.monitoring and their promtool unit tests.
var alertFiles = []struct{ rules, test string }{
	{"ipex.rules.yml", "ipex.rules.test.yml"},
	{"ipex-gpu.rules.yml", "ipex-gpu.rules.test.yml"},
}

func alertsDir(t *testing.T) string {
	return filepath.Join(testlib.RepoRoot(t), "modules", "nixos", "alerts")
}

func promtool(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	testlib.CheckPath(t, "promtool")
	cmd := exec.CommandContext(t.Context(), "promtool", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestAlertRules: promtool checks every rules file and runs its unit tests.
func TestAlertRules(t *testing.T) {
	for _, f := range alertFiles {
		for _, args := range [][]string{{"check", "rules", f.rules}, {"test", "rules", f.test}} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				out, err := promtool(t, alertsDir(t), args...)
				require.NoError(t, err, out)
				assert.Contains(t, out, "SUCCESS")
			})
		}
	}
}

// TestAlertRulesCoverPhase4 asserts the alerts the Phase 4 document asks for
// exist, and that the service-down and disk rules have unit tests.
func TestAlertRulesCoverPhase4(t *testing.T) {
	all := ""
	for _, f := range alertFiles {
		b, err := os.ReadFile(filepath.Join(alertsDir(t), f.rules))
		require.NoError(t, err)
		all += string(b)
	}
	for _, name := range []string{"IpexServiceDown", "IpexGpuNotAccessible", "IpexDiskUsageHigh", "IpexMemoryPressure", "IpexInferenceLatencyHigh", "IpexGpuTemperatureHigh"} {
		assert.Contains(t, all, "alert: "+name)
	}
	tests, err := os.ReadFile(filepath.Join(alertsDir(t), "ipex.rules.test.yml"))
	require.NoError(t, err)
	for _, name := range []string{"IpexServiceDown", "IpexDiskUsageHigh"} {
		assert.Contains(t, string(tests), "alertname: "+name)
	}
}

// TestAlertRuleTestsCanFail changes thresholds in a copy of the rules: the
// unit tests must then fail, so they test the thresholds.
func TestAlertRuleTestsCanFail(t *testing.T) {
	tests := []struct{ name, file, from, to string }{
		{"service down never", "ipex.rules.yml", "expr: ipex_service_up == 0", "expr: ipex_service_up == 2"},
		{"disk threshold 95", "ipex.rules.yml", "> 0.85", "> 0.95"},
		{"latency threshold 5", "ipex.rules.yml", ")) > 2", ")) > 5"},
		{"temperature 100", "ipex-gpu.rules.yml", "> 90", "> 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range alertFiles {
				for _, name := range []string{f.rules, f.test} {
					b, err := os.ReadFile(filepath.Join(alertsDir(t), name))
					require.NoError(t, err)
					if name == tt.file {
						require.Contains(t, string(b), tt.from)
						b = []byte(strings.Replace(string(b), tt.from, tt.to, 1))
					}
					require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
				}
			}
			test := "ipex.rules.test.yml"
			if tt.file == "ipex-gpu.rules.yml" {
				test = "ipex-gpu.rules.test.yml"
			}
			out, err := promtool(t, dir, "test", "rules", test)
			assert.Error(t, err, "promtool test rules passed with a changed threshold:\n%s", out)
		})
	}
}

var metricRe = regexp.MustCompile(`\bipex_[a-z_]+`)

// TestAlertMetricsExistInExporter runs the exporter once against a fake
// sysfs, procfs, Ollama and ComfyUI, and checks that every ipex_* metric the
// alert rules and the Grafana dashboard use is one it produces.
func TestAlertMetricsExistInExporter(t *testing.T) {
	python := testlib.Python(t, "prometheus_client")
	root := t.TempDir()
	sysfs, procfs, devfs := filepath.Join(root, "sys"), filepath.Join(root, "proc"), filepath.Join(root, "dev")
	writeTree(t, sysfs, map[string]string{
		"class/drm/card0/device/vendor":                     "0x8086\n",
		"class/drm/card0/gt_act_freq_mhz":                   "300\n",
		"class/drm/card0/gt_max_freq_mhz":                   "2400\n",
		"class/drm/card0/device/hwmon/hwmon1/temp1_input":   "50000\n",
		"class/drm/card0/device/hwmon/hwmon1/energy1_input": "1000\n",
		"class/drm/card0/device/drm/renderD128/dev":         "226:128\n",
	})
	writeTree(t, procfs, map[string]string{
		"meminfo":         "MemTotal: 1024 kB\nMemAvailable: 512 kB\n",
		"pressure/memory": "some avg10=0.00 avg60=1.00 avg300=0.00 total=1\nfull avg10=0.00 avg60=0.50 avg300=0.00 total=1\n",
	})
	writeTree(t, devfs, map[string]string{"dri/renderD128": ""})

	ollama := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/tags":
			_ = json.NewEncoder(w).Encode(map[string]any{"models": []map[string]string{{"name": "tiny:latest"}}})
		case r.Method == http.MethodGet && r.URL.Path == "/system_stats":
			_ = json.NewEncoder(w).Encode(map[string]any{"devices": []map[string]any{{"name": "xpu:0", "vram_total": 100, "vram_free": 60}}})
		case r.Method == http.MethodGet && r.URL.Path == "/queue":
			_ = json.NewEncoder(w).Encode(map[string]any{"queue_running": []any{}, "queue_pending": []any{}})
		case r.Method == http.MethodGet && r.URL.Path == "/history":
			_ = json.NewEncoder(w).Encode(map[string]any{})
		case r.Method == http.MethodPost && r.URL.Path == "/api/generate":
			enc := json.NewEncoder(w)
			_ = enc.Encode(map[string]any{"model": "tiny", "response": "Hi", "done": false})
			_ = enc.Encode(map[string]any{"model": "tiny", "response": "", "done": true})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(ollama.Close)

	exporter := filepath.Join(testlib.RepoRoot(t), "pkgs", "ipex-exporter", "ipex_exporter.py")
	cmd := exec.CommandContext(t.Context(), python, exporter, "--once",
		"--sysfs", sysfs, "--procfs", procfs, "--devfs", devfs, "--disk-path", root,
		"--ollama-url", ollama.URL, "--ollama-probe-model", "tiny", "--comfyui-url", ollama.URL)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	produced := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			produced[strings.Fields(line)[2]] = true
		}
	}
	require.True(t, produced["ipex_service_up"], "exporter output:\n%s", out)

	var used []string
	for _, f := range alertFiles {
		b, err := os.ReadFile(filepath.Join(alertsDir(t), f.rules))
		require.NoError(t, err)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "expr:") {
				used = append(used, metricRe.FindAllString(line, -1)...)
			}
		}
	}
	require.NotEmpty(t, used)
	// The Grafana dashboard's queries too.
	dashboard, err := os.ReadFile(filepath.Join(testlib.RepoRoot(t), "modules", "nixos", "grafana-dashboard.nix"))
	require.NoError(t, err)
	for _, line := range strings.Split(string(dashboard), "\n") {
		if strings.Contains(line, "expr =") {
			used = append(used, metricRe.FindAllString(line, -1)...)
		}
	}
	sort.Strings(used)
	// A rate between two scrapes: --once scrapes once. The exporter's
	// test_sysfs_metrics checks it after a second scrape.
	produced["ipex_gpu_power_watts"] = strings.Contains(string(out), "ipex_gpu_energy_joules_total")
	for _, m := range used {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count"), "_sum")
		assert.True(t, produced[base], "metric %s (alert rules, dashboard) is not produced by ipex-exporter", m)
	}
}

// TestExporterUnitTests runs the exporter's own Python tests.
func TestExporterUnitTests(t *testing.T) {
	python := testlib.Python(t, "prometheus_client")
	cmd := exec.CommandContext(t.Context(), python, "-m", "unittest", "-v", "test_ipex_exporter")
	cmd.Dir = filepath.Join(testlib.RepoRoot(t), "pkgs", "ipex-exporter")
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "OK")
}
