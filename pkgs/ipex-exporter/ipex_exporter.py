"""Prometheus exporter for IPEX hosts.

Serves /metrics in the Prometheus text format with:
  ipex_gpu_utilization_ratio     actual / maximum GT frequency (i915 and xe sysfs)
  ipex_gpu_temperature_celsius   hwmon temp1_input of each Intel GPU
  ipex_gpu_energy_joules_total   hwmon energy1_input (rate() gives watts)
  ipex_gpu_power_watts           energy delta between two scrapes
  ipex_memory_total_bytes, ipex_memory_available_bytes   /proc/meminfo
  ipex_gpu_memory_total_bytes, ipex_gpu_memory_free_bytes ComfyUI /system_stats
  ipex_service_up, ipex_inference_latency_seconds         API probe per service
  ipex_throughput_queue_pending, ipex_throughput_queue_running,
  ipex_throughput_prompts_completed                      ComfyUI /queue, /history
  ipex_models_loaded                                     Ollama /api/tags

Only the Python standard library is used, so it runs hardened with no
writable paths and no privileges.
"""

import argparse
import glob
import json
import os
import sys
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INTEL_VENDOR = "0x8086"


def read(path):
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return None


def read_number(path):
    value = read(path)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def intel_cards(sysfs):
    """Yield (name, card_dir) for every DRM card whose PCI vendor is Intel."""
    for card in sorted(glob.glob(os.path.join(sysfs, "class/drm/card[0-9]*"))):
        name = os.path.basename(card)
        if "-" in name:  # connectors such as card0-DP-1
            continue
        if read(os.path.join(card, "device/vendor")) == INTEL_VENDOR:
            yield name, card


def frequency_ratio(card):
    pairs = [
        ("gt_act_freq_mhz", "gt_max_freq_mhz"),  # i915
        ("device/tile0/gt0/freq0/act_freq", "device/tile0/gt0/freq0/max_freq"),  # xe
    ]
    for act, top in pairs:
        a = read_number(os.path.join(card, act))
        m = read_number(os.path.join(card, top))
        if a is not None and m:
            return a / m
    return None


def hwmon_value(card, name):
    for path in sorted(glob.glob(os.path.join(card, "device/hwmon/hwmon*", name))):
        value = read_number(path)
        if value is not None:
            return value
    return None


def meminfo(procfs):
    out = {}
    text = read(os.path.join(procfs, "meminfo")) or ""
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) * 1024
    return out


def fetch_json(url, timeout):
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body = json.load(resp)
    return body, time.perf_counter() - start


class Collector:
    """Builds the metrics text; keeps the last energy reading for power."""

    def __init__(self, sysfs="/sys", procfs="/proc", ollama_url=None, comfyui_url=None, timeout=5.0):
        self.sysfs = sysfs
        self.procfs = procfs
        self.ollama_url = ollama_url
        self.comfyui_url = comfyui_url
        self.timeout = timeout
        self._energy = {}

    def collect(self, now=None):
        now = time.monotonic() if now is None else now
        lines = []

        def metric(name, kind, help_text, samples):
            samples = [(labels, value) for labels, value in samples if value is not None]
            if not samples:
                return
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
                lines.append(f"{name}{{{label_text}}} {value:g}" if label_text else f"{name} {value:g}")

        cards = list(intel_cards(self.sysfs))
        metric("ipex_gpu_devices", "gauge", "Intel GPUs found in sysfs.", [({}, float(len(cards)))])
        metric(
            "ipex_gpu_utilization_ratio",
            "gauge",
            "Actual over maximum GT frequency, a utilisation proxy that needs no perf privileges.",
            [({"card": n}, frequency_ratio(c)) for n, c in cards],
        )
        temps = [({"card": n}, hwmon_value(c, "temp1_input")) for n, c in cards]
        metric(
            "ipex_gpu_temperature_celsius",
            "gauge",
            "GPU temperature from hwmon.",
            [(l, v / 1000.0 if v is not None else None) for l, v in temps],
        )
        energy, power = [], []
        for n, c in cards:
            uj = hwmon_value(c, "energy1_input")
            if uj is None:
                continue
            joules = uj / 1e6
            energy.append(({"card": n}, joules))
            last = self._energy.get(n)
            if last is not None and now > last[0] and joules >= last[1]:
                power.append(({"card": n}, (joules - last[1]) / (now - last[0])))
            self._energy[n] = (now, joules)
        metric("ipex_gpu_energy_joules_total", "counter", "GPU energy used, from hwmon.", energy)
        metric("ipex_gpu_power_watts", "gauge", "GPU power over the last scrape interval.", power)

        mem = meminfo(self.procfs)
        metric("ipex_memory_total_bytes", "gauge", "System memory.", [({}, mem.get("MemTotal"))])
        metric("ipex_memory_available_bytes", "gauge", "Available system memory.", [({}, mem.get("MemAvailable"))])

        up, latency = [], []
        if self.ollama_url:
            try:
                tags, seconds = fetch_json(self.ollama_url.rstrip("/") + "/api/tags", self.timeout)
                up.append(({"service": "ollama"}, 1.0))
                latency.append(({"service": "ollama"}, seconds))
                metric(
                    "ipex_models_loaded",
                    "gauge",
                    "Models present in Ollama.",
                    [({"service": "ollama"}, float(len(tags.get("models") or [])))],
                )
            except (OSError, ValueError, urllib.error.URLError):
                up.append(({"service": "ollama"}, 0.0))
        if self.comfyui_url:
            base = self.comfyui_url.rstrip("/")
            try:
                stats, seconds = fetch_json(base + "/system_stats", self.timeout)
                up.append(({"service": "comfyui"}, 1.0))
                latency.append(({"service": "comfyui"}, seconds))
                devices = stats.get("devices") or []
                metric(
                    "ipex_gpu_memory_total_bytes",
                    "gauge",
                    "Device memory as ComfyUI's torch sees it.",
                    [({"device": d.get("name", str(i))}, float(d.get("vram_total", 0))) for i, d in enumerate(devices)],
                )
                metric(
                    "ipex_gpu_memory_free_bytes",
                    "gauge",
                    "Free device memory as ComfyUI's torch sees it.",
                    [({"device": d.get("name", str(i))}, float(d.get("vram_free", 0))) for i, d in enumerate(devices)],
                )
                queue, _ = fetch_json(base + "/queue", self.timeout)
                metric(
                    "ipex_throughput_queue_running",
                    "gauge",
                    "ComfyUI prompts running.",
                    [({"service": "comfyui"}, float(len(queue.get("queue_running") or [])))],
                )
                metric(
                    "ipex_throughput_queue_pending",
                    "gauge",
                    "ComfyUI prompts waiting.",
                    [({"service": "comfyui"}, float(len(queue.get("queue_pending") or [])))],
                )
                history, _ = fetch_json(base + "/history", self.timeout)
                metric(
                    "ipex_throughput_prompts_completed",
                    "gauge",
                    "ComfyUI prompts in the history (ComfyUI keeps the last 10000).",
                    [({"service": "comfyui"}, float(len(history)))],
                )
            except (OSError, ValueError, urllib.error.URLError):
                up.append(({"service": "comfyui"}, 0.0))
        metric("ipex_service_up", "gauge", "1 when the service API answered.", up)
        metric("ipex_inference_latency_seconds", "gauge", "API round trip of the probe request.", latency)
        return "\n".join(lines) + "\n"


def make_handler(collector):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics is served")
                return
            body = collector.collect().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            pass

    return Handler


def main(argv=None):
    parser = argparse.ArgumentParser(description="Prometheus exporter for IPEX hosts")
    parser.add_argument("--listen-address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9835)
    parser.add_argument("--ollama-url")
    parser.add_argument("--comfyui-url")
    parser.add_argument("--sysfs", default="/sys")
    parser.add_argument("--procfs", default="/proc")
    parser.add_argument("--once", action="store_true", help="print the metrics once and exit")
    args = parser.parse_args(argv)
    collector = Collector(args.sysfs, args.procfs, args.ollama_url, args.comfyui_url)
    if args.once:
        sys.stdout.write(collector.collect())
        return 0
    server = ThreadingHTTPServer((args.listen_address, args.port), make_handler(collector))
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
