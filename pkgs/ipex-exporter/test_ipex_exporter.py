"""Tests for ipex_exporter against a fake sysfs/procfs and fake service APIs."""

import json
import os
import tempfile
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import ipex_exporter
from prometheus_client.parser import text_string_to_metric_families


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="ascii") as f:
        f.write(text)


def sample(text, name, **labels):
    """The value of the sample name{labels} in the metrics text (label order
    is the text format's own), or None when there is none."""
    for fam in text_string_to_metric_families(text + "\n"):
        for s in fam.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return None


class FakeAPI(BaseHTTPRequestHandler):
    # Lines of the /api/generate stream; a test replaces them.
    generate = [
        {"model": "tiny", "response": "", "done": False},
        {"model": "tiny", "response": "Hi", "done": False},
        {"model": "tiny", "response": "", "done": True, "done_reason": "length"},
    ]
    routes = {
        "/api/tags": {"models": [{"name": "tinyllama"}]},
        "/system_stats": {"devices": [{"name": "xpu:0", "vram_total": 100, "vram_free": 40}]},
        "/queue": {"queue_running": [1], "queue_pending": [1, 2]},
        "/history": {"a": {}, "b": {}, "c": {}},
    }

    def do_GET(self):
        body = self.routes.get(self.path)
        if body is None:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        if self.path != "/api/generate":
            self.send_error(404)
            return
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length))
        FakeAPI.last_request = request
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        for chunk in FakeAPI.generate:
            self.wfile.write(json.dumps(chunk).encode() + b"\n")

    def log_message(self, fmt, *args):
        pass


def serve(test):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    test.addCleanup(server.server_close)
    test.addCleanup(server.shutdown)
    return f"http://127.0.0.1:{server.server_address[1]}"


class CollectorTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        root = self.tmp.name
        self.sysfs = os.path.join(root, "sys")
        self.procfs = os.path.join(root, "proc")
        write(self.sysfs, "class/drm/card0/device/vendor", "0x8086\n")
        write(self.sysfs, "class/drm/card0/gt_act_freq_mhz", "1200\n")
        write(self.sysfs, "class/drm/card0/gt_max_freq_mhz", "2400\n")
        write(self.sysfs, "class/drm/card0/device/hwmon/hwmon3/temp1_input", "55000\n")
        write(self.sysfs, "class/drm/card0/device/hwmon/hwmon3/energy1_input", "10000000\n")
        write(self.sysfs, "class/drm/card0-DP-1/device/vendor", "0x8086\n")
        write(self.sysfs, "class/drm/card1/device/vendor", "0x10de\n")
        write(self.sysfs, "class/drm/card0/device/drm/renderD128/dev", "226:128\n")
        write(self.procfs, "meminfo", "MemTotal:       16384 kB\nMemAvailable:    8192 kB\n")
        write(
            self.procfs,
            "pressure/memory",
            "some avg10=1.00 avg60=12.50 avg300=0.00 total=1\nfull avg10=0.00 avg60=4.00 avg300=0.00 total=0\n",
        )
        self.devfs = os.path.join(root, "dev")

    def tearDown(self):
        self.tmp.cleanup()

    def test_sysfs_metrics(self):
        c = ipex_exporter.Collector(self.sysfs, self.procfs)
        text = c.collect(now=100.0)
        self.assertIn("ipex_gpu_devices 1", text)
        self.assertIn('ipex_gpu_frequency_ratio{card="card0"} 0.5', text)
        self.assertNotIn("utilization", text, "a frequency ratio is not called utilisation")
        self.assertIn('ipex_gpu_temperature_celsius{card="card0"} 55', text)
        self.assertIn('ipex_gpu_energy_joules_total{card="card0"} 10', text)
        self.assertNotIn("ipex_gpu_power_watts", text)
        self.assertIn("ipex_memory_total_bytes 1.6777216e+07", text)
        self.assertIn("ipex_memory_pressure_some_ratio 0.125", text)
        self.assertIn("ipex_memory_pressure_full_ratio 0.04", text)
        write(self.sysfs, "class/drm/card0/device/hwmon/hwmon3/energy1_input", "30000000\n")
        text = c.collect(now=110.0)
        self.assertIn('ipex_gpu_power_watts{card="card0"} 2', text)

    def test_render_node_access(self):
        c = ipex_exporter.Collector(self.sysfs, self.procfs, devfs=self.devfs)
        self.assertIn('ipex_gpu_render_node_accessible{card="card0",node="renderD128"} 0', c.collect())
        write(self.devfs, "dri/renderD128", "")
        self.assertIn('ipex_gpu_render_node_accessible{card="card0",node="renderD128"} 1', c.collect())
        os.chmod(os.path.join(self.devfs, "dri/renderD128"), 0o400)
        if os.geteuid() != 0:  # root opens it anyway
            self.assertIn('ipex_gpu_render_node_accessible{card="card0",node="renderD128"} 0', c.collect())

    def test_label_values_escaped(self):
        samples = [({"device": 'xpu "0"\\\n'}, 1.0)]
        fam = ipex_exporter.family("m", "gauge", "h", samples)
        text = ipex_exporter.generate_latest(ipex_exporter._Snapshot([fam])).decode()
        self.assertIn('m{device="xpu \\"0\\"\\\\\\n"} 1.0', text)

    def test_filesystem(self):
        c = ipex_exporter.Collector(self.sysfs, self.procfs, disk_paths=[self.tmp.name, "/nonexistent/x"])
        text = c.collect()
        st = os.statvfs(self.tmp.name)
        sizes = {
            s.labels["path"]: s.value
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
            if s.name == "ipex_filesystem_size_bytes"
        }
        self.assertEqual({self.tmp.name: float(st.f_blocks * st.f_frsize)}, sizes)
        self.assertIn(f'ipex_filesystem_avail_bytes{{path="{self.tmp.name}"}}', text)
        self.assertNotIn("/nonexistent/x", text)

    def test_first_token_probe(self):
        url = serve(self)
        probe = ipex_exporter.FirstTokenProbe(url, "tiny", timeout=5)
        self.assertTrue(probe.run_once())
        self.assertEqual(FakeAPI.last_request["options"], {"num_predict": ipex_exporter.PROBE_TOKENS, "temperature": 0})
        self.assertIs(FakeAPI.last_request["think"], False)
        text = "\n".join(probe.lines())
        self.assertEqual(1, sample(text, "ipex_inference_probe_first_token_seconds_bucket", service="ollama", model="tiny", le="2"))
        self.assertEqual(1, sample(text, "ipex_inference_probe_first_token_seconds_count", service="ollama", model="tiny"))
        self.assertEqual(0, sample(text, "ipex_inference_probe_failures_total", service="ollama", model="tiny"))

    def test_first_token_probe_without_text_is_a_failure(self):
        url = serve(self)
        saved = FakeAPI.generate
        self.addCleanup(setattr, FakeAPI, "generate", saved)
        FakeAPI.generate = [{"model": "tiny", "response": "", "done": True, "done_reason": "load"}]
        probe = ipex_exporter.FirstTokenProbe(url, "tiny", timeout=5)
        self.assertFalse(probe.run_once())
        FakeAPI.generate = [{"error": "model 'tiny' not found"}]
        self.assertFalse(probe.run_once())
        text = "\n".join(probe.lines())
        self.assertEqual(0, sample(text, "ipex_inference_probe_first_token_seconds_count", service="ollama", model="tiny"))
        self.assertEqual(2, sample(text, "ipex_inference_probe_failures_total", service="ollama", model="tiny"))

    def test_probe_in_metrics(self):
        url = serve(self)
        probe = ipex_exporter.FirstTokenProbe(url, "tiny", timeout=5)
        probe.run_once()
        c = ipex_exporter.Collector(self.sysfs, self.procfs, ollama_url=url, probe=probe)
        self.assertIn("# TYPE ipex_inference_probe_first_token_seconds histogram", c.collect())

    def test_services(self):
        url = serve(self)
        c = ipex_exporter.Collector(self.sysfs, self.procfs, ollama_url=url, comfyui_url=url + "/")
        text = c.collect()
        self.assertIn('ipex_service_up{service="ollama"} 1', text)
        self.assertIn('ipex_service_up{service="comfyui"} 1', text)
        self.assertIn('ipex_models_loaded{service="ollama"} 1', text)
        self.assertIn('ipex_gpu_memory_free_bytes{device="xpu:0"} 40', text)
        self.assertIn('ipex_throughput_queue_pending{service="comfyui"} 2', text)
        self.assertIn('ipex_throughput_prompts_completed{service="comfyui"} 3', text)
        self.assertIn('ipex_api_probe_duration_seconds{service="ollama"}', text)
        self.assertNotIn("ipex_inference_latency_seconds", text, "an /api/tags round trip is not an inference")

    def test_service_down(self):
        c = ipex_exporter.Collector(self.sysfs, self.procfs, ollama_url="http://127.0.0.1:9", timeout=0.5)
        text = c.collect()
        self.assertIn('ipex_service_up{service="ollama"} 0', text)
        self.assertNotIn("ipex_api_probe_duration_seconds", text)


if __name__ == "__main__":
    unittest.main()
