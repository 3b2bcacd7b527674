"""Tests for ipex_exporter against a fake sysfs/procfs and fake service APIs."""

import json
import os
import tempfile
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import ipex_exporter


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="ascii") as f:
        f.write(text)


class FakeAPI(BaseHTTPRequestHandler):
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

    def log_message(self, fmt, *args):
        pass


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
        write(self.procfs, "meminfo", "MemTotal:       16384 kB\nMemAvailable:    8192 kB\n")

    def tearDown(self):
        self.tmp.cleanup()

    def test_sysfs_metrics(self):
        c = ipex_exporter.Collector(self.sysfs, self.procfs)
        text = c.collect(now=100.0)
        self.assertIn("ipex_gpu_devices 1", text)
        self.assertIn('ipex_gpu_utilization_ratio{card="card0"} 0.5', text)
        self.assertIn('ipex_gpu_temperature_celsius{card="card0"} 55', text)
        self.assertIn('ipex_gpu_energy_joules_total{card="card0"} 10', text)
        self.assertNotIn("ipex_gpu_power_watts", text)
        self.assertIn("ipex_memory_total_bytes 1.67772e+07", text)
        write(self.sysfs, "class/drm/card0/device/hwmon/hwmon3/energy1_input", "30000000\n")
        text = c.collect(now=110.0)
        self.assertIn('ipex_gpu_power_watts{card="card0"} 2', text)

    def test_services(self):
        server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAPI)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        c = ipex_exporter.Collector(self.sysfs, self.procfs, ollama_url=url, comfyui_url=url + "/")
        text = c.collect()
        self.assertIn('ipex_service_up{service="ollama"} 1', text)
        self.assertIn('ipex_service_up{service="comfyui"} 1', text)
        self.assertIn('ipex_models_loaded{service="ollama"} 1', text)
        self.assertIn('ipex_gpu_memory_free_bytes{device="xpu:0"} 40', text)
        self.assertIn('ipex_throughput_queue_pending{service="comfyui"} 2', text)
        self.assertIn('ipex_throughput_prompts_completed{service="comfyui"} 3', text)
        self.assertIn('ipex_inference_latency_seconds{service="ollama"}', text)

    def test_service_down(self):
        c = ipex_exporter.Collector(self.sysfs, self.procfs, ollama_url="http://127.0.0.1:9", timeout=0.5)
        text = c.collect()
        self.assertIn('ipex_service_up{service="ollama"} 0', text)
        self.assertNotIn("ipex_inference_latency_seconds", text)


if __name__ == "__main__":
    unittest.main()
